"""Drill actions backed by the project's real procedures (any target).

Every action builds the same plan the matching CLI command builds and runs it with
:func:`dr.runbook.runner.run_plan` (journal, lock, idempotent steps) with ``--yes`` semantics —
so a drill exercises exactly the code an operator runs; ``failover`` and ``failback`` run the
very use case of ``dr failover`` / ``dr failback`` (:mod:`dr.procedures.region_switch`). Nothing
here knows which target it is on: AWS vs. sandbox differs only by the ClientProvider's endpoint
(``ctx.clients()``) and the kubeconfig (:func:`dr.kube.resolve_kubeconfig`).

Actions: ``failover``, ``failback``, ``reprotect``, ``scale-deployment``, ``restore-pitr``,
``repoint-app``, ``deploy``, ``rollback-deploy``, ``wait-replicated-backups``. The probes and the
post-drill estate check are in :mod:`dr.drills.procedure_probes`.

Each action returns a summary of its runbook run (run id, status, wall time, critical path and
every step's timing), which the drill runner stores in the drill journal as the step's value;
``ctx.note`` adds the run id and its journal path to the drill's events.

IAM: an action that runs a procedure (``failover``, ``failback``, ``reprotect``, ``restore-pitr``,
and ``wait-replicated-backups``, the restore's read) needs that procedure's policy
(``policy_of``); the Kubernetes-only ones need only :data:`KUBE_CONNECT`.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, model_validator

from dr.drills.drill_context import DrillContext
from dr.drills.registry import ActionArgs, NothingToUndo, Site, register_action
from dr.errors import BadInput, OperationFailed
from dr.procedures.iam import Need

if TYPE_CHECKING:
    from dr.kube import Kube, KubeFactory
    from dr.procedures.region_switch import RunSettings
    from dr.runbook.executor import RunResult
    from dr.runbook.lock import DynamoLock
    from dr.runbook.plan import Plan
    from dr.topology import Estate, SiteView

# Output key holding the writers' replica counts recorded by a scale-deployment to 0.
_SCALED_FROM = "scaled_from"


# ---------------------------------------------------------------------------------------------
# Plumbing: kube factory, runs directory, running a plan
# ---------------------------------------------------------------------------------------------


# Connecting to a site's cluster that has no kubeconfig context: its endpoint and token through EKS
# (what the cluster then allows is its RBAC's business, not IAM's).
KUBE_CONNECT = Need("eks:DescribeCluster", "both")


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
def owned_kube_factory(ctx: DrillContext) -> Iterator[KubeFactory]:
    """:func:`kube_factory`, closed afterwards unless it is the drill's own (a service)."""
    factory = kube_factory(ctx)
    try:
        yield factory
    finally:
        if factory is not ctx.services.get("kube_factory"):
            factory.close()


@contextmanager
def kube_for_site(ctx: DrillContext, view: SiteView, *, read_only: bool = False) -> Iterator[Kube]:
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
            services(clients, estate, kube=kube),
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
    return finished(ctx, plan, result)


def finished(ctx: DrillContext, plan: Plan, result: RunResult) -> dict[str, Any]:
    """The run's summary, noted in the drill's events; raises when the run did not succeed."""
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


def run_settings(ctx: DrillContext) -> RunSettings:
    """How a drill runs a plan: ``--yes``, never resumed, its journal beside the evidence, no live
    progress on the drill's terminal (dry run when the drill is one)."""
    from dr.procedures.region_switch import RunSettings

    return RunSettings(dry_run=ctx.dry_run, assume_yes=True, runs_dir=runs_dir(ctx), output="json")


def _max_lag(seconds: float | None) -> dt.timedelta | None:
    return None if seconds is None else dt.timedelta(seconds=seconds)


def _active_region(ctx: DrillContext) -> str | None:
    from dr.steps.dns_records import read_state

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


class FailoverArgs(ActionArgs):
    to: Site = "secondary"
    mode: Literal["planned", "unplanned"] = "unplanned"
    max_lag_seconds: Annotated[float, Field(ge=0)] | None = None
    # Output key of an earlier step naming the database to fail over to instead of the DR
    # replica (e.g. restore-pitr's restored_db: the replica itself is corrupt).
    db_from: str | None = None


@register_action(
    "failover",
    args=FailoverArgs,
    description="Whole-region failover.",
    policy_of="failover",
)
def failover(
    ctx: DrillContext, to: str, mode: str, max_lag_seconds: float | None, db_from: str | None = None
) -> dict[str, Any]:
    """``dr failover --to <to> --mode <mode> --yes``: the same use case; with ``db_from``, onto
    the database an earlier step named (``--db``) instead of the DR replica."""
    from dr.procedures.region_switch import FailoverRequest, FailoverRun

    estate = ctx.require_estate()
    db = _output_db(ctx, db_from, "failover", estate.site(to).region)
    request = FailoverRequest(
        to=to, mode="unplanned" if mode == "unplanned" else "planned", max_lag=_max_lag(max_lag_seconds), db=db
    )
    switch = FailoverRun(estate, ctx.clients(), request, run_settings(ctx))
    pre, plan = switch.prepare()
    for warning in pre.warnings:
        ctx.note(f"failover pre-flight warning: {warning}")
    with owned_kube_factory(ctx) as kube:
        outcome = switch.execute(pre, plan, kube, serving=lambda: _active_region(ctx))
    summary = finished(ctx, plan, outcome.result)
    summary["preflight"] = pre.to_dict()
    summary["active_region"] = outcome.active_region
    return summary


class FailbackArgs(ActionArgs):
    mode: Literal["planned", "unplanned"] = "planned"


@register_action(
    "failback",
    args=FailbackArgs,
    description="Re-protect, then fail back.",
    policy_of="failback",
)
def failback(ctx: DrillContext, mode: str) -> dict[str, Any]:
    """``dr failback --yes``: the same use case — re-protect, wait in sync, planned switch back,
    DR to warm standby."""
    from dr.procedures.failback import NotFailedOver
    from dr.procedures.region_switch import FailbackRequest, FailbackRun

    estate = ctx.require_estate()
    if mode != "planned":
        raise BadInput(
            "failback is always planned (the original region must be reachable to re-protect it)",
            resource="mode",
            hint="use mode: planned",
        )
    switch = FailbackRun(estate, ctx.clients(), FailbackRequest(), run_settings(ctx))
    try:  # to the stack files' primary, refused when the estate is not failed over
        pre, plan = switch.prepare()
    except NotFailedOver as exc:
        raise NothingToUndo(exc.message, resource=exc.resource, region=exc.region, hint=exc.hint) from exc
    for warning in pre.warnings:
        ctx.note(f"failback pre-flight warning: {warning}")
    with owned_kube_factory(ctx) as kube:
        outcome = switch.execute(pre, plan, kube, serving=lambda: _active_region(ctx))
    summary = finished(ctx, plan, outcome.result)
    summary["preflight"] = pre.to_dict()
    summary["active_region"] = outcome.active_region
    return summary


class ReprotectArgs(ActionArgs):
    max_lag_seconds: Annotated[float, Field(ge=0)] | None = None
    # Output key of an earlier step naming the serving database when it is not the serving site's
    # own (failover db_from: a restored instance) — the replication source of the new replica.
    db_from: str | None = None


@register_action(
    "reprotect",
    args=ReprotectArgs,
    description="The standby's database a replica of the serving one again (after a failback).",
    policy_of="reprotect",
)
def reprotect(ctx: DrillContext, max_lag_seconds: float | None, db_from: str | None = None) -> dict[str, Any]:
    """``dr reprotect --yes``: the standby region's database a read replica of the serving one
    again (a drill that fails back must not leave DR without a replica to promote); with
    ``db_from``, of the database an earlier step named (a failover onto a restored instance)."""
    from dr.procedures.region_switch import ReprotectRequest, ReprotectRun

    estate = ctx.require_estate()
    source_db = _output_db(ctx, db_from, "reprotect", estate.secondary.region)
    request = ReprotectRequest(db=source_db, max_lag=_max_lag(max_lag_seconds))
    switch = ReprotectRun(estate, ctx.clients(), request, run_settings(ctx))
    pre, plan = switch.prepare()
    for warning in pre.warnings:
        ctx.note(f"reprotect pre-flight warning: {warning}")
    with owned_kube_factory(ctx) as kube:
        outcome = switch.execute(pre, plan, kube)
    summary = finished(ctx, plan, outcome.result)
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


class ScaleArgs(ActionArgs):
    site: Site = "primary"
    deployments: Literal["writers", "all"] | list[str] = "writers"
    replicas: Annotated[int, Field(ge=0)] | Literal["production", "previous"] = 0


@register_action(
    "scale-deployment",
    args=ScaleArgs,
    description="Scale deployments (writers = stop writes with 0; 'previous' restores the counts).",
    iam=(KUBE_CONNECT,),  # Kubernetes only, without the run lock
)
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


class RestorePitrArgs(ActionArgs):
    site: Site = "primary"
    # A timestamp, "before-fault" (seconds_before the fault action started) or
    # "before-corruption" (seconds_before the first corrupt-data of the drill).
    restore_time: str = "before-fault"
    seconds_before: Annotated[float, Field(ge=0)] = 1.0
    target_identifier: str | None = None
    # instance: the site's own instance's backups; replicated-backups: the other site's automated
    # backups replicated to this site's region (works with that region lost).
    source: Literal["instance", "replicated-backups"] = "instance"

    @model_validator(mode="after")
    def _time(self) -> RestorePitrArgs:
        if self.restore_time not in ("before-fault", "before-corruption"):
            try:
                dt.datetime.fromisoformat(self.restore_time)
            except ValueError:
                raise ValueError(
                    f"restore_time {self.restore_time!r} is neither 'before-fault', 'before-corruption' "
                    "nor an ISO timestamp"
                ) from None
        return self


@register_action(
    "restore-pitr",
    args=RestorePitrArgs,
    description="Restore the site's database to a point in time (sets output restored_db).",
    policy_of="restore",
)
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


class BackupsCoverArgs(ActionArgs):
    # Where the backups are replicated to.
    site: Site = "secondary"
    # The instant the replicated RestoreWindow must reach: the drill's first corruption, else now.
    covers: Literal["corruption", "now"] = "corruption"
    timeout: Annotated[float, Field(gt=0, le=7200)] = 900.0


@register_action(
    "wait-replicated-backups",
    args=BackupsCoverArgs,
    description="Wait until the automated backups replicated to the site cover the corruption.",
    # the restore's read of the replicated backups (`dr restore pitr --from replicated-backups`)
    policy_of="restore",
)
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


class RepointArgs(ActionArgs):
    site: Site = "primary"
    # Output key set by an earlier step (e.g. restore-pitr) holding the new DB identifier.
    database_from: str = "restored_db"


@register_action(
    "repoint-app",
    args=RepointArgs,
    description="Patch the DB secret to a database named by an earlier output, rolling-restart.",
    iam=(KUBE_CONNECT,),
)
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


class DeployArgs(ActionArgs):
    deployment: str | None = None
    image: str


@register_action(
    "deploy",
    args=DeployArgs,
    description="Roll out an image (bad-deploy fault).",
    iam=(KUBE_CONNECT,),
)
def deploy(ctx: DrillContext, deployment: str | None, image: str) -> dict[str, Any]:
    """Roll out ``image`` to a deployment of the serving site (the bad-deploy fault); does not
    wait for it to become Ready (a broken image never does)."""
    estate = ctx.require_estate()
    view = estate.site(_active_region(ctx) or estate.primary.region)
    name = _deployment_name(estate, deployment)
    ns = estate.app.namespace
    with kube_for_site(ctx, view) as kube:
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


class RollbackDeployArgs(ActionArgs):
    deployment: str | None = None


@register_action(
    "rollback-deploy",
    args=RollbackDeployArgs,
    description="kubectl rollout undo of the deployment.",
    iam=(KUBE_CONNECT,),
)
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
