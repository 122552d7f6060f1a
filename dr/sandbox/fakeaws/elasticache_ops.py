"""ElastiCache operations: replication group changes and TestFailover, with their transitions."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from dr.sandbox.fakeaws.backends import elasticache_backend
from dr.sandbox.fakeaws.wire import AwsError, AwsRequest, Reply

if TYPE_CHECKING:
    from dr.sandbox.fakeaws.layer import Handler, Layer


def find_group(region: str, group_id: str) -> Any:
    return elasticache_backend(region).replication_groups.get(group_id)


def modify_replication_group(layer: Layer, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
    gid = req.params.get("ReplicationGroupId", "")
    group = find_group(req.region, gid)
    if group is not None and group.status != "available":
        raise AwsError("InvalidReplicationGroupState", f"Replication group {gid} is {group.status}.")
    reply = layer.call_inner(environ)
    if reply[0] == 200 and group is not None:
        group.status = "modifying"

        def complete() -> None:
            group.status = "available"

        layer.transitions.begin(
            "elasticache.modify",
            req.region,
            gid,
            "modifying",
            layer.profile.duration("elasticache.failover"),
            complete,
        )
    return reply


def test_failover(layer: Layer, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
    gid = req.params.get("ReplicationGroupId", "")
    group = find_group(req.region, gid)
    if group is None:
        raise AwsError("ReplicationGroupNotFoundFault", f"Replication group {gid} not found.", 404)
    if group.status != "available":
        raise AwsError("InvalidReplicationGroupState", f"Replication group {gid} is {group.status}.")
    group.status = "modifying"
    region = req.region

    def complete() -> None:
        group.status = "available"
        layer.emit("elasticache.failover", region=region, replication_group=gid)

    layer.transitions.begin(
        "elasticache.failover",
        region,
        gid,
        "modifying",
        layer.profile.duration("elasticache.failover"),
        complete,
    )
    status, headers, body = layer.query(
        environ,
        {"Action": "DescribeReplicationGroups", "Version": "2015-02-02", "ReplicationGroupId": gid},
    )
    text = body.decode().replace("DescribeReplicationGroupsResponse", "TestFailoverResponse")
    text = text.replace("DescribeReplicationGroupsResult", "TestFailoverResult")
    text = re.sub(r"</?ReplicationGroups>", "", text)
    text = re.sub(r"<Marker>[^<]*</Marker>|<Marker/>", "", text)
    data = text.encode()
    headers = [(k, v) for k, v in headers if k.lower() != "content-length"] + [
        ("Content-Length", str(len(data)))
    ]
    return status, headers, data


HANDLERS: dict[tuple[str, str], Handler] = {
    ("elasticache", "ModifyReplicationGroup"): modify_replication_group,
    ("elasticache", "TestFailover"): test_failover,
}
