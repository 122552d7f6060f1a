"""Drill probes backed by the project's procedures and adapters (any target), and the post-drill
estate check (:mod:`dr.drills.invariants`): :func:`estate_invariants`.

Probes: ``db-writable``, ``replica-lag``, ``pods-ready``, ``dns-points-to``, ``data-intact``,
``restored-to-point``, ``readiness-alarms``; each declares the IAM actions it calls (``site``
picks the region, so both).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from dr.drills.drill_context import DrillContext
from dr.drills.invariants import EstateFacts, Invariant
from dr.drills.invariants import register as register_estate_check
from dr.drills.procedure_actions import KUBE_CONNECT, kube_factory, kube_for_site
from dr.drills.registry import ActionArgs, NoArgs, Observation, Site, SiteArgs, register_probe
from dr.errors import OperationFailed
from dr.procedures.iam import Need
from dr.procedures.support import utcnow

if TYPE_CHECKING:
    from dr.kube import KubeFactory
    from dr.topology import Estate, SiteView

# Integrity table shared by ``corrupt-data`` (sandbox) and the ``data-intact`` probe: a row is
# intact when ``checksum = md5(payload)``.
INTEGRITY_TABLE = "dr_integrity"


def _connect_site(ctx: DrillContext, view: SiteView) -> Any:
    """A psycopg connection to the site's database (RDS endpoint + the app's master credentials)."""
    from dr.aws.rds import Rds
    from dr.procedures.pg_session import connect_master

    estate = ctx.require_estate()
    clients = ctx.clients(read_only=True)
    inst = Rds(clients, view.region).describe_instance(view.database.identifier)
    if not inst.endpoint:
        raise OperationFailed(
            f"DB instance {view.database.identifier} in {view.region} has no endpoint",
            resource=view.database.identifier,
            region=view.region,
        )
    if inst.port is None:
        inst = replace(inst, port=estate.app.database.port)
    return connect_master(
        clients,
        inst,
        secret_id=estate.app.db_secret.secrets_manager_id,
        db_name=estate.app.database.db_name,
        connect_timeout=3,
        autocommit=True,
    )


def connect_app_database(ctx: DrillContext, view: SiteView) -> Any:
    """A psycopg connection to the database the site's application uses *now* (its DB secret in
    the site's cluster) — after a repoint, the restored or promoted instance."""
    import psycopg

    estate = ctx.require_estate()
    app = estate.app
    with kube_for_site(ctx, view, read_only=True) as kube:
        url = kube.read_secret_key(app.namespace, app.db_secret.name, app.db_secret.key)
    return psycopg.connect(url.reveal(), connect_timeout=3, autocommit=True)


@register_probe(
    "db-writable",
    args=SiteArgs,
    description="True when the site's database accepts writes.",
    # the instance's endpoint, then the master credentials (connect_master)
    iam=(Need("rds:DescribeDBInstances", "both"), Need("secretsmanager:GetSecretValue", "both")),
)
def db_writable(ctx: DrillContext, site: str) -> bool:
    """True when the site's database is not in recovery and takes a write (a temp table insert)."""
    view = ctx.require_estate().site(site)
    with _connect_site(ctx, view) as conn:
        row = conn.execute("SELECT pg_is_in_recovery(), current_setting('transaction_read_only')").fetchone()
        if row is None or row[0] or row[1] == "on":
            return False
        conn.execute("CREATE TEMP TABLE dr_writable_probe (t timestamptz)")
        conn.execute("INSERT INTO dr_writable_probe VALUES (now())")
        return True


class LagArgs(ActionArgs):
    site: Site = "secondary"


@register_probe(
    "replica-lag",
    args=LagArgs,
    description="Replica lag in seconds of the site's read replica.",
    iam=(Need("rds:DescribeDBInstances", "both"), Need("cloudwatch:GetMetricStatistics", "both")),
)
def replica_lag(ctx: DrillContext, site: str) -> float | None:
    """Seconds the site's database trails its source (CloudWatch ``ReplicaLag``); 0 once it is
    no longer a replica (promoted: it *is* the writer). None — nothing to measure yet, which a
    stop condition does not count as a breach (a steady-state or verification probe fails on it)
    — while a new replica is being created or has not published its first datapoint (a failback
    or ``dr reprotect`` re-creating it). No datapoint from an older replica is an error."""
    from dr.aws.cloudwatch import replica_lag as metric
    from dr.aws.rds import Rds

    view = ctx.require_estate().site(site)
    clients = ctx.clients(read_only=True)
    inst = Rds(clients, view.region).describe_instance(view.database.identifier)
    if not inst.is_replica:
        return 0.0
    if inst.status == "creating":
        return None
    point = metric(clients, view.region, view.database.identifier)
    young = inst.created is not None and utcnow() - inst.created < dt.timedelta(minutes=10)
    if point is None and young:
        return None
    if point is None:
        raise OperationFailed(
            f"no ReplicaLag datapoint for {view.database.identifier} in {view.region} (last 10 minutes)",
            resource=view.database.identifier,
            region=view.region,
            hint="is the replica replicating? (CloudWatch publishes ReplicaLag every minute on AWS)",
        )
    return float(point.value)


@register_probe(
    "pods-ready",
    args=SiteArgs,
    description="True when every deployment of the site has its replicas Ready.",
    iam=(KUBE_CONNECT,),
)
def pods_ready(ctx: DrillContext, site: str) -> bool:
    """True when every deployment of the site has all its replicas updated and Ready."""
    estate = ctx.require_estate()
    view = estate.site(site)
    with kube_for_site(ctx, view, read_only=True) as kube:
        infos = [kube.rollout_status(estate.app.namespace, d.name) for d in estate.app.deployments]
    return all(i.rolled_out for i in infos)


@register_probe(
    "dns-points-to",
    args=SiteArgs,
    description="True when the public record resolves to the site's load balancer.",
    # read_state: the zone, its failover records, their health checks (and the checks' tags)
    iam=(
        Need("route53:ListHostedZonesByName", "global"),
        Need("route53:ListResourceRecordSets", "global"),
        Need("route53:GetHealthCheck", "global"),
        Need("route53:GetHealthCheckStatus", "global"),
        Need("route53:ListTagsForResource", "global"),
    ),
)
def dns_points_to(ctx: DrillContext, site: str) -> bool:
    """True when Route53 failover routing answers the public record with the site's region."""
    from dr.steps.dns_records import read_state

    estate = ctx.require_estate()
    view = estate.site(site)
    state = read_state(ctx.clients(read_only=True), estate, use_test_dns=False)
    return state.active_region == view.region


class RestoredToPointArgs(ActionArgs):
    site: Site = "secondary"


@register_probe(
    "restored-to-point",
    args=RestoredToPointArgs,
    description="True when the app's database holds every heartbeat acknowledged before the restore "
    "time and none acknowledged after the corruption.",
    iam=(KUBE_CONNECT,),  # the app's DB secret; the database itself is PostgreSQL, not IAM
)
def restored_to_point(ctx: DrillContext, site: str) -> Any:
    """In the database the site's application uses now (a restore): every heartbeat the old primary
    acknowledged before the restore time is there, and none acknowledged after the corruption —
    PITR really replayed up to that time and stopped (rows read from PostgreSQL)."""
    from dr.drills.heartbeat import TABLE

    view = ctx.require_estate().site(site)
    writer = ctx.services.get("heartbeat")
    restore_time = ctx.outputs.get("restore_time")
    if writer is None or restore_time is None or ctx.corrupted_at is None:
        return Observation(False, "needs the heartbeat, a corrupt-data step and a restore-pitr step")
    acks = list(writer.acks)
    label = acks[0].label if acks else None
    before = {a.seq for a in acks if a.label == label and a.t < float(restore_time)}
    after = {a.seq for a in acks if a.label == label and a.t > ctx.corrupted_at}
    if not before or not after:
        return Observation(False, f"{len(before)} heartbeat(s) before the restore time, {len(after)} after")
    with connect_app_database(ctx, view) as conn:
        rows = conn.execute(
            f"SELECT seq FROM {TABLE} WHERE seq BETWEEN %s AND %s", (min(before), max(after))
        ).fetchall()
    present = {int(r[0]) for r in rows}
    missing, extra = before - present, after & present
    cause = (
        f"{len(before) - len(missing)}/{len(before)} heartbeats before the restore time present, "
        f"{len(extra)}/{len(after)} after the corruption present"
    )
    return Observation(not missing and not extra, cause)


@register_probe(
    "data-intact",
    args=SiteArgs,
    description="True when the integrity check finds no corrupt rows.",
    iam=(KUBE_CONNECT,),  # the app's DB secret; the database itself is PostgreSQL, not IAM
)
def data_intact(ctx: DrillContext, site: str) -> bool:
    """True when no row of the integrity table of the database the site's application uses fails
    its checksum (no table: nothing corrupt)."""
    view = ctx.require_estate().site(site)
    with connect_app_database(ctx, view) as conn:
        exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (INTEGRITY_TABLE,)).fetchone()
        if not exists or not exists[0]:
            return True
        bad = conn.execute(
            f"SELECT count(*) FROM {INTEGRITY_TABLE} WHERE checksum IS DISTINCT FROM md5(payload)"
        ).fetchone()
        return bool(bad is not None and bad[0] == 0)


# ---------------------------------------------------------------------------------------------
# Post-drill invariants
# ---------------------------------------------------------------------------------------------


def _serving_database(
    estate: Estate, view: SiteView, serving: str | None, rds: Any, kube: KubeFactory
) -> Any:
    """The database the site serves from (:func:`dr.procedures.readiness.serving_database`, the
    rule ``dr readiness`` judges by) when Route53 serves the site's region, else the stack files'
    instance. A secret that cannot be read raises: the estate is unreadable, not judged on the
    wrong database."""
    from dr.procedures.readiness_reads import secret_host, serving_database

    own = rds.find_instance(view.database.identifier)
    if serving != view.region:
        return own
    app = estate.app
    value = kube(view).read_secret_key(app.namespace, app.db_secret.name, app.db_secret.key)
    return serving_database(own, secret_host(value.reveal()), rds.list_instances)


@register_estate_check
def estate_invariants(ctx: DrillContext, intended: str | None) -> EstateFacts:
    """Single writer (``dr readiness``'s check), Route53 on ``intended`` (a site or region; None:
    wherever it is) and the other region's database an available replica of the intended one."""
    from dr.aws.rds import Rds
    from dr.steps.dns_records import read_state
    from dr.steps.db_replica import is_replica_of
    from dr.procedures.readiness import PASS, single_writer

    estate = ctx.require_estate()
    clients = ctx.clients(read_only=True)
    serving = read_state(clients, estate, use_test_dns=False).active_region
    out: list[Invariant] = []
    want = estate.site(intended) if intended else estate.site(serving)
    rds_w = Rds(clients, want.region)
    factory = kube_factory(ctx, read_only=True)
    try:
        writer = _serving_database(estate, want, serving, rds_w, factory)
        check = single_writer(estate, clients, factory)
    finally:
        factory.close()
    out.append(Invariant("single-writer", check.status == PASS, check.reason, check.status))
    if intended:
        ok = serving == want.region
        out.append(
            Invariant(
                "dns-on-intended-region",
                ok,
                f"Route53 serves {serving}"
                + ("" if ok else f", but the drill meant to serve {want.region} at the end ({want.stack})"),
                serving,
            )
        )
    standby = estate.other(want)
    replica = Rds(clients, standby.region).find_instance(standby.database.identifier)
    writer_id = want.database.identifier if writer is None else writer.identifier
    moved = f" --db {writer_id}" if writer_id != want.database.identifier else ""
    name = f"{standby.database.identifier} in {standby.region}"
    if replica is None:
        ok, detail = False, f"{name} does not exist: nothing to fail over to"
    elif writer is None or not is_replica_of(replica, writer):
        source = f"a replica of {replica.replica_source}" if replica.is_replica else "a standalone instance"
        ok, detail = (
            False,
            (
                f"{name} is {source}, not a replica of {writer_id} in {want.region}: "
                f"`dr reprotect --region {standby.region}{moved}` makes it one"
            ),
        )
    else:
        ok = replica.status == "available"
        detail = f"{name} replicates from {writer_id} ({replica.status})"
    out.append(Invariant("replica-replicating", ok, detail, None if replica is None else replica.status))
    return EstateFacts(serving, out)


@register_probe(
    "readiness-alarms",
    args=NoArgs,
    description="How many continuous-readiness alarms of the DR region are in ALARM.",
    iam=(Need("cloudwatch:DescribeAlarms", "both"),),
)
def readiness_alarms_firing(ctx: DrillContext) -> int:
    """How many continuous-readiness alarms (DR region, ``<app>-readiness-*``) are in ALARM: a
    steady-state hypothesis "no readiness alarm fired" is ``tolerance: {max: 0}``. Fails when no
    readiness alarm is deployed (the hypothesis would hold vacuously)."""
    from dr.procedures.readiness_metrics import alarm_prefix, readiness_alarms

    estate = ctx.require_estate()
    alarms = readiness_alarms(ctx.clients(read_only=True), estate)
    if not alarms:
        raise OperationFailed(
            f"no readiness alarm {alarm_prefix(estate.app)}* in {estate.secondary.region}",
            resource=f"{alarm_prefix(estate.app)}*",
            region=estate.secondary.region,
            hint="deploy the DR stack (pulumi up): it creates the readiness alarms",
        )
    return sum(1 for a in alarms if a.state == "ALARM")
