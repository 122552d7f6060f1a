"""The sandbox's DNS resolver: answers the public name the way Route53 failover routing would.

For a name with failover records, the answer is the PRIMARY record while its health check is
healthy, else the SECONDARY if healthy; when every record is unhealthy Route53 answers the
PRIMARY (it treats "all unhealthy" as "all healthy"). A record without a health check is healthy;
a *disabled* health check counts healthy and an *inverted* one is flipped (as Route53 does). Health
is what Route53's checkers concluded (:class:`dr.sandbox.fakeaws.health_checks.HealthEvaluator`, with the
profile's evaluation delay), not the instantaneous truth.

Answers are cached per name for the record's TTL, scaled by the latency profile (``none``: no
caching; ``fast``: 0.2 s; ``realistic``: ``ttl × time_scale``), so a drill sees the stale answer a
real resolver would keep after a failover.

Records are read from moto's Route53 backend in this process (drills change them through the API).
:class:`ResolverServer` serves ``GET /resolve?name=<name>`` on 127.0.0.1 (JSON); the answer carries
the region and that region's health URL, so probes can follow "the public endpoint".
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from dr.sandbox.latency import FAST_SECONDS

if TYPE_CHECKING:
    from dr.sandbox.latency import LatencyProfile
    from dr.topology import Estate


class NoSuchName(LookupError):
    """NXDOMAIN: no record for the name."""


@dataclass(frozen=True)
class Answer:
    name: str
    value: str
    type: str
    region: str | None
    failover: str | None
    set_identifier: str | None
    health_url: str | None
    ttl: int
    cached: bool
    resolved_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Candidate:
    """One record set as the resolver sees it (decoupled from moto for unit tests)."""

    value: str
    type: str
    ttl: int
    failover: str | None
    set_identifier: str | None
    health_check_id: str | None


def cache_seconds(ttl: int, profile: LatencyProfile) -> float:
    """How long a resolver keeps an answer under a latency profile."""
    if profile.name == "none":
        return 0.0
    if profile.name == "fast":
        return FAST_SECONDS
    return ttl * profile.time_scale


def choose(candidates: list[Candidate], healthy: Callable[[str], bool]) -> Candidate | None:
    """Route53 failover choice among the record sets of one name/type."""
    if not candidates:
        return None
    failover = [c for c in candidates if c.failover in ("PRIMARY", "SECONDARY")]
    if not failover:
        return candidates[0]

    def ok(c: Candidate) -> bool:
        return c.health_check_id is None or healthy(c.health_check_id)

    primary = next((c for c in failover if c.failover == "PRIMARY"), None)
    secondary = next((c for c in failover if c.failover == "SECONDARY"), None)
    if primary is not None and ok(primary):
        return primary
    if secondary is not None and ok(secondary):
        return secondary
    return primary or secondary


def moto_candidates(name: str) -> list[Candidate]:
    """The CNAME/A record sets for ``name`` in moto's Route53 (this process)."""
    from dr.sandbox.fakeaws.backends import route53_backend

    wanted = name.rstrip(".").lower()
    out: list[Candidate] = []
    backend = route53_backend()
    for zone in list(backend.zones.values()):
        for rr in list(zone.rrsets):
            if rr.name.rstrip(".").lower() != wanted or rr.type not in ("CNAME", "A", "AAAA"):
                continue
            if rr.alias_target:
                value = str(rr.alias_target.get("DNSName", "")).rstrip(".")
            else:
                value = str(rr.records[0]) if rr.records else ""
            out.append(
                Candidate(
                    value=value,
                    type=rr.type,
                    ttl=int(rr.ttl or 60),
                    failover=rr.failover,
                    set_identifier=rr.set_identifier,
                    health_check_id=rr.health_check_id,
                )
            )
    return out


class Resolver:
    """Failover-routing resolver with a TTL cache. Thread-safe."""

    def __init__(
        self,
        profile: LatencyProfile,
        healthy: Callable[[str], bool],
        *,
        regions_by_value: dict[str, str] | None = None,
        health_urls: dict[str, str] | None = None,
        candidates: Callable[[str], list[Candidate]] = moto_candidates,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.profile = profile
        self.healthy = healthy
        self.regions_by_value = {k.rstrip(".").lower(): v for k, v in (regions_by_value or {}).items()}
        self.health_urls = dict(health_urls or {})
        self.candidates = candidates
        self.clock = clock
        self._cache: dict[str, tuple[float, Answer]] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_estate(
        cls,
        estate: Estate,
        profile: LatencyProfile,
        healthy: Callable[[str], bool],
        alb_dns: dict[str, str],
        health_urls: dict[str, str] | None = None,
    ) -> Resolver:
        """``alb_dns``: region -> the ALB DNS name its failover record points at."""
        return cls(
            profile,
            healthy,
            regions_by_value={dns: region for region, dns in alb_dns.items()},
            health_urls=health_urls,
        )

    def flush(self) -> None:
        with self._lock:
            self._cache.clear()

    def resolve(self, name: str) -> Answer:
        key = name.rstrip(".").lower()
        now = self.clock()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > now:
                cached = hit[1]
                return Answer(**{**cached.to_dict(), "cached": True})
        chosen = choose(self.candidates(key), self.healthy)
        if chosen is None:
            raise NoSuchName(name)
        region = self.regions_by_value.get(chosen.value.rstrip(".").lower())
        answer = Answer(
            name=key,
            value=chosen.value,
            type=chosen.type,
            region=region,
            failover=chosen.failover,
            set_identifier=chosen.set_identifier,
            health_url=self.health_urls.get(region) if region else None,
            ttl=chosen.ttl,
            cached=False,
            resolved_at=time.time(),
        )
        hold = cache_seconds(chosen.ttl, self.profile)
        if hold > 0:
            with self._lock:
                self._cache[key] = (now + hold, answer)
        return answer


class ResolverServer:
    """``GET /resolve?name=...`` -> JSON :class:`Answer` (404 for NXDOMAIN), on 127.0.0.1.

    With ``health``, also ``GET /regions/<region>/<health path>``: 200 when ``health(region)``,
    else 503 — the region's /health as the public endpoint would answer it.
    """

    def __init__(
        self,
        resolver: Resolver,
        host: str = "127.0.0.1",
        port: int = 0,
        health: Callable[[str], bool] | None = None,
    ) -> None:
        self.resolver = resolver
        handler = _handler(resolver, health)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="sandbox-resolver",
            daemon=True,
        )

    def start(self) -> ResolverServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"


def _handler(resolver: Resolver, health: Callable[[str], bool] | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def _send(self, status: int, data: dict[str, Any]) -> None:
            body = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            parts = url.path.strip("/").split("/")
            if health is not None and len(parts) >= 3 and parts[0] == "regions":
                ok = health(parts[1])
                self._send(200 if ok else 503, {"region": parts[1], "healthy": ok})
                return
            if url.path != "/resolve":
                self._send(404, {"error": f"unknown path {url.path}; use /resolve?name=<name>"})
                return
            name = (parse_qs(url.query).get("name") or [""])[0]
            if not name:
                self._send(400, {"error": "missing ?name="})
                return
            try:
                self._send(200, resolver.resolve(name).to_dict())
            except NoSuchName:
                self._send(404, {"error": "NXDOMAIN", "name": name})

    return Handler
