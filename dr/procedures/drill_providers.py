"""Drill providers implemented by the project's real procedures (any target).

``dr drill run`` imports this module lazily (``dr.drills.registry.PLUGIN_MODULES``). Every action
builds the same plan the matching CLI command builds and runs it with
:func:`dr.runbook.runner.run_plan` (journal, lock, idempotent steps) with ``--yes`` semantics —
so a drill exercises exactly the code an operator runs. Nothing here knows which target it is
on: AWS vs. sandbox differs only by the ClientProvider's endpoint (``ctx.clients()``) and the
kubeconfig (:func:`dr.kube.resolve_kubeconfig`).

The post-drill invariant check (:mod:`dr.drills.invariants`) is :func:`estate_invariants`.

Actions: ``failover``, ``failback``, ``scale-deployment``, ``restore-pitr``, ``repoint-app``,
``deploy``, ``rollback-deploy``, ``wait-replicated-backups``. Probes: ``db-writable``,
``replica-lag``, ``pods-ready``, ``dns-points-to``, ``data-intact``, ``restored-to-point``.

Each action returns a summary of its runbook run (run id, status, wall time, critical path and
every step's timing), which the drill runner stores in the drill journal as the step's value;
``ctx.note`` adds the run id and its journal path to the drill's events.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dr.drills.drill_context import DrillContext
from dr.drills.invariants import EstateFacts, Invariant
from dr.drills.invariants import register as register_estate_check
from dr.drills.registry import register_action, register_probe
from dr.errors import BadInput, OperationFailed
from dr.procedures.support import utcnow

if TYPE_CHECKING:
    from dr.kube import Kube, KubeFactory
    from dr.runbook.executor import RunResult
    from dr.runbook.lock import DynamoLock
    from dr.runbook.plan import Plan
    from dr.topology import Estate, SiteView

# Integrity table shared by ``corrupt-data`` (sandbox) and the ``data-intact`` probe: a row is
# intact when ``checksum = md5(payload)``.
INTEGRITY_TABLE = "dr_integrity"
# Output key holding the writers' replica counts recorded by a scale-deployment to 0.
_SCALED_FROM = "scaled_from"


# ---------------------------------------------------------------------------------------------
# Plumbing: kubeconfig, kube factory, lock, runs directory, running a plan
# ---------------------------------------------------------------------------------------------


def kube_factory(ctx: DrillContext, *, read_only: bool = False) -> KubeFactory:
    """One Kubernetes client per site (what ``dr failover`` builds from its options)."""
    from dr.kube import KubeFactory

    factory: KubeFactory | None = ctx.services.get("kube_factory")
    if factory is not None and not read_only:
        return factory
    return KubeFactory.for_target(
        ctx.target, clients=ctx.clients(read_only=True), read_only=read_only or ctx.dry_run
    )


@contextmanager
def _kube(ctx: DrillContext, view: SiteView, *, read_only: bool = False) -> Iterator[Kube]:
    factory = kube_factory(ctx, read_only=read_only)
    try:
        yield factory(view)
    finally:
        if factory is not ctx.services.get("kube_factory"):
            factory.close()


def runs_dir(ctx: DrillContext) -> Path:
    """Runbook journals of a drill go next to its evidence (``<out>/runs``), else $DR_RUNS_DIR."""
    path = getattr(ctx.journal, "path", None)
    if path is not None:
        return Path(path).parent / "runs"
    return Path(os.environ.get("DR_RUNS_DIR", ".dr-runs"))


def estate_lock(ctx: DrillContext, view: SiteView, *, unplanned: bool) -> DynamoLock:
    """The estate's run lock for a run moving to ``view`` (:func:`dr.runbook.lock.lock_region`)."""
    from dr.runbook.lock import estate_lock as lock

    return lock(ctx.clients(), ctx.require_estate(), target_region=view.region, unplanned=unplanned)


def summarize(result: RunResult) -> dict[str, Any]:
    """Run id, status, wall time, critical path and each step's timing (for the drill journal)."""
    return {
        "run_id": result.run_id,
        "plan": result.plan,
        "status": result.status,
        "wall_seconds": round(result.wall_seconds, 3),
        "critical_path": list(result.critical_path),
        "critical_path_seconds": round(result.critical_path_seconds, 3),
        "ratio": None if result.ratio is None else round(result.ratio, 3),
        "journal_path": result.journal_path,
        "steps": [
            {
                "id": s.id,
                "status": s.status,
                "duration": None if s.duration is None else round(s.duration, 3),
                "started_at": s.started_at,
                "ended_at": s.ended_at,
                "error": s.error,
            }
            for s in result.steps
        ],
    }


def run(
    ctx: DrillContext,
    plan: Plan,
    *,
    kube: KubeFactory | None = None,
    lock: DynamoLock | None = None,
    **extra_services: Any,
) -> dict[str, Any]:
    """Run ``plan`` like the CLI does with ``--yes`` (dry run when the drill is one); raise on failure."""
    from dr.procedures.support import services
    from dr.runbook.runner import run_plan

    estate = ctx.require_estate()
    clients = ctx.clients()
    own_kube = kube is None
    kube = kube or kube_factory(ctx)
    try:
        result = run_plan(
            plan,
            services(clients, estate, kube=kube, **extra_services),
            dry_run=ctx.dry_run,
            assume_yes=True,
            resume=None,
            runs_dir=runs_dir(ctx),
            lock=None if ctx.dry_run else lock,
            break_lock=False,
            output="json",  # no live progress on the drill's terminal
        )
    finally:
        if own_kube:
            kube.close()
    summary = summarize(result)
    ctx.note(
        f"runbook run {result.run_id} ({plan.name}): {result.status}",
        run_id=result.run_id,
        plan=plan.name,
        journal=result.journal_path,
        wall_seconds=summary["wall_seconds"],
    )
    if not result.ok:
        failed = [f"{s['id']}: {s['error']}" for s in summary["steps"] if s["status"] == "failed"]
        raise OperationFailed(
            f"plan {plan.name} (run {result.run_id}) {result.status}: "
            + ("; ".join(failed) or "see its journal"),
            hint=f"journal {result.journal_path}; resume with the CLI's --resume {result.run_id}",
        )
    return summary


def _rpo_budget(estate: Estate, max_lag_seconds: float | None) -> dt.timedelta:
    seconds = estate.app.objectives.rpo_seconds if max_lag_seconds is None else max_lag_seconds
    return dt.timedelta(seconds=seconds)


def _active_region(ctx: DrillContext) -> str | None:
    from dr.procedures.dns import read_state

    try:
        return read_state(ctx.clients(read_only=True), ctx.require_estate(), use_test_dns=False).active_region
    except Exception as exc:  # a report field, never a failure of the action
        ctx.note(f"could not read which region serves the public name: {exc}")
        return None


# ---------------------------------------------------------------------------------------------
# Region failover / failback
# ---------------------------------------------------------------------------------------------


def _output_db(ctx: DrillContext, key: str | None, action: str, region: str) -> str | None:
    """The database identifier an earlier step set as output ``key`` (None: no key given)."""
    if key is None:
        return None
    db = ctx.outputs.get(key)
    if not db and not ctx.dry_run:
        raise BadInput(
            f"{action}: no earlier step of this drill set output {key!r}",
            resource=key,
            region=region,
            hint=f"run restore-pitr (it sets restored_db) before this {action}",
        )
    return str(db) if db else None


@register_action("failover")
def failover(
    ctx: DrillContext, to: str, mode: str, max_lag_seconds: float | None, db_from: str | None = None
) -> dict[str, Any]:
    """``dr failover --to <to> --mode <mode> --yes``: gates, then the whole-region plan; with
    ``db_from``, onto the database an earlier step named (``--db``) instead of the DR replica."""
    from dr.procedures.failover import failover_plan, preflight

    estate = ctx.require_estate()
    target = estate.site(to)
    db = _output_db(ctx, db_from, "failover", target.region)
    if target.region == estate.primary.region:
        raise BadInput(
            f"failover target {to!r} is the primary site ({target.region})",
            resource=to,
            region=target.region,
            hint="use to: secondary",
        )
    pre = preflight(
        ctx.clients(read_only=True),
        estate,
        target=target,
        mode="unplanned" if mode == "unplanned" else "planned",
        max_lag=_rpo_budget(estate, max_lag_seconds),
        db=db,
    )
    for warning in pre.warnings:
        ctx.note(f"failover pre-flight warning: {warning}")
    plan = failover_plan(estate, pre)
    summary = run(ctx, plan, lock=estate_lock(ctx, target, unplanned=pre.mode == "unplanned"))
    summary["preflight"] = pre.to_dict()
    summary["active_region"] = None if ctx.dry_run else _active_region(ctx)
    return summary


@register_action("failback")
def failback(ctx: DrillContext, mode: str) -> dict[str, Any]:
    """``dr failback --yes``: re-protect, wait in sync, planned switch back, DR to warm standby."""
    from dr.drills.registry import NothingToUndo
    from dr.procedures.failback import NotFailedOver, failback_plan, preflight

    estate = ctx.require_estate()
    if mode != "planned":
        raise BadInput(
            "failback is always planned (the original region must be reachable to re-protect it)",
            resource="mode",
            hint="use mode: planned",
        )
    try:  # to the stack files' primary, refused when the estate is not failed over
        pre = preflight(ctx.clients(read_only=True), estate, to=None, max_lag=_rpo_budget(estate, None))
    except NotFailedOver as exc:
        raise NothingToUndo(exc.message, resource=exc.resource, region=exc.region, hint=exc.hint) from exc
    for warning in pre.warnings:
        ctx.note(f"failback pre-flight warning: {warning}")
    plan = failback_plan(estate, pre)
    summary = run(ctx, plan, lock=estate_lock(ctx, pre.target, unplanned=False))
    summary["preflight"] = pre.to_dict()
    summary["active_region"] = None if ctx.dry_run else _active_region(ctx)
    return summary


@register_action("reprotect")
def reprotect(ctx: DrillContext, max_lag_seconds: float | None, db_from: str | None = None) -> dict[str, Any]:
    """``dr reprotect --yes``: the standby region's database a read replica of the serving one
    again (a drill that fails back must not leave DR without a replica to promote); with
    ``db_from``, of the database an earlier step named (a failover onto a restored instance)."""
    from dr.procedures.reprotect import preflight, reprotect_plan

    estate = ctx.require_estate()
    source_db = _output_db(ctx, db_from, "reprotect", estate.secondary.region)
    pre = preflight(
        ctx.clients(read_only=True),
        estate,
        region=None,
        max_lag=_rpo_budget(estate, max_lag_seconds),
        source_db=source_db,
    )
    for warning in pre.warnings:
        ctx.note(f"reprotect pre-flight warning: {warning}")
    summary = run(ctx, reprotect_plan(estate, pre), lock=estate_lock(ctx, estate.secondary, unplanned=False))
    summary["preflight"] = pre.to_dict()
    return summary


# ---------------------------------------------------------------------------------------------
# Runbook operations (db-corruption, bad-deploy)
# ---------------------------------------------------------------------------------------------


def _deployments(estate: Estate, which: str | list[str]) -> list[str]:
    from dr.procedures.ops import resolve_deployment

    if which == "writers":
        return [d.name for d in estate.app.writers]
    if which == "all":
        return [d.name for d in estate.app.deployments]
    return [resolve_deployment(estate, name).name for name in which]


@register_action("scale-deployment")
def scale_deployment(
    ctx: DrillContext, site: str, deployments: str | list[str], replicas: int | str
) -> dict[str, Any]:
    """Scale deployments; ``writers`` to 0 is the runbook's stop-writes (counts recorded), and
    ``previous`` scales back to the recorded counts (resume-writes)."""
    from dr.procedures.ops import resume_writes_plan, scale_plan, scale_preflight, stop_writes_plan

    estate = ctx.require_estate()
    view = estate.site(site)
    names = _deployments(estate, deployments)
    writers = deployments == "writers"
    factory = kube_factory(ctx)
    try:
        kube = factory(view)
        if writers and replicas == 0:
            before = {n: kube.get_deployment(estate.app.namespace, n).replicas for n in names}
            ctx.outputs.setdefault(_SCALED_FROM, {}).update(before)
            summary = run(ctx, stop_writes_plan(estate, view), kube=factory)
            summary["scaled"] = {n: {"from": c, "to": 0} for n, c in before.items()}
            return summary
        if writers and replicas == "previous":
            plan, recorded = resume_writes_plan(kube, estate, view)
            summary = run(ctx, plan, kube=factory)
            summary["scaled"] = {n: {"to": c} for n, c in recorded.items()}
            return summary
        counts: dict[str, int] = {}
        for name in names:
            if replicas == "previous":
                saved = ctx.outputs.get(_SCALED_FROM, {}).get(name)
                if saved is None:
                    raise BadInput(
                        f"no earlier scale-deployment of {name} in this drill recorded a count to go back to",
                        resource=name,
                        region=view.region,
                        hint="scale it first (replicas: 0) or give a number",
                    )
                counts[name] = int(saved)
            elif replicas == "production":
                counts[name] = estate.app.deployment(name).replicas
            else:
                counts[name] = int(replicas)
        runs = []
        for name, count in counts.items():  # one plan each: their step ids (adjust-hpa) would clash
            pre = scale_preflight(kube, estate, view, name, count, adjust_hpa=True)
            ctx.outputs.setdefault(_SCALED_FROM, {}).setdefault(name, pre.current)
            runs.append(run(ctx, scale_plan(pre, view), kube=factory))
        return {"scaled": {n: {"to": c} for n, c in counts.items()}, "runs": runs}
    finally:
        factory.close()


@register_action("restore-pitr")
def restore_pitr(
    ctx: DrillContext,
    site: str,
    restore_time: str,
    seconds_before: float,
    target_identifier: str | None,
    source: str = "instance",
) -> dict[str, Any]:
    """``dr restore pitr [--from replicated-backups]``: a new instance at a point in time (before
    the fault by default); output ``restored_db`` names it for ``repoint-app`` / ``failover``."""
    from dr.procedures.restore import prepare_pitr, restore_plan
    from dr.procedures.support import parse_time

    estate = ctx.require_estate()
    view = estate.site(site)
    anchors = {
        "before-fault": (
            ctx.fault_at,
            "needs a fault: no action of this drill is marked fault: true",
            "mark the corrupting action with fault: true, or give an ISO time",
        ),
        "before-corruption": (
            ctx.corrupted_at,
            "needs a corruption: no corrupt-data step ran before",
            "run corrupt-data first, or give before-fault or an ISO time",
        ),
    }
    if restore_time in anchors:
        anchor, missing, hint = anchors[restore_time]
        if anchor is None:
            raise BadInput(f"restore_time {restore_time} {missing}", resource="restore_time", hint=hint)
        when = dt.datetime.fromtimestamp(anchor - seconds_before, dt.UTC)
    else:
        when = parse_time(restore_time, option="restore_time")
    stamp = dt.datetime.fromtimestamp(ctx.fault_at or when.timestamp(), dt.UTC)
    target = target_identifier or f"{view.database.identifier}-pitr-{stamp:%H%M%S}"
    req = prepare_pitr(
        ctx.clients(read_only=True),
        estate,
        view,
        source=None,
        target=target,
        when=when,
        minutes_ago=None,
        checks=[],
        verify=False,
        cleanup=False,
        from_="replicated-backups" if source == "replicated-backups" else "instance",
    )
    summary = run(ctx, restore_plan(req))
    ctx.outputs["restored_db"] = target
    ctx.outputs["restore_time"] = when.timestamp()
    summary["restored_db"] = target
    summary["restore_time"] = when.isoformat()
    summary["window"] = req.window.to_dict() if req.window else None
    summary["from"] = source
    return summary


@register_action("wait-replicated-backups")
def wait_replicated_backups(ctx: DrillContext, site: str, covers: str, timeout: float) -> dict[str, Any]:
    """Wait until the RestoreWindow of the other site's automated backups replicated to ``site``
    reaches the drill's first corruption (or now): only then can a restore there land just before
    it. On AWS that is up to several minutes (transaction logs are shipped every few minutes)."""
    import time

    from dr.aws.rds import Rds
    from dr.procedures.restore import find_replicated_backups

    estate = ctx.require_estate()
    view = estate.site(site)
    other = estate.other(view)
    if covers == "corruption" and ctx.corrupted_at is None:
        raise BadInput(
            "wait-replicated-backups covers: corruption needs a corrupt-data step before it",
            resource="covers",
            hint="use covers: now, or run corrupt-data first",
        )
    wanted = ctx.corrupted_at if covers == "corruption" and ctx.corrupted_at else time.time()
    moment = dt.datetime.fromtimestamp(wanted, dt.UTC)
    if ctx.dry_run:
        return {"site": site, "covers": moment.isoformat(), "dry_run": True}
    rds = Rds(ctx.clients(read_only=True), view.region)
    deadline, t0 = time.monotonic() + timeout, time.monotonic()
    while True:
        backups = find_replicated_backups(rds, other.database.identifier, other.region)
        if backups.latest is not None and backups.latest >= moment:
            return {
                "site": site,
                "backups_arn": backups.arn,
                "covers": moment.isoformat(),
                "latest": backups.latest.isoformat(),
                "waited_seconds": round(time.monotonic() - t0, 3),
            }
        if time.monotonic() >= deadline or ctx.stopping:
            raise OperationFailed(
                f"the automated backups of {other.database.identifier} replicated to {view.region} did not "
                f"reach {moment.isoformat()} within {timeout:g}s (latest {backups.latest})",
                resource=backups.arn,
                region=view.region,
                hint="is the backup replication running? (`dr readiness` snapshot-age)",
            )
        ctx.wait(min(2.0, max(0.2, deadline - time.monotonic())))


@register_action("repoint-app")
def repoint_app(ctx: DrillContext, site: str, database_from: str) -> dict[str, Any]:
    """Point the site's DB secret at the database an earlier step named (output ``database_from``),
    then rolling-restart every deployment and wait until its pods are Ready."""
    from dr.procedures.failover import pods_ready_step, restart_step, secret_step
    from dr.runbook.plan import Plan

    estate = ctx.require_estate()
    view = estate.site(site)
    db = ctx.outputs.get(database_from)
    if not db:
        raise BadInput(
            f"repoint-app: no earlier step of this drill set output {database_from!r}",
            resource=database_from,
            region=view.region,
            hint="run restore-pitr (it sets restored_db) before repoint-app",
        )
    db = str(db)
    factory = kube_factory(ctx)
    try:
        kube = factory(view)
        ns = estate.app.namespace
        counts = {d.name: kube.get_deployment(ns, d.name).replicas for d in estate.app.deployments}
        secret = secret_step(estate, view, db, depends_on=())
        restarts = [
            restart_step(estate, view, db, name, depends_on=(secret.id,))
            for name, c in counts.items()
            if c > 0
        ]
        ready = pods_ready_step(
            estate,
            view,
            {n: c for n, c in counts.items() if c > 0},
            depends_on=tuple(r.id for r in restarts),
            timeout=600,
        )
        plan = Plan(
            "drill-repoint-app", [secret, *restarts, ready], f"Point the app in {view.region} at {db}"
        )
        summary = run(ctx, plan, kube=factory)
    finally:
        factory.close()
    summary["database"] = db
    return summary


def _deployment_name(estate: Estate, deployment: str | None) -> str:
    from dr.procedures.ops import resolve_deployment

    return resolve_deployment(estate, deployment).name if deployment else estate.app.api.name


@register_action("deploy")
def deploy(ctx: DrillContext, deployment: str | None, image: str) -> dict[str, Any]:
    """Roll out ``image`` to a deployment of the serving site (the bad-deploy fault); does not
    wait for it to become Ready (a broken image never does)."""
    estate = ctx.require_estate()
    view = estate.site(_active_region(ctx) or estate.primary.region)
    name = _deployment_name(estate, deployment)
    ns = estate.app.namespace
    with _kube(ctx, view) as kube:
        before = kube.get_deployment(ns, name)
        if ctx.dry_run:
            return {"deployment": name, "region": view.region, "image": image, "dry_run": True}
        kube.set_image(ns, name, image)
    ctx.outputs["deployed"] = {
        "deployment": name,
        "region": view.region,
        "previous_images": list(before.images),
    }
    return {"deployment": name, "region": view.region, "image": image, "previous_images": list(before.images)}


@register_action("rollback-deploy")
def rollback_deploy(ctx: DrillContext, deployment: str | None) -> dict[str, Any]:
    """``dr ops rollback``: back to the previous revision; a no-op when nothing was deployed."""
    from dr.procedures.ops import rollback_plan

    estate = ctx.require_estate()
    deployed = ctx.outputs.get("deployed") or {}
    region = deployed.get("region") or _active_region(ctx) or estate.primary.region
    view = estate.site(region)
    name = _deployment_name(estate, deployment or deployed.get("deployment"))
    factory = kube_factory(ctx)
    try:
        kube = factory(view)
        current = kube.get_deployment(estate.app.namespace, name)
        previous = deployed.get("previous_images")
        if previous is not None and list(current.images) == list(previous):
            return {"deployment": name, "region": view.region, "skipped": "already on the previous images"}
        if previous is None and "rolled_back" in ctx.outputs:
            return {"deployment": name, "region": view.region, "skipped": "already rolled back"}
        plan, info = rollback_plan(kube, estate, view, name)
        summary = run(ctx, plan, kube=factory)
    finally:
        factory.close()
    ctx.outputs["rolled_back"] = name
    summary["rollback"] = info
    return summary


# ---------------------------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------------------------


def _connect_site(ctx: DrillContext, view: SiteView) -> Any:
    """A psycopg connection to the site's database (RDS endpoint + the app's master credentials)."""
    from dr.aws.rds import Rds
    from dr.procedures.restore import connect_master

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
    with _kube(ctx, view, read_only=True) as kube:
        url = kube.read_secret_key(app.namespace, app.db_secret.name, app.db_secret.key)
    return psycopg.connect(url.reveal(), connect_timeout=3, autocommit=True)


@register_probe("db-writable")
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


@register_probe("replica-lag")
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


@register_probe("pods-ready")
def pods_ready(ctx: DrillContext, site: str) -> bool:
    """True when every deployment of the site has all its replicas updated and Ready."""
    estate = ctx.require_estate()
    view = estate.site(site)
    with _kube(ctx, view, read_only=True) as kube:
        infos = [kube.rollout_status(estate.app.namespace, d.name) for d in estate.app.deployments]
    return all(i.rolled_out for i in infos)


@register_probe("dns-points-to")
def dns_points_to(ctx: DrillContext, site: str) -> bool:
    """True when Route53 failover routing answers the public record with the site's region."""
    from dr.procedures.dns import read_state

    estate = ctx.require_estate()
    view = estate.site(site)
    state = read_state(ctx.clients(read_only=True), estate, use_test_dns=False)
    return state.active_region == view.region


@register_probe("restored-to-point")
def restored_to_point(ctx: DrillContext, site: str) -> Any:
    """In the database the site's application uses now (a restore): every heartbeat the old primary
    acknowledged before the restore time is there, and none acknowledged after the corruption —
    PITR really replayed up to that time and stopped (rows read from PostgreSQL)."""
    from dr.drills.heartbeat import TABLE
    from dr.drills.registry import Observation

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


@register_probe("data-intact")
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
    from dr.procedures.readiness import secret_host, serving_database

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
    from dr.procedures.dns import read_state
    from dr.procedures.failback import is_replica_of
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


@register_probe("readiness-alarms")
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
