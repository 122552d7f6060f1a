"""The drills' own providers, and the measurement hooks of the ``aws`` target.

Any target: ``pause``, ``http-request`` (actions), ``http``, ``endpoint`` (through the drill's
resolver and check), ``heartbeat-acked`` (probes). AWS API faults (``target="aws"``; the sandbox
registers the same functions, its realism layer gives them real status transitions):
``rds-reboot-failover`` and ``redis-primary-failure`` (ElastiCache TestFailover), each declaring
the IAM actions it calls (in either site's region: ``site`` picks it).
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import Field

from dr.drills.drill_context import DrillContext, MeasurementHooks, register_measurement
from dr.drills.registry import ActionArgs, NoArgs, Observation, SiteArgs, register_action, register_probe
from dr.procedures.iam import Need


class PauseArgs(ActionArgs):
    seconds: Annotated[float, Field(ge=0, le=3600)]


class HttpArgs(ActionArgs):
    url: str
    method: Literal["GET", "POST", "HEAD"] = "GET"
    timeout: Annotated[float, Field(gt=0, le=60)] = 3.0


# ---------------------------------------------------------------------------------------------
# Implemented everywhere
# ---------------------------------------------------------------------------------------------


@register_action("pause", args=PauseArgs, description="Wait (returns early when a stop condition fires).")
def pause(ctx: DrillContext, seconds: float) -> dict[str, Any]:
    completed = ctx.wait(seconds)
    return {"waited": seconds, "interrupted_by_stop": not completed}


class HttpRequestArgs(ActionArgs):
    url: str
    method: Literal["GET", "POST", "PUT", "DELETE", "PATCH"] = "POST"
    body: dict[str, Any] | None = None
    timeout: Annotated[float, Field(gt=0, le=600)] = 30.0
    expect_status: list[int] = Field(default_factory=lambda: [200, 201, 202, 204])


@register_action(
    "http-request",
    args=HttpRequestArgs,
    description="Call an HTTP endpoint (e.g. a chaos or admin API); fails unless the status is expected.",
)
def http_request(
    ctx: DrillContext,
    url: str,
    method: str,
    body: dict[str, Any] | None,
    timeout: float,
    expect_status: list[int],
) -> dict[str, Any]:
    import json
    import urllib.error
    import urllib.request

    from dr.errors import OperationFailed

    data = json.dumps(body).encode() if body is not None else (b"" if method != "GET" else None)
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, text = int(resp.status), resp.read(2000).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        status, text = int(exc.code), exc.read(2000).decode(errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        raise OperationFailed(f"{method} {url} failed: {exc}") from None
    if status not in expect_status:
        raise OperationFailed(f"{method} {url} answered {status} (expected {expect_status}): {text[:200]}")
    return {"status": status, "body": text[:500]}


@register_probe("http", args=HttpArgs, description="HTTP status code of a URL (0 when unreachable).")
def http_probe(ctx: DrillContext, url: str, method: str, timeout: float) -> int:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, method=method, data=b"{}" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return 0


@register_probe(
    "endpoint",
    args=NoArgs,
    description="True when the public endpoint answers /health and takes a write (the prober's check).",
)
def endpoint_probe(ctx: DrillContext) -> Observation:
    from dr.drills.prober import EndpointProber

    resolver = ctx.services.get("resolver")
    if resolver is None:
        from dr.errors import OperationFailed

        raise OperationFailed(f"no endpoint resolver for target {ctx.target!r}: cannot probe the public name")
    prober = EndpointProber(resolver, ctx.services.get("check"))
    sample = prober.sample()
    return Observation(sample.ok, sample.error)


@register_probe(
    "heartbeat-acked",
    args=NoArgs,
    description="Number of heartbeats the database acknowledged so far (0 when the writer is off).",
)
def heartbeat_acked(ctx: DrillContext) -> int:
    writer = ctx.services.get("heartbeat")
    return len(writer.acks) if writer is not None else 0


# ---------------------------------------------------------------------------------------------
# AWS implementations (real API calls through the ClientProvider)
# ---------------------------------------------------------------------------------------------


@register_action(
    "rds-reboot-failover",
    target="aws",
    args=SiteArgs,
    description="Reboot the site's Multi-AZ RDS instance with ForceFailover.",
    iam=(Need("rds:DescribeDBInstances", "both"), Need("rds:RebootDBInstance", "both")),
)
def rds_reboot_failover(ctx: DrillContext, site: str) -> dict[str, Any]:
    from dr.errors import BadInput

    estate = ctx.require_estate()
    view = estate.site(site)
    ident = view.database.identifier
    rds = ctx.clients().client("rds", view.region)
    inst = rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]
    if not inst.get("MultiAZ"):
        # Real RDS refuses ForceFailover on a Single-AZ instance (InvalidParameterCombination).
        raise BadInput(
            f"RDS instance {ident} in {view.region} is not Multi-AZ: a reboot with failover is impossible",
            resource=ident,
            region=view.region,
            hint="enable Multi-AZ (multiAz: true in the stack file) or drop this step",
        )
    if inst.get("DBInstanceStatus") != "available":
        raise BadInput(
            f"RDS instance {ident} in {view.region} is {inst.get('DBInstanceStatus')!r}, not available",
            resource=ident,
            region=view.region,
        )
    rds.reboot_db_instance(DBInstanceIdentifier=ident, ForceFailover=True)
    return {"instance": ident, "region": view.region, "previous_az": inst.get("AvailabilityZone")}


@register_action(
    "redis-primary-failure",
    target="aws",
    args=SiteArgs,
    description="Fail the Redis primary node over to a replica.",
    iam=(Need("elasticache:DescribeReplicationGroups", "both"), Need("elasticache:TestFailover", "both")),
)
def redis_primary_failure(ctx: DrillContext, site: str) -> dict[str, Any]:
    estate = ctx.require_estate()
    view = estate.site(site)
    group = view.cache.replication_group_id
    ec = ctx.clients().client("elasticache", view.region)
    rg = ec.describe_replication_groups(ReplicationGroupId=group)["ReplicationGroups"][0]
    node_group = rg["NodeGroups"][0]["NodeGroupId"]
    ec.test_failover(ReplicationGroupId=group, NodeGroupId=node_group)
    return {"replication_group": group, "node_group": node_group, "region": view.region}


# ---------------------------------------------------------------------------------------------
# Where the measurements go on AWS
# ---------------------------------------------------------------------------------------------


@register_measurement("aws")
def aws_hooks(ctx: DrillContext) -> MeasurementHooks:
    """AWS: probe ``https://<record>`` (DNS decides the region); heartbeat via ``DR_DRILL_DB_URL``."""
    from dr.drills.heartbeat import HeartbeatTarget

    hooks = MeasurementHooks()
    if ctx.estate is not None:
        record = ctx.estate.app.record
        hooks.resolver = lambda: f"https://{record}"
    else:
        hooks.notes.append("no estate: the endpoint prober has no public name to resolve")
    url = os.environ.get("DR_DRILL_DB_URL")
    if url:
        target = HeartbeatTarget.from_conninfo(url, label="app-database")
        hooks.heartbeat_target = lambda: target
    else:
        hooks.notes.append(
            "DR_DRILL_DB_URL is not set: no heartbeat on AWS, RPO is not measured "
            "(set it to the application's database URL through the writer endpoint)"
        )
    return hooks
