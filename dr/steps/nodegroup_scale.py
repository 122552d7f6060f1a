"""Scale an EKS managed nodegroup and wait until it is ACTIVE with the new sizes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from dr.aws import eks
from dr.errors import OperationFailed
from dr.runbook.plan import Operation, Step, StepContext
from dr.steps.base import Settled, StepKind, clients_of

if TYPE_CHECKING:
    from dr.runbook.asl import AslEmitter
    from dr.topology import Nodegroup, SiteView


class NodegroupScale(StepKind):
    """``eks:UpdateNodegroupConfig`` (only when the sizes differ), then poll ``DescribeNodegroup``
    until ACTIVE with them (seen UPDATING first, or ACTIVE twice)."""

    name: ClassVar[str] = "nodegroup-scale"

    def build(
        self, target: SiteView, sizes: Nodegroup, *, sid: str = "scale-nodegroup", timeout: float = 1200.0
    ) -> Step:
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
            kind=self,
        )

    def lower(
        self, emitter: AslEmitter, states: dict[str, Any], step: Step, next_name: str | None, fail: str
    ) -> str:
        em, sid = emitter, step.id
        blocks = []
        for op in (op for op in step.operations if op.mutating):

            def update(nxt: str | None, op: Operation = op) -> str:
                params = dict(op.params)
                sc = params.get("scalingConfig") or {}
                params["scalingConfig"] = {
                    "minSize": sc.get("min", sc.get("minSize")),
                    "maxSize": sc.get("max", sc.get("maxSize")),
                    "desiredSize": sc.get("desired", sc.get("desiredSize")),
                }
                name = em.name(f"{sid}: {op.service} {op.action}")
                em.sdk_task(states, name, op, params, sid=sid, fail=fail)
                k = "$.seen." + em.safe(f"{sid}_nodegroup")
                waiter = em.poll(
                    states,
                    sid,
                    "nodegroup",
                    (
                        em.sdk_resource("eks", "DescribeNodegroup"),
                        {
                            "ClusterName": op.params["clusterName"],
                            "NodegroupName": op.params["nodegroupName"],
                        },
                        "eks",
                    ),
                    {"Variable": f"{k}.status", "StringEquals": "ACTIVE"},
                    {
                        "Or": [
                            {"Variable": f"{k}.status", "StringEquals": s}
                            for s in ("DEGRADED", "CREATE_FAILED", "DELETE_FAILED")
                        ]
                    },
                    nxt,
                    fail,
                    selector={"status.$": "$.Nodegroup.Status"},
                )
                em.chain(states, [name], waiter)
                return str(name)

            blocks.append(update)
        return str(em.sequence(states, step, blocks, next_name))
