"""The endpoint prober: every 250 ms resolve the public name and check ``/health`` plus a write.

The resolver is a callable returning the base URL the public name points at *now* (AWS: the
Route53 record itself, DNS picks the region; sandbox: its resolver's answer). The check is
pluggable (:class:`EndpointCheck`); the default :class:`HttpCheck` calls ``GET <base>/health``
then ``POST <base>/write`` (the sandbox health servers provide both) and succeeds only when both
answer 2xx. Each sample is recorded; :func:`dr.drills.metrics.compute_rto` turns the log into RTO.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from dr.runbook.journal import scrub_text
from dr.drills.metrics import Sample, compute_rto


@dataclass(frozen=True)
class CheckOutcome:
    ok: bool
    health: int | None = None
    write: int | None = None
    error: str = ""


class EndpointCheck(Protocol):
    def __call__(self, base_url: str) -> CheckOutcome: ...


class HttpCheck:
    """``GET /health`` then ``POST /write``; both must answer 2xx within ``timeout``."""

    def __init__(
        self, health_path: str = "/health", write_path: str | None = "/write", timeout: float = 1.0
    ) -> None:
        self.health_path = health_path
        self.write_path = write_path
        self.timeout = timeout

    def _call(self, url: str, method: str) -> int:
        data = b"{}" if method == "POST" else None
        req = urllib.request.Request(url, data=data, method=method, headers={"User-Agent": "dr-drill-prober"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def __call__(self, base_url: str) -> CheckOutcome:
        if not base_url.startswith(("http://", "https://")):
            return CheckOutcome(False, error=f"not an http(s) URL: {base_url}")
        base = base_url.rstrip("/")
        try:
            health = self._call(base + self.health_path, "GET")
        except Exception as exc:
            return CheckOutcome(False, error=_short(exc))
        if not 200 <= health < 300:
            return CheckOutcome(False, health=health, error=f"GET {self.health_path} answered HTTP {health}")
        if self.write_path is None:
            return CheckOutcome(True, health=health)
        try:
            write = self._call(base + self.write_path, "POST")
        except Exception as exc:
            return CheckOutcome(False, health=health, error="write: " + _short(exc))
        ok = 200 <= write < 300
        return CheckOutcome(
            ok,
            health=health,
            write=write,
            error="" if ok else f"POST {self.write_path} answered HTTP {write}",
        )


class EndpointProber:
    """Samples ``check(resolver())`` every ``interval`` seconds in a background thread."""

    def __init__(
        self,
        resolver: Callable[[], str],
        check: EndpointCheck | None = None,
        *,
        interval: float = 0.25,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.resolver = resolver
        self.check: EndpointCheck = check if check is not None else HttpCheck()
        self.interval = interval
        self.clock = clock
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="dr-prober", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def sample(self) -> Sample:
        """One probe (the loop calls it; tests may call it directly)."""
        t = self.clock()
        started = time.monotonic()
        try:
            address = self.resolver()
        except Exception as exc:
            s = Sample(t, False, error="resolve: " + _short(exc))
        else:
            try:
                out = self.check(address)
            except Exception as exc:
                out = CheckOutcome(False, error=_short(exc))
            s = Sample(
                t,
                out.ok,
                scrub_text(address),
                out.health,
                out.write,
                round(time.monotonic() - started, 4),
                out.error,
            )
        with self._lock:
            self.samples.append(s)
        return s

    def snapshot(self) -> list[Sample]:
        with self._lock:
            return list(self.samples)

    def sustained_since(self, since: float, count: int) -> bool:
        """True once the probe log shows the recovery :func:`compute_rto` measures: ``count``
        consecutive successes after the first failure that followed ``since`` (after ``since`` when
        nothing failed). Successes between the fault and the outage it causes (a region lost at the
        end of its action) are not a recovery: waiting for them ended a drill's wait before the
        outage had even begun, and its RTO was then "never recovered"."""
        return compute_rto(self.snapshot(), since, count).measured

    def _loop(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.sample()
            next_at += self.interval
            now = time.monotonic()
            if next_at < now:
                next_at = now
            self._stop.wait(next_at - now)

    def log(self) -> dict[str, Any]:
        return {
            "interval": self.interval,
            "columns": ["t", "ok", "address", "health", "write", "latency", "error"],
            "samples": [s.to_row() for s in self.snapshot()],
        }


def samples_from_log(log: dict[str, Any]) -> list[Sample]:
    return [Sample.from_row(list(r)) for r in log.get("samples") or []]


def _short(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    text = f"{type(exc).__name__}: {reason if reason is not None else exc}"
    return scrub_text(text.splitlines()[0])[:200]
