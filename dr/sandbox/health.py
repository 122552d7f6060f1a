"""Per-region ``/health`` endpoints of the sandbox: what Route53 health checks and drills probe.

:class:`RegionHealthServer` serves, on ``127.0.0.1:<ephemeral port>`` (threaded, stdlib
``http.server``):

* ``GET <health_path>`` (the estate's ``app.healthPath``, ``/health`` by default) — **200** with a JSON body when the region has at least one Ready API pod *and*
  its DB secret points at a database that is really writable (``pg_is_in_recovery()`` is false and
  an upsert into ``dr_health_heartbeat`` succeeds, with short timeouts); otherwise **503** with
  the reasons. ``HEAD`` answers the same status without a body; any other path is **404**, as
  the application's router would answer it.
* ``POST /write`` — inserts one row into ``dr_write_probe`` through the same DB URL and returns
  ``{"id": ..., "ts": ...}`` (200), or 503 with the reason: drills measure RTO as "healthy *and* a
  write succeeds".

The manager supplies the region's state as callables (``ready_pods() -> int``,
``database_url() -> str | None``, read from the fake Kubernetes API), so the endpoint always
reflects the live estate. :meth:`RegionHealthServer.take_down` makes the region unreachable
(connections refused) for region-loss drills; :meth:`RegionHealthServer.bring_up` restores it on
the same port. The DB URL and its password never appear in responses or logs: errors are reduced
to their first line with the password and URL scrubbed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

HEARTBEAT_TABLE = "dr_health_heartbeat"
WRITE_PROBE_TABLE = "dr_write_probe"


@dataclass
class HealthResult:
    """Outcome of one health evaluation (JSON-ready through :meth:`to_dict`)."""

    region: str
    healthy: bool
    reasons: list[str] = field(default_factory=list)
    ready_pods: int | None = None
    database: dict[str, Any] = field(default_factory=dict)
    checked_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "status": "healthy" if self.healthy else "unhealthy",
            "healthy": self.healthy,
            "reasons": self.reasons,
            "checks": {"pods": {"ready": self.ready_pods}, "database": self.database},
            "checked_at": self.checked_at,
        }


class DatabaseUnavailable(Exception):
    """The database behind the region's secret cannot take writes (message is secret-free)."""


def _endpoint_of(url: str) -> tuple[dict[str, Any], str | None]:
    """(non-secret endpoint fields, password) parsed from a libpq URL/conninfo."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(url)
    except Exception:
        return {}, None
    password = params.get("password")
    endpoint: dict[str, Any] = {k: params[k] for k in ("host", "port", "dbname") if k in params}
    if "port" in endpoint:
        with contextlib.suppress(ValueError):
            endpoint["port"] = int(str(endpoint["port"]))
    return endpoint, (str(password) if password is not None else None)


def _scrub(text: str, url: str, password: str | None) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else "unknown error"
    for secret in (url, password):
        if secret:
            line = line.replace(secret, "***")
    return line[:300]


class RegionHealthServer:
    """HTTP health (``health_path``) + ``/write`` for one region; see the module docstring.

    Args:
        region: the region's name (reported in every body).
        ready_pods: returns how many API pods are Ready in the region's cluster.
        database_url: returns the DB URL the region's secret holds (None: no secret).
        host, port: where to listen (port 0 → ephemeral; kept across take_down/bring_up).
        db_timeout: seconds for connecting and for each statement.
        min_ready_pods: pods needed to be healthy (default 1).
        health_path: the path that answers health (the estate's ``app.healthPath``).

    ``start()`` returns self; ``url`` is ``http://host:port``; ``close()`` stops it for good.
    """

    def __init__(
        self,
        region: str,
        *,
        ready_pods: Callable[[], int],
        database_url: Callable[[], str | None],
        host: str = "127.0.0.1",
        port: int = 0,
        db_timeout: float = 2.0,
        min_ready_pods: int = 1,
        health_path: str = "/health",
    ) -> None:
        self.region = region
        self.health_path = health_path
        self._ready_pods = ready_pods
        self._database_url = database_url
        self.host = host
        self.port = port
        self.db_timeout = db_timeout
        self.min_ready_pods = min_ready_pods
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._down = False
        self._schema_lock = threading.Lock()
        self._schema_ready: set[tuple[Any, ...]] = set()

    def __repr__(self) -> str:
        return f"RegionHealthServer({self.region!r}, {self.url}, down={self._down})"

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def health_url(self) -> str:
        return self.url + self.health_path

    @property
    def is_down(self) -> bool:
        return self._down

    def start(self) -> RegionHealthServer:
        """Listen and serve in a daemon thread; returns self."""
        if self._server is not None:
            return self
        server = ThreadingHTTPServer((self.host, self.port), _make_handler(self))
        server.daemon_threads = True
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"health-{self.region}",
            daemon=True,
        )
        self._thread.start()
        self._down = False
        return self

    def _stop_serving(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def take_down(self) -> None:
        """The region is lost: stop answering (new connections are refused)."""
        self._down = True
        self._stop_serving()

    def bring_up(self) -> None:
        """The region is back: serve again on the same port."""
        if self._server is None:
            self.start()

    def close(self) -> None:
        self._stop_serving()

    def __enter__(self) -> RegionHealthServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- checks --------------------------------------------------------------------------------
    def _connect(self, url: str) -> Any:
        import psycopg

        ms = int(self.db_timeout * 1000)
        return psycopg.connect(
            url,
            connect_timeout=max(2, int(self.db_timeout + 0.999)),
            autocommit=True,
            options=f"-c statement_timeout={ms} -c lock_timeout={ms}",
        )

    def _ensure_table(self, conn: Any, key: tuple[Any, ...], ddl: str) -> None:
        import psycopg

        if key in self._schema_ready:
            return
        with self._schema_lock:
            # Another region's server may create it at the same moment.
            with contextlib.suppress(psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
                conn.execute(ddl)
            self._schema_ready.add(key)

    def check(self) -> HealthResult:
        """Evaluate pods and database now (what ``GET /health`` returns)."""
        result = HealthResult(region=self.region, healthy=False)
        try:
            result.ready_pods = int(self._ready_pods())
        except Exception as exc:
            result.reasons.append(f"could not count ready API pods: {type(exc).__name__}")
        if result.ready_pods is not None and result.ready_pods < self.min_ready_pods:
            result.reasons.append(f"{result.ready_pods} ready API pods (need {self.min_ready_pods})")
        url = self._safe_url()
        if result.reasons:
            # No Ready API pod: the load balancer answers 503 and nothing reaches the database (no
            # write either, so a stopped application really stops writing: replica lag can reach 0).
            result.database = {"ok": False, "checked": False}
        elif url is None:
            result.reasons.append("the region's DB secret holds no database URL")
            result.database = {"ok": False}
        else:
            endpoint, password = _endpoint_of(url)
            result.database = {"ok": False, **endpoint}
            t0 = time.monotonic()
            try:
                self._check_writable(url, endpoint)
                result.database.update(ok=True, writable=True)
            except DatabaseUnavailable as exc:
                result.reasons.append(_scrub(str(exc), url, password))
            except Exception as exc:
                result.reasons.append(f"database unreachable: {_scrub(str(exc), url, password)}")
            result.database["latency_ms"] = round((time.monotonic() - t0) * 1000, 1)
        result.healthy = not result.reasons
        return result

    def ready_pods_now(self) -> int | None:
        """Ready API pods now (None when they cannot be counted)."""
        try:
            return int(self._ready_pods())
        except Exception:
            return None

    def _safe_url(self) -> str | None:
        try:
            return self._database_url()
        except Exception as exc:
            log.debug("health %s: database_url() failed: %s", self.region, type(exc).__name__)
            return None

    def _check_writable(self, url: str, endpoint: dict[str, Any]) -> None:
        with self._connect(url) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            if row and row[0]:
                raise DatabaseUnavailable("database is read-only (a replica in recovery)")
            key = ("hb", *sorted(endpoint.items()))
            self._ensure_table(
                conn,
                key,
                f"CREATE TABLE IF NOT EXISTS {HEARTBEAT_TABLE} (region text PRIMARY KEY, ts timestamptz NOT NULL)",
            )
            conn.execute(
                f"INSERT INTO {HEARTBEAT_TABLE} (region, ts) VALUES (%s, clock_timestamp()) "
                "ON CONFLICT (region) DO UPDATE SET ts = EXCLUDED.ts",
                (self.region,),
            )

    def write_probe(self) -> dict[str, Any]:
        """Insert one row through the region's DB URL; returns ``{"id", "ts", "region"}``.

        Raises DatabaseUnavailable (secret-free message) when the write fails.
        """
        url = self._safe_url()
        if url is None:
            raise DatabaseUnavailable("the region's DB secret holds no database URL")
        endpoint, password = _endpoint_of(url)
        try:
            with self._connect(url) as conn:
                key = ("wp", *sorted(endpoint.items()))
                self._ensure_table(
                    conn,
                    key,
                    f"CREATE TABLE IF NOT EXISTS {WRITE_PROBE_TABLE} "
                    "(id bigserial PRIMARY KEY, region text NOT NULL, ts timestamptz NOT NULL DEFAULT clock_timestamp())",
                )
                row = conn.execute(
                    f"INSERT INTO {WRITE_PROBE_TABLE} (region) VALUES (%s) RETURNING id, ts", (self.region,)
                ).fetchone()
        except Exception as exc:
            raise DatabaseUnavailable(f"write failed: {_scrub(str(exc), url, password)}") from None
        return {"region": self.region, "id": int(row[0]), "ts": row[1].isoformat(), **endpoint}


def _make_handler(owner: RegionHealthServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "dr-sandbox-health/1"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("health %s: " + format, owner.region, *args)

        def _send(self, code: int, body: dict[str, Any] | None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if data and self.command != "HEAD":
                self.wfile.write(data)

        def _health(self) -> None:
            result = owner.check()
            self._send(200 if result.healthy else 503, result.to_dict())

        def do_GET(self) -> None:
            if self.path.split("?")[0] == owner.health_path:
                self._health()
            else:
                self._send(404, {"error": f"no route {self.path.split('?')[0]}"})

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if self.path.split("?")[0] != "/write":
                self._send(404, {"error": f"no route {self.path.split('?')[0]}"})
                return
            pods = owner.ready_pods_now()
            if pods is not None and pods < owner.min_ready_pods:
                self._send(
                    503, {"region": owner.region, "error": f"{pods} ready API pods: nothing serves writes"}
                )
                return
            try:
                self._send(200, owner.write_probe())
            except DatabaseUnavailable as exc:
                self._send(503, {"region": owner.region, "error": str(exc)})

    return Handler
