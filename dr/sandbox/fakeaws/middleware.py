"""The realism layer: a WSGI middleware around moto adding what moto lacks (see docs/sandbox.md).

* **Transitions** — statuses change over time, with durations from the
  :class:`~dr.sandbox.latency.LatencyProfile`: RDS promote (``modifying``; the instance stays a
  replica until the transition ends, then moto's promote is applied), snapshots / copies /
  restores (``creating``), reboot (``rebooting``), modify (``modifying``), EKS
  ``UpdateNodegroupConfig`` (``UPDATING``; the nodes join ``eks.node_ready`` later), ElastiCache
  modify / ``TestFailover`` (``modifying``), Route53 changes (``PENDING`` → ``INSYNC`` via
  ``GetChange``). The transition table (:mod:`~dr.sandbox.fakeaws.transitions`) is thread-safe;
  statuses are set on moto's own model objects, so every API view and waiter agrees.
* **Validations** real AWS performs and moto does not: promoting a non-replica or a busy instance,
  PITR outside the restorable window, duplicate Route53 ``CREATE``, Route53 change batches over
  1,000 ResourceRecord elements or 32,000 Value characters (UPSERT counting twice), deleting a snapshot that is
  still being created or restored from, changing a nodegroup that is still ``UPDATING``.
* **Faults** (:mod:`~dr.sandbox.fakeaws.faults`): throttling and 5xx at a rate, per
  region/service/operation, and a whole region unreachable (its requests' connections are dropped
  or hang; its per-region port is closed). Region is read from the SigV4 credential scope.
* **Hooks**: other sandbox parts react to AWS calls (:meth:`Realism.on`), the RDS endpoint is
  rewritten to the real local PostgreSQL (``endpoint_fn``), ``GetHealthCheckStatus`` answers from
  the health evaluator, ``ReplicaLag`` is published from the measured lag.

A request signed for ``(service, operation)`` goes to the handler of :data:`HANDLERS`, which each
service module (``rds_ops``, ``eks_ops`` …) exports as its dispatch table; a handler answering
None lets moto answer. moto is imported lazily (only the sandbox process needs it).
"""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs, urlencode

from dr.sandbox.fakeaws import (
    cloudwatch_ops,
    eks_ops,
    elasticache_ops,
    iam_ops,
    rds_backup_ops,
    rds_ops,
    route53_ops,
    sts_ops,
)
from dr.sandbox.fakeaws.backends import install_route53_batch_as_whole, route53_backend
from dr.sandbox.fakeaws.faults import FaultRule, Faults
from dr.sandbox.fakeaws.health_checks import NO_ANSWER, HealthEvaluator, HealthProbe
from dr.sandbox.fakeaws.layer import Handler, SeedingHandler
from dr.sandbox.fakeaws.rds_state import RdsState, ReplicatedWindowFn
from dr.sandbox.fakeaws.transitions import Transition, Transitions
from dr.sandbox.fakeaws.wire import (
    AwsError,
    Reply,
    denied_reply,
    parse_request,
    read_body,
    server_error_reply,
    throttle_reply,
)
from dr.sandbox.latency import LatencyProfile

if TYPE_CHECKING:
    from dr.sandbox.server import WSGIApp
    from dr.topology import Estate

log = logging.getLogger("dr.sandbox.fakeaws")

Hook = Callable[..., None]

HANDLERS: dict[tuple[str, str], Handler] = {
    **rds_ops.HANDLERS,
    **rds_backup_ops.HANDLERS,
    **eks_ops.HANDLERS,
    **elasticache_ops.HANDLERS,
    **route53_ops.HANDLERS,
    **cloudwatch_ops.HANDLERS,
    **sts_ops.HANDLERS,
    **iam_ops.HANDLERS,
}
# While seeding the layer is off, except for moto's bugs and the operations moto lacks entirely.
SEEDING_HANDLERS: dict[tuple[str, str], SeedingHandler] = {
    **rds_ops.SEEDING_HANDLERS,
    **rds_backup_ops.SEEDING_HANDLERS,
}


class Realism:
    """WSGI middleware over moto: transitions, validations, faults and hooks.

    Construct it, pass :meth:`middleware` to :class:`dr.sandbox.server.MotoServer`, then
    :meth:`start`. Other components register ``endpoint_fn`` (local PostgreSQL host/port per RDS
    instance), ``lag_fn`` (measured replica lag), ``health_probe`` and hooks with :meth:`on`:

    ============================  =====================================================
    event                          keyword arguments
    ============================  =====================================================
    ``rds.promoted``               region, identifier (after the transition; moto updated)
    ``rds.restored``               region, identifier, source, restore_time (datetime|None),
                                   use_latest (bool) — PITR, when the new instance is available
    ``rds.restored_from_snapshot`` region, identifier, snapshot
    ``rds.snapshot_created``       region, identifier (instance), snapshot
    ``rds.snapshot_copied``        region (destination), snapshot, source
    ``rds.rebooted``               region, identifier, failover (bool)
    ``rds.modified``               region, identifier, params (may hold MasterUserPassword)
    ``rds.deleted``                region, identifier
    ``eks.nodes_ready``            region, cluster, nodegroup, nodes
    ``elasticache.failover``       region, replication_group
    ``route53.changed``            change_id, changes (list of dicts)
    ``region.down`` / ``region.up``  region
    ============================  =====================================================
    """

    def __init__(
        self,
        estate: Estate | None = None,
        profile: LatencyProfile | None = None,
        *,
        seed: int | None = None,
    ) -> None:
        self.estate = estate
        self.profile = profile or LatencyProfile()
        self._initial_overrides = dict(self.profile.overrides)
        self.faults = Faults(seed)
        self.transitions = Transitions()
        self.hooks: dict[str, list[Hook]] = {}
        self.endpoint_fn: Callable[[str, str], tuple[str, int] | None] | None = None
        self.lag_fn: Callable[[str, str], float | None] | None = None  # (region, identifier)
        self.health_probe: HealthProbe | None = None
        self.health: HealthEvaluator | None = None
        self.enabled = True  # False while seeding: no transitions, no faults
        # path prefix -> handler(method, path, params) returning JSON-able data (manager adds some)
        self.admin_handlers: dict[str, Callable[[str, str, dict[str, Any]], Any]] = {}
        self._inner: WSGIApp | None = None
        self.changes: dict[str, Transition] = {}  # Route53 change id -> its INSYNC transition
        self._nodes: dict[tuple[str, str, str], int] = {}  # effective Ready nodes per nodegroup
        self.lock = threading.Lock()  # guards changes and _nodes
        self._stop = threading.Event()
        self._pump: threading.Thread | None = None
        self.rds = RdsState.for_profile(self.profile)  # what the fake keeps about RDS beside moto

    @property
    def replicated_lag(self) -> float:
        """How far the DR region's copy of the automated backups trails (``rds.replicated_backup_lag``)."""
        return self.rds.replicated_lag

    @property
    def replicated_window_fn(self) -> ReplicatedWindowFn | None:
        return self.rds.replicated_window_fn

    @replicated_window_fn.setter
    def replicated_window_fn(self, fn: ReplicatedWindowFn | None) -> None:
        self.rds.replicated_window_fn = fn

    # -- wiring ------------------------------------------------------------------------------
    def middleware(self, app: WSGIApp) -> WSGIApp:
        self._inner = app
        install_route53_batch_as_whole()
        return self

    def start(self) -> None:
        self.transitions.start()
        regions = list(self.estate.regions) if self.estate else []
        if regions:
            self.health = HealthEvaluator(
                regions, self._probe, lambda: self.profile.duration("route53.health_eval"), interval=0.5
            )
            self.health.start()
        self._pump = threading.Thread(target=self._metrics_loop, name="sandbox-metrics", daemon=True)
        self._pump.start()

    def stop(self) -> None:
        self._stop.set()
        self.transitions.stop()
        if self.health:
            self.health.stop()
        if self._pump:
            self._pump.join(timeout=5)

    def on(self, event: str, fn: Hook) -> None:
        self.hooks.setdefault(event, []).append(fn)

    def emit(self, event: str, **kwargs: Any) -> None:
        for fn in list(self.hooks.get(event, [])):
            try:
                fn(**kwargs)
            except Exception:
                log.exception("hook %s failed", event)

    @contextmanager
    def disabled(self) -> Iterator[None]:
        """Seeding: let requests through untouched (no transitions, faults or validations)."""
        previous, self.enabled = self.enabled, False
        try:
            yield
        finally:
            self.enabled = previous

    def region_down(self, region: str, mode: Literal["refuse", "hang"] = "refuse") -> None:
        """Lose a region: its AWS API unreachable (port closed, connections dropped) and the
        ``region.down`` hook (the manager kills the region's databases; /health fails)."""
        self.faults.set_region_down(region, mode)
        self.emit("region.down", region=region)

    def region_up(self, region: str) -> None:
        """The region's API answers again (databases killed by region_down stay down)."""
        self.faults.set_region_up(region)
        self.emit("region.up", region=region)

    def _probe(self, region: str) -> bool | tuple[bool, str]:
        if self.faults.region_down(region):
            return False, NO_ANSWER
        return self.health_probe(region) if self.health_probe else True

    # -- capacity for the fake Kubernetes API ---------------------------------------------------
    def set_nodes(self, region: str, cluster: str, nodegroup: str, nodes: int) -> None:
        with self.lock:
            self._nodes[(region, cluster, nodegroup)] = nodes

    def nodes(self, region: str, cluster: str, nodegroup: str) -> int:
        with self.lock:
            return self._nodes.get((region, cluster, nodegroup), 0)

    def capacity(self, cluster_name: str) -> int:
        """Pods the cluster's nodegroup can hold now (Ready nodes × pods per node); 0 if its region is down."""
        if self.estate is None:
            return 0
        for view in (self.estate.primary, self.estate.secondary):
            if view.cluster.name == cluster_name:
                if self.faults.region_down(view.region):
                    return 0
                ng = view.cluster.nodegroup
                return self.nodes(view.region, cluster_name, ng.name) * ng.pods_per_node
        return 0

    # -- WSGI ---------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_sandbox/"):
            return self._respond(start_response, self._admin(environ))
        req = parse_request(environ)
        if req is None:
            return self._forward(environ, start_response)
        key = (req.service, req.operation)
        if not self.enabled:
            seeding = SEEDING_HANDLERS.get(key)
            if seeding is None:
                return self._forward(environ, start_response)
            try:
                return self._respond(start_response, seeding(self, req, environ))
            except AwsError as err:
                return self._respond(start_response, err.reply.render(req.protocol))
        fault = self.faults.pick(req)
        if fault is not None:
            if fault.kind == "unreachable":
                return self._drop(environ, fault)
            if fault.kind == "denied":
                return self._respond(start_response, denied_reply(req, fault.code).render(req.protocol))
            reply = (
                throttle_reply(req.service, req.protocol)
                if fault.kind == "throttle"
                else server_error_reply(req.service)
            )
            return self._respond(start_response, reply.render(req.protocol))
        handler = HANDLERS.get(key)
        try:
            if handler is not None:
                result = handler(self, req, environ)
                if result is not None:
                    return self._respond(start_response, result)
            return self._forward(environ, start_response)
        except AwsError as err:
            return self._respond(start_response, err.reply.render(req.protocol))

    def _drop(self, environ: dict[str, Any], rule: FaultRule) -> Iterable[bytes]:
        if rule.mode == "hang":
            self._stop.wait(rule.hang_seconds)
        sock = environ.get("werkzeug.socket")
        if sock is not None:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        raise ConnectionAbortedError(f"sandbox: region {rule.region} is unreachable")

    @staticmethod
    def _respond(start_response: Callable[..., Any], reply: Reply) -> Iterable[bytes]:
        status, headers, body = reply
        start_response(f"{status} {REASONS.get(status, 'Error')}", headers)
        return [body]

    def _forward(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        assert self._inner is not None, "Realism.middleware() was not applied"
        return self._inner(environ, start_response)

    def call_inner(self, environ: dict[str, Any], body: bytes | None = None, **overrides: str) -> Reply:
        """Send a (possibly rewritten) request to moto and collect the reply."""
        env = dict(environ)
        env.update(overrides)
        if body is not None:
            env["wsgi.input"] = io.BytesIO(body)
            env["CONTENT_LENGTH"] = str(len(body))
        else:
            read_body(environ)
            env["wsgi.input"] = environ["wsgi.input"]
        captured: dict[str, Any] = {}

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            captured["status"] = int(status.split()[0])
            captured["headers"] = list(headers)

        assert self._inner is not None
        chunks = self._inner(env, start)
        try:
            data = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(data))))
        return captured["status"], headers, data

    def query(self, environ: dict[str, Any], params: dict[str, str]) -> Reply:
        return self.call_inner(
            environ,
            urlencode(params).encode(),
            CONTENT_TYPE="application/x-www-form-urlencoded; charset=utf-8",
        )

    # -- admin ---------------------------------------------------------------------------------
    def _admin(self, environ: dict[str, Any]) -> Reply:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET").upper()
        body = read_body(environ)
        try:
            payload = json.loads(body) if body else {}
            query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
            data = self.admin(method, path.removeprefix("/_sandbox"), payload, query)
            return json_reply(200, data)
        except KeyError as exc:
            return json_reply(404, {"error": str(exc)})
        except (ValueError, TypeError) as exc:
            return json_reply(400, {"error": str(exc)})

    def admin(self, method: str, path: str, payload: dict[str, Any], query: dict[str, Any]) -> Any:
        """The admin API (also reachable over HTTP under ``/_sandbox``)."""
        for prefix, handler in self.admin_handlers.items():
            if path.startswith(prefix):
                return handler(method, path, payload | query)
        if path == "/faults" and method == "GET":
            return {
                "rules": [r.to_dict() for r in self.faults.rules()],
                "injected": dict(self.faults.injected),
            }
        if path == "/faults" and method == "POST":
            rules = payload.get("rules", [payload] if payload else [])
            if payload.get("replace"):
                self.faults.clear()
            added = [self.faults.add(FaultRule.from_dict(r)).to_dict() for r in rules]
            return {"added": added}
        if path == "/faults" and method == "DELETE":
            if "id" in query:
                return {"removed": self.faults.remove(query["id"])}
            self.faults.clear()
            return {"cleared": True}
        m = re.match(r"^/regions/([a-z0-9-]+)/(down|up)$", path)
        if m and method == "POST":
            region, what = m.groups()
            if self.estate is not None and region not in self.estate.regions:
                raise KeyError(f"region {region!r} is not in the estate ({', '.join(self.estate.regions)})")
            if what == "down":
                self.region_down(region, payload.get("mode", "refuse"))
            else:
                self.region_up(region)
            return {"region": region, "down": self.faults.region_down(region)}
        if path == "/transitions" and method == "GET":
            return {"active": [t.to_dict() for t in self.transitions.active()]}
        if path == "/transitions/fast-forward" and method == "POST":
            return {"completed": self.transitions.fast_forward(str(payload.get("kind", "")))}
        if path == "/latency" and method == "GET":
            return {
                "profile": self.profile.name,
                "time_scale": self.profile.time_scale,
                "overrides": self.profile.overrides,
            }
        if path == "/latency" and method == "POST":
            overrides = {str(k): float(v) for k, v in dict(payload.get("overrides") or {}).items()}
            if any(v < 0 for v in overrides.values()):
                raise ValueError("latency overrides must be >= 0 seconds")
            self.profile = replace(self.profile, overrides={**self.profile.overrides, **overrides})
            return {"overrides": self.profile.overrides}
        if path == "/latency" and method == "DELETE":
            self.profile = replace(self.profile, overrides=dict(self._initial_overrides))
            return {"overrides": self.profile.overrides}
        if path == "/health-checks":
            return self.health.snapshot() if self.health else {}
        if path == "/capacity" and self.estate is not None:
            return {
                v.cluster.name: self.capacity(v.cluster.name)
                for v in (self.estate.primary, self.estate.secondary)
            }
        raise KeyError(f"no admin endpoint {method} /_sandbox{path}")

    # -- Route53 health checks: what the resolver and GetHealthCheckStatus see ------------------
    def health_check_region(self, health_check_id: str) -> str | None:
        """The estate region a Route53 health check watches (by its CallerReference)."""
        if self.estate is None:
            return None
        hc = route53_backend().health_checks.get(health_check_id)
        if hc is None:
            return None
        for view in (self.estate.primary, self.estate.secondary):
            if hc.caller_reference == self.estate.health_check_ref(view):
                return view.region
        return None

    def health_check_healthy(self, health_check_id: str) -> bool:
        """Routing view of a health check: Disabled counts healthy, Inverted flips (as Route53 does)."""
        hc = route53_backend().health_checks.get(health_check_id)
        if hc is None:
            return False
        if hc.disabled:
            return True
        region = self.health_check_region(health_check_id)
        raw = self.health.healthy(region) if (self.health and region) else True
        return (not raw) if hc.inverted else raw

    # -- CloudWatch ReplicaLag -----------------------------------------------------------------
    def publish_replica_lag(self) -> None:
        """Put each replica's measured lag into moto's CloudWatch (``AWS/RDS ReplicaLag``)."""
        cloudwatch_ops.publish_replica_lag(self)

    def _metrics_loop(self) -> None:
        while not self._stop.wait(1.0):
            if not self.enabled:
                continue
            try:
                self.publish_replica_lag()
            except Exception:
                log.exception("publishing ReplicaLag failed")


REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def json_reply(status: int, data: Any) -> Reply:
    body = json.dumps(data, default=str).encode()
    return status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))], body
