"""``dr failback``: re-protect, then a planned failover back, then the DR side to warm standby.

After ``dr failover`` the estate runs in the DR region with no standby at all. Failing straight
back would lose everything written since; so, in one plan (same engine guarantees: dry run,
confirmation, lock in the target region, journal, ``--resume``)::

    [move-aside ─►] create-replica ─► replica-in-sync ─► early-restart-<dep>… ─► early-pods-ready ─┐
    redis-reseed ──────────────────────────────────────┬───────────────────────────────────────────┘
                                                       ├─► (the failover plan, planned mode, reversed:
                                                       │    stop writes in DR → lag 0 → promote the new
                                                       │    replica → scale / secret / restart / pods
                                                       │    Ready / healthy → DNS)
                                                       └─► standby-workloads ─► standby-nodegroup

* **move-aside** (when the old primary still holds the original identifier and is available):
  rename it ``<identifier>-old-<created YYYYmmddHHMMSS>`` (the first such name free: ``-2``…
  ``-9`` appended when another generation holds it), tagged ``dr:superseded-by=<run id>`` —
  never deleted: it may hold writes the failover lost (inspect, snapshot and delete it yourself).
* **create-replica**: ``CreateDBInstanceReadReplica`` in the original region from the promoted
  instance's ARN, encrypted with that region's key (``alias/<site>-data``), under the original
  identifier (same endpoint: the cluster's DB secret, the stack files and the Pulumi state still
  match); only when the old primary could not be renamed (not available) under
  ``<identifier>-failback``, with a warning to update the stack files. Placed in the region's DB
  subnet group with the database security group (``Name=<site>-database``), never RDS's default
  VPC / security group (missing: exit 2 before anything changes).
* **redis-reseed**: ElastiCache cannot copy a snapshot across regions; the original region's group
  is used when available, else restored from the newest snapshot *in that region*.
* **replica-in-sync**: ``ReplicaLag`` within the budget before writes stop (keeps the write pause short).
* **early-restart-<dep>, early-pods-ready**: the target's pods older than the new replica (they may
  hold connections to the instance moved aside) are restarted and Ready *before* writes stop; the
  failover part's ``restart-*`` steps then find them current (also keeps the write pause short).
* then :func:`dr.procedures.failover.failover_steps` with source and target swapped;
* finally the DR side back to warm standby: deployments to ``site.standbyReplicas`` of the standby
  site, its HPA floor, and its nodegroup to the standby site's sizes.

The destination is ``--to`` or the stack files' primary region; a failback is refused (exit 3,
nothing changed) when the estate is not failed over: Route53 serves the stack files' primary
region and its database is the writer.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from dr.aws import ec2, eks
from dr.aws.cloudwatch import replica_lag
from dr.aws.kms import key_arn
from dr.aws.rds import DbInstance, Rds, aws_errors
from dr.errors import BadInput, GateRefused
from dr.procedures.dns import prepare_move, read_state
from dr.procedures.failover import (
    FailoverPreflight,
    RedisReadiness,
    failover_steps,
    nodegroup_step,
    redis_readiness,
    redis_step,
    standby_pods_steps,
    unanswered_target,
    workloads_step,
)
from dr.procedures.promote import PromotePreflight
from dr.procedures.support import TAG_CREATED_BY, TAG_RUN_ID, TAG_SUPERSEDED_BY, Settled, clients_of
from dr.runbook.plan import Operation, Plan, Step, StepContext
from dr.topology import DB_LOG_EXPORTS, DB_PERFORMANCE_INSIGHTS_RETENTION_DAYS, DB_STORAGE_TYPE

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.topology import Estate, SiteView

SUFFIX = "failback"
_MAX_ID = 63  # RDS DB instance identifiers: 1-63 letters, digits, hyphens
_DB_ID = re.compile(r"[A-Za-z][A-Za-z0-9-]*[A-Za-z0-9]|[A-Za-z]")
_TRANSITIONAL = {"creating", "modifying", "backing-up", "configuring-enhanced-monitoring", "rebooting"}


@dataclass
class FailbackPreflight:
    source: SiteView  # serving now (the promoted DR side)
    target: SiteView  # the original region, getting the new replica and the traffic back
    source_db: DbInstance
    replica_id: str
    replica_exists: bool
    renamed: bool
    kms_key: str | None
    redis: RedisReadiness
    failover: FailoverPreflight
    max_lag_seconds: float
    warnings: list[str] = field(default_factory=list)
    aside_id: str | None = None  # the old primary, renamed out of the new replica's way

    def to_dict(self) -> dict[str, Any]:
        return {
            "moved_aside_to": self.aside_id,
            "source_region": self.source.region,
            "target_region": self.target.region,
            "source_db": self.source_db.identifier,
            "source_arn": self.source_db.arn,
            "replica": self.replica_id,
            "replica_exists": self.replica_exists,
            "replica_renamed": self.renamed,
            "kms_key": self.kms_key,
            "redis": self.redis.to_dict(),
            "max_lag_seconds": self.max_lag_seconds,
            "warnings": list(self.warnings),
        }


def is_replica_of(inst: DbInstance, source: DbInstance) -> bool:
    src = inst.replica_source or ""
    return bool(src) and (
        src == source.arn or src.endswith(f":db:{source.identifier}") or src == source.identifier
    )


def failback_candidates(base: str) -> list[str]:
    """Identifiers a failback's replica may get, in the order it tries them (first free wins)."""
    return [base, f"{base}-{SUFFIX}"] + [f"{base}-{SUFFIX}-{i}" for i in range(2, 10)]


def choose_replica_id(
    clients: ClientProvider, target: SiteView, source: DbInstance
) -> tuple[str, bool, bool]:
    """(identifier, exists already as our replica, renamed): the original one when free."""
    rds = Rds(clients, target.region)
    base = target.database.identifier
    candidates = failback_candidates(base)
    for ident in candidates:
        found = rds.find_instance(ident)
        if found is None:
            return ident, False, ident != base
        if is_replica_of(found, source):
            return ident, True, ident != base
    raise BadInput(
        f"no free DB identifier for the new replica in {target.region} ({', '.join(candidates)} are taken)",
        resource=base,
        region=target.region,
        hint="delete or rename the old instances there (after keeping what you need)",
    )


def replica_key(clients: ClientProvider, estate: Estate, target: SiteView, src: DbInstance) -> str | None:
    """The KMS key a cross-region replica of ``src`` in ``target``'s region is encrypted with (its
    data key, ``alias/<site>-data``); None for an unencrypted source. GateRefused when missing."""
    if not src.encrypted:
        return None
    kms = key_arn(clients, target.region, estate.kms_alias(target))
    if kms is None:
        raise GateRefused(
            f"{src.identifier} is encrypted but {target.region} has no key {estate.kms_alias(target)}",
            resource=estate.kms_alias(target),
            region=target.region,
            hint=f"deploy stack {target.stack} (its KMS key) first",
        )
    return kms


class NotFailedOver(GateRefused):
    """A failback was asked of an estate that is not failed over (exit 3, nothing changed)."""


def refuse_unless_failed_over(clients: ClientProvider, estate: Estate, target: SiteView) -> None:
    """Raise :class:`NotFailedOver` when Route53 serves the stack files' primary region and its
    database is the writer: the estate is not failed over, a failback (to ``target``, whichever
    it is) has nothing to undo — to the DR region it would be a failover of a healthy estate."""
    primary = estate.primary
    serving = read_state(clients, estate, use_test_dns=False).active_region
    if serving != primary.region:
        return
    db = Rds(clients, primary.region).describe_instance(primary.database.identifier)
    if db.is_replica:
        return
    raise NotFailedOver(
        f"{estate.app.name} is not failed over: Route53 serves {serving}, the stack files' primary region, "
        f"and {db.identifier} there is the writer; a failback to {target.region} has nothing to undo",
        resource=db.identifier,
        region=primary.region,
        hint="nothing to do; `dr status` shows where the estate runs. To move traffic to "
        f"{estate.secondary.region} use `dr failover --to secondary`; after a failover, `dr failback` "
        "brings it back",
    )


def preflight(
    clients: ClientProvider,
    estate: Estate,
    *,
    to: SiteView | None,
    max_lag: dt.timedelta,
    max_snapshot_age: dt.timedelta = dt.timedelta(hours=24),
    replica_id: str | None = None,
    moved_aside: str | None = None,
) -> FailbackPreflight:
    """Gates of a failback (read-only; exit 3 when refused, also when the estate is not failed
    over: :func:`refuse_unless_failed_over`). ``to`` None is the stack files' primary site.

    A resumed run passes ``to`` and ``replica_id`` from its journal (outputs ``failback_target`` /
    ``failback_replica``): once DNS moved back, "the serving region" is no longer the source;
    ``moved_aside`` (output ``failback_aside``) keeps the resumed plan's ``move-aside`` step.

    The old primary in the way of the new replica's identifier is renamed out of the way
    (``<identifier>-old-<created>``, kept) when it is available; otherwise the replica gets
    ``<identifier>-failback[-N]`` and a warning says to update the stack files.
    """
    # The destination is explicit or the stack files' primary, never "whichever region Route53
    # does not serve now": on an estate that never failed over that is the DR region, and a
    # failback there is a failover of a healthy estate (split brain once reprotect runs).
    target = to if to is not None else estate.primary
    source = estate.other(target)
    if replica_id is None:
        refuse_unless_failed_over(clients, estate, target)
    src = Rds(clients, source.region).describe_instance(source.database.identifier)
    if src.is_replica:
        raise BadInput(
            f"{source.database.identifier} in {source.region} is still a read replica: there is no failover "
            "to fail back from",
            resource=source.database.identifier,
            region=source.region,
            hint="dr failback moves traffic back after `dr failover`; pass --to to choose the direction",
        )
    if src.status != "available":
        raise GateRefused(
            f"{src.identifier} in {source.region} is {src.status}, not available",
            resource=src.identifier,
            region=source.region,
        )
    cluster = eks.describe_cluster(clients, target.region, target.cluster.name)
    if cluster.status != "ACTIVE":
        raise GateRefused(
            f"EKS cluster {target.cluster.name} in {target.region} is {cluster.status}, not ACTIVE",
            resource=target.cluster.name,
            region=target.region,
        )
    warnings: list[str] = []
    resumed = replica_id is not None
    base = target.database.identifier
    rds = Rds(clients, target.region)
    aside: str | None = moved_aside
    if replica_id is not None:
        exists = rds.find_instance(replica_id) is not None
        renamed = replica_id != base
    else:
        replica_id, exists, renamed = choose_replica_id(clients, target, src)
        old = rds.find_instance(base) if renamed and not exists else None
        free = free_aside_identifier(rds, old) if old is not None and old.status == "available" else None
        if free is not None:
            # The old primary is in the way: rename it (kept) so the new replica gets the original
            # identifier — same endpoint, stack files and Pulumi state unchanged.
            aside, replica_id, renamed = free, base, False
    if aside is not None:
        warnings.append(
            f"{base} in {target.region} (the old primary, maybe with writes the failover lost) is renamed "
            f"{aside} and kept: inspect, snapshot and delete it yourself; it is outside the Pulumi state"
        )
    elif renamed:
        warnings.append(
            f"{base} still exists in {target.region} (the old primary, maybe with writes the failover lost) "
            f"and cannot be renamed now: the new replica is {replica_id}; keep or delete the old one "
            "yourself, and update site.database.identifier (or rename) before the next `pulumi up`"
        )
    kms = replica_key(clients, estate, target, src)
    redis = redis_readiness(clients, target, max_snapshot_age=max_snapshot_age, estate=estate)
    if redis.action == "restore":
        warnings.append(
            f"Redis {redis.group} re-seeded from {redis.snapshot} in {target.region}: ElastiCache cannot copy "
            "snapshots across regions, so entries newer than that snapshot are not carried back"
        )
    move = prepare_move(clients, estate, target, method="records", force=True)
    rec = move.before.by_region(target.region)
    if rec is None or rec.check is None:
        raise GateRefused(
            f"{estate.app.record} has no failover record with a health check for {target.region}",
            resource=estate.health_check_ref(target),
            region=target.region,
        )
    if not resumed:
        silent = unanswered_target(clients, target.region, rec.check, target.cluster.name)
        if silent is not None:
            raise GateRefused(
                silent,
                resource=rec.check.id,
                region=target.region,
                hint="a failback stops writes in the serving region first and would then wait at "
                "target-healthy with nothing serving: make the endpoint answer (a 503 is fine), then retry",
            )
    budget = max_lag.total_seconds()
    promote = PromotePreflight(
        db=replica_id,
        region=target.region,
        already_promoted=False,
        source=src.arn,
        lag_seconds=None,
        lag_at=None,
        lag_source="checked at run time (replica-caught-up)",
        max_lag_seconds=budget,
        forced=False,
    )
    fo = FailoverPreflight(
        source=source,
        target=target,
        mode="planned",
        db=replica_id,
        promote=promote,
        cluster_status=cluster.status,
        redis=RedisReadiness(redis.group, redis.region, "available", "none"),
        dns=move,
        health_check_id=rec.check.id,
    )
    warnings.append(
        f"{src.identifier} in {source.region} stays a standalone instance after the failback: run "
        "`dr reprotect` afterwards to make it a replica again (until then a failover has nothing to promote)"
    )
    return FailbackPreflight(
        source, target, src, replica_id, exists, renamed, kms, redis, fo, budget, warnings, aside
    )


@dataclass(frozen=True)
class ReplicaPlacement:
    """Where a re-created replica goes: the estate's DB subnet group and security group(s) of
    its region (as the Pulumi program names them), never RDS's defaults."""

    subnet_group: str
    vpc_id: str
    security_groups: tuple[str, ...]


def replica_placement(clients: ClientProvider, estate: Estate, target: SiteView) -> ReplicaPlacement:
    """The subnet group and security groups of ``target``'s database, or BadInput (exit 2).

    Without ``DBSubnetGroupName`` RDS creates the instance outside the estate's VPC; without
    ``VpcSecurityGroupIds`` it gets the VPC's default security group and the app cannot reach it
    once it is promoted. Both are refused rather than left to RDS's defaults.
    """
    region, group = target.region, estate.db_subnet_group(target)
    vpc = Rds(clients, region).subnet_group_vpc(group)
    if vpc is None:
        raise BadInput(
            f"DB subnet group {group} not found in {region}: a replica created without it would be "
            "placed outside the estate's VPC",
            resource=group,
            region=region,
            hint=f"deploy the network and database of stack {target.stack} (pulumi up --stack "
            f"{target.stack}), then retry",
        )
    name = estate.db_security_group(target)
    groups = ec2.security_groups_named(clients, region, name, vpc)
    if not groups:
        raise BadInput(
            f"no security group tagged Name={name} in VPC {vpc} ({region}): a replica created without "
            "it would get the VPC's default security group, which the app cannot reach",
            resource=name,
            region=region,
            hint=f"deploy the network of stack {target.stack} (pulumi up --stack {target.stack}), then retry",
        )
    return ReplicaPlacement(group, vpc, tuple(groups))


class ReplicaSpec(Protocol):
    """What creating a cross-region replica needs (a failback's or a reprotect's preflight)."""

    target: SiteView
    source_db: DbInstance
    replica_id: str
    kms_key: str | None
    max_lag_seconds: float


def create_replica_step(
    estate: Estate,
    pre: ReplicaSpec,
    *,
    timeout: float,
    command: str = "failback",
    depends_on: tuple[str, ...] = (),
) -> Step:
    """``CreateDBInstanceReadReplica`` of ``pre.source_db`` in ``pre.target``'s region, then wait
    until it is available; the journal's outputs ``<command>_replica`` / ``<command>_target``
    name it for ``--resume``."""
    target, src, ident = pre.target, pre.source_db, pre.replica_id
    region = target.region
    settled = Settled()

    def current(ctx: StepContext) -> DbInstance | None:
        return Rds(clients_of(ctx), region).find_instance(ident)

    def remember(ctx: StepContext) -> None:
        if ctx.get(f"{command}_replica") != ident:
            ctx.set(f"{command}_replica", ident)
            ctx.set(f"{command}_target", target.stack)

    def check(ctx: StepContext) -> bool:
        inst = current(ctx)
        done = inst is not None and is_replica_of(inst, src) and inst.status == "available"
        if done and not ctx.dry_run:
            remember(ctx)
        return done

    def action(ctx: StepContext) -> Any:
        remember(ctx)
        inst = current(ctx)
        if inst is not None:
            if not is_replica_of(inst, src):
                raise BadInput(
                    f"{ident} in {region} exists and is not a replica of {src.identifier}",
                    resource=ident,
                    region=region,
                    hint=f"re-run the {command}: it moves that instance out of the way or picks another identifier",
                )
            return {"create": None}  # created by an earlier run: wait for it
        kwargs: dict[str, Any] = {
            "DBInstanceIdentifier": ident,
            "SourceDBInstanceIdentifier": src.arn,
            "SourceRegion": src.region,
            "DBInstanceClass": target.database.instance_class,
            "MultiAZ": target.database.multi_az,
            "CopyTagsToSnapshot": True,
            "Tags": [
                {"Key": TAG_CREATED_BY, "Value": f"dr {command}"},
                {"Key": TAG_RUN_ID, "Value": ctx.run_id},
            ],
        }
        if pre.kms_key:
            kwargs["KmsKeyId"] = pre.kms_key
            kwargs["PerformanceInsightsKMSKeyId"] = pre.kms_key
        place = replica_placement(clients_of(ctx), estate, target)
        kwargs["DBSubnetGroupName"] = place.subnet_group
        kwargs["VpcSecurityGroupIds"] = list(place.security_groups)
        # After a failback this instance is production: what its stack declares for every instance.
        kwargs.update(
            DeletionProtection=target.database.deletion_protection,
            StorageType=DB_STORAGE_TYPE,
            EnableCloudwatchLogsExports=list(DB_LOG_EXPORTS),
            EnablePerformanceInsights=True,
            PerformanceInsightsRetentionPeriod=DB_PERFORMANCE_INSIGHTS_RETENTION_DAYS,
            PubliclyAccessible=False,
            Port=estate.app.database.port,
        )
        client = clients_of(ctx).client("rds", region)
        with aws_errors(
            resource=f"DB instance {ident} (replica of {src.arn})", region=region, action="create"
        ):
            client.create_db_instance_read_replica(**kwargs)
        return {"create": ident}

    def wait(ctx: StepContext) -> bool:
        inst = current(ctx)
        status = inst.status if inst else "missing"
        return settled.observe(
            done=inst is not None and status == "available" and is_replica_of(inst, src),
            transitional=status in _TRANSITIONAL,
            label=status,
        )

    return Step(
        id="create-replica",
        title=f"Re-protect: create read replica {ident} in {region} of {src.identifier} ({src.region})",
        region=region,
        service="rds",
        depends_on=depends_on,
        changes=f"new DB instance {ident} replicating from {src.arn}"
        + (f" (encrypted with {estate.kms_alias(target)})" if pre.kms_key else ""),
        operations=(
            Operation("rds", "DescribeDBInstances", region, {"DBInstanceIdentifier": ident}, False),
            Operation(
                "rds",
                "DescribeDBSubnetGroups",
                region,
                {"DBSubnetGroupName": estate.db_subnet_group(target)},
                False,
            ),
            Operation(
                "ec2",
                "DescribeSecurityGroups",
                region,
                {"Filters": [{"Name": "tag:Name", "Values": [estate.db_security_group(target)]}]},
                False,
            ),
            Operation(
                "rds",
                "CreateDBInstanceReadReplica",
                region,
                {
                    "DBInstanceIdentifier": ident,
                    "SourceDBInstanceIdentifier": src.arn,
                    "SourceRegion": src.region,
                    "KmsKeyId": pre.kms_key or "-",
                    "DBSubnetGroupName": estate.db_subnet_group(target),
                    "VpcSecurityGroupIds": f"tag:Name={estate.db_security_group(target)}",
                    "DeletionProtection": target.database.deletion_protection,
                },
            ),
        ),
        check=check,
        action=action,
        wait=wait,
        timeout=timeout,
        estimate=1200.0,
        tags={"phase": "re-protect"},
    )


_ASIDE_TRIES = 9


def valid_db_identifier(name: str) -> bool:
    """RDS's rule for a DB instance identifier: 1-63 letters, digits and hyphens, starting with a
    letter, no two consecutive hyphens, not ending with a hyphen."""
    return bool(_DB_ID.fullmatch(name)) and len(name) <= _MAX_ID and "--" not in name


def aside_candidates(inst: DbInstance) -> list[str]:
    """Names ``inst`` may be moved aside to, in the order they are tried: ``<identifier>-old-<created
    YYYYmmddHHMMSS>``, then the same with ``-2`` … ``-9``. Derived from the instance alone (a
    resumed run recomputes the same list), different for every generation of the instance created
    a second apart, each shortened to RDS's 63 characters and a valid identifier."""
    stamp = f"{inst.created:%Y%m%d%H%M%S}" if inst.created is not None else "unknown"
    out = []
    for n in range(1, _ASIDE_TRIES + 1):
        suffix = f"-old-{stamp}" + (f"-{n}" if n > 1 else "")
        out.append(inst.identifier[: _MAX_ID - len(suffix)].rstrip("-") + suffix)
    return out


def aside_identifier(inst: DbInstance) -> str:
    """The first of :func:`aside_candidates` (the name when nothing else holds it)."""
    return aside_candidates(inst)[0]


def free_aside_identifier(rds: Rds, inst: DbInstance) -> str | None:
    """The first of :func:`aside_candidates` no DB instance holds in ``inst``'s region (an earlier
    failback or reprotect may have moved another generation aside under a similar name), or
    None when every candidate is taken."""
    for name in aside_candidates(inst):
        if rds.find_instance(name) is None:
            return name
    return None


def aside_taken(inst: DbInstance) -> str:
    names = aside_candidates(inst)
    return f"{names[0]} … {names[-1]}"


def move_aside_step(pre: ReplicaSpec, aside: str, *, timeout: float, command: str) -> Step:
    """Rename the instance holding the new replica's identifier to ``aside`` (once; tagged
    ``dr:superseded-by=<run id>`` first; never deleted). The journal's output ``<command>_aside``
    names it for ``--resume``."""
    region, ident, src = pre.target.region, pre.replica_id, pre.source_db

    def in_the_way(ctx: StepContext) -> DbInstance | None:
        found = Rds(clients_of(ctx), region).find_instance(ident)
        return None if found is None or is_replica_of(found, src) else found

    def check(ctx: StepContext) -> bool:
        return in_the_way(ctx) is None

    def action(ctx: StepContext) -> Any:
        clients = clients_of(ctx)
        found = in_the_way(ctx)
        if found is None or Rds(clients, region).find_instance(aside) is not None:
            return {"renamed": None}  # done (or in flight) by an earlier run
        if found.status != "available":
            raise GateRefused(
                f"{ident} in {region} is {found.status}: it must be available to be renamed",
                resource=ident,
                region=region,
                hint="wait until it is available, then --resume",
            )
        ctx.set(f"{command}_aside", aside)
        Rds(clients, region).add_tags(found, {TAG_SUPERSEDED_BY: ctx.run_id})
        with aws_errors(resource=f"DB instance {ident}", region=region, action=f"rename to {aside}"):
            clients.client("rds", region).modify_db_instance(
                DBInstanceIdentifier=ident, NewDBInstanceIdentifier=aside, ApplyImmediately=True
            )
        return {"renamed": {"from": ident, "to": aside}}

    def wait(ctx: StepContext) -> bool:
        # The identifier is free and the instance answers under its new name (it may still be
        # rebooting there: the new replica does not need it).
        return in_the_way(ctx) is None and Rds(clients_of(ctx), region).find_instance(aside) is not None

    return Step(
        id="move-aside",
        title=f"Rename {ident} ({region}) to {aside}, out of the way of the new replica",
        region=region,
        service="rds",
        changes=f"DB instance {ident} renamed {aside} (kept; tag {TAG_SUPERSEDED_BY})",
        operations=(
            Operation("rds", "DescribeDBInstances", region, {"DBInstanceIdentifier": ident}, False),
            Operation("rds", "AddTagsToResource", region, {"ResourceName": ident, "Tag": TAG_SUPERSEDED_BY}),
            Operation(
                "rds",
                "ModifyDBInstance",
                region,
                {"DBInstanceIdentifier": ident, "NewDBInstanceIdentifier": aside, "ApplyImmediately": True},
            ),
        ),
        check=check,
        action=action,
        wait=wait,
        timeout=timeout,
        estimate=120.0,
        tags={"phase": "re-protect"},
    )


def superseded_step(db: DbInstance, *, depends_on: tuple[str, ...]) -> Step:
    """Tag the instance the failback left behind (``dr:superseded-by=<run id>``): it stopped
    serving and is stale from now on, so a later ``dr failover`` refuses to promote-and-serve it
    until ``dr reprotect`` has rebuilt the standby (an instance promoted by ``dr promote`` a moment
    ago, without the tag, is still taken over by a failover)."""

    def check(ctx: StepContext) -> bool:
        return Rds(clients_of(ctx), db.region).tags(db).get(TAG_SUPERSEDED_BY) == ctx.run_id

    def action(ctx: StepContext) -> Any:
        Rds(clients_of(ctx), db.region).add_tags(db, {TAG_SUPERSEDED_BY: ctx.run_id})
        return {"tagged": db.identifier}

    return Step(
        id="mark-superseded",
        title=f"Mark {db.identifier} ({db.region}) superseded: stale from now on, until dr reprotect",
        region=db.region,
        service="rds",
        changes=f"tag {TAG_SUPERSEDED_BY} on {db.identifier}",
        depends_on=depends_on,
        operations=(
            Operation("rds", "ListTagsForResource", db.region, {"ResourceName": db.arn}, False),
            Operation(
                "rds", "AddTagsToResource", db.region, {"ResourceName": db.arn, "Tag": TAG_SUPERSEDED_BY}
            ),
        ),
        check=check,
        action=action,
        estimate=1.0,
        tags={"phase": "standby"},
    )


def in_sync_step(pre: ReplicaSpec, *, timeout: float, promoted_is_done: bool = True) -> Step:
    """Wait until the new replica's ``ReplicaLag`` is within the budget. ``promoted_is_done``: a
    failback resumed after its promotion has nothing to wait for."""
    region, ident, budget = pre.target.region, pre.replica_id, pre.max_lag_seconds

    def check(ctx: StepContext) -> bool:
        inst = Rds(clients_of(ctx), region).find_instance(ident)
        return inst is not None and not inst.is_replica  # promoted already (resumed run)

    def wait(ctx: StepContext) -> bool:
        point = replica_lag(clients_of(ctx), region, ident)
        if point is None:
            return False
        ctx.set("replica_lag_seconds", point.value)
        return point.value <= budget

    return Step(
        id="replica-in-sync",
        title=f"Wait until {ident} ({region}) lags at most {budget:g}s",
        region=region,
        service="cloudwatch",
        changes="nothing (waits for AWS/RDS ReplicaLag)",
        depends_on=("create-replica",),
        operations=(
            Operation(
                "cloudwatch",
                "GetMetricStatistics",
                region,
                {"MetricName": "ReplicaLag", "DBInstanceIdentifier": ident},
                False,
            ),
        ),
        check=check if promoted_is_done else None,
        wait=wait,
        timeout=timeout,
        estimate=120.0,
        tags={"phase": "re-protect"},
    )


def standby_counts(estate: Estate) -> dict[str, int]:
    """Warm-standby replica counts: ``standbyReplicas`` of the site the stack files declare standby."""
    declared = estate.secondary.site.standby_replicas
    return {d.name: declared.get(d.name, d.replicas) for d in estate.app.deployments}


def failback_plan(estate: Estate, pre: FailbackPreflight, *, timeout: float = 3600.0) -> Plan:
    source = pre.source
    reseed = redis_step(estate, pre.target, pre.redis, timeout=timeout)
    reseed.id = "redis-reseed"
    reseed.tags = {"phase": "re-protect"}
    aside = [move_aside_step(pre, pre.aside_id, timeout=timeout, command="failback")] if pre.aside_id else []
    steps: list[Step] = [
        *aside,
        create_replica_step(estate, pre, timeout=timeout, depends_on=tuple(s.id for s in aside)),
        reseed,
        in_sync_step(pre, timeout=timeout),
    ]
    # The target's pods older than the new replica are restarted now, before writes stop (not in
    # the write pause by the failover's restart-* steps, which then find them current).
    early = standby_pods_steps(
        estate,
        pre.target,
        pre.replica_id,
        after=("replica-in-sync",),
        timeout=timeout,
        restart_prefix="early-restart-",
        ready_id="early-pods-ready",
    )
    steps += early
    steps += failover_steps(estate, pre.failover, timeout=timeout, after=(early[-1].id, "redis-reseed"))
    counts = standby_counts(estate)
    hpa_min = None
    if estate.app.hpa is not None:
        target_dep = estate.app.deployment(estate.app.hpa.deployment).name
        hpa_min = max(1, min(estate.app.hpa.min_replicas, counts.get(target_dep, 1)))
    wl = workloads_step(
        estate,
        source,
        counts,
        hpa_min,
        sid="standby-workloads",
        title=f"Warm standby: deployments in {source.cluster.name} ({source.region}) to standby replicas",
    )
    wl.depends_on = ("verify-service",)
    ng = nodegroup_step(source, estate.secondary.cluster.nodegroup, sid="standby-nodegroup", timeout=timeout)
    ng.depends_on = ("standby-workloads",)
    ng.title = "Warm standby: " + ng.title
    steps += [wl, ng, superseded_step(pre.source_db, depends_on=("verify-service",))]
    return Plan(
        "failback",
        steps,
        f"Fail back {source.region} -> {pre.target.region}: replica {pre.replica_id}, planned failover, "
        f"{source.region} to warm standby",
    )
