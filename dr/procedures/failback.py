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
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from dr.aws import eks
from dr.aws.kms import key_arn
from dr.aws.rds import DbInstance, Rds
from dr.errors import BadInput, GateRefused
from dr.procedures.dns import prepare_move
from dr.procedures.failover import failover_steps, standby_pods_steps
from dr.procedures.failover_gates import FailoverPreflight, RedisReadiness, redis_readiness, unanswered_target
from dr.procedures.promote import PromotePreflight
from dr.runbook.plan import Plan, Step
from dr.steps import (
    CREATE_REPLICA,
    MARK_SUPERSEDED,
    MOVE_ASIDE,
    NODEGROUP_SCALE,
    REDIS_READY,
    REPLICA_IN_SYNC,
    SCALE_WORKLOADS,
)
from dr.steps.db_replica import is_replica_of

# Defined with their steps in the catalogue; imported from here by reprotect, the CLI and drills.
from dr.steps.dns_records import read_state

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.topology import Estate, SiteView

SUFFIX = "failback"
_MAX_ID = 63  # RDS DB instance identifiers: 1-63 letters, digits, hyphens
_DB_ID = re.compile(r"[A-Za-z][A-Za-z0-9-]*[A-Za-z0-9]|[A-Za-z]")


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


# The IAM actions the gates below read beyond the failover's (``PREFLIGHT_READS`` of
# dr.procedures.failover, with "target" the region getting the traffic back).
PREFLIGHT_READS: tuple[tuple[str, str], ...] = (
    ("rds:DescribeDBInstances", "both"),  # the serving database; a free identifier for the replica
    ("kms:DescribeKey", "target"),  # the key the new replica is encrypted with
    ("rds:DescribeDBSubnetGroups", "target"),  # where the new replica goes (replica_placement)
    ("ec2:DescribeSecurityGroups", "target"),
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


def standby_counts(estate: Estate) -> dict[str, int]:
    """Warm-standby replica counts: ``standbyReplicas`` of the site the stack files declare standby."""
    declared = estate.secondary.site.standby_replicas
    return {d.name: declared.get(d.name, d.replicas) for d in estate.app.deployments}


def failback_plan(estate: Estate, pre: FailbackPreflight, *, timeout: float = 3600.0) -> Plan:
    source = pre.source
    reseed = REDIS_READY.build(
        estate,
        pre.target,
        action=pre.redis.action,
        snapshot=pre.redis.snapshot,
        timeout=timeout,
        sid="redis-reseed",
        phase="re-protect",
    )
    aside = [MOVE_ASIDE.build(pre, pre.aside_id, timeout=timeout, command="failback")] if pre.aside_id else []
    create = CREATE_REPLICA.build(estate, pre, timeout=timeout, command="failback")
    steps: list[Step] = [
        *aside,
        replace(create, depends_on=tuple(s.id for s in aside)),
        reseed,
        replace(REPLICA_IN_SYNC.build(pre, timeout=timeout), depends_on=(create.id,)),
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
    wl = SCALE_WORKLOADS.build(
        estate,
        source,
        counts,
        hpa_min,
        sid="standby-workloads",
        title=f"Warm standby: deployments in {source.cluster.name} ({source.region}) to standby replicas",
    )
    ng = NODEGROUP_SCALE.build(
        source, estate.secondary.cluster.nodegroup, sid="standby-nodegroup", timeout=timeout
    )
    steps += [
        replace(wl, depends_on=("verify-service",)),
        replace(ng, depends_on=(wl.id,), title="Warm standby: " + ng.title),
        replace(MARK_SUPERSEDED.build(pre.source_db), depends_on=("verify-service",)),
    ]
    return Plan(
        "failback",
        steps,
        f"Fail back {source.region} -> {pre.target.region}: replica {pre.replica_id}, planned failover, "
        f"{source.region} to warm standby",
    )
