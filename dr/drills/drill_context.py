"""What drill providers receive, and the seam for per-target measurement hooks.

Providers get a :class:`DrillContext`: the estate, the target name, a ClientProvider factory,
``services`` (whatever a target plug-in supplies: kube factory, sandbox handle…), a shared
``outputs`` dict, the stop event (long actions should return early when it is set) and the
journal (``ctx.note``).

Measurement hooks tell the heartbeat writer and the endpoint prober where to go. Each target's
adapter registers its factory with :func:`register_measurement`: ``aws`` in
:mod:`dr.drills.builtin_actions`, ``sandbox`` in :mod:`dr.sandbox.drill_adapter`. This module
imports nothing of its own package at run time: every adapter imports it, never the reverse.
"""

from __future__ import annotations

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
    """The hooks of the context's target (none registered: empty hooks saying so)."""
    factory = _measurement.get(ctx.target)
    if factory is None:
        return MeasurementHooks(notes=[f"no measurement hooks registered for target {ctx.target!r}"])
    return factory(ctx)


def now() -> float:
    return time.time()
