"""Client-side API rate limits per service and region (token buckets), for fleets of resources.

AWS throttles each account per service and region with token buckets (RDS mutating calls: roughly
12/s after a burst; Route53: 5 requests/s per account, and ``PriorRequestNotComplete`` when a zone
gets a change while another is in progress). A fleet failover that fires 100 promotions at once
would mostly collect ``Throttling`` errors; this module keeps the calls under the limits instead:

* :class:`TokenBucket` — ``acquire()`` blocks the calling thread until a token is there (the wait
  is computed from the refill rate, never a fixed sleep).
* :class:`RateLimiter` — buckets per (service, region, mutating|any) from :data:`DEFAULT_LIMITS`;
  :meth:`RateLimiter.attach` hooks every client a :class:`~dr.aws.session.ClientProvider` hands out
  (botocore ``before-parameter-build``, registered *first*, so a ``CallRecorder``'s timestamps are
  the moments calls were let through). botocore's own retry (standard/adaptive: ``Throttling``,
  ``PriorRequestNotComplete`` …) absorbs the rare throttle that still happens; nothing surfaces.
* :class:`AwsSideThrottle` — a *simulation* of AWS's limits for tests and the fleet benchmark: a
  botocore ``before-send`` hook answering ``Throttling`` (400) when a call exceeds the service's
  bucket, and ``PriorRequestNotComplete`` on concurrent writes to one Route53 zone.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dr.aws.session import ApiCall, ClientProvider

__all__ = [
    "DEFAULT_LIMITS",
    "AwsSideThrottle",
    "Limit",
    "RateLimiter",
    "TokenBucket",
    "max_rate",
    "rate_lower_bound",
]

_READ_PREFIXES = ("Describe", "List", "Get", "Head")


def _mutating(operation: str) -> bool:
    return not operation.startswith(_READ_PREFIXES)


@dataclass(frozen=True)
class Limit:
    """``rate`` tokens/second refill, ``burst`` bucket size; ``mutating_only``: reads are not counted."""

    rate: float
    burst: float
    mutating_only: bool = False


# service -> limit, applied per region (Route53 is global: one bucket).
DEFAULT_LIMITS: dict[str, Limit] = {
    "rds": Limit(rate=12.0, burst=40.0, mutating_only=True),
    "route53": Limit(rate=5.0, burst=5.0),
}


class TokenBucket:
    """A thread-safe token bucket. ``acquire()`` returns the seconds it waited."""

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"token bucket needs rate > 0 and burst >= 1 (got {rate}, {burst})")
        self.rate, self.burst = float(rate), float(burst)
        self._clock, self._sleep = clock, sleep
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def try_acquire(self) -> bool:
        with self._lock:
            self._refill(self._clock())
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True
            return False

    def acquire(self) -> float:
        """Take one token, waiting as long as the refill rate requires (callers queue fairly: each
        reserves its token, so the bucket can go negative and later callers wait longer)."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            self._tokens -= 1.0
            wait = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
        if wait > 0:
            self._sleep(wait)
        return wait


@dataclass
class RateLimiter:
    """Token buckets per service/region, hooked into a ClientProvider's clients."""

    limits: Mapping[str, Limit] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    # Tokens held back from each burst: AWS's bucket started a moment later than ours (or other
    # clients share it), so spending it to the last token would draw a Throttling.
    margin: float = 2.0
    waited: float = 0.0
    _buckets: dict[tuple[str, str], TokenBucket] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _hooked: set[int] = field(default_factory=set, repr=False)

    def bucket(self, service: str, region: str) -> TokenBucket | None:
        limit = self.limits.get(service)
        if limit is None:
            return None
        key = (service, "global" if service == "route53" else region)
        with self._lock:
            if key not in self._buckets:
                burst = max(1.0, limit.burst - self.margin)
                self._buckets[key] = TokenBucket(limit.rate, burst, clock=self.clock, sleep=self.sleep)
            return self._buckets[key]

    def before_call(self, service: str, region: str, operation: str) -> None:
        """Block until ``service:operation`` in ``region`` may be sent."""
        limit = self.limits.get(service)
        if limit is None or (limit.mutating_only and not _mutating(operation)):
            return
        bucket = self.bucket(service, region)
        if bucket is not None:
            waited = bucket.acquire()
            if waited:
                with self._lock:
                    self.waited += waited

    def hook_client(self, client: Any, service: str, region: str) -> None:
        """Register the limiter on one botocore client (first, before any recorder)."""
        with self._lock:
            if id(client) in self._hooked:
                return
            self._hooked.add(id(client))

        def hook(model: Any, **_: Any) -> None:
            self.before_call(service, region, model.name)

        # Same event key as the recorder's hook, registered first: the limiter runs before it.
        client.meta.events.register_first("before-parameter-build.*.*", hook)

    def attach(self, provider: ClientProvider) -> ClientProvider:
        """Limit every client ``provider`` has built or will build. Returns ``provider``."""
        for (service, region), built in list(provider._clients.items()):
            self.hook_client(built, service, region)
        if getattr(provider, "_dr_rate_limiter", None) is self:
            return provider
        original = provider.client

        def client(service: str, region: str) -> Any:
            c = original(service, region)
            self.hook_client(c, service, region)
            return c

        # An instance attribute shadows the method for this provider only.
        setattr(provider, "client", client)  # noqa: B010
        setattr(provider, "_dr_rate_limiter", self)  # noqa: B010
        return provider


# ---------------------------------------------------------------------------------------------
# Measuring (from CallRecorder timestamps) and the lower bound a fleet run can reach
# ---------------------------------------------------------------------------------------------


def _matches(call: ApiCall, service: str, limit: Limit) -> bool:
    return call.service == service and (not limit.mutating_only or call.mutating)


def max_rate(calls: Iterable[ApiCall], service: str, limit: Limit, *, window: float = 1.0) -> int:
    """The most ``service`` calls (counted as ``limit`` counts them) in any ``window`` seconds."""
    times = sorted(c.at for c in calls if _matches(c, service, limit))
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def rate_lower_bound(calls: Iterable[ApiCall], limits: Mapping[str, Limit]) -> float:
    """Seconds the calls need at least under ``limits`` (per service: (count - burst) / rate)."""
    calls = list(calls)
    bound = 0.0
    for service, limit in limits.items():
        count = sum(1 for c in calls if _matches(c, service, limit))
        bound = max(bound, max(0.0, count - limit.burst) / limit.rate)
    return bound


# ---------------------------------------------------------------------------------------------
# Simulated AWS-side throttling (tests, benchmark)
# ---------------------------------------------------------------------------------------------

_ERROR_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>'
    "<Message>{message}</Message></Error><RequestId>dr-toolkit-simulated</RequestId></ErrorResponse>"
)


@dataclass
class AwsSideThrottle:
    """Answers like AWS does when a limit is exceeded (a botocore ``before-send`` hook).

    ``limits``: per service (as :data:`DEFAULT_LIMITS`). ``zone_write_seconds``: how long a Route53
    change keeps its zone busy; another write to that zone meanwhile gets ``PriorRequestNotComplete``.
    ``throttled`` counts the error responses sent, by code.
    """

    limits: Mapping[str, Limit] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    zone_write_seconds: float = 0.2
    clock: Callable[[], float] = time.monotonic
    throttled: dict[str, int] = field(default_factory=dict)
    _buckets: dict[tuple[str, str], TokenBucket] = field(default_factory=dict, repr=False)
    _zone_busy: dict[str, float] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _error(self, code: str, message: str) -> Any:
        from botocore.awsrequest import AWSResponse

        body = _ERROR_XML.format(code=code, message=message).encode()
        with self._lock:
            self.throttled[code] = self.throttled.get(code, 0) + 1

        class _Raw:
            def stream(self, **_: Any) -> Iterable[bytes]:
                yield body

        return AWSResponse("https://simulated.invalid/", 400, {"Content-Type": "text/xml"}, _Raw())

    def decide(
        self, service: str, region: str, operation: str, body: bytes | str | None = None
    ) -> str | None:
        """The error code AWS would answer with, or None to let the call through."""
        if service == "route53" and operation == "ChangeResourceRecordSets":
            zone = _zone_of(body)
            now = self.clock()
            with self._lock:
                if self._zone_busy.get(zone, 0.0) > now:
                    return "PriorRequestNotComplete"
                self._zone_busy[zone] = now + self.zone_write_seconds
        limit = self.limits.get(service)
        if limit is None or (limit.mutating_only and not _mutating(operation)):
            return None
        key = (service, "global" if service == "route53" else region)
        with self._lock:
            if key not in self._buckets:
                self._buckets[key] = TokenBucket(limit.rate, limit.burst, clock=self.clock)
            bucket = self._buckets[key]
        return None if bucket.try_acquire() else "Throttling"

    def hook_client(self, client: Any, service: str, region: str) -> None:
        def hook(request: Any, **kw: Any) -> Any:
            event = str(kw.get("event_name", ""))
            operation = event.rsplit(".", 1)[-1]
            code = self.decide(service, region, operation, getattr(request, "url", ""))
            if code is None:
                return None
            # Point the request nowhere, so no later handler (moto's stubber) executes it: the call
            # is rejected before it reaches the service, as AWS does.
            request.url = "https://throttled.dr-toolkit.invalid/"
            return self._error(
                code,
                "Rate exceeded"
                if code == "Throttling"
                else "The request was rejected because Route 53 was still processing a prior request.",
            )

        client.meta.events.register_first(
            f"before-send.{client.meta.service_model.service_id.hyphenize()}.*", hook
        )

    def attach(self, provider: ClientProvider) -> ClientProvider:
        seen: set[int] = set()
        for (service, region), built in list(provider._clients.items()):
            seen.add(id(built))
            self.hook_client(built, service, region)
        original = provider.client

        def client(service: str, region: str) -> Any:
            c = original(service, region)
            if id(c) not in seen:
                seen.add(id(c))
                self.hook_client(c, service, region)
            return c

        setattr(provider, "client", client)  # noqa: B010
        return provider


def _zone_of(url: bytes | str | None) -> str:
    text = url.decode() if isinstance(url, bytes) else str(url or "")
    marker = "/hostedzone/"
    if marker in text:
        return text.split(marker, 1)[1].split("/", 1)[0]
    return "?"
