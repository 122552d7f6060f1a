"""What Route53's health checkers conclude per region, and how they word it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

HEALTH_CHECKER_REGIONS = ("us-east-1", "us-west-1", "eu-west-1")


# What Route53's checkers report (GetHealthCheckStatus StatusReport.Status), as AWS words it.
NO_ANSWER = (
    "Failure: Connection timed out. The endpoint or the internet connection is down, or requests are "
    "being blocked by your firewall."
)
HTTP_REASONS = {200: "OK", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


def http_report(code: int) -> tuple[bool, str]:
    """(healthy, report) for an endpoint that answered with HTTP ``code`` (2xx/3xx healthy)."""
    reason = HTTP_REASONS.get(code, "")
    if 200 <= code < 400:
        return True, f"Success: HTTP Status Code {code}, {reason or 'OK'}"
    return False, f"Failure: HTTP Status Code {code}, {reason}. Resolved IP: 127.0.0.1".replace(", .", ".")


HealthProbe = Callable[[str], bool | tuple[bool, str]]


class HealthEvaluator:
    """What Route53's checkers conclude per region: the probe's state once it held for a delay.

    ``probe(region)`` is the raw truth: ``(healthy, report)`` (the region's /health answers 200;
    the report is what a checker would say, e.g. ``Failure: HTTP Status Code 503`` when the
    endpoint answers with an error, :data:`NO_ANSWER` when it does not answer), or a bare bool
    (False = does not answer). A change is reported only after it persisted ``delay()`` seconds
    (``route53.health_eval``), as Route53 needs several consecutive failures before it flips.
    """

    def __init__(
        self,
        regions: Iterable[str],
        probe: HealthProbe,
        delay: Callable[[], float],
        interval: float = 0.1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.probe = probe
        self.delay = delay
        self.interval = interval
        self._state: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        ok = http_report(200)[1]
        for region in regions:
            self._state[region] = {
                "reported": True,
                "raw": True,
                "since": self.clock(),
                "needed": 0.0,
                "raw_report": ok,
                "report": ok,
            }

    def start(self) -> None:
        for region in list(self._state):
            healthy, report = self._safe_probe(region)
            self._state[region].update(reported=healthy, raw=healthy, raw_report=report, report=report)
        self._thread = threading.Thread(target=self._run, name="sandbox-health-eval", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _safe_probe(self, region: str) -> tuple[bool, str]:
        try:
            got = self.probe(region)
        except Exception:
            return False, NO_ANSWER
        if isinstance(got, tuple):
            return bool(got[0]), str(got[1])
        return (True, http_report(200)[1]) if got else (False, NO_ANSWER)

    def tick(self) -> None:
        for region in list(self._state):
            raw, report = self._safe_probe(region)
            now = self.clock()
            with self._lock:
                st = self._state[region]
                if raw != st["raw"]:
                    st.update(raw=raw, since=now, needed=max(0.0, self.delay()))
                st["raw_report"] = report
                if st["reported"] != st["raw"] and now - st["since"] >= st["needed"]:
                    st["reported"] = st["raw"]
                if st["reported"] == st["raw"]:
                    st["report"] = report

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def healthy(self, region: str) -> bool:
        with self._lock:
            st = self._state.get(region)
            return bool(st["reported"]) if st else False

    def report(self, region: str) -> str:
        """The checkers' report matching :meth:`healthy` (the newest one while it agrees)."""
        with self._lock:
            st = self._state.get(region)
            return str(st["report"]) if st else NO_ANSWER

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {r: dict(s) for r, s in self._state.items()}
