"""Run the whole two-region sandbox: in-process (:class:`Sandbox`) or as a background process.

:class:`Sandbox` starts, in this process: the moto server behind the realism layer
(:mod:`dr.sandbox.server`, :mod:`dr.sandbox.fakeaws`), the real PostgreSQL primary + replica
(:mod:`dr.sandbox.postgres`, when its binaries are installed), one fake Kubernetes API per cluster
(:mod:`dr.sandbox.kubeapi`), per-region ``/health`` endpoints and the failover resolver
(:mod:`dr.sandbox.resolver`); it seeds moto from the estate (:mod:`dr.sandbox.seed`) and wires the
hooks (an RDS promote promotes PostgreSQL, the RDS endpoint is the local PostgreSQL, ReplicaLag is
the measured lag, the nodegroup's Ready nodes bound the pods, Route53 health follows /health).

``python -m dr.sandbox.manager serve --dir D ...`` runs one in the foreground until SIGTERM and
writes ``D/state.json`` (the contract of :mod:`dr.target`). :func:`start_background`,
:func:`stop_background` and :func:`sandbox_status` are what ``dr sandbox up/down/status`` call.

moto keeps its state in process-global backends: run at most one :class:`Sandbox` per process, and
never in a process that also uses ``mock_aws`` (the pytest fixture runs it in a subprocess).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from dr.errors import BadInput, OperationFailed, TimeoutExpired
from dr.sandbox.fakeaws.health_checks import NO_ANSWER, http_report
from dr.sandbox.latency import LatencyProfile, profile

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.sandbox.fakeaws.middleware import Realism
    from dr.sandbox.resolver import Resolver
    from dr.topology import Estate

log = logging.getLogger("dr.sandbox.manager")

STATE_FILE = "state.json"
PASSWORD_FILE = "db-password"
MARKER = ".dr-sandbox"
LOG_FILE = "sandbox.log"
PROGRESS_FILE = "progress.log"
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


class _PgLink:
    """Maps RDS instances to local PostgreSQL instances and reacts to RDS hooks."""

    def __init__(self, pg: Any, estate: Estate) -> None:
        self.pg = pg
        self.estate = estate
        self.names = {
            (estate.primary.region, estate.primary.database.identifier): "primary",
            (estate.secondary.region, estate.secondary.database.identifier): "replica",
        }
        self.region_of = {"primary": estate.primary.region, "replica": estate.secondary.region}
        self.rewound: set[str] = set()  # servers re-seeded by on_replica_created
        self._lock = threading.Lock()
        self.on_password_changed: Callable[[str], None] | None = None
        self._shipping = threading.Event()  # set: stop the backup replication loop
        self._shipper: threading.Thread | None = None

    def instance(self, region: str, ident: str) -> str | None:
        name = self.names.get((region, ident))
        if name is None and ident in self.pg.instances:
            name = ident
        return name

    def endpoint(self, region: str, ident: str) -> tuple[str, int] | None:
        name = self.instance(region, ident)
        if name is None or name not in self.pg.instances:
            return None
        host, port = self.pg.endpoint(name)
        return str(host), int(port)

    def lag(self, region: str, identifier: str) -> float | None:
        name = self.instance(region, identifier)
        if name is None or name not in self.pg.instances:
            return None
        value = self.pg.lag_seconds(name)
        return None if value is None else float(value)

    def wire(self, realism: Realism) -> None:
        realism.endpoint_fn = self.endpoint
        realism.lag_fn = self.lag
        realism.on("rds.promoted", self.on_promoted)
        realism.on("rds.restored", self.on_restored)
        realism.on("rds.restored_from_snapshot", self.on_restored_from_snapshot)
        realism.on("rds.snapshot_created", self.on_snapshot)
        realism.on("rds.snapshot_copied", self.on_snapshot_copied)
        realism.on("region.down", self.on_region_down)
        realism.on("rds.replica_created", self.on_replica_created)
        realism.on("rds.modified", self.on_modified)
        self.start_backup_replication(realism)

    # -- the primary's automated backups replicated to the DR region --------------------------------
    def start_backup_replication(self, realism: Realism) -> None:
        """Ship the primary's WAL archive and base backups to the DR region's copy now, then every
        ``rds.replicated_backup_lag`` (at least 3 s) while the primary's region is up; the copy's
        window is what DescribeDBInstanceAutomatedBackups reports there as RestoreWindow."""
        primary, dr = self.estate.primary, self.estate.secondary
        period = max(3.0, realism.replicated_lag)  # each round may archive a 1 MB segment

        def window(region: str, source_arn: str) -> Any:
            if region != dr.region or source_arn.split(":")[-1] != primary.database.identifier:
                return None
            return self.pg.replicated_window()

        def ship() -> None:
            if realism.faults.region_down(primary.region):
                return  # a lost region ships nothing more; the DR copy keeps what it has
            try:
                self.pg.ship_backups()
            except Exception as exc:  # the next round retries
                log.warning("backup replication round failed: %s", exc)

        def loop() -> None:
            while not self._shipping.wait(period):
                ship()

        ship()
        realism.replicated_window_fn = window
        self._shipper = threading.Thread(target=loop, name="sandbox-backup-replication", daemon=True)
        self._shipper.start()

    def stop_backup_replication(self) -> None:
        self._shipping.set()
        if self._shipper is not None:
            self._shipper.join(timeout=15)

    def on_modified(self, region: str, identifier: str, params: dict[str, Any]) -> None:
        """ModifyDBInstance MasterUserPassword reaches the real PostgreSQL (rotation is honest)."""
        new_password = params.get("MasterUserPassword")
        name = self.instance(region, identifier)
        if not new_password or name is None:
            return
        with self._lock:
            self.pg.set_master_password(name, str(new_password))
        if self.on_password_changed is not None:
            self.on_password_changed(str(new_password))

    def on_promoted(self, region: str, identifier: str) -> None:
        name = self.instance(region, identifier)
        if name is not None and self.pg.in_recovery(name):
            with self._lock:
                self.pg.promote_replica(name)

    def on_restored(
        self,
        region: str,
        identifier: str,
        source: str,
        restore_time: Any,
        use_latest: bool,
        replicated_from: str | None = None,
    ) -> None:
        with self._lock:
            if replicated_from is not None:
                self._restore_replicated(restore_time, identifier)
                self.names[(region, identifier)] = identifier
                self.region_of[identifier] = region
                return
            when = restore_time if restore_time is not None else self.pg.latest_restorable_time()
            try:
                self.pg.restore_pitr(when, identifier)
            except BadInput as err:
                if err.code != "InvalidRestoreTime":
                    raise
                self._restore_nearest(when, identifier)
        self.names[(region, identifier)] = identifier
        self.region_of[identifier] = region

    def _restore_replicated(self, when: Any, identifier: str) -> None:
        """PITR in the DR region from the replicated copy only — the primary's archive may be gone
        with its region. RDS checked ``when`` against the same window; a round of shipping between
        that check and now can only have widened it."""
        window = self.pg.replicated_window()
        if window is None:
            raise OperationFailed(f"PITR of {identifier}: nothing replicated to the DR region yet")
        target = min(max(when or window[1], window[0]), window[1])
        self.pg.restore_pitr(target, identifier, replicated=True)

    def _restore_nearest(self, when: Any, identifier: str) -> None:
        """RDS accepted ``when`` but the local WAL archive does not reach it (its newest segment is
        dated by the last WAL switch, which an idle database does not make): restore to the
        nearest covered time, or from the newest base backup before ``when``."""
        earliest, latest = self.pg.earliest_restorable_time(), self.pg.latest_restorable_time()
        if earliest is not None and latest is not None and earliest <= latest:
            target = min(max(when, earliest), latest)
            log.warning(
                "PITR of %s: archive covers up to %s, restoring to that instead of %s",
                identifier,
                latest,
                when,
            )
            self.pg.restore_pitr(target, identifier)
            return
        snaps = [s for s in self.pg.snapshots.values() if s.completed_at <= when]
        if not snaps:
            raise OperationFailed(f"PITR of {identifier}: no base backup before {when}")
        snap = max(snaps, key=lambda s: s.completed_at)
        log.warning(
            "PITR of %s: no WAL archived after base backup %s; restoring from it", identifier, snap.name
        )
        self.pg.restore_snapshot(snap, identifier)

    def on_restored_from_snapshot(self, region: str, identifier: str, snapshot: str) -> None:
        with self._lock:
            self.pg.restore_snapshot(snapshot.split(":")[-1], identifier)
        self.names[(region, identifier)] = identifier
        self.region_of[identifier] = region

    def on_snapshot(self, region: str, snapshot: str, identifier: str) -> None:
        name = self.instance(region, identifier)
        with self._lock:
            self.pg.snapshot(snapshot, instance=name)

    def on_snapshot_copied(self, region: str, snapshot: str, source: str) -> None:
        # One machine: a cross-region copy is the same base backup under the copy's name.
        src = self.pg.snapshots.get(source.split(":")[-1])
        if src is not None and snapshot not in self.pg.snapshots:
            self.pg.snapshots[snapshot] = src

    def on_replica_created(self, region: str, identifier: str, source: str = "") -> None:
        """A cross-region replica created in a region whose PostgreSQL is not a replica any more,
        while the other region's is writable, is that region's server rewound (``pg_rewind``) and
        streaming from the writer: the old primary at failback, or the promoted DR server when
        ``dr reprotect`` rebuilds the standby after a failback.

        Works whether the server still runs (planned switchover: writers stopped, server up,
        maybe written to since), was stopped, or was killed (region lost): pg_rewind stops it and
        runs its crash recovery. The new identifier (``<id>-failback`` or the original one) then
        maps to that server: its endpoint, its measured ``ReplicaLag``, its promotion. A renamed
        replica takes the server over from the old identifier (one PostgreSQL per region), whose
        RDS record keeps moto's placeholder endpoint.

        ``source`` (the request's SourceDBInstanceIdentifier, an ARN across regions): when it names
        a restored server (a PITR of the estate's cluster that now serves), that one is the upstream.
        """
        here = next((n for n in ("primary", "replica") if self.region_of.get(n) == region), None)
        if here is None or here not in self.pg.instances:
            return
        other = "replica" if here == "primary" else "primary"
        restored = self._source_server(source)
        if restored is not None and restored not in ("primary", "replica"):
            other = restored
        if other not in self.pg.instances or self.pg.in_recovery(other) is not False:
            return  # no writer elsewhere: nothing to replicate from
        with self._lock:
            if self.pg.in_recovery(here) is not True or self.pg.upstream_of(here) != other:
                # diverged (promoted, stopped or killed), or streaming from another server
                self.pg.rewind_as_replica(here, source=None if other in ("primary", "replica") else other)
                self.rewound.add(here)
            elif here not in self.rewound:
                return  # its original replica, still streaming: another replica beside it
        for key, name in list(self.names.items()):
            if name == here and key != (region, identifier):
                del self.names[key]
        self.names[(region, identifier)] = here

    def _source_server(self, source: str) -> str | None:
        """The PostgreSQL server behind a replica's source (identifier or ARN), if any."""
        if not source:
            return None
        parts = source.split(":")
        if source.startswith("arn:") and len(parts) >= 7:
            return self.instance(parts[3], parts[6])
        found = (self.instance(r, source) for r in sorted(set(self.region_of.values())))
        return next((name for name in found if name is not None), None)

    def on_region_down(self, region: str) -> None:
        """Losing a region abruptly kills the databases in it (un-shipped WAL is lost)."""
        for name, where in list(self.region_of.items()):
            inst = self.pg.instances.get(name)
            if where == region and inst is not None and inst.is_running():
                with self._lock:
                    self.pg.kill_primary(name)

    def writable_port(self, port: int) -> bool:
        for name, inst in list(self.pg.instances.items()):
            if int(inst.port) == port:
                return self.pg.in_recovery(name) is False
        return False


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
        self.pg_link: _PgLink | None = None
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
            self.pg_link = _PgLink(self.pg, estate)
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

        if self.want_kube and _available("dr.sandbox.kubeapi"):
            say("starting the fake Kubernetes APIs")
            self._start_kube()
        else:
            self.components["kube"] = (
                "unavailable: dr.sandbox.kubeapi is not installed" if self.want_kube else "disabled"
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
        from dr.sandbox.kubeapi import FakeKubeApi, seed_site, write_kubeconfig

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


# ---------------------------------------------------------------------------------------------
# Background process: serve / start / stop / status
# ---------------------------------------------------------------------------------------------


def serve(argv: list[str] | None = None) -> int:
    """Foreground entry point of the background sandbox (``python -m dr.sandbox.manager serve``)."""
    parser = argparse.ArgumentParser(prog="python -m dr.sandbox.manager")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--dir", required=True)
    p.add_argument("--stack-dir", default="stacks")
    p.add_argument("--stack", default=None)
    p.add_argument("--latency", default="none")
    p.add_argument("--time-scale", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--no-postgres", action="store_true")
    p.add_argument("--parent-pid", type=int, default=None, help="stop when this process exits (tests)")
    args = parser.parse_args(argv)

    directory = Path(args.dir).absolute()
    directory.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    progress_path = directory / PROGRESS_FILE

    def say(msg: str) -> None:
        log.info("%s", msg)
        with progress_path.open("a") as fh:
            fh.write(msg + "\n")

    from dr.topology import load_estate

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    estate = load_estate(args.stack_dir, args.stack)
    sandbox = Sandbox(
        estate,
        profile(args.latency, args.time_scale, args.seed),
        directory=directory,
        postgres=False if args.no_postgres else None,
        seed=args.seed,
    )
    try:
        sandbox.start(progress=say)
        sandbox.write_state()
        say("state written")
        while not stop.wait(1.0):
            if args.parent_pid and not _pid_alive(args.parent_pid):
                say(f"parent process {args.parent_pid} is gone")
                break
    finally:
        say("stopping")
        sandbox.stop()
    return 0


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not running
        with open(f"/proc/{int(pid)}/stat") as fh:
            return fh.read().split(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def read_state(directory: Path) -> dict[str, Any] | None:
    path = directory / STATE_FILE
    if not path.exists():
        return None
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return data


def _http_json(url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            data: dict[str, Any] = json.loads(resp.read())
            return data
    except (urllib.error.URLError, OSError, ValueError):
        return None


def sandbox_status(directory: Path) -> dict[str, Any]:
    """What runs: the state file, each recorded pid alive or dead, the admin endpoint answering."""
    state = read_state(directory)
    if state is None:
        pid_file = directory / "manager.pid"
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        return {"running": False, "starting": _pid_alive(pid), "directory": str(directory), "pid": pid}
    processes = {"manager": state.get("pids", {}).get("manager")}
    for name, pid in (state.get("pids", {}).get("postgres") or {}).items():
        processes[f"postgres:{name}"] = pid
    alive = {name: _pid_alive(pid) for name, pid in processes.items()}
    ready = _http_json(f"{state['admin_url']}/ready") if state.get("admin_url") else None
    return {
        "running": bool(alive.get("manager")) and bool(ready and ready.get("ready")),
        "directory": str(directory),
        "processes": [{"name": n, "pid": processes[n], "alive": alive[n]} for n in processes],
        "aws_endpoint": state.get("aws_endpoint"),
        "aws_endpoints": state.get("aws_endpoints"),
        "kubeconfig": state.get("kubeconfig"),
        "health_urls": state.get("health_urls"),
        "resolver": state.get("resolver"),
        "latency": state.get("latency"),
        "components": state.get("components"),
        "postgres_dsns": (state.get("postgres") or {}).get("dsns"),
    }


def start_background(
    directory: Path,
    *,
    stack_dir: Path | str,
    stack: str,
    latency: str = "none",
    time_scale: float = 1.0,
    seed: int | None = None,
    postgres: bool = True,
    parent_pid: int | None = None,
    timeout: float = 90.0,
    progress: Progress | None = None,
) -> tuple[dict[str, Any], bool]:
    """Start ``serve`` detached and wait until it is ready. Returns (state, already_running).

    ``parent_pid``: the sandbox stops by itself when that process exits (test fixtures, so a
    killed test run leaves nothing behind); ``dr sandbox up`` leaves it unset.
    """
    directory = Path(directory).absolute()
    status = sandbox_status(directory)
    if status["running"]:
        state = read_state(directory)
        assert state is not None
        return state, True
    if status.get("starting"):
        raise BadInput(
            f"a sandbox is still starting in {directory} (pid {status.get('pid')})",
            hint="wait for it, or run `dr sandbox down` first",
        )
    if read_state(directory) is not None:
        stop_background(directory)  # stale state from a dead sandbox: clean it up first
    profile(latency, time_scale)  # validate before spawning
    directory.mkdir(parents=True, exist_ok=True)
    for name in (PROGRESS_FILE, STATE_FILE):
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()
    cmd = [
        sys.executable, "-m", "dr.sandbox.manager", "serve", "--dir", str(directory),
        "--stack-dir", str(Path(stack_dir).absolute()), "--stack", stack,
        "--latency", latency, "--time-scale", str(time_scale),
    ]  # fmt: skip
    if seed is not None:
        cmd += ["--seed", str(seed)]
    if not postgres:
        cmd.append("--no-postgres")
    if parent_pid is not None:
        cmd += ["--parent-pid", str(parent_pid)]
    logf = (directory / LOG_FILE).open("ab")
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=logf,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        close_fds=True,
    )
    logf.close()
    (directory / "manager.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    seen = 0
    delay = 0.05
    while True:
        lines = (
            (directory / PROGRESS_FILE).read_text().splitlines()
            if (directory / PROGRESS_FILE).exists()
            else []
        )
        for line in lines[seen:]:
            if progress:
                progress(line)
        seen = len(lines)
        state = read_state(directory)
        if state is not None and state.get("ready"):
            return state, False
        if proc.poll() is not None:
            tail = _tail(directory / LOG_FILE)
            raise OperationFailed(
                f"the sandbox process exited with code {proc.returncode} before it was ready; log {directory / LOG_FILE}:\n{tail}"
            )
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            raise TimeoutExpired(
                f"the sandbox was not ready after {timeout:.0f}s; see {directory / LOG_FILE}"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop_background(directory: Path, timeout: float = 20.0) -> dict[str, Any]:
    """Stop exactly the processes this sandbox started (by recorded pid), then remove its state."""
    directory = Path(directory).absolute()
    state = read_state(directory)
    pid_file = directory / "manager.pid"
    manager_pid = (state or {}).get("pids", {}).get("manager")
    if manager_pid is None and pid_file.exists():
        with contextlib.suppress(ValueError):
            manager_pid = int(pid_file.read_text())
    stopped: list[int] = []
    if manager_pid and _pid_alive(manager_pid):
        os.kill(manager_pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(manager_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(manager_pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(manager_pid, signal.SIGKILL)
        stopped.append(int(manager_pid))
    pg_state = ((state or {}).get("postgres") or {}).get("state")
    if pg_state:
        with contextlib.suppress(Exception):
            from dr.sandbox.pg_server import stop_from_state

            stopped += stop_from_state(pg_state, remove=True)
    leftover = [
        pid
        for pid in [manager_pid, *(((state or {}).get("pids", {}).get("postgres") or {}).values())]
        if pid and _pid_alive(pid)
    ]
    removed = False
    if (directory / MARKER).exists() or state is not None:
        shutil.rmtree(directory, ignore_errors=True)
        removed = not directory.exists()
    return {"stopped": stopped, "still_running": leftover, "removed": removed, "directory": str(directory)}


if __name__ == "__main__":
    code = serve()
    # Every component is stopped and the state is written: skip the interpreter's teardown (it
    # collected moto's backends for ~1 s while `dr sandbox down` and every test waited for the pid).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
