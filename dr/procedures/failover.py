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
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from dr.aws import eks
from dr.aws.elasticache import CacheSnapshot, ElastiCache, ReplicationGroup
from dr.aws.rds import Rds
from dr.aws.route53 import HealthCheck, Route53, answered
from dr.aws.secretsmanager import SecretValue, get_secret
from dr.errors import BadInput, DrError, GateRefused, NotFound, OperationFailed, from_client_error
from dr.kube import kube_of
from dr.procedures.dns import DnsMove, move_plan, prepare_move
from dr.procedures.ops import STOPPED_ANNOTATION, stop_writes_plan
from dr.procedures.promote import PromotePreflight, promote_plan
from dr.procedures.promote import preflight as promote_preflight
from dr.procedures.support import TAG_PROMOTED_AT, TAG_PROMOTED_FROM, Settled, clients_of, iso, utcnow
from dr.procedures.walpos import CatchUp, DbRef
from dr.runbook.plan import Operation, Plan, Step, StepContext

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.procedures.restore import Connector
    from dr.topology import Estate, Nodegroup, SiteView

Mode = Literal["planned", "unplanned"]

# Deployment annotation: "<db identifier>@<dr:promoted-at>" of the promotion its pods were restarted for.
RESTARTED_FOR = "dr-toolkit/restarted-for-promotion"
# DB Secret annotation, set in the patch that changes its value: the promotion it changed for.
CHANGED_FOR = "dr-toolkit/changed-for-promotion"
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


def estate_cache_groups(estate: Estate) -> tuple[str, ...]:
    """The estate's Redis replication groups (both sites): the only sources a restore may use."""
    return tuple(dict.fromkeys(v.cache.replication_group_id for v in (estate.primary, estate.secondary)))


def newest_cache_snapshot(
    clients: ClientProvider, region: str, groups: tuple[str, ...]
) -> CacheSnapshot | None:
    """The newest available snapshot in ``region`` of one of ``groups`` — never another
    application's cache that happens to share the region."""
    # All snapshots, filtered here: DescribeSnapshots(ReplicationGroupId=…) fails once the group
    # is gone, while its snapshots (the ones a restore needs) remain.
    snaps = [
        s
        for s in ElastiCache(clients, region).list_snapshots()
        if s.status == "available" and s.source in groups
    ]
    dated = [s for s in snaps if s.created is not None]
    if dated:
        return max(dated, key=lambda s: s.created or dt.datetime.min.replace(tzinfo=dt.UTC))
    return snaps[-1] if snaps else None


def group_status(clients: ClientProvider, region: str, group_id: str) -> str | None:
    """Status of a Redis replication group, None when it does not exist (one DescribeReplicationGroups).

    (``ElastiCache.describe_replication_group`` also reads a member cluster, which may not exist.)
    """
    from dr.aws.session import client_error_type

    client_error = client_error_type()
    try:
        raw = clients.client("elasticache", region).describe_replication_groups(ReplicationGroupId=group_id)
    except client_error as err:
        code = str(getattr(err, "response", {}).get("Error", {}).get("Code", ""))
        if "NotFound" in code:
            return None
        raise from_client_error(
            err, resource=f"Redis replication group {group_id}", region=region, action="describe"
        ) from None
    groups = raw.get("ReplicationGroups") or []
    return str(groups[0].get("Status", "unknown")) if groups else None


def cache_template(
    clients: ClientProvider, estate: Estate, target: SiteView, *, kms_key: str | None = None
) -> ReplicationGroup:
    """The group the stack files declare for ``target`` (dr/infra/cache.py): what a restore creates.

    TLS in transit and KMS at rest with the site's key (``alias/<site>-data``, resolved to its ARN
    in ``target.region``); no AUTH token (the Pulumi group declares none)."""
    from dr.aws.kms import key_arn

    spec = target.cache
    kms = kms_key or key_arn(clients, target.region, estate.kms_alias(target))
    if kms is None:
        raise GateRefused(
            f"KMS key {estate.kms_alias(target)} does not exist (or is disabled) in {target.region}: a Redis "
            f"group restored there would not be encrypted at rest like {spec.replication_group_id}",
            resource=estate.kms_alias(target),
            region=target.region,
            hint=f"deploy stack {target.stack} (pulumi up) to create the key",
        )
    return ReplicationGroup(
        identifier=spec.replication_group_id,
        region=target.region,
        status="-",
        node_type=spec.node_type,
        num_cache_clusters=spec.num_cache_clusters,
        automatic_failover=None,
        multi_az=None,
        primary_endpoint=None,
        arn=None,
        subnet_group=estate.cache_subnet_group(target),
        engine_version=spec.engine_version,
        transit_encryption=True,
        at_rest_encryption=True,
        kms_key_id=kms,
        port=spec.port,
    )


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
# The connection string (never printed, journaled or put in step outputs)
# ---------------------------------------------------------------------------------------------


def _password_from_secrets_manager(
    clients: ClientProvider, estate: Estate, region: str
) -> tuple[str | None, str | None]:
    """(username, password) from the app's Secrets Manager secret in ``region`` (never another region)."""
    try:
        data = get_secret(clients, region, estate.app.db_secret.secrets_manager_id).value.json()
    except NotFound:
        return None, None
    user = data.get("username")
    if data.get("password"):
        return user, str(data["password"])
    # The Pulumi program stores a descriptor pointing at the RDS-managed secret: follow it only
    # when that secret lives in this same region (unplanned failover must not call the source).
    arn = str(data.get("masterUserSecretArn") or "")
    if arn.startswith("arn:") and arn.split(":")[3] == region:
        try:
            managed = get_secret(clients, region, arn).value.json()
        except NotFound:
            return user, None
        return managed.get("username") or user, managed.get("password")
    return user, None


def desired_database_url(
    clients: ClientProvider, estate: Estate, target: SiteView, db: str, current: SecretValue | None
) -> SecretValue:
    """The DB URL the target's pods must use: the promoted instance's endpoint, same database.

    Credentials: Secrets Manager in the target region; else those already in the target cluster's
    secret (the password of a promoted replica is the source's, unchanged). Query parameters of the
    current URL (e.g. ``sslmode``) are kept.
    """
    inst = Rds(clients, target.region).describe_instance(db)
    if not inst.endpoint:
        raise OperationFailed(
            f"DB instance {db} in {target.region} reports no endpoint yet",
            resource=db,
            region=target.region,
            hint="wait until it is available, then re-run with --resume",
        )
    app_db = estate.app.database
    old = urlsplit(current.reveal()) if current is not None else None
    user, password = _password_from_secrets_manager(clients, estate, target.region)
    if password is None and old is not None and old.password:
        password = unquote(old.password)
    if password is None:
        raise BadInput(
            f"no database password for {db}: secret {estate.app.db_secret.secrets_manager_id} in "
            f"{target.region} holds none and secret {estate.app.db_secret.name} of cluster "
            f"{target.cluster.name} has no URL with one",
            resource=estate.app.db_secret.secrets_manager_id,
            region=target.region,
            hint="put the master credentials (username/password) in that secret, then --resume",
        )
    user = user or (unquote(old.username) if old is not None and old.username else None) or app_db.username
    port = inst.port or app_db.port
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{inst.endpoint}:{port}"
    path = old.path if old is not None and old.path not in ("", "/") else f"/{app_db.db_name}"
    # Keep the current URL's parameters exactly (a local database may not speak TLS); a URL built
    # from scratch requires TLS, as the Pulumi program's does.
    query = old.query if old is not None else "sslmode=require"
    scheme = old.scheme if old is not None and old.scheme else "postgresql"
    return SecretValue(urlunsplit((scheme, netloc, path, query, "")))


def _read_current_url(ctx: StepContext, estate: Estate, target: SiteView) -> SecretValue | None:
    app = estate.app
    try:
        return kube_of(ctx, target).read_secret_key(app.namespace, app.db_secret.name, app.db_secret.key)
    except NotFound:
        return None


def promotion_marker(clients: ClientProvider, region: str, db: str) -> str:
    """``<db>@<dr:promoted-at>`` — one promotion (deployments are restarted once per marker); for an
    instance never promoted by us, ``<db>@created-<InstanceCreateTime>`` (one instance: a replica
    re-created under the same identifier is another)."""
    return _promotion(clients, region, db)[0]


def _promotion(clients: ClientProvider, region: str, db: str) -> tuple[str, dt.datetime | None]:
    """(:func:`promotion_marker`, when the instance now holding the identifier was created)."""
    rds = Rds(clients, region)
    inst = rds.describe_instance(db)
    promoted = rds.tags(inst).get(TAG_PROMOTED_AT)
    if promoted is None:
        promoted = f"created-{iso(inst.created)}" if inst.created else "unknown"
    return f"{db}@{promoted}", inst.created


# ---------------------------------------------------------------------------------------------
# Step builders
# ---------------------------------------------------------------------------------------------


def _k8s(action: str, region: str, **params: Any) -> Operation:
    return Operation("k8s", action, region, params)


def nodegroup_step(
    target: SiteView, sizes: Nodegroup, *, sid: str = "scale-nodegroup", timeout: float = 1200.0
) -> Step:
    """Scale the target's nodegroup to ``sizes`` and wait until ACTIVE with them (seen UPDATING first)."""
    region, cluster, ng = target.region, target.cluster.name, target.cluster.nodegroup.name
    want = eks.Scaling(sizes.min_size, sizes.max_size, sizes.desired_size)
    eks.check_scaling(want, cluster=cluster, nodegroup=ng, region=region)
    settled = Settled()

    def check(ctx: StepContext) -> bool:
        info = eks.describe_nodegroup(clients_of(ctx), region, cluster, ng)
        return info.scaling == want and info.status == "ACTIVE"

    def action(ctx: StepContext) -> Any:
        # Reads the current config first: no call when it already has the sizes (resumed run).
        update = eks.update_nodegroup_scaling(clients_of(ctx), region, cluster, ng, want)
        return {"update_id": update}

    def wait(ctx: StepContext) -> bool:
        info = eks.describe_nodegroup(clients_of(ctx), region, cluster, ng)
        if info.status in ("CREATE_FAILED", "DELETE_FAILED", "DEGRADED") and settled.seen_transition:
            raise OperationFailed(
                f"nodegroup {cluster}/{ng} in {region} became {info.status}: "
                + ("; ".join(info.health_issues) or "no health issue reported"),
                resource=f"{cluster}/{ng}",
                region=region,
            )
        return settled.observe(
            done=info.status == "ACTIVE" and info.scaling == want,
            transitional=info.status == "UPDATING",
            label=info.status,
        )

    return Step(
        id=sid,
        title=f"Scale nodegroup {cluster}/{ng} to min {want.min_size} / desired {want.desired_size} / "
        f"max {want.max_size} ({region})",
        region=region,
        service="eks",
        changes=f"scalingConfig -> {want.to_dict()}",
        operations=(
            Operation(
                "eks", "DescribeNodegroup", region, {"clusterName": cluster, "nodegroupName": ng}, False
            ),
            Operation(
                "eks",
                "UpdateNodegroupConfig",
                region,
                {"clusterName": cluster, "nodegroupName": ng, "scalingConfig": want.to_dict()},
            ),
        ),
        check=check,
        action=action,
        wait=wait,
        timeout=timeout,
        estimate=75.0,
        tags={"phase": "compute"},
    )


def workloads_step(
    estate: Estate, view: SiteView, counts: dict[str, int], hpa_min: int | None, *, sid: str, title: str
) -> Step:
    """Set every deployment of ``view`` to ``counts`` (and the HPA floor), dropping stop-writes marks."""
    ns, region, app = estate.app.namespace, view.region, estate.app
    hpa_target = app.deployment(app.hpa.deployment).name if app.hpa else None

    def check(ctx: StepContext) -> bool:
        k = kube_of(ctx, view)
        for name, count in counts.items():
            info = k.get_deployment(ns, name)
            if info.replicas != count or STOPPED_ANNOTATION in info.annotations:
                return False
        if hpa_target and hpa_min is not None:
            hpa = k.hpa_for(ns, hpa_target)
            if hpa is not None and hpa.min_replicas != hpa_min:
                return False
        return True

    def action(ctx: StepContext) -> Any:
        k = kube_of(ctx, view)
        done: dict[str, Any] = {}
        if hpa_target and hpa_min is not None:
            hpa = k.hpa_for(ns, hpa_target)
            if hpa is not None and hpa.min_replicas != hpa_min:
                k.patch_hpa(ns, hpa.name, min_replicas=hpa_min, max_replicas=max(hpa.max_replicas, hpa_min))
                done["hpa_min"] = hpa_min
        for name, count in counts.items():
            info = k.get_deployment(ns, name)
            if info.replicas != count:
                k.scale_deployment(ns, name, count)
                done[name] = {"from": info.replicas, "to": count}
            if STOPPED_ANNOTATION in info.annotations:
                k.annotate_deployment(ns, name, {STOPPED_ANNOTATION: None})
        return done

    ops: list[Operation] = []
    if hpa_target and hpa_min is not None:
        ops.append(_k8s("PatchHorizontalPodAutoscaler", region, deployment=hpa_target, minReplicas=hpa_min))
    ops += [_k8s("PatchDeploymentScale", region, name=n, replicas=c) for n, c in counts.items()]
    return Step(
        id=sid,
        title=title,
        region=region,
        service="k8s",
        changes=", ".join(f"{n} -> {c}" for n, c in counts.items())
        + (f"; HPA min -> {hpa_min}" if hpa_target and hpa_min is not None else ""),
        operations=tuple(ops),
        check=check,
        action=action,
        estimate=1.0,
        tags={"phase": "compute"},
    )


def promote_step(
    pre: PromotePreflight, *, depends_on: tuple[str, ...], timeout: float, backup_retention_days: int
) -> Step:
    """The promote step of :func:`dr.procedures.promote.promote_plan`, safe to resume mid-flight.

    ``backup_retention_days`` is sent with ``PromoteReadReplica``: without it RDS gives the new
    primary a 1-day PITR window (the API default), not the one its stack declares.

    Its check is "standalone and available". A resumed run may find the instance still a replica
    but already promoting (status not ``available``, or tagged ``dr:promoted-from`` by our action):
    the action then issues nothing and the wait follows the promotion to its end.
    """
    base = promote_plan(pre, timeout=timeout, backup_retention_days=backup_retention_days).steps[0]
    db, region = pre.db, pre.region
    assert base.action is not None

    def action(ctx: StepContext) -> Any:
        clients = clients_of(ctx)
        rds = Rds(clients, region)
        inst = rds.describe_instance(db)
        if inst.is_replica:
            tagged = TAG_PROMOTED_FROM in rds.tags(inst)
            if inst.status != "available" or tagged:
                # Issued by an earlier (killed) run: never re-issue; tag it if that run could not.
                if not tagged:
                    tags = {
                        TAG_PROMOTED_FROM: inst.replica_source or "unknown",
                        TAG_PROMOTED_AT: iso(utcnow()),
                    }
                    rds.add_tags(inst, tags)
                ctx.set("promote_in_flight", inst.status)
                return {"promote": "already in progress", "status": inst.status}
        return base.action(ctx) if base.action is not None else None

    return replace(
        base,
        id="promote-db",
        action=action,
        depends_on=depends_on,
        operations=(
            Operation("rds", "DescribeDBInstances", region, {"DBInstanceIdentifier": db}, False),
            *base.operations,
        ),
    )


def _source_ref(pre: FailoverPreflight) -> DbRef:
    """The database the replica streams from (its replica source; ARN or identifier)."""
    src = pre.promote.source or pre.source.database.identifier
    return DbRef(src.rsplit(":db:", 1)[-1], pre.source.region)


def caught_up_step(
    estate: Estate, pre: FailoverPreflight, *, depends_on: tuple[str, ...], timeout: float
) -> Step:
    """Planned mode: wait until the replica has replayed every write made before writes stopped.

    Proven by WAL position only (:mod:`dr.procedures.walpos`: the replica's replay position
    reaches the source's current one and the source stays quiet); the pre-flight refused the
    switchover before writes stopped if the databases could not be read. Never by CloudWatch
    ``ReplicaLag``: on RDS PostgreSQL it is the time since the last replayed commit and grows
    once writes stop. ``caught_up_by`` records ``wal-lsn``.
    """
    target, db = pre.target, pre.db
    region = target.region
    secret_id = estate.app.db_secret.secrets_manager_id
    watchers: dict[str, CatchUp] = {}

    def check(ctx: StepContext) -> bool:
        inst = Rds(clients_of(ctx), region).find_instance(db)
        return inst is not None and not inst.is_replica  # already promoted: nothing to wait for

    def action(ctx: StepContext) -> Any:
        if ctx.get("writes_stopped_at") is None:
            ctx.set("writes_stopped_at", iso(utcnow()))
        return None

    def watcher(ctx: StepContext) -> CatchUp:
        if ctx.run_id not in watchers:
            watchers[ctx.run_id] = CatchUp(
                clients_of(ctx),
                source=_source_ref(pre),
                replica=DbRef(db, region),
                secret_id=secret_id,
                db_name=estate.app.database.db_name,
                connect=ctx.services.get("pg_connect"),
            )
        return watchers[ctx.run_id]

    def wait(ctx: StepContext) -> bool:
        wal = watcher(ctx)
        done = wal.poll()
        if done is None:
            # Unreadable now (the pre-flight read both): retry with a fresh connection next poll.
            # Never CloudWatch ReplicaLag: on RDS PostgreSQL it grows while writes are stopped.
            watchers.pop(ctx.run_id, None)
            return False
        if done and wal.last is not None:
            ctx.set("caught_up_by", "wal-lsn")
            ctx.set("cutover_lsn", wal.last.source_text)
            ctx.set("lag_at_cutover_seconds", 0.0)
        return done

    return Step(
        id="replica-caught-up",
        title=f"Wait until replica {db} ({region}) has replayed every write made before writes stopped (RPO 0)",
        region=region,
        service="cloudwatch",
        changes="nothing (compares the WAL positions of both databases)",
        depends_on=depends_on,
        operations=(
            # the endpoints and master credentials of both databases (WAL positions over psycopg)
            *(
                op
                for ref in (_source_ref(pre), DbRef(db, region))
                for op in (
                    Operation(
                        "rds",
                        "DescribeDBInstances",
                        ref.region,
                        {"DBInstanceIdentifier": ref.identifier},
                        False,
                    ),
                    Operation("secretsmanager", "GetSecretValue", ref.region, {"SecretId": secret_id}, False),
                )
            ),
        ),
        check=check,
        action=action,
        wait=wait,
        timeout=timeout,
        estimate=5.0,
        tags={"phase": "database"},
    )


def redis_step(estate: Estate, target: SiteView, plan: RedisReadiness, *, timeout: float) -> Step:
    """Target Redis available: use the group if it is; else restore the newest snapshot into it."""
    region, group_id = target.region, target.cache.replication_group_id
    settled = Settled()

    def check(ctx: StepContext) -> bool:
        return group_status(clients_of(ctx), region, group_id) == "available"

    def action(ctx: StepContext) -> Any:
        ec = ElastiCache(clients_of(ctx), region)
        if group_status(clients_of(ctx), region, group_id) is not None:
            return {"restore": None}  # exists (e.g. still creating from an earlier run): just wait
        groups = estate_cache_groups(estate)
        snap = ec.find_snapshot(plan.snapshot) if plan.snapshot else None
        if snap is not None and snap.source not in groups:
            snap = None  # the planned name now belongs to another group's snapshot
        snap = snap or newest_cache_snapshot(clients_of(ctx), region, groups)
        if snap is None:
            raise GateRefused(
                f"no Redis snapshot of {', '.join(groups)} in {region} to restore {group_id} from",
                resource=group_id,
                region=region,
            )
        like = cache_template(clients_of(ctx), estate, target)
        ec.restore_replication_group(snap, group_id, like=like)
        done = {
            "restore": snap.identifier,
            "snapshot_of": snap.source,
            "snapshot_created": snap.created.isoformat() if snap.created else None,
            "transit_encryption": like.transit_encryption,
            "at_rest_encryption": like.at_rest_encryption,
            "kms_key_id": like.kms_key_id,
            "engine_version": like.engine_version,
            "port": like.port,
        }
        ctx.set("redis_restored_from", snap.identifier)
        ctx.set("redis_restore", done)  # the journal says what was restored, and how
        return done

    def wait(ctx: StepContext) -> bool:
        status = group_status(clients_of(ctx), region, group_id) or "missing"
        return settled.observe(
            done=status == "available", transitional=status not in ("available", "missing"), label=status
        )

    ops: list[Operation] = [
        Operation("elasticache", "DescribeReplicationGroups", region, {"ReplicationGroupId": group_id}, False)
    ]
    if plan.action == "restore":
        ops.append(
            Operation(
                "elasticache",
                "CreateReplicationGroup",
                region,
                {
                    "ReplicationGroupId": group_id,
                    "SnapshotName": plan.snapshot,
                    "TransitEncryptionEnabled": True,
                    "AtRestEncryptionEnabled": True,
                    "KmsKeyId": estate.kms_alias(target),
                    "EngineVersion": target.cache.engine_version,
                    "Port": target.cache.port,
                },
            )
        )
    return Step(
        id="redis-ready",
        title=f"Redis {group_id} available in {region}"
        + (f" (restore from {plan.snapshot})" if plan.action == "restore" else ""),
        region=region,
        service="elasticache",
        changes=f"create {group_id} from snapshot {plan.snapshot}" if plan.action == "restore" else "none",
        operations=tuple(ops),
        check=check,
        action=action,
        wait=wait,
        timeout=timeout,
        estimate=450.0 if plan.action == "restore" else 1.0,
        tags={"phase": "cache"},
    )


def secret_step(estate: Estate, target: SiteView, db: str, *, depends_on: tuple[str, ...]) -> Step:
    """Point the target cluster's DB secret at the promoted instance (value never leaves the step)."""
    app, region = estate.app, target.region

    def desired(ctx: StepContext) -> tuple[SecretValue | None, SecretValue]:
        current = _read_current_url(ctx, estate, target)
        return current, desired_database_url(clients_of(ctx), estate, target, db, current)

    def check(ctx: StepContext) -> bool:
        current, want = desired(ctx)
        return current is not None and current == want

    def action(ctx: StepContext) -> Any:
        _current, want = desired(ctx)
        marker = promotion_marker(clients_of(ctx), region, db)
        changed = kube_of(ctx, target).patch_secret_key(
            app.namespace, app.db_secret.name, app.db_secret.key, want, annotations={CHANGED_FOR: marker}
        )
        return {"patched": changed}

    return Step(
        id="patch-db-secret",
        title=f"Point secret {app.db_secret.name} ({target.cluster.name}) at {db}",
        region=region,
        service="k8s",
        changes=f"secret {app.namespace}/{app.db_secret.name} key {app.db_secret.key}: host -> {db}'s endpoint",
        depends_on=depends_on,
        operations=(
            Operation("rds", "DescribeDBInstances", region, {"DBInstanceIdentifier": db}, False),
            Operation(
                "secretsmanager",
                "GetSecretValue",
                region,
                {"SecretId": app.db_secret.secrets_manager_id},
                False,
            ),
            _k8s("PatchSecret", region, name=app.db_secret.name, key=app.db_secret.key),
        ),
        check=check,
        action=action,
        estimate=1.0,
        tags={"phase": "config"},
    )


def restart_step(
    estate: Estate,
    target: SiteView,
    db: str,
    deployment: str,
    *,
    depends_on: tuple[str, ...],
    policy: Literal["on-change", "always"] | None = None,
) -> Step:
    """Rolling-restart one deployment once per promotion, when its pods' connection is stale.

    With ``app.dbSecret.restartPods: on-change`` (the default) the pods are restarted only when they
    may be connected to another database than the one now behind their connection string: when
    ``patch-db-secret`` changed the secret for this promotion (its :data:`CHANGED_FOR` marker, set in
    the same patch, survives a crash), or when a pod is older than the instance now holding the
    identifier (e.g. failback and reprotect create a new replica under the old name). Otherwise the
    pods already hold the right connection string, reconnect after the promotion's reboot, and the
    step is skipped: no rolling restart between a writable database and DNS.
    ``always`` restarts after every promotion. ``policy`` overrides the app's setting (reprotect
    restarts only stale pods: it promotes nothing).
    """
    ns, region, secret = estate.app.namespace, target.region, estate.app.db_secret
    mode = policy or secret.restart_pods
    always = mode == "always"

    def why(ctx: StepContext) -> tuple[str, str | None]:
        """(promotion marker, why the pods need a restart — None: done for it, or not needed)."""
        marker, created = _promotion(clients_of(ctx), region, db)
        k = kube_of(ctx, target)
        if k.get_deployment(ns, deployment).annotations.get(RESTARTED_FOR) == marker:
            return marker, None
        if always:
            return marker, "app.dbSecret.restartPods is always"
        if k.secret_annotations(ns, secret.name).get(CHANGED_FOR) == marker:
            return marker, f"secret {secret.name} changed for this promotion"
        oldest = k.oldest_pod_created(ns, deployment)
        # creationTimestamp has whole seconds: a pod of the instance's own second is not "older"
        if oldest is not None and (created is None or oldest < created.replace(microsecond=0)):
            return (
                marker,
                f"a pod predates {db} (created {iso(created) if created else 'at an unknown time'})",
            )
        return marker, None

    def check(ctx: StepContext) -> bool:
        return why(ctx)[1] is None

    def action(ctx: StepContext) -> Any:
        marker, reason = why(ctx)
        if reason is None:
            return None
        # one PATCH: a kill can never leave a restart without its marker (R1 found the gap)
        stamp = kube_of(ctx, target).rollout_restart(ns, deployment, annotations={RESTARTED_FOR: marker})
        ctx.set(f"restarted:{deployment}", reason)  # journaled: why this restart was on the critical path
        return {"restarted_at": stamp, "because": reason}

    when = "" if always else " if its pods may hold a stale connection (dbSecret.restartPods: on-change)"
    # the marker and the instance's creation time: DescribeDBInstances + its tags
    reads: tuple[Operation, ...] = tuple(
        Operation("rds", action, region, {"DBInstanceIdentifier": db}, False)
        for action in ("DescribeDBInstances", "ListTagsForResource")
    )
    if not always:
        reads += (
            Operation("k8s", "GetSecret", region, {"name": secret.name}, False),
            Operation("k8s", "ListPods", region, {"deployment": deployment}, False),
        )
    return Step(
        id=f"restart-{deployment}",
        title=f"Rolling restart of {deployment} ({region}) to pick up the new DB endpoint{when}",
        region=region,
        service="k8s",
        changes=f"deployment {ns}/{deployment}: new ReplicaSet; annotation {RESTARTED_FOR}",
        depends_on=depends_on,
        operations=(
            *reads,
            _k8s("PatchDeployment", region, name=deployment, annotation="kubectl.kubernetes.io/restartedAt"),
            _k8s("PatchDeployment", region, name=deployment, annotation=RESTARTED_FOR),
        ),
        check=check,
        action=action,
        estimate=1.0,
        tags={"phase": "config", "restart": mode},
    )


def pods_ready_step(
    estate: Estate,
    target: SiteView,
    counts: Mapping[str, int | None],
    *,
    depends_on: tuple[str, ...],
    timeout: float,
    sid: str = "pods-ready",
) -> Step:
    """Wait until every deployment has its replicas updated and Ready (nodes joined, images pulled).

    A count of None: whatever replicas the deployment has (rolled out, all Ready).
    """
    ns, region = estate.app.namespace, target.region

    def wait(ctx: StepContext) -> bool:
        k = kube_of(ctx, target)
        ready: dict[str, int] = {}
        for name, count in counts.items():
            info = k.rollout_status(ns, name)
            ready[name] = info.ready
            if (count is not None and info.replicas != count) or not info.rolled_out:
                return False
        ctx.set(sid.replace("-", "_"), ready)
        return True

    return Step(
        id=sid,
        title=f"Wait for pods Ready in {target.cluster.name} ({region}): "
        + ", ".join(f"{n} {c}/{c}" if c is not None else f"{n} rolled out" for n, c in counts.items()),
        region=region,
        service="k8s",
        changes="nothing (waits: NodegroupActive is not nodes Ready; pods Ready is)",
        depends_on=depends_on,
        operations=tuple(
            Operation("k8s", "GetDeployment", region, {"name": n}, mutating=False) for n in counts
        ),
        wait=wait,
        timeout=timeout,
        estimate=65.0,
        tags={"phase": "compute"},
    )


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
        replace(
            restart_step(estate, standby, db, d.name, depends_on=after, policy="on-change"),
            id=f"{restart_prefix}{d.name}",
        )
        for d in estate.app.deployments
    ]
    ready = pods_ready_step(
        estate,
        standby,
        {d.name: None for d in estate.app.deployments},
        depends_on=tuple(r.id for r in restarts),
        timeout=timeout,
        sid=ready_id,
    )
    return [*restarts, ready]


def healthy_step(
    target: SiteView, health_check_id: str, *, depends_on: tuple[str, ...], timeout: float
) -> Step:
    """Wait until Route53's health checkers see the target endpoint healthy."""

    def wait(ctx: StepContext) -> bool:
        return Route53(clients_of(ctx)).health_status(health_check_id).endpoint_healthy

    return Step(
        id="target-healthy",
        title=f"Wait for health check {health_check_id} of {target.region} to report healthy",
        region=None,
        service="route53",
        changes="nothing (waits)",
        depends_on=depends_on,
        operations=(
            Operation("route53", "GetHealthCheckStatus", None, {"HealthCheckId": health_check_id}, False),
        ),
        wait=wait,
        timeout=timeout,
        estimate=30.0,
        tags={"phase": "verify"},
    )


def verify_step(
    target: SiteView, db: str, health_check_id: str, *, depends_on: tuple[str, ...], timeout: float
) -> Step:
    """End to end: the name resolves to the target (verify-dns), the DB is writable, health is OK."""
    region = target.region

    def wait(ctx: StepContext) -> bool:
        clients = clients_of(ctx)
        inst = Rds(clients, region).describe_instance(db)
        healthy = Route53(clients).health_status(health_check_id).endpoint_healthy
        ok = not inst.is_replica and inst.status == "available" and healthy
        if ok:
            ctx.set("verified", {"db": db, "db_status": inst.status, "health_check": "healthy"})
        return ok

    return Step(
        id="verify-service",
        title=f"Verify: {db} writable and {region} healthy behind the public name",
        region=region,
        service="rds",
        changes="nothing (reads)",
        depends_on=depends_on,
        operations=(
            Operation("rds", "DescribeDBInstances", region, {"DBInstanceIdentifier": db}, False),
            Operation("route53", "GetHealthCheckStatus", None, {"HealthCheckId": health_check_id}, False),
        ),
        wait=wait,
        timeout=timeout,
        estimate=5.0,
        tags={"phase": "verify"},
    )


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
        stops = stop_writes_plan(estate, source, timeout=timeout).steps
        for s in stops:
            s.tags = {**s.tags, "phase": "stop-writes"}
        steps += stops
        steps.append(caught_up_step(estate, pre, depends_on=tuple(s.id for s in stops), timeout=timeout))
        promote_deps = ("replica-caught-up",)
    steps.append(nodegroup_step(target, production_nodegroup(estate), timeout=timeout))
    steps.append(
        workloads_step(
            estate,
            target,
            counts,
            hpa_min,
            sid="scale-workloads",
            title=f"Scale deployments in {target.cluster.name} ({target.region}) to production replicas",
        )
    )
    steps.append(
        promote_step(
            pre.promote,
            depends_on=promote_deps,
            timeout=timeout,
            backup_retention_days=target.database.backup_retention_days,
        )
    )
    steps.append(redis_step(estate, target, pre.redis, timeout=timeout))
    steps.append(secret_step(estate, target, db, depends_on=("promote-db",)))
    restarts = [
        restart_step(estate, target, db, name, depends_on=("patch-db-secret", "scale-workloads"))
        for name in counts
    ]
    steps += restarts
    steps.append(
        pods_ready_step(
            estate,
            target,
            counts,
            depends_on=(*(r.id for r in restarts), "scale-nodegroup"),
            timeout=timeout,
        )
    )
    steps.append(
        healthy_step(
            target,
            pre.health_check_id,
            depends_on=("pods-ready", "promote-db", "redis-ready"),
            timeout=timeout,
        )
    )
    dns = move_plan(estate, pre.dns, timeout=timeout).steps
    route, verify_dns = dns
    route.depends_on = ("target-healthy", "promote-db", "pods-ready", "patch-db-secret")
    steps += [route, verify_dns]
    steps.append(verify_step(target, db, pre.health_check_id, depends_on=(verify_dns.id,), timeout=timeout))

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
