"""Incident operations of the runbooks as plans: scale, rollback, feature flags, stop/resume writes.

Every function validates its input first (exit 2 naming the resource, the region and the fix —
nothing changed) and returns a :class:`dr.runbook.plan.Plan` whose steps read state before acting
(idempotent) and wait for the effect (rollouts: every replica updated and Ready). The CLI runs the
plans with :func:`dr.runbook.runner.run_plan` (journal, ``--dry-run`` plan print, ``--resume``).

The steps are kinds of the catalogue (:mod:`dr.steps.ops_workload_steps`, stop-writes
:class:`dr.steps.workload_steps.StopWrites`): they find Kubernetes and AWS through
:class:`dr.steps.base.StepServices` (a :class:`dr.kube.KubeFactory`, read-only in dry runs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dr.errors import BadInput
from dr.runbook.plan import Plan, Step
from dr.steps import (
    DENY_ALL_POLICY,
    K8S_SECRET_PASSWORD,
    LABEL_POD,
    NODEGROUP_RESIZE,
    PATCH_FLAGS,
    PATCH_HPA,
    RDS_MASTER_PASSWORD,
    RESTART_FOR_CONFIG,
    RESUME_WRITES,
    ROLLBACK_DEPLOYMENT,
    ROLLOUT_WAIT,
    SCALE_DEPLOYMENT,
    SECRET_REPLICA_WAIT,
    STOP_WRITES,
    STORE_PASSWORD,
    WAF_IP_SET,
)
from dr.steps.workload_steps import STOPPED_ANNOTATION

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.kube import Kube
    from dr.topology import Deployment, Estate, SiteView

MAX_REPLICAS = 1000
CIRCUIT_BREAKER_FLAG = "circuit-breaker-enabled"
MAINTENANCE_FLAG = "maintenance-mode"
_FLAG_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
# (IAM action, where) nodegroup_plan reads before its step: the nodegroup's current sizes.
PREFLIGHT_READS: tuple[tuple[str, str], ...] = (("eks:DescribeNodegroup", "both"),)


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


def _wait_step(
    view: SiteView,
    namespace: str,
    name: str,
    *,
    depends_on: tuple[str, ...],
    timeout: float,
) -> Step:
    step = ROLLOUT_WAIT.build(view, namespace, name, timeout=timeout)
    step.depends_on = depends_on
    return step


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
        steps.append(
            PATCH_HPA.build(
                view,
                ns,
                name,
                pre.hpa,
                old=(pre.hpa_min, pre.hpa_max),
                new=(pre.hpa_new_min, pre.hpa_new_max),
                sid="adjust-hpa",
            )
        )
        deps = ("adjust-hpa",)
    scale = SCALE_DEPLOYMENT.build(view, ns, name, pre.replicas, current=pre.current)
    scale.depends_on = deps
    steps.append(scale)
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

    step = NODEGROUP_RESIZE.build(view, current.scaling, target, timeout=timeout)
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
    steps = [
        ROLLBACK_DEPLOYMENT.build(view, ns, dep.name, target, current=current),
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
        patch = PATCH_FLAGS.build(view, ns, cm, values)
        steps.append(patch)
        if not restart:
            continue
        for dep in estate.app.deployments:
            restart_step = RESTART_FOR_CONFIG.build(view, ns, dep.name, reason="flags")
            restart_step.depends_on = (patch.id,)
            rid = restart_step.id
            steps.append(restart_step)
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
    steps = [STOP_WRITES.build(view, ns, dep.name, timeout=timeout) for dep in estate.app.writers]
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

        step = RESUME_WRITES.build(view, ns, dep.name, count)
        sid = step.id
        steps.append(step)
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
    step = PATCH_HPA.build(
        view, ns, dep.name, hpa.name, old=(hpa.min_replicas, hpa.max_replicas), new=(lo, hi), sid="patch-hpa"
    )
    report = {"hpa": hpa.to_dict(), "region": view.region, "new_min": lo, "new_max": hi}
    return Plan("ops-hpa", [step], f"HPA {hpa.name} bounds in {view.region}"), report


# ----------------------------------------------------------------------------------------------
# Every step `dr ops` runs, from the topology alone
# ----------------------------------------------------------------------------------------------


def static_plans(estate: Estate) -> list[Plan]:
    """One plan per step of every kind ``dr ops`` runs, in each site, built from the topology with
    placeholder values (sizes, revision, CIDR, pod, password; both kinds of master password):
    ``dr iam-policy --procedure ops`` takes their operations and their kinds' reads."""
    import ipaddress

    from dr.aws.eks import Scaling
    from dr.aws.secretsmanager import SecretValue
    from dr.kube import Revision
    from dr.steps.ops_security_steps import Rotation

    app, ns = estate.app, estate.app.namespace
    steps: list[Step] = []
    for view in (estate.primary, estate.secondary):
        dep = app.deployments[0].name
        revision = Revision(1, "-", (), None, 0, current=False)
        sizes = Scaling(0, 1, 0)
        net = ipaddress.ip_network("192.0.2.0/24")
        steps += [
            ROLLOUT_WAIT.build(view, ns, dep, timeout=1),
            SCALE_DEPLOYMENT.build(view, ns, dep, 1, current=0),
            PATCH_HPA.build(view, ns, dep, dep, old=(1, 1), new=(1, 2), sid="patch-hpa"),
            ROLLBACK_DEPLOYMENT.build(view, ns, dep, revision, current=None),
            PATCH_FLAGS.build(view, ns, app.config_map, {MAINTENANCE_FLAG: "true"}),
            RESTART_FOR_CONFIG.build(view, ns, dep, reason="flags"),
            RESTART_FOR_CONFIG.build(view, ns, dep, reason="secret", timeout=1),
            STOP_WRITES.build(view, ns, dep, timeout=1),
            RESUME_WRITES.build(view, ns, dep, 1),
            NODEGROUP_RESIZE.build(view, sizes, sizes, timeout=1),
            WAF_IP_SET.build(view, [net], block=True),
            WAF_IP_SET.build(view, [net], block=False),
            DENY_ALL_POLICY.build(view, ns, "-", ("k", "v")),
            LABEL_POD.build(view, ns, "-", ("k", "v")),
        ]
        for managed in (None, "-"):
            rot = Rotation(
                view.database.identifier,
                view.region,
                app.db_secret.secrets_manager_id,
                SecretValue("-"),
                managed,
            )
            steps += [
                RDS_MASTER_PASSWORD.build(rot, timeout=1),
                STORE_PASSWORD.build(rot, view),
                SECRET_REPLICA_WAIT.build(rot, view, source=estate.other(view).region, timeout=1),
                K8S_SECRET_PASSWORD.build(rot, view, ns, app.db_secret.name, app.db_secret.key),
            ]
    return [Plan(f"ops-{step.kind.name if step.kind else step.id}", [step]) for step in steps]
