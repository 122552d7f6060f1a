"""Whole-region failover (``dr failover --to secondary``) as one plan on the runbook engine.

The runbook's "Multi-Region Failover" flips DNS first and promotes the database afterwards, so
for minutes the public name points at a region whose database is read-only. This plan does the
opposite: DNS is flipped only after the target database is writable, the target's pods run the
new connection string and are Ready, and the target's Route53 health check is healthy.

Steps (``source`` = the region losing traffic, ``target`` = the surviving region)::

    planned only:  stop-<writer>… ─► replica-caught-up ─┐
    scale-nodegroup ─────────────────────────────┐      ▼
    scale-workloads ──────────────┐              │   promote-db ─► patch-db-secret
    redis-ready ──────────────────┼──────────────┼──────────┐           │
                                  ▼              │          │           ▼
                             restart-<dep>… ◄────┼──────────┼─── (after the secret)
                                  │              ▼          │
                                  └────────► pods-ready     │
                                                 ▼          ▼
                                            target-healthy ◄┘
                                                 ▼
                                  route-traffic (Route53, records method) ─► verify-dns ─► verify-service

* **planned** — the source region works: stop writes there (scale every writer to 0, recording
  its count), wait until the replica's lag is 0, then promote: RPO 0.
* **unplanned** — the source region is gone: no call goes to it (every step calls the target
  region or Route53); the lag gate is informational (RPO = the lag at the time of the loss).

Every step reads real state in ``check()`` and its action re-reads before acting, so a killed run
resumed with ``--resume`` repeats no side effect (e.g. a promotion already in flight is not
re-issued; a deployment already restarted for this promotion is not restarted again).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from dr.aws import eks
from dr.aws.rds import Rds
from dr.aws.route53 import HealthCheck, Route53, answered
from dr.errors import BadInput, DrError, GateRefused, NotFound
from dr.procedures.dns import DnsMove, prepare_move
from dr.procedures.ops import stop_writes_plan
from dr.procedures.promote import PromotePreflight
from dr.procedures.promote import preflight as promote_preflight
from dr.procedures.support import utcnow
from dr.procedures.walpos import CatchUp, DbRef
from dr.runbook.plan import Plan, Step
from dr.steps import (
    MOVE_RECORDS,
    NODEGROUP_SCALE,
    PATCH_DB_SECRET,
    PODS_READY,
    PROMOTE_REPLICA,
    REDIS_READY,
    REPLICA_CAUGHT_UP,
    RESTART_DEPLOYMENT,
    SCALE_WORKLOADS,
    STOP_WRITES,
    TARGET_HEALTHY,
    VERIFY_DNS,
    VERIFY_SERVICE,
)
from dr.steps.base import StepServices

# Defined with their steps in the catalogue; imported from here by other procedures and drills.
from dr.steps.redis_ready import cache_template as cache_template
from dr.steps.redis_ready import estate_cache_groups as estate_cache_groups
from dr.steps.redis_ready import group_status as group_status
from dr.steps.redis_ready import newest_cache_snapshot as newest_cache_snapshot
from dr.steps.workload_steps import CHANGED_FOR as CHANGED_FOR
from dr.steps.workload_steps import RESTARTED_FOR as RESTARTED_FOR
from dr.steps.workload_steps import desired_database_url as desired_database_url
from dr.steps.workload_steps import promotion_marker as promotion_marker

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.procedures.restore import Connector
    from dr.topology import Estate, Nodegroup, SiteView

Mode = Literal["planned", "unplanned"]

DEFAULT_MAX_SNAPSHOT_AGE = dt.timedelta(hours=24)


# ---------------------------------------------------------------------------------------------
# Pre-flight (read-only gates; exit 3 with the reason, nothing changed)
# ---------------------------------------------------------------------------------------------


@dataclass
class RedisReadiness:
    """How the target's Redis will be ready: already available, or restored from a snapshot."""

    group: str
    region: str
    status: str | None
    action: Literal["none", "wait", "restore"]
    snapshot: str | None = None
    snapshot_age_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "region": self.region,
            "status": self.status,
            "action": self.action,
            "snapshot": self.snapshot,
            "snapshot_age_seconds": self.snapshot_age_seconds,
        }


@dataclass
class FailoverPreflight:
    """Everything the gates learned; the plan is built from it."""

    source: SiteView
    target: SiteView
    mode: Mode
    db: str
    promote: PromotePreflight
    cluster_status: str
    redis: RedisReadiness
    dns: DnsMove
    health_check_id: str
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "source_region": self.source.region,
            "target_region": self.target.region,
            "db": self.db,
            "cluster_status": self.cluster_status,
            "promote": self.promote.to_dict(),
            "redis": self.redis.to_dict(),
            "dns": self.dns.to_dict(),
            "health_check_id": self.health_check_id,
            "warnings": list(self.warnings),
        }


# Health checks that probe an endpoint (their reports say whether it answered); calculated and
# CloudWatch-alarm checks do not, so the "endpoint does not answer" gate does not apply to them.
ENDPOINT_CHECKS = frozenset({"HTTP", "HTTPS", "HTTP_STR_MATCH", "HTTPS_STR_MATCH", "TCP"})


def production_nodegroup(estate: Estate) -> Nodegroup:
    """The nodegroup sizes of the site the stack files declare primary: production capacity."""
    return estate.primary.cluster.nodegroup


def _gate(err: DrError) -> GateRefused:
    return GateRefused(err.message, resource=err.resource, region=err.region, code=err.code, hint=err.hint)


def redis_readiness(
    clients: ClientProvider,
    target: SiteView,
    *,
    max_snapshot_age: dt.timedelta,
    estate: Estate | None = None,
) -> RedisReadiness:
    """Gate: the target's Redis group is available (or becoming so), or a recent snapshot exists.

    With ``estate``: snapshots of any of the estate's groups count (never another app's), and a
    restore is refused unless the site's KMS key exists to encrypt it at rest like Pulumi does."""
    group_id, region = target.cache.replication_group_id, target.region
    groups = estate_cache_groups(estate) if estate is not None else (group_id,)
    status = group_status(clients, region, group_id)
    if status == "available":
        return RedisReadiness(group_id, region, status, "none")
    if status in ("creating", "modifying", "snapshotting"):
        return RedisReadiness(group_id, region, status, "wait")
    if status is not None:
        raise GateRefused(
            f"Redis replication group {group_id} in {region} is {status}",
            resource=group_id,
            region=region,
            hint="repair or delete it (then the failover restores it from the newest snapshot)",
        )
    snap = newest_cache_snapshot(clients, region, groups)
    if snap is None:
        raise GateRefused(
            f"Redis replication group {group_id} does not exist in {region} and there is no Redis snapshot "
            f"of {', '.join(groups)} there to restore it from",
            resource=group_id,
            region=region,
            hint=f"deploy the cache of stack {target.stack} (pulumi up) or create a snapshot in {region}",
        )
    age = (utcnow() - snap.created).total_seconds() if snap.created else None
    if age is not None and age > max_snapshot_age.total_seconds():
        raise GateRefused(
            f"Redis replication group {group_id} does not exist in {region} and its newest snapshot "
            f"{snap.identifier} is {age / 3600:.1f}h old (budget {max_snapshot_age.total_seconds() / 3600:g}h)",
            resource=snap.identifier,
            region=region,
            hint="raise --max-snapshot-age to accept the older cache state, or create the group first",
        )
    if estate is not None:
        cache_template(clients, estate, target)  # the KMS key a restore encrypts with exists
    return RedisReadiness(group_id, region, None, "restore", snap.identifier, age)


def unanswered_target(clients: ClientProvider, region: str, check: HealthCheck, cluster: str) -> str | None:
    """Why the target is not answering its Route53 health check at all, or None.

    Before a failover the target's /health fails by design (its database is a read replica): an
    HTTP error such as 503 is an answer. Most checkers getting *no* answer (timeout, refused) means
    the load balancer path is broken. Unplanned failovers only warn (a timeout may also be a slow
    /health against a read-only database, and a false refusal of a region-loss failover is worse
    than waiting at target-healthy, where DNS does not move); planned switchovers and failbacks,
    which stop writes on a working region first, refuse.
    """
    if check.disabled or check.type.upper() not in ENDPOINT_CHECKS:
        return None
    status = Route53(clients).health_status(check.id)
    if not status.endpoint_unreachable:
        return None
    first = next((r for r in status.reports if not answered(r)), "")
    return (
        f"the {region} endpoint does not answer its Route53 health check {check.id} "
        f"({len(status.reports) - status.answering} of {len(status.reports)} checkers: {first!r}) — "
        f"check the load balancer of {cluster} (listener, security group, WAF)"
    )


# The IAM actions the gates below read (``dr iam-policy`` adds them to the plan's steps' own):
# (action, where) with where "target" (the surviving region), "source", "both" or "global".
PREFLIGHT_READS: tuple[tuple[str, str], ...] = (
    ("eks:DescribeCluster", "target"),  # the cluster is ACTIVE
    ("rds:DescribeDBInstances", "both"),  # the replica; planned: both databases' WAL positions
    ("rds:ListTagsForResource", "target"),  # promoted by us / superseded by a failback
    ("cloudwatch:GetMetricStatistics", "target"),  # the replica's lag
    ("secretsmanager:GetSecretValue", "both"),  # planned: the master credentials (WAL positions)
    ("elasticache:DescribeReplicationGroups", "target"),  # the target's Redis
    ("elasticache:DescribeSnapshots", "target"),  # … or a recent snapshot to restore it from
    ("kms:DescribeKey", "target"),  # … encrypted with the site's key
    ("route53:ListHostedZonesByName", "global"),  # the failover records and their health checks
    ("route53:ListResourceRecordSets", "global"),
    ("route53:GetHealthCheck", "global"),
    ("route53:GetHealthCheckStatus", "global"),
    ("route53:ListTagsForResource", "global"),
    ("route53:TestDNSAnswer", "global"),
)


def preflight(
    clients: ClientProvider,
    estate: Estate,
    *,
    target: SiteView,
    mode: Mode,
    max_lag: dt.timedelta,
    max_snapshot_age: dt.timedelta = DEFAULT_MAX_SNAPSHOT_AGE,
    db: str | None = None,
    resuming: bool = False,
    pg_connect: Connector | None = None,
) -> FailoverPreflight:
    """All gates of a failover to ``target`` (read-only; only the target region and Route53).

    Raises GateRefused (exit 3) naming the resource, the region and the fix when: the target EKS
    cluster is not ACTIVE; the target DB is not an available read replica (one this toolkit
    already promoted passes — ``dr promote``, or this failover interrupted — unless a failback left it
    behind: tagged ``dr:superseded-by``, stale); planned mode and the lag is over budget
    or unknown; the target Redis is neither available nor restorable from a recent snapshot; the
    target has no failover record with a health check. Most of that check's checkers getting no
    answer at all from the target's endpoint is a warning (an HTTP error such as 503 is expected
    before a failover: the target's database is still a replica).

    ``resuming`` (``--resume``): the run already passed the gates once, so the lag gate is only
    informational and a promotion in flight (status not available, tagged by our action) passes.
    """
    source = estate.other(target)
    region = target.region
    ident = db or target.database.identifier
    warnings: list[str] = []

    cluster = eks.describe_cluster(clients, region, target.cluster.name)
    if cluster.status != "ACTIVE":
        raise GateRefused(
            f"EKS cluster {target.cluster.name} in {region} is {cluster.status}, not ACTIVE",
            resource=target.cluster.name,
            region=region,
            hint="wait for the cluster update to finish (aws eks describe-cluster), then retry",
        )

    standalone = Rds(clients, region).find_instance(ident) if resuming else None
    try:
        if standalone is not None and not standalone.is_replica:
            # A resumed run whose promotion completed (perhaps killed before it could tag it).
            pre = PromotePreflight(
                ident,
                region,
                True,
                None,
                None,
                None,
                "none (already promoted)",
                max_lag.total_seconds(),
                False,
                [f"{ident} is already a standalone instance (resumed run)"],
            )
        else:
            pre = promote_preflight(
                clients, db=ident, region=region, max_lag=max_lag, force=mode == "unplanned" or resuming
            )
    except NotFound as err:
        raise GateRefused(
            f"the DR database {ident} does not exist in {region}",
            resource=ident,
            region=region,
            code=err.code,
            hint=f"deploy stack {target.stack} (the cross-region read replica) or pass the right identifier",
        ) from None
    except BadInput as err:
        raise _gate(err) from None
    superseded = pre.superseded_by if pre.already_promoted and not resuming else None
    if superseded is not None:
        # Left over from an earlier failover: a failback moved traffic back and marked it stale
        # (failing over to it would serve data missing every write since then).
        raise GateRefused(
            f"the DR database {ident} in {region} is not a read replica: {'; '.join(pre.warnings)}, and "
            f"failback run {superseded} left it behind — it is stale",
            resource=ident,
            region=region,
            hint=f"run `dr reprotect --region {region}` first so the DR database replicates the serving one "
            "again (if a failover of yours was interrupted after that failback, finish it with --resume <run id>)",
        )
    if not pre.already_promoted:
        inst = Rds(clients, region).describe_instance(ident)
        if inst.status != "available" and not resuming:
            raise GateRefused(
                f"read replica {ident} in {region} is {inst.status}, not available",
                resource=ident,
                region=region,
                hint="wait until it is available (aws rds describe-db-instances), then retry",
            )
    why = "in unplanned mode" if mode == "unplanned" else "on resume"
    warnings += [w.replace("with --force", why).replace("(--force)", f"({why})") for w in pre.warnings]

    redis = redis_readiness(clients, target, max_snapshot_age=max_snapshot_age, estate=estate)
    if redis.action == "restore":
        warnings.append(
            f"Redis {redis.group} will be restored from snapshot {redis.snapshot} "
            f"({(redis.snapshot_age_seconds or 0) / 60:.0f} min old): newer cache entries are lost"
        )

    try:
        move = prepare_move(clients, estate, target, method="records", force=True)
    except BadInput as err:
        raise _gate(err) from None
    rec = move.before.by_region(region)
    if rec is None or rec.check is None:
        raise GateRefused(
            f"{estate.app.record} has no failover record with a health check for {region}",
            resource=estate.health_check_ref(target),
            region=region,
            hint=f"deploy the dns component of stack {target.stack}: DNS must only move to a checked endpoint",
        )
    if not resuming:
        silent = unanswered_target(clients, region, rec.check, target.cluster.name)
        if silent is not None and mode == "planned":
            raise GateRefused(
                silent,
                resource=rec.check.id,
                region=region,
                hint="a planned switchover stops writes first and would then wait at target-healthy "
                "with nothing serving: make the endpoint answer (a 503 is fine), then retry",
            )
        if silent is not None:
            warnings.append(f"{silent}: DNS will not move until it does")
    out = FailoverPreflight(
        source=source,
        target=target,
        mode=mode,
        db=ident,
        promote=pre,
        cluster_status=cluster.status,
        redis=redis,
        dns=move,
        health_check_id=rec.check.id,
        warnings=warnings,
    )
    if mode == "planned" and not resuming and not pre.already_promoted:
        require_wal_positions(clients, estate, out, connect=pg_connect)
    return out


def require_wal_positions(
    clients: ClientProvider,
    estate: Estate,
    pre: FailoverPreflight,
    *,
    connect: Connector | None = None,
    source_only: bool = False,
) -> None:
    """GateRefused (exit 3) unless both databases answer with their WAL positions from here.

    A planned switchover promises RPO 0 and proves it by WAL position (``replica-caught-up``).
    CloudWatch ``ReplicaLag`` cannot prove it on RDS PostgreSQL: it is the time since the last
    replayed commit and keeps growing once writes stop. So where the databases cannot be read,
    the switchover is refused *before* writes stop, never left waiting with writes stopped.
    ``source_only``: the replica does not exist yet (a failback creates it); only the source is read.
    """
    source, replica = _source_ref(pre), DbRef(pre.db, pre.target.region)
    watch = CatchUp(
        clients,
        source=source,
        replica=replica,
        secret_id=estate.app.db_secret.secrets_manager_id,
        db_name=estate.app.database.db_name,
        connect=connect,
    )
    readable = watch.source_readable() if source_only else watch.positions() is not None
    if not readable:
        raise GateRefused(
            f"a planned switchover proves RPO 0 by comparing the WAL positions of {source.identifier} "
            f"({source.region}) and {replica.identifier} ({replica.region}), and they cannot be read from "
            f"here ({watch.unavailable}); CloudWatch ReplicaLag cannot prove it on RDS PostgreSQL (it "
            "grows while writes are stopped)",
            resource=replica.identifier,
            region=replica.region,
            hint="run it from where both databases are reachable (inside the VPC), or fail over with "
            "`--mode unplanned` (also `--via stepfunctions`) within the RPO budget (--max-lag)",
        )


# ---------------------------------------------------------------------------------------------
# Step helpers (the steps themselves are the catalogue's kinds, dr/steps)
# ---------------------------------------------------------------------------------------------


def _after(step: Step, depends_on: tuple[str, ...]) -> Step:
    return replace(step, depends_on=depends_on)


def _source_ref(pre: FailoverPreflight) -> DbRef:
    """The database the replica streams from (its replica source; ARN or identifier)."""
    src = pre.promote.source or pre.source.database.identifier
    return DbRef(src.rsplit(":db:", 1)[-1], pre.source.region)


def _wal_watch(estate: Estate, pre: FailoverPreflight) -> Callable[[StepServices], CatchUp]:
    """How ``replica-caught-up`` compares the WAL positions of both databases (a fresh
    :class:`CatchUp` per run, connected with the run's ``pg_connect``)."""
    source, replica = _source_ref(pre), DbRef(pre.db, pre.target.region)

    def watch(services: StepServices) -> CatchUp:
        return CatchUp(
            services.clients,
            source=source,
            replica=replica,
            secret_id=estate.app.db_secret.secrets_manager_id,
            db_name=estate.app.database.db_name,
            connect=services.pg_connect,
        )

    return watch


# The drills' repoint-app composes these three (dr.procedures.drill_providers).
def secret_step(estate: Estate, target: SiteView, db: str, *, depends_on: tuple[str, ...]) -> Step:
    return _after(PATCH_DB_SECRET.build(estate, target, db), depends_on)


def restart_step(
    estate: Estate,
    target: SiteView,
    db: str,
    deployment: str,
    *,
    depends_on: tuple[str, ...],
    policy: Literal["on-change", "always"] | None = None,
) -> Step:
    return _after(RESTART_DEPLOYMENT.build(estate, target, db, deployment, policy=policy), depends_on)


def pods_ready_step(
    estate: Estate,
    target: SiteView,
    counts: Mapping[str, int | None],
    *,
    depends_on: tuple[str, ...],
    timeout: float,
    sid: str = "pods-ready",
) -> Step:
    return _after(PODS_READY.build(estate, target, counts, timeout=timeout, sid=sid), depends_on)


def standby_pods_steps(
    estate: Estate,
    standby: SiteView,
    db: str,
    *,
    after: tuple[str, ...],
    timeout: float,
    restart_prefix: str = "restart-",
    ready_id: str = "standby-pods-ready",
) -> list[Step]:
    """Restart the pods of a region not serving traffic that are older than ``db`` (they may hold
    connections to the instance it replaced: renamed, standalone, writable), then wait until they
    are Ready — before any outage or write pause needs them (reprotect; failback before it stops
    writes), so no restart is left on a critical path."""
    restarts = [
        _after(
            RESTART_DEPLOYMENT.build(
                estate, standby, db, d.name, policy="on-change", sid=f"{restart_prefix}{d.name}"
            ),
            after,
        )
        for d in estate.app.deployments
    ]
    ready = PODS_READY.build(
        estate, standby, {d.name: None for d in estate.app.deployments}, timeout=timeout, sid=ready_id
    )
    return [*restarts, _after(ready, tuple(r.id for r in restarts))]


# ---------------------------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------------------------


def production_counts(estate: Estate) -> dict[str, int]:
    return {d.name: d.replicas for d in estate.app.deployments}


def failover_steps(
    estate: Estate,
    pre: FailoverPreflight,
    *,
    timeout: float = 1800.0,
    prefix: str = "",
    after: tuple[str, ...] = (),
) -> list[Step]:
    """The failover's steps (ids prefixed with ``prefix``; roots depend on ``after``).

    ``failback`` reuses this with source and target swapped behind its re-protect steps.
    """
    target, source, db = pre.target, pre.source, pre.db
    counts = production_counts(estate)
    hpa_min = estate.app.hpa.min_replicas if estate.app.hpa else None
    steps: list[Step] = []

    promote_deps: tuple[str, ...] = ()
    if pre.mode == "planned":
        stops = [
            STOP_WRITES.build(replace(s, tags={**s.tags, "phase": "stop-writes"}))
            for s in stop_writes_plan(estate, source, timeout=timeout).steps
        ]
        src = _source_ref(pre)
        caught_up = REPLICA_CAUGHT_UP.build(
            db,
            target.region,
            source=(src.identifier, src.region),
            secret_id=estate.app.db_secret.secrets_manager_id,
            watch=_wal_watch(estate, pre),
            timeout=timeout,
        )
        steps += [*stops, _after(caught_up, tuple(s.id for s in stops))]
        promote_deps = (caught_up.id,)
    nodegroup = NODEGROUP_SCALE.build(target, production_nodegroup(estate), timeout=timeout)
    workloads = SCALE_WORKLOADS.build(
        estate,
        target,
        counts,
        hpa_min,
        sid="scale-workloads",
        title=f"Scale deployments in {target.cluster.name} ({target.region}) to production replicas",
    )
    promote = PROMOTE_REPLICA.build(
        db,
        target.region,
        source=pre.promote.source,
        lag_seconds=pre.promote.lag_seconds,
        timeout=timeout,
        backup_retention_days=target.database.backup_retention_days,
    )
    redis = REDIS_READY.build(
        estate, target, action=pre.redis.action, snapshot=pre.redis.snapshot, timeout=timeout
    )
    secret = PATCH_DB_SECRET.build(estate, target, db)
    restarts = [
        _after(RESTART_DEPLOYMENT.build(estate, target, db, name), (secret.id, workloads.id))
        for name in counts
    ]
    pods = PODS_READY.build(estate, target, counts, timeout=timeout)
    healthy = TARGET_HEALTHY.build(target.region, pre.health_check_id, timeout=timeout)
    route = MOVE_RECORDS.build(estate, pre.dns, timeout=timeout)
    verify_dns = VERIFY_DNS.build(estate, pre.dns.before.name, pre.dns.target_region, timeout=timeout)
    verify = VERIFY_SERVICE.build(db, target.region, pre.health_check_id, timeout=timeout)
    steps += [
        nodegroup,
        workloads,
        _after(promote, promote_deps),
        redis,
        _after(secret, (promote.id,)),
        *restarts,
        _after(pods, (*(r.id for r in restarts), nodegroup.id)),
        _after(healthy, (pods.id, promote.id, redis.id)),
        # DNS moves only once the database is writable, the pods Ready and the target healthy
        _after(route, (healthy.id, promote.id, pods.id, secret.id)),
        _after(verify_dns, (route.id,)),
        _after(verify, (verify_dns.id,)),
    ]

    if prefix or after:
        steps = [
            replace(
                s,
                id=prefix + s.id,
                depends_on=tuple(prefix + d for d in s.depends_on) if s.depends_on else after,
            )
            for s in steps
        ]
    return steps


def failover_plan(estate: Estate, pre: FailoverPreflight, *, timeout: float = 1800.0) -> Plan:
    """The plan of ``dr failover`` (see the module docstring for the DAG)."""
    steps = failover_steps(estate, pre, timeout=timeout)
    return Plan(
        "failover",
        steps,
        f"{pre.mode} failover {pre.source.region} -> {pre.target.region}: promote {pre.db}, scale "
        f"{pre.target.cluster.name}, then (only when writable, Ready and healthy) move {estate.app.record}",
    )
