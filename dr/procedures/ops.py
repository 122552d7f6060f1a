"""Incident operations of the runbooks as plans: scale, rollback, feature flags, stop/resume writes.

Every function validates its input first (exit 2 naming the resource, the region and the fix —
nothing changed) and returns a :class:`dr.runbook.plan.Plan` whose steps read state before acting
(idempotent) and wait for the effect (rollouts: every replica updated and Ready). The CLI runs the
plans with :func:`dr.runbook.runner.run_plan` (journal, ``--dry-run`` plan print, ``--resume``).

Steps find Kubernetes through their services' ``kube``: a :class:`dr.kube.KubeFactory` (one client per
cluster, read-only in dry runs), and AWS through their ``clients`` (a ClientProvider).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dr.errors import BadInput
from dr.runbook.plan import Operation, Plan, Step, StepContext
from dr.steps.base import clients_of, kube_of
from dr.steps.workload_steps import STOPPED_ANNOTATION as STOPPED_ANNOTATION

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.kube import Kube
    from dr.topology import Deployment, Estate, SiteView

MAX_REPLICAS = 1000
CIRCUIT_BREAKER_FLAG = "circuit-breaker-enabled"
MAINTENANCE_FLAG = "maintenance-mode"
_FLAG_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")


# ----------------------------------------------------------------------------------------------
# Input resolution (exit 2, nothing changed)
# ----------------------------------------------------------------------------------------------


def resolve_sites(estate: Estate, which: str) -> list[SiteView]:
    """'primary' / 'secondary' / 'both' / a region / a stack name → sites."""
    if which in ("both", "all"):
        return [estate.primary, estate.secondary]
    try:
        return [estate.site(which)]
    except Exception:
        raise BadInput(
            f"--region {which!r} is not a site of this estate",
            resource=which,
            hint=f"use primary ({estate.primary.region}), secondary ({estate.secondary.region}) or both",
        ) from None


def resolve_deployment(estate: Estate, name: str, view: SiteView | None = None) -> Deployment:
    """A deployment by full name (claude-deployment-api) or short suffix (api)."""
    app = estate.app
    try:
        return app.deployment(name)
    except KeyError:
        pass
    matches = [d for d in app.deployments if d.name.endswith("-" + name)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(d.name for d in app.deployments)
    where = f" in {view.region}" if view else ""
    raise BadInput(
        f"unknown deployment {name!r}{where} (namespace {app.namespace})",
        resource=name,
        region=view.region if view else None,
        hint=f"use one of: {known} (or its suffix, e.g. {app.api.name.rsplit('-', 1)[-1]})",
    )


def check_replicas(replicas: int, deployment: str, region: str) -> None:
    if replicas < 0 or replicas > MAX_REPLICAS:
        raise BadInput(
            f"deployment {deployment} in {region}: --replicas {replicas} is out of bounds (0..{MAX_REPLICAS})",
            resource=deployment,
            region=region,
            hint="pass a replica count between 0 and 1000",
        )


def _k8s_op(action: str, region: str, **params: Any) -> Operation:
    return Operation("k8s", action, region, params)


def _wait_step(
    view: SiteView,
    namespace: str,
    name: str,
    *,
    depends_on: tuple[str, ...],
    timeout: float,
    sid: str | None = None,
) -> Step:
    def wait(ctx: StepContext) -> bool:
        return kube_of(ctx, view).rollout_status(namespace, name).rolled_out

    return Step(
        id=sid or f"wait-{name}-{view.site.name}",
        title=f"Wait for rollout of {name} ({view.region}): all replicas updated and Ready",
        region=view.region,
        service="k8s",
        changes="nothing (waits)",
        depends_on=depends_on,
        operations=(Operation("k8s", "GetDeployment", view.region, {"name": name}, mutating=False),),
        wait=wait,
        timeout=timeout,
        estimate=60.0,
    )


# ----------------------------------------------------------------------------------------------
# Scale a deployment (HPA bounds respected, or adjusted explicitly)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScalePreflight:
    deployment: str
    namespace: str
    region: str
    cluster: str
    current: int
    replicas: int
    hpa: str | None
    hpa_min: int | None
    hpa_max: int | None
    hpa_new_min: int | None
    hpa_new_max: int | None
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "namespace": self.namespace,
            "region": self.region,
            "cluster": self.cluster,
            "from": self.current,
            "to": self.replicas,
            "hpa": None
            if self.hpa is None
            else {
                "name": self.hpa,
                "min": self.hpa_min,
                "max": self.hpa_max,
                "new_min": self.hpa_new_min,
                "new_max": self.hpa_new_max,
            },
            "warnings": list(self.warnings),
        }


def scale_preflight(
    kube: Kube, estate: Estate, view: SiteView, deployment: str, replicas: int, *, adjust_hpa: bool
) -> ScalePreflight:
    dep = resolve_deployment(estate, deployment, view)
    check_replicas(replicas, dep.name, view.region)
    ns = estate.app.namespace
    info = kube.get_deployment(ns, dep.name)
    hpa = kube.hpa_for(ns, dep.name)
    new_min = new_max = None
    warnings: list[str] = []
    if hpa is not None and replicas > 0 and not hpa.min_replicas <= replicas <= hpa.max_replicas:
        if not adjust_hpa:
            bound = "max" if replicas > hpa.max_replicas else "min"
            raise BadInput(
                f"deployment {dep.name} in {view.region}: --replicas {replicas} is outside its HPA {hpa.name} "
                f"bounds [{hpa.min_replicas}, {hpa.max_replicas}]; the HPA would scale it back",
                resource=dep.name,
                region=view.region,
                hint=f"pass --adjust-hpa to set the HPA {bound} to {replicas} too, or pick a count within the bounds",
            )
        new_min = min(hpa.min_replicas, replicas)
        new_max = max(hpa.max_replicas, replicas)
    if hpa is not None and replicas == 0:
        warnings.append(f"HPA {hpa.name} does not act on a deployment scaled to 0; it resumes when scaled up")
    return ScalePreflight(
        deployment=dep.name,
        namespace=ns,
        region=view.region,
        cluster=view.cluster.name,
        current=info.replicas,
        replicas=replicas,
        hpa=hpa.name if hpa else None,
        hpa_min=hpa.min_replicas if hpa else None,
        hpa_max=hpa.max_replicas if hpa else None,
        hpa_new_min=new_min,
        hpa_new_max=new_max,
        warnings=tuple(warnings),
    )


def scale_plan(pre: ScalePreflight, view: SiteView, *, wait: bool = True, timeout: float = 600.0) -> Plan:
    ns, name, region = pre.namespace, pre.deployment, pre.region
    steps: list[Step] = []
    deps: tuple[str, ...] = ()
    if pre.hpa and (pre.hpa_new_min is not None or pre.hpa_new_max is not None):
        hpa_name = pre.hpa

        def hpa_check(ctx: StepContext) -> bool:
            h = kube_of(ctx, view).hpa_for(ns, name)
            return h is not None and h.min_replicas == pre.hpa_new_min and h.max_replicas == pre.hpa_new_max

        def hpa_action(ctx: StepContext) -> None:
            kube_of(ctx, view).patch_hpa(
                ns, hpa_name, min_replicas=pre.hpa_new_min, max_replicas=pre.hpa_new_max
            )

        steps.append(
            Step(
                id="adjust-hpa",
                title=f"Set HPA {hpa_name} bounds to [{pre.hpa_new_min}, {pre.hpa_new_max}] ({region})",
                region=region,
                service="k8s",
                changes=f"HPA {hpa_name}: [{pre.hpa_min}, {pre.hpa_max}] -> [{pre.hpa_new_min}, {pre.hpa_new_max}]",
                operations=(
                    _k8s_op(
                        "PatchHorizontalPodAutoscaler",
                        region,
                        name=hpa_name,
                        minReplicas=pre.hpa_new_min,
                        maxReplicas=pre.hpa_new_max,
                    ),
                ),
                check=hpa_check,
                action=hpa_action,
                estimate=0.5,
            )
        )
        deps = ("adjust-hpa",)

    def check(ctx: StepContext) -> bool:
        return kube_of(ctx, view).get_deployment(ns, name).replicas == pre.replicas

    def action(ctx: StepContext) -> None:
        kube_of(ctx, view).scale_deployment(ns, name, pre.replicas)

    steps.append(
        Step(
            id=f"scale-{name}",
            title=f"Scale {name} to {pre.replicas} replicas ({region})",
            region=region,
            service="k8s",
            changes=f"deployment {ns}/{name}: replicas {pre.current} -> {pre.replicas}",
            depends_on=deps,
            operations=(_k8s_op("PatchDeploymentScale", region, name=name, replicas=pre.replicas),),
            check=check,
            action=action,
            estimate=0.5,
        )
    )
    if wait:
        steps.append(_wait_step(view, ns, name, depends_on=(f"scale-{name}",), timeout=timeout))
    return Plan(
        "ops-scale",
        steps,
        f"Scale {name} in {view.cluster.name} ({region}) from {pre.current} to {pre.replicas}",
    )


# ----------------------------------------------------------------------------------------------
# Scale a nodegroup
# ----------------------------------------------------------------------------------------------


def nodegroup_plan(
    clients: ClientProvider,
    view: SiteView,
    *,
    min_size: int | None,
    max_size: int | None,
    desired: int | None,
    timeout: float = 900.0,
) -> tuple[Plan, dict[str, Any]]:
    from dr.aws import eks

    cluster, ng, region = view.cluster.name, view.cluster.nodegroup.name, view.region
    current = eks.describe_nodegroup(clients, region, cluster, ng)
    target = eks.Scaling(
        current.scaling.min_size if min_size is None else min_size,
        current.scaling.max_size if max_size is None else max_size,
        current.scaling.desired_size if desired is None else desired,
    )
    eks.check_scaling(target, cluster=cluster, nodegroup=ng, region=region)

    def check(ctx: StepContext) -> bool:
        info = eks.describe_nodegroup(clients_of(ctx), region, cluster, ng)
        return info.scaling == target and info.status == "ACTIVE"

    def action(ctx: StepContext) -> None:
        eks.update_nodegroup_scaling(clients_of(ctx), region, cluster, ng, target)

    def wait(ctx: StepContext) -> bool:
        eks.wait_nodegroup_updated(clients_of(ctx), region, cluster, ng, target, timeout=timeout)
        return True

    step = Step(
        id="scale-nodegroup",
        title=f"Scale nodegroup {cluster}/{ng} to min {target.min_size} / desired {target.desired_size} / max {target.max_size} ({region})",
        region=region,
        service="eks",
        changes=f"scalingConfig {current.scaling.to_dict()} -> {target.to_dict()}",
        operations=(
            Operation(
                "eks",
                "UpdateNodegroupConfig",
                region,
                {"clusterName": cluster, "nodegroupName": ng, "scalingConfig": target.to_dict()},
            ),
        ),
        check=check,
        action=action,
        wait=wait,
        timeout=timeout,
        estimate=60.0,
    )
    report = {
        "cluster": cluster,
        "nodegroup": ng,
        "region": region,
        "from": current.scaling.to_dict(),
        "to": target.to_dict(),
    }
    return Plan("ops-scale-nodegroup", [step], f"Scale nodegroup {cluster}/{ng} in {region}"), report


# ----------------------------------------------------------------------------------------------
# Rollback
# ----------------------------------------------------------------------------------------------


def rollback_plan(
    kube: Kube,
    estate: Estate,
    view: SiteView,
    deployment: str,
    to_revision: int = 0,
    *,
    timeout: float = 600.0,
) -> tuple[Plan, dict[str, Any]]:
    dep = resolve_deployment(estate, deployment, view)
    ns = estate.app.namespace
    if to_revision < 0:
        raise BadInput(
            f"--to-revision must be a positive revision (or omitted for the previous one), got {to_revision}",
            resource=dep.name,
            region=view.region,
        )
    history = kube.rollout_history(ns, dep.name)
    revisions = [r.revision for r in history]
    current = next((r for r in history if r.current), None)
    if to_revision == 0:
        older = [r for r in history if not r.current]
        if not older:
            raise BadInput(
                f"deployment {dep.name} in {view.region} has no previous revision (history: {revisions})",
                resource=dep.name,
                region=view.region,
                hint="nothing to roll back to",
            )
        target = older[-1]
    else:
        found = next((r for r in history if r.revision == to_revision), None)
        if found is None:
            raise BadInput(
                f"deployment {dep.name} in {view.region} has no revision {to_revision} (history: {revisions})",
                resource=dep.name,
                region=view.region,
                hint="pick one of the listed revisions",
            )
        target = found
    target_images, target_restart = target.images, target.restarted_at

    def check(ctx: StepContext) -> bool:
        for r in kube_of(ctx, view).rollout_history(ns, dep.name):
            if r.current:
                return r.images == target_images and r.restarted_at == target_restart
        return False

    def action(ctx: StepContext) -> None:
        k = kube_of(ctx, view)
        # Re-resolve by content: revision numbers change when a rollback re-uses a ReplicaSet.
        for r in k.rollout_history(ns, dep.name):
            if r.images == target_images and r.restarted_at == target_restart and not r.current:
                k.rollout_undo(ns, dep.name, r.revision)
                return

    steps = [
        Step(
            id=f"rollback-{dep.name}",
            title=f"Roll back {dep.name} to revision {target.revision} ({view.region})",
            region=view.region,
            service="k8s",
            changes=f"pod template of revision {target.revision} ({', '.join(target.images)}) replaces "
            f"revision {current.revision if current else '?'}",
            operations=(_k8s_op("PatchDeployment", view.region, name=dep.name, toRevision=target.revision),),
            check=check,
            action=action,
            estimate=0.5,
        ),
        _wait_step(view, ns, dep.name, depends_on=(f"rollback-{dep.name}",), timeout=timeout),
    ]
    report = {
        "deployment": dep.name,
        "region": view.region,
        "from_revision": current.revision if current else None,
        "to_revision": target.revision,
        "images": list(target.images),
        "history": [r.to_dict() for r in history],
    }
    return Plan(
        "ops-rollback", steps, f"kubectl rollout undo {dep.name} (to revision {target.revision})"
    ), report


# ----------------------------------------------------------------------------------------------
# Feature flags (ConfigMap + rolling restart)
# ----------------------------------------------------------------------------------------------


def check_flag(estate: Estate, name: str, *, must_exist: bool, current: dict[str, str] | None = None) -> None:
    if not _FLAG_KEY.match(name):
        raise BadInput(
            f"feature flag {name!r} is not a valid ConfigMap key (letters, digits, '-', '_', '.')",
            resource=estate.app.config_map,
        )
    known = set(estate.app.feature_flags) | set(current or {})
    if must_exist and name not in known:
        raise BadInput(
            f"unknown feature flag {name!r} in ConfigMap {estate.app.config_map}",
            resource=estate.app.config_map,
            hint=f"known flags: {', '.join(sorted(known)) or 'none'}",
        )


def flag_plan(
    estate: Estate,
    sites: list[SiteView],
    values: dict[str, str],
    *,
    restart: bool = True,
    wait: bool = True,
    timeout: float = 600.0,
) -> Plan:
    """Patch the app ConfigMap in each site, then rolling-restart the deployments that run."""
    ns, cm = estate.app.namespace, estate.app.config_map
    steps: list[Step] = []
    for view in sites:
        site = view.site.name

        def check(ctx: StepContext, view: SiteView = view) -> bool:
            data = kube_of(ctx, view).get_configmap(ns, cm)
            return all(data.get(k) == v for k, v in values.items())

        def action(ctx: StepContext, view: SiteView = view) -> None:
            patch: dict[str, str | None] = dict(values)
            kube_of(ctx, view).patch_configmap(ns, cm, patch)
            ctx.set(f"flags-changed-{view.site.name}", True)

        patch_id = f"patch-config-{site}"
        steps.append(
            Step(
                id=patch_id,
                title=f"Set {', '.join(f'{k}={v}' for k, v in values.items())} in ConfigMap {cm} ({view.region})",
                region=view.region,
                service="k8s",
                changes=f"configmap {ns}/{cm}: {values}",
                operations=(_k8s_op("PatchConfigMap", view.region, name=cm, keys=sorted(values)),),
                check=check,
                action=action,
                estimate=0.5,
            )
        )
        if not restart:
            continue
        for dep in estate.app.deployments:

            def r_check(ctx: StepContext, view: SiteView = view, dep: Deployment = dep) -> bool:
                # Nothing to restart when the ConfigMap was already right, or the deployment is at 0.
                if ctx.dry_run:
                    return False
                if not ctx.get(f"flags-changed-{view.site.name}"):
                    return True
                info = kube_of(ctx, view).get_deployment(ns, dep.name)
                key = f"restarted-{view.site.name}-{dep.name}"
                return info.replicas == 0 or (
                    ctx.get(key) is not None
                    and info.template_annotations.get("kubectl.kubernetes.io/restartedAt") == ctx.get(key)
                )

            def r_action(ctx: StepContext, view: SiteView = view, dep: Deployment = dep) -> None:
                at = kube_of(ctx, view).rollout_restart(ns, dep.name)
                ctx.set(f"restarted-{view.site.name}-{dep.name}", at)

            rid = f"restart-{dep.name}-{site}"
            steps.append(
                Step(
                    id=rid,
                    title=f"Rolling restart of {dep.name} ({view.region}) to pick up the flags",
                    region=view.region,
                    service="k8s",
                    changes=f"deployment {ns}/{dep.name}: new ReplicaSet (revision +1)",
                    depends_on=(patch_id,),
                    operations=(
                        _k8s_op("PatchDeployment", view.region, name=dep.name, annotation="restartedAt"),
                    ),
                    check=r_check,
                    action=r_action,
                    estimate=0.5,
                )
            )
            if wait:
                steps.append(_wait_step(view, ns, dep.name, depends_on=(rid,), timeout=timeout))
    desc = ", ".join(f"{k}={v}" for k, v in values.items())
    return Plan("ops-flag", steps, f"Feature flags {desc} in {', '.join(v.region for v in sites)}")


# ----------------------------------------------------------------------------------------------
# Stop / resume writes
# ----------------------------------------------------------------------------------------------


def stop_writes_plan(estate: Estate, view: SiteView, *, timeout: float = 600.0) -> Plan:
    """Scale every writer to 0, recording its replica count in a deployment annotation first."""
    ns = estate.app.namespace
    steps: list[Step] = []
    for dep in estate.app.writers:

        def check(ctx: StepContext, dep: Deployment = dep) -> bool:
            info = kube_of(ctx, view).get_deployment(ns, dep.name)
            return info.replicas == 0 and STOPPED_ANNOTATION in info.annotations

        def action(ctx: StepContext, dep: Deployment = dep) -> None:
            k = kube_of(ctx, view)
            info = k.get_deployment(ns, dep.name)
            if STOPPED_ANNOTATION not in info.annotations:  # keep the first recorded count on re-runs
                k.annotate_deployment(ns, dep.name, {STOPPED_ANNOTATION: str(info.replicas)})
                ctx.set(f"replicas-before-{dep.name}", info.replicas)
            k.scale_deployment(ns, dep.name, 0)

        def wait(ctx: StepContext, dep: Deployment = dep) -> bool:
            info = kube_of(ctx, view).rollout_status(ns, dep.name)
            return info.total == 0

        steps.append(
            Step(
                id=f"stop-{dep.name}",
                title=f"Stop writes: scale {dep.name} to 0 ({view.region}), recording its replica count",
                region=view.region,
                service="k8s",
                changes=f"deployment {ns}/{dep.name}: replicas -> 0; annotation {STOPPED_ANNOTATION}",
                operations=(
                    _k8s_op("PatchDeployment", view.region, name=dep.name, annotation=STOPPED_ANNOTATION),
                    _k8s_op("PatchDeploymentScale", view.region, name=dep.name, replicas=0),
                ),
                check=check,
                action=action,
                wait=wait,
                timeout=timeout,
                estimate=5.0,
            )
        )
    return Plan("ops-stop-writes", steps, f"Stop database writes in {view.cluster.name} ({view.region})")


def resume_writes_plan(
    kube: Kube, estate: Estate, view: SiteView, *, wait: bool = True, timeout: float = 600.0
) -> tuple[Plan, dict[str, int | None]]:
    """Scale writers back to exactly the recorded counts, then drop the annotation."""
    ns = estate.app.namespace
    recorded: dict[str, int | None] = {}
    steps: list[Step] = []
    for dep in estate.app.writers:
        raw = kube.get_deployment(ns, dep.name).annotations.get(STOPPED_ANNOTATION)
        if raw is None:
            recorded[dep.name] = None
            continue
        if not raw.isdigit():
            raise BadInput(
                f"deployment {dep.name} in {view.region}: annotation {STOPPED_ANNOTATION}={raw!r} is not a count",
                resource=dep.name,
                region=view.region,
                hint=f"fix or remove the annotation, then scale with `dr ops scale {dep.name} --replicas N`",
            )
        count = int(raw)
        recorded[dep.name] = count

        def check(ctx: StepContext, dep: Deployment = dep, count: int = count) -> bool:
            info = kube_of(ctx, view).get_deployment(ns, dep.name)
            return info.replicas == count and STOPPED_ANNOTATION not in info.annotations

        def action(ctx: StepContext, dep: Deployment = dep, count: int = count) -> None:
            k = kube_of(ctx, view)
            k.scale_deployment(ns, dep.name, count)
            k.annotate_deployment(ns, dep.name, {STOPPED_ANNOTATION: None})

        sid = f"resume-{dep.name}"
        steps.append(
            Step(
                id=sid,
                title=f"Resume writes: scale {dep.name} back to {count} ({view.region})",
                region=view.region,
                service="k8s",
                changes=f"deployment {ns}/{dep.name}: replicas 0 -> {count}; annotation removed",
                operations=(
                    _k8s_op("PatchDeploymentScale", view.region, name=dep.name, replicas=count),
                    _k8s_op("PatchDeployment", view.region, name=dep.name, annotation=STOPPED_ANNOTATION),
                ),
                check=check,
                action=action,
                estimate=0.5,
            )
        )
        if wait and count > 0:
            steps.append(_wait_step(view, ns, dep.name, depends_on=(sid,), timeout=timeout))
    return Plan(
        "ops-resume-writes", steps, f"Resume database writes in {view.cluster.name} ({view.region})"
    ), recorded


# ----------------------------------------------------------------------------------------------
# HPA bounds
# ----------------------------------------------------------------------------------------------


def hpa_plan(
    kube: Kube,
    estate: Estate,
    view: SiteView,
    deployment: str,
    *,
    min_replicas: int | None,
    max_replicas: int | None,
) -> tuple[Plan, dict[str, Any]]:
    """Set an HPA's min/max (the runbook's `kubectl patch hpa … minReplicas`), validated first."""
    dep = resolve_deployment(estate, deployment, view)
    ns = estate.app.namespace
    hpa = kube.hpa_for(ns, dep.name)
    if hpa is None:
        raise BadInput(
            f"deployment {dep.name} in {view.region} has no HorizontalPodAutoscaler",
            resource=dep.name,
            region=view.region,
            hint=f"scale it directly with `dr ops scale {dep.name} --replicas N`",
        )
    lo = hpa.min_replicas if min_replicas is None else min_replicas
    hi = hpa.max_replicas if max_replicas is None else max_replicas
    if lo < 1 or hi < 1 or lo > hi or hi > MAX_REPLICAS:
        raise BadInput(
            f"HPA {hpa.name} in {view.region}: need 1 <= min <= max <= {MAX_REPLICAS}, got min {lo}, max {hi}",
            resource=hpa.name,
            region=view.region,
            hint="adjust --min/--max",
        )
    name = hpa.name

    def check(ctx: StepContext) -> bool:
        h = kube_of(ctx, view).hpa_for(ns, dep.name)
        return h is not None and (h.min_replicas, h.max_replicas) == (lo, hi)

    def action(ctx: StepContext) -> None:
        kube_of(ctx, view).patch_hpa(ns, name, min_replicas=lo, max_replicas=hi)

    step = Step(
        id="patch-hpa",
        title=f"Set HPA {name} bounds to [{lo}, {hi}] ({view.region})",
        region=view.region,
        service="k8s",
        changes=f"HPA {name}: [{hpa.min_replicas}, {hpa.max_replicas}] -> [{lo}, {hi}]",
        operations=(
            _k8s_op("PatchHorizontalPodAutoscaler", view.region, name=name, minReplicas=lo, maxReplicas=hi),
        ),
        check=check,
        action=action,
        estimate=0.5,
    )
    report = {"hpa": hpa.to_dict(), "region": view.region, "new_min": lo, "new_max": hi}
    return Plan("ops-hpa", [step], f"HPA {name} bounds in {view.region}"), report
