"""EKS adapter: clusters, managed nodegroups (scaling with bounds checks) and IAM bearer tokens.

``cluster_token`` builds the token ``kubectl``'s ``aws eks get-token`` / aws-iam-authenticator
produce: a presigned STS ``GetCallerIdentity`` URL carrying the ``x-k8s-aws-id`` header, base64url
encoded with the ``k8s-aws-v1.`` prefix. The STS client comes from :class:`ClientProvider`.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dr.aws.calls import aws_errors, backoff
from dr.aws.session import ClientProvider
from dr.errors import BadInput, OperationFailed, TimeoutExpired

# Managed nodegroup limits (EKS service quotas: nodes per managed node group).
MAX_NODES_PER_NODEGROUP = 450
TOKEN_PREFIX = "k8s-aws-v1."
TOKEN_TTL_SECONDS = 60
# How long an ACTIVE nodegroup with the new scaling is watched for an UPDATING status before trusted.
SETTLE_SECONDS = 2.0


@dataclass(frozen=True)
class ClusterInfo:
    name: str
    region: str
    status: str
    endpoint: str
    version: str | None
    certificate_authority: str | None  # base64 PEM, as EKS returns it

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "region": self.region,
            "status": self.status,
            "endpoint": self.endpoint,
            "version": self.version,
        }


@dataclass(frozen=True)
class Scaling:
    min_size: int
    max_size: int
    desired_size: int

    def to_dict(self) -> dict[str, int]:
        return {"min": self.min_size, "max": self.max_size, "desired": self.desired_size}


@dataclass(frozen=True)
class NodegroupInfo:
    cluster: str
    name: str
    region: str
    status: str
    scaling: Scaling
    instance_types: tuple[str, ...]
    health_issues: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "nodegroup": self.name,
            "region": self.region,
            "status": self.status,
            "scaling": self.scaling.to_dict(),
            "instance_types": list(self.instance_types),
            "health_issues": list(self.health_issues),
        }


def describe_cluster(clients: ClientProvider, region: str, name: str) -> ClusterInfo:
    with aws_errors(resource=f"EKS cluster {name}", region=region, action="describe"):
        raw = clients.client("eks", region).describe_cluster(name=name)["cluster"]
    return ClusterInfo(
        name=name,
        region=region,
        status=raw.get("status", "UNKNOWN"),
        endpoint=raw.get("endpoint", ""),
        version=raw.get("version"),
        certificate_authority=(raw.get("certificateAuthority") or {}).get("data"),
    )


def describe_nodegroup(clients: ClientProvider, region: str, cluster: str, nodegroup: str) -> NodegroupInfo:
    with aws_errors(resource=f"EKS nodegroup {cluster}/{nodegroup}", region=region, action="describe"):
        raw = clients.client("eks", region).describe_nodegroup(clusterName=cluster, nodegroupName=nodegroup)[
            "nodegroup"
        ]
    sc = raw.get("scalingConfig") or {}
    issues = tuple(
        f"{i.get('code')}: {i.get('message')}" for i in (raw.get("health") or {}).get("issues", []) or []
    )
    return NodegroupInfo(
        cluster=cluster,
        name=nodegroup,
        region=region,
        status=raw.get("status", "UNKNOWN"),
        scaling=Scaling(int(sc.get("minSize", 0)), int(sc.get("maxSize", 0)), int(sc.get("desiredSize", 0))),
        instance_types=tuple(raw.get("instanceTypes") or ()),
        health_issues=issues,
    )


def check_scaling(scaling: Scaling, *, cluster: str, nodegroup: str, region: str) -> None:
    """Validate what EKS validates (and what it would only reject after the fact): exit 2 on failure."""
    where = f"nodegroup {cluster}/{nodegroup} in {region}"
    s = scaling
    if min(s.min_size, s.max_size, s.desired_size) < 0:
        raise BadInput(
            f"{where}: sizes cannot be negative (min {s.min_size}, max {s.max_size}, desired {s.desired_size})",
            resource=f"{cluster}/{nodegroup}",
            region=region,
            hint="pass --min, --max and --desired as 0 or more",
        )
    if s.max_size < 1:
        raise BadInput(
            f"{where}: maxSize must be at least 1 (got {s.max_size})",
            resource=f"{cluster}/{nodegroup}",
            region=region,
            hint="pass --max 1 or more",
        )
    if s.max_size > MAX_NODES_PER_NODEGROUP:
        raise BadInput(
            f"{where}: maxSize {s.max_size} exceeds the EKS limit of {MAX_NODES_PER_NODEGROUP} nodes per "
            "managed nodegroup",
            resource=f"{cluster}/{nodegroup}",
            region=region,
            hint=f"use --max {MAX_NODES_PER_NODEGROUP} or less, or add a nodegroup",
        )
    if not s.min_size <= s.desired_size <= s.max_size:
        raise BadInput(
            f"{where}: need min <= desired <= max, got min {s.min_size}, desired {s.desired_size}, "
            f"max {s.max_size}",
            resource=f"{cluster}/{nodegroup}",
            region=region,
            hint="adjust --min/--desired/--max so that min <= desired <= max",
        )


def update_nodegroup_scaling(
    clients: ClientProvider, region: str, cluster: str, nodegroup: str, scaling: Scaling
) -> str | None:
    """Start an UpdateNodegroupConfig; returns the update id (None when already at ``scaling``)."""
    check_scaling(scaling, cluster=cluster, nodegroup=nodegroup, region=region)
    current = describe_nodegroup(clients, region, cluster, nodegroup)
    if current.scaling == scaling:
        return None
    if current.status not in ("ACTIVE", "DEGRADED"):
        raise OperationFailed(
            f"nodegroup {cluster}/{nodegroup} in {region} is {current.status}; EKS accepts a scaling change "
            "only when it is ACTIVE",
            resource=f"{cluster}/{nodegroup}",
            region=region,
            hint="wait for the running update to finish, then retry",
        )
    with aws_errors(resource=f"EKS nodegroup {cluster}/{nodegroup}", region=region, action="update"):
        raw = clients.client("eks", region).update_nodegroup_config(
            clusterName=cluster,
            nodegroupName=nodegroup,
            scalingConfig={
                "minSize": scaling.min_size,
                "maxSize": scaling.max_size,
                "desiredSize": scaling.desired_size,
            },
        )
    update_id = (raw.get("update") or {}).get("id")
    return str(update_id) if update_id else ""


def wait_nodegroup_updated(
    clients: ClientProvider,
    region: str,
    cluster: str,
    nodegroup: str,
    scaling: Scaling,
    *,
    timeout: float = 900.0,
    settle: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Any] = time.sleep,
) -> NodegroupInfo:
    """Wait until the nodegroup is ACTIVE with ``scaling`` — after having seen it UPDATING.

    A status of ACTIVE right after the call is not trusted (the update may not have started): we
    wait to observe UPDATING, or for ``settle`` seconds of ACTIVE with the new scaling config
    (environments such as moto apply the change at once and never report UPDATING).
    """
    settle = SETTLE_SECONDS if settle is None else settle
    start = clock()
    seen_updating = False
    for pause in backoff():
        info = describe_nodegroup(clients, region, cluster, nodegroup)
        if info.status == "UPDATING":
            seen_updating = True
        elif info.status in ("CREATE_FAILED", "DELETE_FAILED", "DEGRADED") and seen_updating:
            raise OperationFailed(
                f"nodegroup {cluster}/{nodegroup} in {region} became {info.status}: "
                + ("; ".join(info.health_issues) or "no health issue reported"),
                resource=f"{cluster}/{nodegroup}",
                region=region,
            )
        elif (
            info.status == "ACTIVE"
            and info.scaling == scaling
            and (seen_updating or clock() - start >= settle)
        ):
            return info
        if clock() - start >= timeout:
            raise TimeoutExpired(
                f"timed out after {timeout:g}s waiting for nodegroup {cluster}/{nodegroup} in {region} to be "
                f"ACTIVE with {scaling.to_dict()} (now {info.status}, {info.scaling.to_dict()})",
                resource=f"{cluster}/{nodegroup}",
                region=region,
            )
        sleep(min(pause, settle if not seen_updating else pause))
    raise AssertionError("unreachable")  # pragma: no cover


def cluster_token(clients: ClientProvider, region: str, cluster: str) -> str:
    """A Kubernetes bearer token for ``cluster`` (aws-iam-authenticator ``k8s-aws-v1.`` scheme)."""
    sts = clients.client("sts", region)
    events = sts.meta.events

    def add_cluster_header(request: Any, **_: Any) -> None:
        request.headers["x-k8s-aws-id"] = cluster

    unique = f"dr-k8s-aws-id-{cluster}"
    events.register_first("before-sign.sts.GetCallerIdentity", add_cluster_header, unique_id=unique)
    try:
        url = sts.generate_presigned_url(
            "get_caller_identity", Params={}, ExpiresIn=TOKEN_TTL_SECONDS, HttpMethod="GET"
        )
    finally:
        events.unregister("before-sign.sts.GetCallerIdentity", unique_id=unique)
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def ca_pem(info: ClusterInfo) -> bytes:
    """The cluster CA as PEM bytes (EKS returns it base64-encoded)."""
    if not info.certificate_authority:
        raise OperationFailed(
            f"EKS cluster {info.name} in {info.region} reports no certificate authority",
            resource=info.name,
            region=info.region,
        )
    return base64.b64decode(info.certificate_authority)
