"""What a service handler of the fake sees of the realism layer, and the handler signatures.

The handlers (``*_ops.py``) receive the layer as their first argument; the middleware
(:class:`~dr.sandbox.fakeaws.middleware.Realism`) implements this protocol and dispatches to the
handlers' tables. Typing the handlers against the protocol keeps the handler modules from
importing the middleware that imports them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from dr.sandbox.fakeaws.health_checks import HealthEvaluator
    from dr.sandbox.fakeaws.rds_state import RdsState
    from dr.sandbox.fakeaws.transitions import Transition, Transitions
    from dr.sandbox.fakeaws.wire import AwsRequest, Reply
    from dr.sandbox.latency import LatencyProfile
    from dr.topology import Estate


class Layer(Protocol):
    estate: Estate | None
    profile: LatencyProfile
    transitions: Transitions
    endpoint_fn: Callable[[str, str], tuple[str, int] | None] | None
    lag_fn: Callable[[str, str], float | None] | None
    health: HealthEvaluator | None
    changes: dict[str, Transition]
    lock: threading.Lock
    rds: RdsState

    def emit(self, event: str, **kwargs: Any) -> None: ...

    def call_inner(self, environ: dict[str, Any], body: bytes | None = None, **overrides: str) -> Reply: ...

    def query(self, environ: dict[str, Any], params: dict[str, str]) -> Reply: ...

    def set_nodes(self, region: str, cluster: str, nodegroup: str, nodes: int) -> None: ...

    def nodes(self, region: str, cluster: str, nodegroup: str) -> int: ...

    def health_check_region(self, health_check_id: str) -> str | None: ...


# A service operation's handler: its reply, or None to let moto answer.
Handler = Callable[[Layer, "AwsRequest", dict[str, Any]], "Reply | None"]
# An operation answered while seeding: always by the fake.
SeedingHandler = Callable[[Layer, "AwsRequest", dict[str, Any]], "Reply"]
