"""``dr reprotect``: make the standby region's database a replica of the serving one again.

After ``dr failback`` the DR database is a standalone, stale instance (it served during the
failover; what it wrote went back with the failback). After an unplanned failover the estate
stays on, the old primary is a diverged standalone instance. Until the standby is a read replica
again there is nothing to promote: the next ``dr failover`` is refused by its gate, and the RPO
objective means nothing. One plan on the runbook engine (dry run, confirmation, lock, journal,
``--resume``)::

    move-aside ─► create-replica ─► replica-in-sync ─► restart-<dep>… ─► standby-pods-ready

* **move-aside** (only when the standby's identifier is taken by an instance that is not already
  a replica of the serving database): rename it ``<identifier>-old-<created YYYYmmddHHMMSS>``
  (the first such name free: ``-2``…``-9`` appended when another generation holds it)
  (``ModifyDBInstance NewDBInstanceIdentifier``, applied immediately), tagged
  ``dr:superseded-by=<run id>`` first. Never deleted: after an unplanned failover it may hold
  writes the failover lost — inspect, snapshot and delete it yourself.
* **create-replica**: ``CreateDBInstanceReadReplica`` from the serving instance's ARN under the
  standby's *original* identifier, so its endpoint host is the old one: the standby cluster's DB
  secret and the Pulumi state (``pulumi refresh``) match again without an edit. Encrypted with the
  standby region's key (``alias/<site>-data``), in the estate's subnet group.
* **replica-in-sync**: ``ReplicaLag`` within the budget (default: the RPO objective).
* **restart-<dep>** (standby cluster): a rolling restart of each deployment with a pod older than
  the instance now holding the identifier (it may still hold connections to the renamed one), then
  **standby-pods-ready**. The next failover finds the pods current: no restart while an outage runs.

Which side serves is read from Route53; ``--region`` names the standby explicitly (refused when it
is the serving region).

* **redis-standby** (in parallel with the database): the standby's Redis replication group must be
  ready to take production. ElastiCache has no cross-region replica in this estate's design
  (independent groups, dr/infra/cache.py), so re-protecting Redis means: the standby's group
  exists and is available — or, when it is gone, it is restored from the newest snapshot of the
  estate's groups in the standby region (never another application's), encrypted like Pulumi
  declares it, refused when that snapshot is older than ``--max-snapshot-age``. The journal says
  which (see docs/failover.md).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from dr.aws.rds import DbInstance, Rds
from dr.errors import BadInput, GateRefused, NotFound
from dr.procedures.failback import aside_taken, failback_candidates, free_aside_identifier, replica_key
from dr.procedures.failover import standby_pods_steps
from dr.procedures.failover_gates import DEFAULT_MAX_SNAPSHOT_AGE, RedisReadiness, redis_readiness
from dr.runbook.plan import Plan, Step
from dr.steps import CREATE_REPLICA, MOVE_ASIDE, REDIS_READY, REPLICA_IN_SYNC
from dr.steps.db_replica import is_replica_of
from dr.steps.dns_records import read_state

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.topology import Estate, SiteView


@dataclass
class ReprotectPreflight:
    source: SiteView  # serving: its database is the replication source
    target: SiteView  # standby: gets the new replica
    source_db: DbInstance
    replica_id: str  # the standby's own identifier (from the stack files)
    existing: DbInstance | None  # what holds that identifier now
    aside_id: str | None  # where ``existing`` is moved to (None: nothing in the way)
    kms_key: str | None
    max_lag_seconds: float
    warnings: list[str] = field(default_factory=list)
    redis: RedisReadiness | None = None

    @property
    def protected(self) -> bool:
        """The standby already is an available replica of the serving database (nothing to do)."""
        e = self.existing
        return e is not None and is_replica_of(e, self.source_db) and e.status == "available"

    def to_dict(self) -> dict[str, Any]:
        e = self.existing
        return {
            "source_region": self.source.region,
            "target_region": self.target.region,
            "source_db": self.source_db.identifier,
            "source_arn": self.source_db.arn,
            "replica": self.replica_id,
            "existing": None
            if e is None
            else {"identifier": e.identifier, "status": e.status, "replica_of": e.replica_source},
            "moved_aside_to": self.aside_id,
            "already_protected": self.protected,
            "kms_key": self.kms_key,
            "max_lag_seconds": self.max_lag_seconds,
            "redis": self.redis.to_dict() if self.redis else None,
            "warnings": list(self.warnings),
        }


def _failback_primary(clients: ClientProvider, region: str, named: DbInstance) -> DbInstance | None:
    """A standalone ``<identifier>-failback[-N]`` beside ``named``: ``dr failback`` creates its
    replica under that name when the original identifier is taken, so after it the serving
    database is not the one the stack files name until someone updates them."""
    rds = Rds(clients, region)
    for ident in failback_candidates(named.identifier)[1:]:
        found = rds.find_instance(ident)
        if found is None:
            return None  # failback takes the first free candidate: none further
        if not found.is_replica:
            return found
    return None


def _check_named_source(
    clients: ClientProvider, estate: Estate, source: SiteView, target: SiteView, ident: str
) -> None:
    """``--db``: an instance of the serving region that is not a read replica (exit 2 otherwise,
    saying where it is and what to pass instead)."""
    found = Rds(clients, source.region).find_instance(ident)
    if found is None:
        elsewhere = Rds(clients, target.region).find_instance(ident) is not None
        raise BadInput(
            f"--db {ident}: no such DB instance in {source.region}, the region serving {estate.app.record}"
            + (f" (it is in {target.region}, the standby region)" if elsewhere else ""),
            resource=ident,
            region=source.region,
            hint=f"pass the instance the application in {source.region} uses now (the one `dr failover --db` "
            f"or a repoint moved it onto; `aws rds describe-db-instances --region {source.region}`)",
        )
    if found.is_replica:
        raise BadInput(
            f"--db {ident} in {source.region} is a read replica of {found.replica_source}: a replica "
            "cannot be the source to re-protect from",
            resource=ident,
            region=source.region,
            hint="pass the writable (standalone) instance the application uses now, or leave --db out",
        )


# The IAM actions the gates below read ("target": the standby being rebuilt).
PREFLIGHT_READS: tuple[tuple[str, str], ...] = (
    ("route53:ListHostedZonesByName", "global"),  # which region serves
    ("route53:ListResourceRecordSets", "global"),
    ("route53:GetHealthCheck", "global"),
    ("route53:GetHealthCheckStatus", "global"),
    ("route53:ListTagsForResource", "global"),
    ("rds:DescribeDBInstances", "both"),  # the serving database; what holds the standby's identifier
    ("kms:DescribeKey", "target"),  # the standby region's data key
)


def preflight(
    clients: ClientProvider,
    estate: Estate,
    *,
    region: str | None,
    max_lag: dt.timedelta,
    resuming: bool = False,
    moved_aside: str | None = None,
    max_snapshot_age: dt.timedelta = DEFAULT_MAX_SNAPSHOT_AGE,
    source_db: str | None = None,
) -> ReprotectPreflight:
    """Gates of a reprotect (read-only). Exit 2 for a wrong ``--region``; exit 3 when the serving
    database cannot be replicated from now, or the instance in the way cannot be renamed now.

    ``source_db``: the serving region's database when it is not the one the stack files name — the
    instance a ``failover --db`` moved the application onto (a point-in-time restore); it must be a
    standalone instance in the serving region.

    ``moved_aside``: a resumed run's journal output ``reprotect_aside`` (the instance it renamed
    before it was interrupted), so the resumed plan keeps its ``move-aside`` step."""
    active = read_state(clients, estate, use_test_dns=False).active_region
    if region is not None:
        target = estate.site(region)
        if active is not None and target.region == active:
            raise BadInput(
                f"{target.region} serves {estate.app.record}: reprotect rebuilds the standby region's "
                "database, never the serving one",
                resource=target.database.identifier,
                region=target.region,
                hint=f"pass --region {estate.other(target).region}, or leave --region out",
            )
    else:
        if active is None:
            raise GateRefused(
                f"Route53 does not say which region serves {estate.app.record}",
                resource=estate.app.record,
                hint="pass --region <the standby region> (the one not serving)",
            )
        target = estate.other(estate.site(active))
    source = estate.other(target)
    source_id = source_db or source.database.identifier
    if source_db is not None:
        _check_named_source(clients, estate, source, target, source_db)
    try:
        src = Rds(clients, source.region).describe_instance(source_id)
    except NotFound:
        raise GateRefused(
            f"the serving database {source_id} does not exist in {source.region}",
            resource=source_id,
            region=source.region,
            hint="if a failback renamed it, set site.database.identifier in the stack files first",
        ) from None
    if src.is_replica:
        raise GateRefused(
            f"{src.identifier} in {source.region} is itself a read replica ({src.replica_source}): "
            "there is no writable database to protect",
            resource=src.identifier,
            region=source.region,
            hint="the estate is already in its normal shape (`dr readiness` says whether the standby is "
            "healthy); if the application was failed over onto another instance (`dr failover --db`), "
            "pass --db <that instance>",
        )
    serving = _failback_primary(clients, source.region, src)
    if serving is not None:
        raise GateRefused(
            f"{source.region} has two standalone databases: {src.identifier} (named in the stack files) and "
            f"{serving.identifier} (created by dr failback, which found the first one in its way): "
            "reprotect will not guess which one serves",
            resource=serving.identifier,
            region=source.region,
            hint=f"set site.database.identifier of stack {source.stack} to {serving.identifier} (the "
            "failback's warning), keep or delete the other, then retry",
        )
    if src.status != "available":
        raise GateRefused(
            f"{src.identifier} in {source.region} is {src.status}, not available",
            resource=src.identifier,
            region=source.region,
            hint="wait until it is available (aws rds describe-db-instances), then retry",
        )
    warnings: list[str] = []
    ident = target.database.identifier
    rds = Rds(clients, target.region)
    existing = rds.find_instance(ident)
    aside: str | None = None
    if existing is not None and not is_replica_of(existing, src):
        if existing.status != "available" and not resuming:
            raise GateRefused(
                f"{ident} in {target.region} is {existing.status}: it must be available to be renamed "
                "out of the way",
                resource=ident,
                region=target.region,
                hint="wait until it is available, then retry",
            )
        # A resumed run renames to the name its journal holds; a new one to the first free name
        # (an earlier failback or reprotect may hold the first).
        aside = moved_aside if resuming and moved_aside else free_aside_identifier(rds, existing)
        if aside is None:
            raise GateRefused(
                f"{ident} in {target.region} must be renamed out of the way, but every name for it "
                f"({aside_taken(existing)}) is taken",
                resource=ident,
                region=target.region,
                hint="rename or delete the old instances moved aside there (after keeping what you need), "
                "then retry",
            )
        kind = f"a replica of {existing.replica_source}" if existing.is_replica else "a standalone instance"
        warnings.append(
            f"{ident} in {target.region} is {kind}: renamed to {aside} and kept (it may hold writes a "
            "failover lost) — inspect, snapshot and delete it yourself; it is outside the Pulumi state"
        )
    if aside is None and moved_aside is not None:
        aside = moved_aside
    kms = replica_key(clients, estate, target, src)
    redis = _redis_standby(clients, estate, target, max_snapshot_age, warnings)
    return ReprotectPreflight(
        source=source,
        target=target,
        source_db=src,
        replica_id=ident,
        existing=existing,
        aside_id=aside,
        kms_key=kms,
        max_lag_seconds=max_lag.total_seconds(),
        warnings=warnings,
        redis=redis,
    )


def _redis_standby(
    clients: ClientProvider,
    estate: Estate,
    target: SiteView,
    max_snapshot_age: dt.timedelta,
    warnings: list[str],
) -> RedisReadiness:
    """Gate for the standby's Redis: available, becoming so, or restorable from a recent snapshot of
    the estate's groups in that region (exit 3 otherwise, nothing changed)."""
    redis = redis_readiness(clients, target, max_snapshot_age=max_snapshot_age, estate=estate)
    if redis.action == "restore":
        warnings.append(
            f"Redis {redis.group} does not exist in {target.region}: restored from {redis.snapshot} there "
            "(ElastiCache copies snapshots only within a region; entries newer than it are not carried)"
        )
    return redis


def reprotect_plan(estate: Estate, pre: ReprotectPreflight, *, timeout: float = 3600.0) -> Plan:
    steps: list[Step] = []
    if pre.aside_id is not None:
        steps.append(MOVE_ASIDE.build(pre, pre.aside_id, timeout=timeout, command="reprotect"))
    create = CREATE_REPLICA.build(estate, pre, timeout=timeout, command="reprotect")
    steps.append(replace(create, depends_on=tuple(s.id for s in steps)))
    if not pre.protected:  # a standby that already replicates: its lag is readiness's business
        steps.append(
            replace(
                REPLICA_IN_SYNC.build(pre, timeout=timeout, promoted_is_done=False), depends_on=(create.id,)
            )
        )
    steps += standby_pods_steps(estate, pre.target, pre.replica_id, after=(steps[-1].id,), timeout=timeout)
    if pre.redis is not None:
        steps.append(
            REDIS_READY.build(
                estate,
                pre.target,
                action=pre.redis.action,
                snapshot=pre.redis.snapshot,
                timeout=timeout,
                sid="redis-standby",
            )
        )
    return Plan(
        "reprotect",
        steps,
        f"Re-protect {pre.target.region}: {pre.replica_id} becomes a read replica of "
        f"{pre.source_db.identifier} ({pre.source.region})"
        + (f"; {pre.replica_id} now there is renamed {pre.aside_id}" if pre.aside_id else ""),
    )
