"""Fault injection for drills on the sandbox (``--target sandbox``), through its admin API.

Imported lazily by the drill runner (``dr.drills.registry.PLUGIN_MODULES``); stdlib + the
sandbox's admin client only, so nothing heavy loads until a drill runs.

* ``region-loss`` — abrupt: the replication link first holds ``lag_seconds`` of WAL (in flight,
  like cross-region shipping), then the region goes down at once: its PostgreSQL primary is
  SIGKILLed after the link is cut (the WAL in flight is lost: the RPO is real), its AWS API is
  unreachable (the realism layer's ``unreachable`` fault), its ``/health`` server stops answering
  and its pods lose capacity. On AWS the action refuses (exit 2): losing a region cannot be
  simulated safely there (use AWS FIS with a network-disruption experiment on the primary
  region's subnets, outside this tool, and run the ``failover`` drill against it).
* ``region-restore`` — the rollback: the region's API and ``/health`` come back and the
  replication delay returns to what it was; the killed database stays down (as a lost region's
  would: ``dr failback`` rebuilds it with ``pg_rewind``).
* ``corrupt-data`` — writes rows whose checksum does not match into the integrity table of the
  site's database (what the ``data-intact`` probe checks).
* ``rds-reboot-failover``, ``redis-primary-failure`` — the AWS implementations (plain API
  calls); the sandbox's realism layer gives them real status transitions.
"""

from __future__ import annotations

import time
from typing import Any

from dr.drills.drill_context import DrillContext
from dr.drills.registry import register_action
from dr.errors import BadInput, OperationFailed

_DELAY_KEY = "sandbox_replication_delay"


def _admin() -> Any:
    from dr.sandbox.admin import SandboxAdmin
    from dr.target import read_sandbox_state

    return SandboxAdmin.from_state(read_sandbox_state())


def _replication_delay(admin: Any) -> float | None:
    try:
        pg = admin.postgres()
    except Exception:
        return None
    value = (pg.get("state") or {}).get("replication_delay")
    return None if value is None else float(value)


@register_action("region-loss", target="sandbox")
def region_loss(ctx: DrillContext, site: str, lag_seconds: float) -> dict[str, Any]:
    """Lose the site's region at once: WAL in flight lost, AWS API unreachable, /health down."""
    from dr.sandbox.admin import SandboxAdminError

    view = ctx.require_estate().site(site)
    admin = _admin()
    if ctx.dry_run:
        return {"region": view.region, "lag_seconds": lag_seconds, "dry_run": True}
    before = _replication_delay(admin)
    ctx.outputs.setdefault(_DELAY_KEY, before)
    if lag_seconds > 0:
        if before is None:
            raise OperationFailed(
                "region-loss: the sandbox has no real PostgreSQL replication link to delay",
                region=view.region,
                hint="start the sandbox without --no-postgres",
            )
        try:
            admin.postgres("replica", "delay", seconds=lag_seconds)
        except SandboxAdminError as exc:
            raise OperationFailed(
                f"region-loss: could not delay replication: {exc}", region=view.region
            ) from None
        # Let the link fill: the replica now trails by lag_seconds of acknowledged writes.
        ctx.wait(lag_seconds)
    lag = _lag(admin)
    admin.region_down(view.region, mode="refuse")
    ctx.note(f"region {view.region} lost (replication lag at the loss: {lag})", region=view.region)
    return {"region": view.region, "injected_lag_seconds": lag_seconds, "lag_at_loss_seconds": lag}


def _lag(admin: Any) -> float | None:
    try:
        value = admin.postgres().get("lag")
    except Exception:
        return None
    return None if value is None else round(float(value), 3)


@register_action("region-loss", target="aws")
def region_loss_aws(ctx: DrillContext, site: str, lag_seconds: float) -> dict[str, Any]:
    """Refused: a real region cannot be taken away safely by this tool."""
    view = ctx.require_estate().site(site)
    raise BadInput(
        f"region-loss cannot be simulated on AWS (region {view.region}): this tool does not cut a "
        "real region off",
        region=view.region,
        hint="run region-loss with --target sandbox; on AWS, disrupt the region with an AWS FIS "
        "experiment (aws:network:disrupt-connectivity on its subnets) and run the failover drill "
        "(planned-switchover, or a scenario with the failover action in unplanned mode)",
    )


@register_action("region-restore", target="sandbox")
def region_restore(ctx: DrillContext, site: str) -> dict[str, Any]:
    """Bring a lost region's API and /health back; restore the replication delay (idempotent)."""
    view = ctx.require_estate().site(site)
    admin = _admin()
    if ctx.dry_run:
        return {"region": view.region, "dry_run": True}
    result = admin.region_up(view.region)
    delay = ctx.outputs.get(_DELAY_KEY)
    if delay is not None:
        try:
            admin.postgres("replica", "delay", seconds=float(delay))
        except Exception as exc:  # the replica may have been promoted: no link left to delay
            ctx.note(f"replication delay not restored: {exc}")
    return {"region": view.region, "down": bool(result.get("down")), "replication_delay": delay}


@register_action("corrupt-data", target="sandbox")
def corrupt_data(ctx: DrillContext, site: str, rows: int) -> dict[str, Any]:
    """Insert ``rows`` rows whose checksum does not match their payload into the integrity table
    of the database the site's application uses."""
    from dr.procedures.drill_providers import INTEGRITY_TABLE, connect_app_database

    view = ctx.require_estate().site(site)
    if ctx.dry_run:
        return {"site": site, "rows": rows, "dry_run": True}
    with connect_app_database(ctx, view) as conn:
        if ctx.corrupted_at is None:
            ctx.corrupted_at = time.time()  # before the bad commit: the restore must land before it
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {INTEGRITY_TABLE} "
            "(id bigserial PRIMARY KEY, payload text NOT NULL, checksum text, written_at timestamptz DEFAULT now())"
        )
        with conn.transaction():
            for i in range(rows):
                conn.execute(
                    f"INSERT INTO {INTEGRITY_TABLE} (payload, checksum) VALUES (%s, %s)",
                    (f"corrupted-{i}", "0" * 32),
                )
    return {"site": site, "region": view.region, "table": INTEGRITY_TABLE, "rows": rows}


def _register_aws_api_faults() -> None:
    """The AWS fault actions are plain API calls; the sandbox's realism layer makes them real."""
    from dr.drills import providers

    register_action("rds-reboot-failover", target="sandbox")(providers.rds_reboot_failover)
    register_action("redis-primary-failure", target="sandbox")(providers.redis_primary_failure)


_register_aws_api_faults()
