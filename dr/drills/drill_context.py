"""What drill providers receive, and the per-target measurement hooks (the seams for AWS/sandbox).

Providers get a :class:`DrillContext`: the estate, the target name, a ClientProvider factory,
``services`` (whatever a target plug-in supplies: kube factory, sandbox handle…), a shared
``outputs`` dict, the stop event (long actions should return early when it is set) and the
journal (``ctx.note``).

Measurement hooks tell the heartbeat writer and the endpoint prober where to go. They are built
per target by a factory registered with :func:`register_measurement`; the sandbox (issue 4)
may replace its own from ``dr.sandbox.drill_providers``. Built in here: ``aws`` (DNS of the
estate's public record; the heartbeat database from ``DR_DRILL_DB_URL`` when set) and ``sandbox``
(:func:`dr.drills.appdb.sandbox_hooks`: the sandbox resolver, and the application's database
found through its DB secret).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.drills.heartbeat import HeartbeatStore, HeartbeatTarget
    from dr.drills.prober import EndpointCheck
    from dr.topology import Estate


class EventSink(Protocol):
    def event(self, kind: str, **fields: Any) -> None: ...


@dataclass
class DrillContext:
    run_id: str
    target: str
    estate: Estate | None = None
    services: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    stop_event: threading.Event = field(default_factory=threading.Event)
    dry_run: bool = False
    journal: EventSink | None = None
    clients_factory: Callable[[bool], ClientProvider] | None = None
    # Set by the runner when the fault action starts (epoch seconds).
    fault_at: float | None = None
    # Set by the first data-corrupting action (epoch seconds, just before the first bad write).
    corrupted_at: float | None = None

    def clients(self, *, read_only: bool = False) -> ClientProvider:
        if self.clients_factory is None:
            from dr.errors import BadInput

            raise BadInput("this drill run has no AWS clients (no target endpoint configured)")
        return self.clients_factory(read_only or self.dry_run)

    def require_estate(self) -> Estate:
        if self.estate is None:
            from dr.errors import BadInput

            raise BadInput(
                "this provider needs the estate: run with --stack-dir/--stack pointing at stack files"
            )
        return self.estate

    def note(self, message: str, **fields: Any) -> None:
        if self.journal is not None:
            self.journal.event("note", message=message, **fields)

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; False when the drill was asked to stop meanwhile."""
        return not self.stop_event.wait(max(0.0, seconds))

    @property
    def stopping(self) -> bool:
        return self.stop_event.is_set()


@dataclass
class MeasurementHooks:
    """Where the heartbeat writer and the endpoint prober go on a target.

    ``heartbeat_target`` returns the database the application writes to *now* (None while writes
    are stopped); ``rpo_target`` the promoted database to read after recovery (default: the same
    callable); ``resolver`` returns the base URL the public name resolves to *now*.
    """

    heartbeat_target: Callable[[], HeartbeatTarget | None] | None = None
    rpo_target: Callable[[], HeartbeatTarget | None] | None = None
    heartbeat_store: HeartbeatStore | None = None
    resolver: Callable[[], str] | None = None
    check: EndpointCheck | None = None
    notes: list[str] = field(default_factory=list)


MeasurementFactory = Callable[[DrillContext], MeasurementHooks]
_measurement: dict[str, MeasurementFactory] = {}


def register_measurement(target: str) -> Callable[[MeasurementFactory], MeasurementFactory]:
    """Decorator: ``factory(ctx) -> MeasurementHooks`` for ``target`` (replaces an earlier one)."""

    def decorator(fn: MeasurementFactory) -> MeasurementFactory:
        _measurement[target] = fn
        return fn

    return decorator


def measurement_hooks(ctx: DrillContext) -> MeasurementHooks:
    from dr.drills import registry

    registry.load_plugins()
    factory = _measurement.get(ctx.target)
    if factory is None:
        return MeasurementHooks(notes=[f"no measurement hooks registered for target {ctx.target!r}"])
    return factory(ctx)


@register_measurement("aws")
def _aws_hooks(ctx: DrillContext) -> MeasurementHooks:
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


@register_measurement("sandbox")
def _sandbox_hooks(ctx: DrillContext) -> MeasurementHooks:
    """Sandbox: its resolver for the prober, the app's DB secret (via its fake k8s API) for the
    heartbeat. The sandbox may replace this from ``dr.sandbox.drill_providers``."""
    from dr.drills.appdb import sandbox_hooks

    return sandbox_hooks(ctx)


def now() -> float:
    return time.time()
