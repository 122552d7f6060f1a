"""EKS operations: nodegroup scaling, whose nodes join later."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from dr.sandbox.fakeaws.backends import eks_backend
from dr.sandbox.fakeaws.wire import AwsError, AwsRequest, Reply

if TYPE_CHECKING:
    from dr.sandbox.fakeaws.layer import Handler, Layer


def update_nodegroup_config(layer: Layer, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
    parts = req.path.strip("/").split("/")
    cluster, ngname = parts[1], parts[3]
    backend = eks_backend(req.region)
    ng = backend.clusters.get(cluster).nodegroups.get(ngname) if cluster in backend.clusters else None
    if ng is None:
        return None
    if ng.status != "ACTIVE":
        raise AwsError("ResourceInUseException", f"Nodegroup {ngname} is in {ng.status} state.", 409)
    body = json.loads(req.body or b"{}")
    scaling = {**ng.scaling_config, **(body.get("scalingConfig") or {})}
    if not scaling["minSize"] <= scaling["desiredSize"] <= scaling["maxSize"]:
        raise AwsError(
            "InvalidParameterException",
            f"Desired size {scaling['desiredSize']} must be within [{scaling['minSize']}, {scaling['maxSize']}].",
        )
    reply = layer.call_inner(environ)
    if reply[0] != 200:
        return reply
    ng.status = "UPDATING"
    desired = int(scaling["desiredSize"])
    region = req.region

    def nodes_ready() -> None:
        layer.set_nodes(region, cluster, ngname, desired)
        layer.emit("eks.nodes_ready", region=region, cluster=cluster, nodegroup=ngname, nodes=desired)

    def active() -> None:
        ng.status = "ACTIVE"
        if desired < layer.nodes(region, cluster, ngname):
            nodes_ready()  # scale-in: nodes drain as the update completes
        else:
            layer.transitions.begin(
                "eks.node_ready",
                region,
                f"{cluster}/{ngname}",
                "joining",
                layer.profile.duration("eks.node_ready"),
                nodes_ready,
            )

    layer.transitions.begin(
        "eks.nodegroup_scale",
        region,
        f"{cluster}/{ngname}",
        "UPDATING",
        layer.profile.duration("eks.nodegroup_scale"),
        active,
    )
    return reply


HANDLERS: dict[tuple[str, str], Handler] = {
    ("eks", "UpdateNodegroupConfig"): update_nodegroup_config,
}
