"""Adaptive polling: fast first polls, a capped interval, an overall timeout — never a fixed sleep.

The interval grows geometrically from ``first`` by ``factor`` but is always capped at
``min(cap, max(floor, fraction * elapsed))``, so the time between a condition becoming true and
the poller noticing (the *polling slack*) stays under ``max(floor, fraction * step time)``
plus one API round trip: the budget is ``max(1 s, 5 %)`` of the step's time.

:func:`changed_then` builds a predicate that only turns true once a status was seen to *change*
(after a promote, ``available`` is reported before the instance moves to ``modifying``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from dr.errors import TimeoutExpired

T = TypeVar("T")


class Interrupted(Exception):
    """Raised inside a poll when the run is stopping (Ctrl-C or a lost lock)."""


@dataclass
class PollPolicy:
    """Adaptive back-off for ``Step.wait``."""

    first: float = 0.2
    factor: float = 1.6
    cap: float = 5.0
    # The interval never exceeds max(floor, fraction * elapsed): bounds the polling slack.
    floor: float = 0.5
    fraction: float = 0.04

    def intervals(self, elapsed: Callable[[], float]) -> Iterator[float]:
        """Successive sleep intervals; ``elapsed()`` is the time since waiting began."""
        interval = self.first
        while True:
            bound = min(self.cap, max(self.floor, self.fraction * elapsed()))
            yield max(0.0, min(interval, bound))
            interval *= self.factor


def wait_until(
    fn: Callable[[], bool],
    timeout: float,
    policy: PollPolicy | None = None,
    *,
    what: str = "condition",
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Any] | None = None,
    resource: str | None = None,
    region: str | None = None,
) -> int:
    """Call ``fn`` until it returns true; raise :class:`TimeoutExpired` after ``timeout`` seconds.

    The first call happens immediately. Sleeping uses ``stop.wait`` so a stopping run interrupts
    the poll at once (:class:`Interrupted`). Returns how many times ``fn`` was called.
    """
    policy = policy or PollPolicy()
    stop = stop or threading.Event()
    start = clock()
    deadline = start + timeout
    for polls, interval in enumerate(policy.intervals(lambda: clock() - start), 1):
        if stop.is_set():
            raise Interrupted(what)
        if fn():
            return polls
        now = clock()
        if now >= deadline:
            where = f" in {region}" if region else ""
            raise TimeoutExpired(
                f"timed out after {timeout:g}s waiting for {what}{where}",
                resource=resource,
                region=region,
                hint="the operation may still complete; check its state, then re-run with --resume",
            )
        pause = min(interval, max(0.0, deadline - now))
        if sleep is not None:
            sleep(pause)
        elif stop.wait(pause):
            raise Interrupted(what)
    raise AssertionError("unreachable: intervals() is infinite")  # pragma: no cover


_UNSET: Any = object()


def changed_then(
    read: Callable[[], T],
    ready: Callable[[T], bool],
    *,
    before: Any = _UNSET,
    changed: Callable[[T], bool] | None = None,
) -> Callable[[], bool]:
    """A predicate for :func:`wait_until` that is true only after a change was observed.

    ``read()`` returns the current state (e.g. the DB status). The predicate becomes true once
    the state was seen to differ from ``before`` (default: the first value read), or
    ``changed(value)`` returned true, *and* ``ready(value)`` is true. Use it right after an
    action whose effect is asynchronous, so a stale "available" is not trusted.
    """
    state: dict[str, Any] = {"seen": False, "before": before}

    def predicate() -> bool:
        value = read()
        if not state["seen"]:
            if changed is not None:
                state["seen"] = bool(changed(value))
            elif state["before"] is _UNSET:
                state["before"] = value
            else:
                state["seen"] = value != state["before"]
        return bool(state["seen"]) and ready(value)

    return predicate
