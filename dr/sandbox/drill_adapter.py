"""The sandbox's drill adapter (``--target sandbox``): fault injection through its admin API, and
where the heartbeat writer and the endpoint prober go.

Importing it registers its providers and measurement hooks (:func:`dr.cli.drill_cmd.load_activities`
does, for every target: scenarios must validate on AWS too); stdlib + the sandbox's admin client
only, so nothing heavy loads until a drill runs.

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

Measurement (:func:`sandbox_hooks`, from its ``state.json``): the sandbox resolver says which
region (and which ``/health`` URL) serves the public name, and the kubeconfig has one context per
cluster, through which :class:`dr.drills.appdb.AppDatabase` finds the application's database.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from dr.drills import builtin_actions
from dr.drills.appdb import AppDatabase, KubeLike
from dr.drills.drill_context import DrillContext, MeasurementHooks, register_measurement
from dr.drills.registry import ActionArgs, Site, SiteArgs, register_action
from dr.errors import BadInput, OperationFailed

if TYPE_CHECKING:
    from dr.topology import SiteView

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


class RegionLossArgs(ActionArgs):
    site: Site = "primary"
    # Replication lag injected before the loss: bounds the data the drill can lose.
    lag_seconds: Annotated[float, Field(ge=0, le=600)] = 0.0


@register_action(
    "region-loss",
    target="sandbox",
    args=RegionLossArgs,
    description="Abrupt loss of a whole region (its endpoints stop answering).",
)
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


@register_action("region-loss", target="aws", args=RegionLossArgs)
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


@register_action("region-restore", target="sandbox", args=SiteArgs, description="Bring a lost region back.")
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


class CorruptArgs(ActionArgs):
    site: Site = "primary"
    rows: Annotated[int, Field(ge=1)] = 10


@register_action(
    "corrupt-data",
    target="sandbox",
    args=CorruptArgs,
    description="Write bad rows into the application database (db-corruption drill).",
)
def corrupt_data(ctx: DrillContext, site: str, rows: int) -> dict[str, Any]:
    """Insert ``rows`` rows whose checksum does not match their payload into the integrity table
    of the database the site's application uses."""
    from dr.drills.procedure_probes import INTEGRITY_TABLE, connect_app_database

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


# The AWS fault actions are plain API calls; the sandbox's realism layer makes them real.
register_action("rds-reboot-failover", target="sandbox", args=SiteArgs)(builtin_actions.rds_reboot_failover)
register_action("redis-primary-failure", target="sandbox", args=SiteArgs)(
    builtin_actions.redis_primary_failure
)


# ---------------------------------------------------------------------------------------------
# The sandbox (state.json contract of dr.target)
# ---------------------------------------------------------------------------------------------


def _get_json(url: str, timeout: float = 1.0) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        data: dict[str, Any] = json.loads(resp.read())
    return data


class SandboxResolver:
    """Asks the sandbox resolver (``GET <resolver.url>/resolve?name=<record>``) for the public name."""

    def __init__(self, resolver_url: str, record: str, health_path: str) -> None:
        self.url = f"{resolver_url.rstrip('/')}/resolve?name={record}"
        self.health_path = health_path

    def answer(self) -> dict[str, Any]:
        return _get_json(self.url)

    def region(self) -> str:
        region = self.answer().get("region")
        if not region:
            raise LookupError("the sandbox resolver answered without a region")
        return str(region)

    def base_url(self) -> str:
        """The base URL of the region the public name points at (its /health and /write)."""
        health = self.answer().get("health_url")
        if not health:
            raise LookupError("the sandbox resolver answered without a health URL")
        health = str(health)
        return health[: -len(self.health_path)] if health.endswith(self.health_path) else health


@register_measurement("sandbox")
def sandbox_hooks(ctx: DrillContext) -> MeasurementHooks:
    """Measurement hooks for ``--target sandbox`` from its state.json (see module doc): its
    resolver for the prober, the app's DB secret (via its fake k8s API) for the heartbeat."""
    hooks = MeasurementHooks()
    if ctx.estate is None:
        hooks.notes.append("no estate: nothing to measure on the sandbox")
        return hooks
    try:
        from dr.target import read_sandbox_state

        state = read_sandbox_state()
    except Exception as exc:
        hooks.notes.append(f"sandbox not running: {getattr(exc, 'message', exc)}")
        return hooks
    resolver_url = (state.get("resolver") or {}).get("url")
    if not resolver_url:
        hooks.notes.append("the sandbox state has no resolver URL: RTO and RPO are not measured")
        return hooks
    app = ctx.estate.app
    resolver = SandboxResolver(str(resolver_url), app.record, app.health_path)
    hooks.resolver = resolver.base_url
    kubeconfig = state.get("kubeconfig")
    if not kubeconfig:
        hooks.notes.append(
            "the sandbox state has no kubeconfig: the heartbeat cannot find the app's database"
        )
        return hooks
    kubes: dict[str, Any] = {}
    lock = threading.Lock()

    def kube_for(view: SiteView) -> KubeLike:
        from dr.kube import connect

        with lock:
            if view.region not in kubes:
                kubes[view.region] = connect(
                    view.cluster.name, view.region, kubeconfig=str(kubeconfig), read_only=True
                )
            kube: KubeLike = kubes[view.region]
            return kube

    app_db = AppDatabase(ctx.estate, resolver.region, kube_for)
    hooks.heartbeat_target = app_db
    hooks.rpo_target = app_db.without_writer_check()
    return hooks
