"""Resources in transition: statuses that change over time, completed by one scheduler thread."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("dr.sandbox.fakeaws")


@dataclass
class Transition:
    kind: str
    region: str
    resource: str
    status: str
    started: float
    ends: float
    on_complete: Callable[[], None] | None = field(default=None, repr=False)
    done: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "region": self.region,
            "resource": self.resource,
            "status": self.status,
            "started": self.started,
            "ends": self.ends,
            "remaining": max(0.0, self.ends - time.time()),
            "done": self.done,
            **({"info": self.info} if self.info else {}),
        }


class Transitions:
    """Thread-safe table of resources in transition; one scheduler thread completes them."""

    def __init__(self) -> None:
        self._active: dict[tuple[str, str, str], Transition] = {}
        self._heap: list[tuple[float, int, tuple[str, str, str]]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.completed = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sandbox-transitions", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def begin(
        self,
        kind: str,
        region: str,
        resource: str,
        status: str,
        duration: float,
        on_complete: Callable[[], None] | None = None,
        **info: Any,
    ) -> Transition:
        """Start a transition; with ``duration <= 0`` it completes before this call returns."""
        now = time.time()
        tr = Transition(kind, region, resource, status, now, now + max(0.0, duration), on_complete, info=info)
        key = (kind, region, resource)
        if duration <= 0:
            self._complete(tr)
            return tr
        with self._cond:
            self._active[key] = tr
            heapq.heappush(self._heap, (tr.ends, next(self._counter), key))
            self._cond.notify_all()
        return tr

    def fast_forward(self, kind_prefix: str = "") -> int:
        """Complete the active transitions (of ``kind_prefix``) now; returns how many."""
        now = time.time()
        count = 0
        with self._cond:
            for key, tr in self._active.items():
                if key[0].startswith(kind_prefix):
                    tr.ends = now
                    heapq.heappush(self._heap, (now, next(self._counter), key))
                    count += 1
            self._cond.notify_all()
        return count

    def get(self, kind_prefix: str, region: str, resource: str) -> Transition | None:
        with self._cond:
            for (kind, reg, res), tr in self._active.items():
                if kind.startswith(kind_prefix) and reg == region and res == resource:
                    return tr
        return None

    def active(self) -> list[Transition]:
        with self._cond:
            return list(self._active.values())

    def wait_idle(self, timeout: float = 30.0) -> bool:
        deadline = time.time() + timeout
        with self._cond:
            while self._active:
                remaining = deadline - time.time()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.1))
        return True

    def _complete(self, tr: Transition) -> None:
        try:
            if tr.on_complete is not None:
                tr.on_complete()
        except Exception:
            log.exception("completing transition %s %s/%s failed", tr.kind, tr.region, tr.resource)
        tr.done = True
        self.completed += 1

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stop:
                    return
                now = time.time()
                due: list[Transition] = []
                while self._heap and self._heap[0][0] <= now:
                    _, _, key = heapq.heappop(self._heap)
                    tr = self._active.get(key)
                    if tr is not None and tr.ends <= now:
                        due.append(tr)
                timeout = (self._heap[0][0] - now) if self._heap else 0.5
            for tr in due:
                self._complete(tr)
                with self._cond:
                    key = (tr.kind, tr.region, tr.resource)
                    if self._active.get(key) is tr:
                        del self._active[key]
                    self._cond.notify_all()
            if not due:
                with self._cond:
                    if not self._stop:
                        self._cond.wait(max(0.005, min(timeout, 0.5)))
