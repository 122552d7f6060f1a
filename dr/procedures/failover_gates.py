"""The gates of ``dr failover`` (and of the failover inside ``dr failback``): read-only checks
that refuse with exit 3, naming the resource, the region and the fix, before anything changes.
Their result, :class:`FailoverPreflight`, is what :mod:`dr.procedures.failover` builds the plan from.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from dr.aws import eks
from dr.aws.rds import Rds
from dr.aws.route53 import HealthCheck, Route53, answered
from dr.errors import BadInput, DrError, GateRefused, NotFound
from dr.procedures.dns import prepare_move
from dr.procedures.promote import PromotePreflight
from dr.procedures.promote import preflight as promote_preflight
from dr.procedures.support import utcnow
from dr.procedures.walpos import CatchUp, DbRef
from dr.steps.dns_records import DnsMove
from dr.steps.redis_ready import cache_template, estate_cache_groups, group_status, newest_cache_snapshot

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.procedures.pg_session import Connector
    from dr.topology import Estate, Nodegroup, SiteView

Mode = Literal["planned", "unplanned"]

DEFAULT_MAX_SNAPSHOT_AGE = dt.timedelta(hours=24)


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
    source, replica = source_ref(pre), DbRef(pre.db, pre.target.region)
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


def source_ref(pre: FailoverPreflight) -> DbRef:
    """The database the replica streams from (its replica source; ARN or identifier)."""
    src = pre.promote.source or pre.source.database.identifier
    return DbRef(src.rsplit(":db:", 1)[-1], pre.source.region)
