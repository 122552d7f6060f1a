"""The operator's incident steps on a cluster's workloads (``dr ops``): scale a deployment, set
HPA bounds, roll back, patch feature flags, restart for a config change, wait for a rollout,
resume writes; and resize a nodegroup on the operator's command.

These steps run only under ``dr ops`` (and the drills' procedure actions): never exported to
Step Functions (:meth:`OpsKind.lower` raises). Stop-writes, which the planned failover also runs, is
:class:`dr.steps.workload_steps.StopWrites`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from dr.aws import eks
from dr.runbook.plan import Operation, Step, StepContext
from dr.steps.base import IamRead, StepKind, clients_of, kube_of
from dr.steps.workload_steps import STOPPED_ANNOTATION

if TYPE_CHECKING:
    from dr.kube import Revision
    from dr.topology import SiteView

# Connecting to a cluster with no kubeconfig context reads its endpoint and CA (EKS).
CONNECT = "connecting to a cluster that has no kubeconfig context (EKS endpoint + token)"
_RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"

# Output keys (journaled): a flags patch records ``flags-changed-<site>``; a restart records the
# ``restartedAt`` stamp it set under ``restarted-<site>-<deployment>``.
OUT_FLAGS_CHANGED = "flags-changed-"
OUT_RESTARTED_AT = "restarted-"


def k8s_op(action: str, region: str, **params: Any) -> Operation:
    return Operation("k8s", action, region, params)


class OpsKind(StepKind):
    """A kind of the operator's commands: Kubernetes steps connect to the cluster (EKS read when
    no kubeconfig context), and nothing is lowered to Step Functions."""

    exportable: ClassVar[bool] = False
    reads: ClassVar[tuple[IamRead, ...]] = (IamRead("eks:DescribeCluster"),)
    conditional: ClassVar[dict[str, str]] = {"eks:DescribeCluster": CONNECT}


class RolloutWait(OpsKind):
    """Wait until a deployment is rolled out: every replica updated and Ready."""

    name: ClassVar[str] = "rollout-wait"

    def build(
        self, view: SiteView, namespace: str, name: str, *, timeout: float, sid: str | None = None
    ) -> Step:
        def wait(ctx: StepContext) -> bool:
            return kube_of(ctx, view).rollout_status(namespace, name).rolled_out

        return Step(
            id=sid or f"wait-{name}-{view.site.name}",
            title=f"Wait for rollout of {name} ({view.region}): all replicas updated and Ready",
            region=view.region,
            service="k8s",
            changes="nothing (waits)",
            operations=(Operation("k8s", "GetDeployment", view.region, {"name": name}, mutating=False),),
            wait=wait,
            timeout=timeout,
            estimate=60.0,
            kind=self,
        )


class ScaleDeployment(OpsKind):
    """Set one deployment's replica count (``kubectl scale``)."""

    name: ClassVar[str] = "scale-deployment"

    def build(self, view: SiteView, namespace: str, name: str, replicas: int, *, current: int) -> Step:
        def check(ctx: StepContext) -> bool:
            return kube_of(ctx, view).get_deployment(namespace, name).replicas == replicas

        def action(ctx: StepContext) -> None:
            kube_of(ctx, view).scale_deployment(namespace, name, replicas)

        return Step(
            id=f"scale-{name}",
            title=f"Scale {name} to {replicas} replicas ({view.region})",
            region=view.region,
            service="k8s",
            changes=f"deployment {namespace}/{name}: replicas {current} -> {replicas}",
            operations=(k8s_op("PatchDeploymentScale", view.region, name=name, replicas=replicas),),
            check=check,
            action=action,
            estimate=0.5,
            kind=self,
        )


class PatchHpa(OpsKind):
    """Set the bounds of the HPA of a deployment (``kubectl patch hpa``)."""

    name: ClassVar[str] = "patch-hpa"

    def build(
        self,
        view: SiteView,
        namespace: str,
        deployment: str,
        hpa: str,
        *,
        old: tuple[int | None, int | None],
        new: tuple[int | None, int | None],
        sid: str,
    ) -> Step:
        lo, hi = new

        def check(ctx: StepContext) -> bool:
            h = kube_of(ctx, view).hpa_for(namespace, deployment)
            return h is not None and (h.min_replicas, h.max_replicas) == (lo, hi)

        def action(ctx: StepContext) -> None:
            kube_of(ctx, view).patch_hpa(namespace, hpa, min_replicas=lo, max_replicas=hi)

        return Step(
            id=sid,
            title=f"Set HPA {hpa} bounds to [{lo}, {hi}] ({view.region})",
            region=view.region,
            service="k8s",
            changes=f"HPA {hpa}: [{old[0]}, {old[1]}] -> [{lo}, {hi}]",
            operations=(
                k8s_op("PatchHorizontalPodAutoscaler", view.region, name=hpa, minReplicas=lo, maxReplicas=hi),
            ),
            check=check,
            action=action,
            estimate=0.5,
            kind=self,
        )


class RollbackDeployment(OpsKind):
    """``kubectl rollout undo`` to a revision, found again by content when the step runs."""

    name: ClassVar[str] = "rollback-deployment"

    def build(
        self,
        view: SiteView,
        namespace: str,
        name: str,
        target: Revision,
        *,
        current: Revision | None,
    ) -> Step:
        target_images, target_restart = target.images, target.restarted_at

        def check(ctx: StepContext) -> bool:
            for r in kube_of(ctx, view).rollout_history(namespace, name):
                if r.current:
                    return r.images == target_images and r.restarted_at == target_restart
            return False

        def action(ctx: StepContext) -> None:
            k = kube_of(ctx, view)
            # Re-resolve by content: revision numbers change when a rollback re-uses a ReplicaSet.
            for r in k.rollout_history(namespace, name):
                if r.images == target_images and r.restarted_at == target_restart and not r.current:
                    k.rollout_undo(namespace, name, r.revision)
                    return

        return Step(
            id=f"rollback-{name}",
            title=f"Roll back {name} to revision {target.revision} ({view.region})",
            region=view.region,
            service="k8s",
            changes=f"pod template of revision {target.revision} ({', '.join(target.images)}) replaces "
            f"revision {current.revision if current else '?'}",
            operations=(k8s_op("PatchDeployment", view.region, name=name, toRevision=target.revision),),
            check=check,
            action=action,
            estimate=0.5,
            kind=self,
        )


class PatchFlags(OpsKind):
    """Set feature flags in the app's ConfigMap; records whether it changed anything."""

    name: ClassVar[str] = "patch-flags"
    outputs: ClassVar[tuple[str, ...]] = (OUT_FLAGS_CHANGED,)

    def build(self, view: SiteView, namespace: str, config_map: str, values: dict[str, str]) -> Step:
        def check(ctx: StepContext) -> bool:
            data = kube_of(ctx, view).get_configmap(namespace, config_map)
            return all(data.get(k) == v for k, v in values.items())

        def action(ctx: StepContext) -> None:
            patch: dict[str, str | None] = dict(values)
            kube_of(ctx, view).patch_configmap(namespace, config_map, patch)
            ctx.set(f"{OUT_FLAGS_CHANGED}{view.site.name}", True)

        return Step(
            id=f"patch-config-{view.site.name}",
            title=f"Set {', '.join(f'{k}={v}' for k, v in values.items())} in ConfigMap {config_map} ({view.region})",
            region=view.region,
            service="k8s",
            changes=f"configmap {namespace}/{config_map}: {values}",
            operations=(k8s_op("PatchConfigMap", view.region, name=config_map, keys=sorted(values)),),
            check=check,
            action=action,
            estimate=0.5,
            kind=self,
        )


class RestartForConfig(OpsKind):
    """Rolling-restart a running deployment once so its pods read a changed config: the feature
    flags (only when :class:`PatchFlags` changed them; the rollout is waited for by a
    :class:`RolloutWait`) or a rotated DB secret (waits for the rollout itself). Records the
    ``restartedAt`` it set; done when the deployment is at 0 or carries that stamp."""

    name: ClassVar[str] = "restart-for-config"
    outputs: ClassVar[tuple[str, ...]] = (OUT_RESTARTED_AT,)

    def build(
        self,
        view: SiteView,
        namespace: str,
        deployment: str,
        *,
        reason: Literal["flags", "secret"],
        timeout: float = 900.0,
    ) -> Step:
        site, region = view.site.name, view.region
        key = f"{OUT_RESTARTED_AT}{site}-{deployment}"
        flags = reason == "flags"

        def check(ctx: StepContext) -> bool:
            # Nothing to restart when the ConfigMap was already right, or the deployment is at 0.
            if ctx.dry_run:
                return False
            if flags and not ctx.get(f"{OUT_FLAGS_CHANGED}{site}"):
                return True
            info = kube_of(ctx, view).get_deployment(namespace, deployment)
            return info.replicas == 0 or (
                ctx.get(key) is not None and info.template_annotations.get(_RESTARTED_AT) == ctx.get(key)
            )

        def action(ctx: StepContext) -> None:
            ctx.set(key, kube_of(ctx, view).rollout_restart(namespace, deployment))

        def wait(ctx: StepContext) -> bool:
            return kube_of(ctx, view).rollout_status(namespace, deployment).rolled_out

        if flags:
            return Step(
                id=f"restart-{deployment}-{site}",
                title=f"Rolling restart of {deployment} ({region}) to pick up the flags",
                region=region,
                service="k8s",
                changes=f"deployment {namespace}/{deployment}: new ReplicaSet (revision +1)",
                operations=(k8s_op("PatchDeployment", region, name=deployment, annotation="restartedAt"),),
                check=check,
                action=action,
                estimate=0.5,
                kind=self,
            )
        return Step(
            id=f"restart-{deployment}-{site}",
            title=f"Rolling restart of {deployment} ({view.cluster.name}) to use the new secret",
            region=region,
            service="k8s",
            changes=f"deployment {namespace}/{deployment}: new ReplicaSet",
            operations=(Operation("k8s", "PatchDeployment", region, {"name": deployment}),),
            check=check,
            action=action,
            wait=wait,
            timeout=timeout,
            estimate=60.0,
            kind=self,
        )


class ResumeWrites(OpsKind):
    """Scale a writer back to the count stop-writes recorded, then drop that record."""

    name: ClassVar[str] = "resume-writes"

    def build(self, view: SiteView, namespace: str, deployment: str, count: int) -> Step:
        def check(ctx: StepContext) -> bool:
            info = kube_of(ctx, view).get_deployment(namespace, deployment)
            return info.replicas == count and STOPPED_ANNOTATION not in info.annotations

        def action(ctx: StepContext) -> None:
            k = kube_of(ctx, view)
            k.scale_deployment(namespace, deployment, count)
            k.annotate_deployment(namespace, deployment, {STOPPED_ANNOTATION: None})

        return Step(
            id=f"resume-{deployment}",
            title=f"Resume writes: scale {deployment} back to {count} ({view.region})",
            region=view.region,
            service="k8s",
            changes=f"deployment {namespace}/{deployment}: replicas 0 -> {count}; annotation removed",
            operations=(
                k8s_op("PatchDeploymentScale", view.region, name=deployment, replicas=count),
                k8s_op("PatchDeployment", view.region, name=deployment, annotation=STOPPED_ANNOTATION),
            ),
            check=check,
            action=action,
            estimate=0.5,
            kind=self,
        )


class NodegroupResize(OpsKind):
    """``dr ops scale-nodegroup``: set a nodegroup's sizes (those not given kept from its current
    config) and block until it is ACTIVE with them. Unlike the failover's
    :class:`dr.steps.nodegroup_scale.NodegroupScale` (polled, lowered to Step Functions), its plan
    shows the sizes it changes from and its wait is :func:`dr.aws.eks.wait_nodegroup_updated`."""

    name: ClassVar[str] = "nodegroup-resize"
    # check and wait read the nodegroup; no cluster connection
    reads: ClassVar[tuple[IamRead, ...]] = (IamRead("eks:DescribeNodegroup"),)
    conditional: ClassVar[dict[str, str]] = {}

    def build(self, view: SiteView, current: eks.Scaling, target: eks.Scaling, *, timeout: float) -> Step:
        cluster, ng, region = view.cluster.name, view.cluster.nodegroup.name, view.region

        def check(ctx: StepContext) -> bool:
            info = eks.describe_nodegroup(clients_of(ctx), region, cluster, ng)
            return info.scaling == target and info.status == "ACTIVE"

        def action(ctx: StepContext) -> None:
            eks.update_nodegroup_scaling(clients_of(ctx), region, cluster, ng, target)

        def wait(ctx: StepContext) -> bool:
            eks.wait_nodegroup_updated(clients_of(ctx), region, cluster, ng, target, timeout=timeout)
            return True

        return Step(
            id="scale-nodegroup",
            title=f"Scale nodegroup {cluster}/{ng} to min {target.min_size} / desired {target.desired_size} / max {target.max_size} ({region})",
            region=region,
            service="eks",
            changes=f"scalingConfig {current.to_dict()} -> {target.to_dict()}",
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
            kind=self,
        )
