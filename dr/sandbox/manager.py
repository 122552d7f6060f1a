"""Assemble the whole two-region sandbox in this process (:class:`Sandbox`).

:class:`Sandbox` starts, in this process: the moto server behind the realism layer
(:mod:`dr.sandbox.server`, :mod:`dr.sandbox.fakeaws`), the real PostgreSQL primary + replica
(:mod:`dr.sandbox.postgres`, when its binaries are installed), one fake Kubernetes API per cluster
(:mod:`dr.sandbox.fakekube`), per-region ``/health`` endpoints and the failover resolver
(:mod:`dr.sandbox.resolver`); it seeds moto from the estate (:mod:`dr.sandbox.seed`) and wires the
hooks (an RDS promote promotes PostgreSQL, the RDS endpoint is the local PostgreSQL, ReplicaLag is
the measured lag — :mod:`dr.sandbox.rds_bridge`; the nodegroup's Ready nodes bound the pods, Route53
health follows /health).

:meth:`Sandbox.write_state` writes ``D/state.json`` (the contract of :mod:`dr.target`); running
one as a background process (``dr sandbox up/down/status``) is :mod:`dr.sandbox.daemon`'s job.

moto keeps its state in process-global backends: run at most one :class:`Sandbox` per process, and
never in a process that also uses ``mock_aws`` (the pytest fixture runs it in a subprocess).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from dr.errors import BadInput, OperationFailed
from dr.sandbox.fakeaws.health_checks import NO_ANSWER, http_report
from dr.sandbox.latency import LatencyProfile, profile
from dr.sandbox.rds_bridge import RdsBridge

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.sandbox.fakeaws.middleware import Realism
    from dr.sandbox.resolver import Resolver
    from dr.topology import Estate

log = logging.getLogger("dr.sandbox.manager")

STATE_FILE = "state.json"
PASSWORD_FILE = "db-password"
MARKER = ".dr-sandbox"
STATE_VERSION = 1

Progress = Callable[[str], None]


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def postgres_available() -> tuple[bool, str]:
    """Whether the real PostgreSQL can run here (module present and binaries found)."""
    if not _available("dr.sandbox.postgres"):
        return False, "dr.sandbox.postgres is not installed"
    try:
        from dr.sandbox.pg_server import find_pg_bin

        find_pg_bin()
    except Exception as exc:
        return False, str(exc)
    return True, "ok"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def _poll_until(ready: Callable[[], bool], deadline: float, failure: str) -> None:
    """Poll ``ready`` (0.1 s growing to 1 s) until it holds; OperationFailed(``failure``) at ``deadline``."""
    delay = 0.1
    while not ready():
        if time.monotonic() > deadline:
            raise OperationFailed(failure)
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


class Sandbox:
    """The whole sandbox in this process. Use as a context manager, or ``start()`` / ``stop()``."""

    def __init__(
        self,
        estate: Estate,
        latency: LatencyProfile | str = "none",
        time_scale: float = 1.0,
        *,
        directory: Path | str | None = None,
        postgres: bool | None = None,
        kube: bool = True,
        seed: int | None = None,
    ) -> None:
        self.estate = estate
        self.profile = latency if isinstance(latency, LatencyProfile) else profile(latency, time_scale, seed)
        self._own_dir = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="dr-sandbox-")).absolute()
        self.want_postgres = postgres
        self.want_kube = kube
        self.seed = seed
        self.components: dict[str, str] = {}
        self.realism: Realism | None = None
        self.server: Any = None
        self.pg: Any = None
        self.pg_link: RdsBridge | None = None
        self.kube_apis: dict[str, Any] = {}
        self.resolver: Resolver | None = None
        self.resolver_server: Any = None
        self.health_servers: dict[str, Any] = {}  # region -> RegionHealthServer
        self.seeded: Any = None
        self.kubeconfig: Path | None = None
        self.started_at: float | None = None
        self._password = secrets.token_urlsafe(18)
        self._health_cache: dict[str, tuple[float, tuple[bool, str]]] = {}

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, progress: Progress | None = None) -> Sandbox:
        say = progress or (lambda msg: log.info("%s", msg))
        t0 = time.monotonic()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / MARKER).write_text("created by dr sandbox; removed by `dr sandbox down`\n")
        try:
            self._start(say)
        except BaseException:
            self.stop()
            raise
        self.started_at = time.time()
        self._wait_steady_state(say)
        say(f"ready in {time.monotonic() - t0:.1f}s")
        return self

    def _wait_steady_state(self, say: Progress, timeout: float = 120.0) -> None:
        """Ready means the primary region serves: its API pods became Ready (after the latency
        profile's pod-ready delay) and its /health answers 200 — and CloudWatch already has the
        replica's ReplicaLag, as for any RDS replica in service. Without this, a drill's
        steady-state hypothesis or a test's first probe races the pods, and a planned failover's
        lag gate run right after `sandbox up` finds no datapoint (the metrics loop publishes every
        second, later than that under load)."""
        import urllib.error
        import urllib.request

        region = self.estate.primary.region
        if self.pg is None or self.components.get("kube") != "running" or region not in self.health_servers:
            return  # /health cannot become healthy without both the database and the cluster
        url = self.health_servers[region].health_url
        pg = self.pg

        def healthy() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    return int(resp.status) == 200
            except (urllib.error.URLError, OSError):
                return False

        say(f"waiting for the steady state ({region} /health healthy)")
        deadline = time.monotonic() + timeout
        _poll_until(
            healthy, deadline, f"sandbox: {region} /health did not become healthy within {timeout:.0f}s"
        )
        if self.realism is not None:
            _poll_until(
                lambda: pg.lag_seconds("replica") is not None,
                deadline,
                f"sandbox: the replica did not stream within {timeout:.0f}s",
            )
            self.realism.publish_replica_lag()

    def _start(self, say: Progress) -> None:
        from dr.sandbox.fakeaws.middleware import Realism
        from dr.sandbox.server import MotoServer

        estate = self.estate
        pg_thread: threading.Thread | None = None
        pg_error: list[BaseException] = []
        use_pg = self.want_postgres
        reason = "disabled"
        if use_pg is None or use_pg:
            ok, reason = postgres_available()
            if use_pg and not ok:
                raise BadInput(f"sandbox: real PostgreSQL requested but unavailable: {reason}")
            use_pg = ok
        if use_pg:
            say("starting PostgreSQL primary + streaming replica")
            pg_thread = threading.Thread(target=self._start_pg, args=(pg_error,), name="sandbox-pg-start")
            pg_thread.start()
        else:
            self.components["postgres"] = f"unavailable: {reason}"

        say("starting moto server")
        self.realism = Realism(estate, self.profile, seed=self.seed)
        self.server = MotoServer(middleware=self.realism.middleware, regions=estate.regions).start()
        self.components["moto"] = "running"
        server = self.server
        # An unreachable region also closes its own endpoint: connections there are refused.
        self.realism.faults.listeners.append(lambda region, up: server.set_region_listening(region, up))

        say("seeding both regions from the estate")
        from dr.sandbox.seed import DbEndpoint, seed_estate

        def databases() -> dict[str, DbEndpoint] | None:
            if pg_thread is None:
                return None
            pg_thread.join()
            if pg_error:
                raise OperationFailed(f"sandbox: PostgreSQL failed to start: {pg_error[0]}") from pg_error[0]
            self.components["postgres"] = "running"
            self.pg_link = RdsBridge(self.pg, estate)
            self.pg_link.on_password_changed = self._password_changed
            out = {}
            for view, name in ((estate.primary, "primary"), (estate.secondary, "replica")):
                host, port = self.pg.endpoint(name)
                out[view.region] = DbEndpoint(str(host), int(port), self._password)
            return out

        with self.realism.disabled():
            self.seeded = seed_estate(
                estate, self.clients(max_attempts=2), databases, password=self._password
            )
        if pg_thread is not None:
            databases()  # joins (and raises) even if seeding never asked
        for view in (estate.primary, estate.secondary):
            ng = view.cluster.nodegroup
            self.realism.set_nodes(view.region, view.cluster.name, ng.name, ng.desired_size)
        if self.pg_link is not None:
            self.pg_link.wire(self.realism)
        self.realism.health_probe = self._region_health

        if self.want_kube and _available("dr.sandbox.fakekube"):
            say("starting the fake Kubernetes APIs")
            self._start_kube()
        else:
            self.components["kube"] = (
                "unavailable: dr.sandbox.fakekube is not installed" if self.want_kube else "disabled"
            )

        say("starting the resolver and health endpoints")
        if self.kube_apis and self.pg is not None and _available("dr.sandbox.health"):
            self._start_health_servers()
        else:
            self.components["health"] = "built-in (resolver /regions/<region>/health)"
        self._start_resolver()
        self.realism.admin_handlers["/state"] = lambda method, path, params: self.state()
        self.realism.admin_handlers["/ready"] = lambda method, path, params: {"ready": True}
        self.realism.admin_handlers["/postgres"] = self._admin_postgres
        self.realism.admin_handlers["/resolve"] = lambda method, path, params: self._resolve(params)
        self.realism.start()

    def _start_pg(self, errors: list[BaseException]) -> None:
        try:
            from dr.sandbox.postgres import PostgresEstate

            app = self.estate.app.database
            self.pg = PostgresEstate(
                self.directory,
                self.profile,
                dbname=app.db_name,
                username=app.username,
                password=self._password,
            ).start()
        except BaseException as exc:
            errors.append(exc)

    def _start_kube(self) -> None:
        from dr.sandbox.fakekube import FakeKubeApi, seed_site, write_kubeconfig

        assert self.realism is not None
        for view in (self.estate.primary, self.estate.secondary):
            api = FakeKubeApi(
                view.cluster.name,
                latency=self.profile,
                capacity_fn=self.realism.capacity,
                pods_per_node=view.cluster.nodegroup.pods_per_node,
                region=view.region,
            ).start()
            self.kube_apis[view.cluster.name] = api
            seed_site(api, self.estate, view, self._database_url(view.role))
        self.kubeconfig = self.directory / "kubeconfig"
        write_kubeconfig(str(self.kubeconfig), list(self.kube_apis.values()))
        self.kubeconfig.chmod(0o600)
        self.components["kube"] = "running"

    def _start_health_servers(self) -> None:
        """One real /health (+ /write) server per region (dr.sandbox.health), fed by the live estate."""
        from dr.sandbox.health import RegionHealthServer

        assert self.realism is not None
        app = self.estate.app
        for view in (self.estate.primary, self.estate.secondary):
            api = self.kube_apis[view.cluster.name]

            def ready(api: Any = api) -> int:
                return int(api.ready_pods(app.namespace, app.api.name))

            def url(api: Any = api) -> str | None:
                try:
                    return str(api.secret_value(app.namespace, app.db_secret.name, app.db_secret.key))
                except Exception:
                    return None

            self.health_servers[view.region] = RegionHealthServer(
                view.region, ready_pods=ready, database_url=url, db_timeout=3.0, health_path=app.health_path
            ).start()
        servers = self.health_servers

        def down(region: str) -> None:
            if region in servers:
                servers[region].take_down()

        def up(region: str) -> None:
            if region in servers:
                servers[region].bring_up()

        self.realism.on("region.down", down)
        self.realism.on("region.up", up)
        self.components["health"] = "running"

    def _database_url(self, role: str) -> str:
        app = self.estate.app.database
        if self.pg is not None:
            url: str = self.pg.dsn("primary" if role == "primary" else "replica").url()
            return url
        # As the Pulumi program builds it: the region's own instance endpoint (moto's address) and the
        # credentials of its Secrets Manager secret, so a failover finds the standby's secret already
        # right, as it would on AWS.
        assert self.seeded is not None
        view = self.estate.primary if role == "primary" else self.estate.secondary
        ep = self.seeded.databases[view.region]
        return f"postgresql://{app.username}:{quote(ep.password, safe='')}@{ep.host}:{ep.port}/{app.db_name}"

    def _start_resolver(self) -> None:
        from dr.sandbox.resolver import Resolver, ResolverServer

        assert self.realism is not None and self.seeded is not None
        realism = self.realism
        alb = {region: ids["alb_dns"] for region, ids in self.seeded.ids.items() if "alb_dns" in ids}
        self.resolver = Resolver.for_estate(self.estate, self.profile, realism.health_check_healthy, alb)
        self.resolver_server = ResolverServer(self.resolver, health=self._region_healthy).start()
        self.resolver.health_urls = self.health_urls()
        self.components["resolver"] = "running"

    def stop(self) -> None:
        """Stop every component (servers concurrently: each shutdown waits for its poll loop)."""
        from concurrent.futures import ThreadPoolExecutor

        stops: list[Callable[[], Any]] = []
        if self.realism is not None:
            stops.append(self.realism.stop)
        if self.resolver_server is not None:
            stops.append(self.resolver_server.stop)
        stops += [server.close for server in self.health_servers.values()]
        stops += [api.stop for api in self.kube_apis.values()]
        if self.server is not None:
            stops.append(self.server.stop)
        if stops:
            with ThreadPoolExecutor(max_workers=len(stops), thread_name_prefix="sandbox-stop") as pool:
                for future in [pool.submit(fn) for fn in stops]:
                    with contextlib.suppress(Exception):
                        future.result()
        self.resolver_server = None
        self.health_servers = {}
        self.kube_apis = {}
        self.server = None
        if self.pg_link is not None:
            self.pg_link.stop_backup_replication()
        if self.pg is not None:
            with contextlib.suppress(Exception):
                self.pg.cleanup()
            self.pg = None
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    # -- health --------------------------------------------------------------------------------
    def _region_healthy(self, region: str) -> bool:
        """The region's /health: API pods Ready and its DB secret pointing at a writable database."""
        return self._region_health(region)[0]

    def _region_health(self, region: str) -> tuple[bool, str]:
        """(healthy, what a Route53 checker reports) for the region's endpoint, cached 0.4 s."""
        now = time.monotonic()
        hit = self._health_cache.get(region)
        if hit is not None and now - hit[0] < 0.4:
            return hit[1]
        result = self._probe_region(region)
        self._health_cache[region] = (now, result)
        return result

    def _probe_region(self, region: str) -> tuple[bool, str]:
        if self.realism is not None and self.realism.faults.region_down(region):
            return False, NO_ANSWER
        server = self.health_servers.get(region)
        if server is not None:  # what Route53's checkers do: GET the health path, 200 = healthy
            try:
                with urllib.request.urlopen(server.health_url, timeout=3) as resp:
                    return http_report(int(resp.status))
            except urllib.error.HTTPError as err:  # the endpoint answered, with an error status
                return http_report(int(err.code))
            except (urllib.error.URLError, OSError):
                return False, NO_ANSWER
        # No health server: the load balancer still answers, 503 until pods and database serve.
        view = self.estate.site(region)
        app = self.estate.app
        api = self.kube_apis.get(view.cluster.name)
        if api is not None:
            try:
                if api.ready_pods(app.namespace, app.api.name) <= 0:
                    return http_report(503)
                url = api.secret_value(app.namespace, app.db_secret.name, app.db_secret.key)
            except Exception:
                return http_report(503)
            if self.pg_link is not None:
                port = urlsplit(url).port
                return http_report(200 if port is not None and self.pg_link.writable_port(port) else 503)
        return http_report(200)

    def health_urls(self) -> dict[str, str]:
        if self.health_servers:
            return {region: server.health_url for region, server in self.health_servers.items()}
        if self.resolver_server is None:
            return {}
        base = self.resolver_server.url
        return {
            region: f"{base}/regions/{region}{self.estate.app.health_path}" for region in self.estate.regions
        }

    # -- access --------------------------------------------------------------------------------
    @property
    def aws_endpoint(self) -> str:
        return str(self.server.url)

    @property
    def aws_endpoints(self) -> dict[str, str]:
        return dict(self.server.region_urls)

    @property
    def admin_url(self) -> str:
        return f"{self.aws_endpoint}/_sandbox"

    def clients(self, **kwargs: Any) -> ClientProvider:
        """A ClientProvider talking to this sandbox (fake credentials)."""
        from dr.aws.session import ClientProvider
        from dr.target import SANDBOX_CREDENTIALS

        kwargs.setdefault("endpoint_url", self.aws_endpoint)
        kwargs.setdefault("credentials", dict(SANDBOX_CREDENTIALS))
        return ClientProvider(**kwargs)

    def _resolve(self, params: dict[str, Any]) -> dict[str, Any]:
        assert self.resolver is not None
        return self.resolver.resolve(str(params.get("name") or self.estate.app.record)).to_dict()

    def _admin_postgres(self, method: str, path: str, params: dict[str, Any]) -> Any:
        if self.pg is None:
            raise KeyError("no real PostgreSQL in this sandbox")
        parts = path.strip("/").split("/")  # postgres[/<instance>/<action>]
        if len(parts) == 1:
            lag = self.pg.lag_seconds("replica") if "replica" in self.pg.instances else None
            return {"state": self.pg.state(), "lag": lag}
        if len(parts) != 3 or method != "POST":
            raise KeyError(
                f"use POST /_sandbox/postgres/<instance>/(kill|stop|promote|delay), got {method} {path}"
            )
        name, action = parts[1], parts[2]
        if name not in self.pg.instances:
            raise KeyError(f"no PostgreSQL instance {name!r}; known: {sorted(self.pg.instances)}")
        if action == "kill":
            return {"lost_bytes": self.pg.kill_primary(name)}
        if action == "stop":
            self.pg.stop_primary(name)
            return {"stopped": name}
        if action == "promote":
            return {"seconds": self.pg.promote_replica(name)}
        if action == "delay":
            self.pg.set_replication_delay(float(params["seconds"]))
            return {"delay": float(params["seconds"])}
        raise KeyError(f"unknown action {action!r}: kill, stop, promote or delay")

    def state(self) -> dict[str, Any]:
        """The state.json document (no password: it is only in the 0600 password file)."""
        estate = self.estate
        pg_state: dict[str, Any] | None = None
        dsns: dict[str, str] = {}
        pids: dict[str, Any] = {"manager": os.getpid()}
        if self.pg is not None:
            pg_state = self.pg.state()
            for name in self.pg.instances:
                dsns[name] = self.pg.dsn(name).redacted().replace(":***@", "@")
            pids["postgres"] = self.pg.pids()
        ports: dict[str, Any] = {
            "aws": self.server.port,
            "aws_regions": {r: int(u.rsplit(":", 1)[1]) for r, u in self.aws_endpoints.items()},
        }
        kube = {}
        for name, api in self.kube_apis.items():
            kube[name] = {"url": api.url, "region": api.region}
            ports.setdefault("kube", {})[name] = api.port
        for region, server in self.health_servers.items():
            ports.setdefault("health", {})[region] = server.port
        if self.resolver_server is not None:
            ports["resolver"] = int(self.resolver_server.url.rsplit(":", 1)[1])
        return {
            "version": STATE_VERSION,
            "ready": True,
            "directory": str(self.directory),
            "started_at": self.started_at,
            "estate": {
                "app": estate.app.name,
                "stack_dir": estate.stack_dir,
                "regions": list(estate.regions),
            },
            "aws_endpoint": self.aws_endpoint,
            "aws_endpoints": self.aws_endpoints,
            "admin_url": self.admin_url,
            "kubeconfig": str(self.kubeconfig) if self.kubeconfig else None,
            "kube": kube,
            "health_urls": self.health_urls(),
            "resolver": {
                "url": self.resolver_server.url if self.resolver_server else None,
                "name": estate.app.record,
            },
            "latency": {"profile": self.profile.name, "time_scale": self.profile.time_scale},
            "postgres": {
                "dsns": dsns,
                "password_file": str(self.directory / PASSWORD_FILE) if self.pg is not None else None,
                "state": pg_state,
            },
            "components": dict(self.components),
            "pids": pids,
            "ports": ports,
            "seeded": self.seeded.to_dict() if self.seeded is not None else None,
        }

    def _password_changed(self, new_password: str) -> None:
        self._password = new_password
        if (self.directory / PASSWORD_FILE).exists():
            _write_private(self.directory / PASSWORD_FILE, self._password + "\n")

    def write_state(self) -> Path:
        if self.pg is not None:
            _write_private(self.directory / PASSWORD_FILE, self._password + "\n")
        path = self.directory / STATE_FILE
        _write_json(path, self.state())
        return path
