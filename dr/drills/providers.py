"""Built-in drill providers, and the declarations of those other packages implement.

Implemented here (any target): ``pause``, ``http`` (probe), ``endpoint`` (probe, through the
drill's resolver and check), ``heartbeat-acked`` (probe). On AWS: ``rds-reboot-failover`` and
``redis-primary-failure`` (ElastiCache TestFailover — moto lacks it, so the sandbox implements
its own).

Declared with their arguments but implemented elsewhere (``pending`` says where): the failover
procedure (issue 6: ``failover``, ``failback``), the runbook operations (issue 5/8:
``scale-deployment``, ``restore-pitr``, ``repoint-app``, ``deploy``, ``rollback-deploy``), and the
fault injections and checks that need the sandbox (issue 4: ``region-loss``, ``region-restore``,
``corrupt-data``, …). Until an implementation is registered for the target, running such a
step fails with a clear message (exit 1, rollbacks still run); ``--dry-run`` marks it pending.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dr.drills.drill_context import DrillContext
from dr.drills.registry import Observation, declare, register_action, register_probe

Site = Literal["primary", "secondary"]


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NoArgs(_Args):
    pass


class PauseArgs(_Args):
    seconds: Annotated[float, Field(ge=0, le=3600)]


class HttpArgs(_Args):
    url: str
    method: Literal["GET", "POST", "HEAD"] = "GET"
    timeout: Annotated[float, Field(gt=0, le=60)] = 3.0


class SiteArgs(_Args):
    site: Site = "primary"


class FailoverArgs(_Args):
    to: Site = "secondary"
    mode: Literal["planned", "unplanned"] = "unplanned"
    max_lag_seconds: Annotated[float, Field(ge=0)] | None = None
    # Output key of an earlier step naming the database to fail over to instead of the DR
    # replica (e.g. restore-pitr's restored_db: the replica itself is corrupt).
    db_from: str | None = None


class FailbackArgs(_Args):
    mode: Literal["planned", "unplanned"] = "planned"


class ReprotectArgs(_Args):
    max_lag_seconds: Annotated[float, Field(ge=0)] | None = None
    # Output key of an earlier step naming the serving database when it is not the serving site's
    # own (failover db_from: a restored instance) — the replication source of the new replica.
    db_from: str | None = None


class RegionLossArgs(_Args):
    site: Site = "primary"
    # Replication lag injected before the loss (sandbox): bounds the data the drill can lose.
    lag_seconds: Annotated[float, Field(ge=0, le=600)] = 0.0


class ScaleArgs(_Args):
    site: Site = "primary"
    deployments: Literal["writers", "all"] | list[str] = "writers"
    replicas: Annotated[int, Field(ge=0)] | Literal["production", "previous"] = 0


class RestorePitrArgs(_Args):
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


class RepointArgs(_Args):
    site: Site = "primary"
    # Output key set by an earlier step (e.g. restore-pitr) holding the new DB identifier.
    database_from: str = "restored_db"


class DeployArgs(_Args):
    deployment: str | None = None
    image: str


class RollbackDeployArgs(_Args):
    deployment: str | None = None


class CorruptArgs(_Args):
    site: Site = "primary"
    rows: Annotated[int, Field(ge=1)] = 10


class LagArgs(_Args):
    site: Site = "secondary"


class BackupsCoverArgs(_Args):
    # Where the backups are replicated to.
    site: Site = "secondary"
    # The instant the replicated RestoreWindow must reach: the drill's first corruption, else now.
    covers: Literal["corruption", "now"] = "corruption"
    timeout: Annotated[float, Field(gt=0, le=7200)] = 900.0


class RestoredToPointArgs(_Args):
    site: Site = "secondary"


# ---------------------------------------------------------------------------------------------
# Implemented everywhere
# ---------------------------------------------------------------------------------------------


@register_action("pause", args=PauseArgs, description="Wait (returns early when a stop condition fires).")
def pause(ctx: DrillContext, seconds: float) -> dict[str, Any]:
    completed = ctx.wait(seconds)
    return {"waited": seconds, "interrupted_by_stop": not completed}


class HttpRequestArgs(_Args):
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
    description="Reboot the site's Multi-AZ RDS instance with ForceFailover (AZ failure).",
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
    description="ElastiCache TestFailover on the site's replication group (Redis primary failure).",
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
# Declared here, implemented by the procedures (issues 5, 6, 8) and the sandbox (issue 4)
# ---------------------------------------------------------------------------------------------

_ISSUE6 = "issue 6: failover procedure, dr.procedures.drill_providers"
_OPS = "issues 5/8: runbook operations, dr.procedures.drill_providers"
_SANDBOX = "issue 4: sandbox fault injection, dr.sandbox.drill_providers"

declare("action", "failover", args=FailoverArgs, description="Whole-region failover.", pending=_ISSUE6)
declare("action", "failback", args=FailbackArgs, description="Re-protect, then fail back.", pending=_ISSUE6)
declare(
    "action",
    "reprotect",
    args=ReprotectArgs,
    description="The standby's database a replica of the serving one again (after a failback).",
    pending=_ISSUE6,
)
declare(
    "action",
    "region-loss",
    args=RegionLossArgs,
    description="Abrupt loss of a whole region (its endpoints stop answering).",
    pending=_SANDBOX,
)
declare("action", "region-restore", args=SiteArgs, description="Bring a lost region back.", pending=_SANDBOX)
declare(
    "action",
    "rds-reboot-failover",
    args=SiteArgs,
    description="Reboot the site's Multi-AZ RDS instance with ForceFailover.",
    pending=_SANDBOX,
)
declare(
    "action",
    "redis-primary-failure",
    args=SiteArgs,
    description="Fail the Redis primary node over to a replica.",
    pending=_SANDBOX,
)
declare(
    "action",
    "corrupt-data",
    args=CorruptArgs,
    description="Write bad rows into the application database (db-corruption drill).",
    pending=_SANDBOX,
)
declare(
    "action",
    "scale-deployment",
    args=ScaleArgs,
    description="Scale deployments (writers = stop writes with 0; 'previous' restores the counts).",
    pending=_OPS,
)
declare(
    "action",
    "restore-pitr",
    args=RestorePitrArgs,
    description="Restore the site's database to a point in time (sets output restored_db).",
    pending=_OPS,
)
declare(
    "action",
    "wait-replicated-backups",
    args=BackupsCoverArgs,
    description="Wait until the automated backups replicated to the site cover the corruption.",
    pending=_OPS,
)
declare(
    "probe",
    "restored-to-point",
    args=RestoredToPointArgs,
    description="True when the app's database holds every heartbeat acknowledged before the restore "
    "time and none acknowledged after the corruption.",
    pending=_OPS,
)
declare(
    "action",
    "repoint-app",
    args=RepointArgs,
    description="Patch the DB secret to a database named by an earlier output, rolling-restart.",
    pending=_OPS,
)
declare(
    "action", "deploy", args=DeployArgs, description="Roll out an image (bad-deploy fault).", pending=_OPS
)
declare(
    "action",
    "rollback-deploy",
    args=RollbackDeployArgs,
    description="kubectl rollout undo of the deployment.",
    pending=_OPS,
)
declare(
    "probe",
    "db-writable",
    args=SiteArgs,
    description="True when the site's database accepts writes.",
    pending=_OPS,
)
declare(
    "probe",
    "replica-lag",
    args=LagArgs,
    description="Replica lag in seconds of the site's read replica.",
    pending=_OPS,
)
declare(
    "probe",
    "pods-ready",
    args=SiteArgs,
    description="True when every deployment of the site has its replicas Ready.",
    pending=_OPS,
)
declare(
    "probe",
    "data-intact",
    args=SiteArgs,
    description="True when the integrity check finds no corrupt rows.",
    pending=_SANDBOX,
)
declare(
    "probe",
    "dns-points-to",
    args=SiteArgs,
    description="True when the public record resolves to the site's load balancer.",
    pending=_OPS,
)
