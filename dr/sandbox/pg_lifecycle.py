"""The sandbox PostgreSQL estate's servers: where their data lives, how they are configured and
started (primary, then a streaming replica behind a delaying link), and how to reach them."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dr.errors import BadInput, OperationFailed, TimeoutExpired
from dr.sandbox.latency import LatencyProfile
from dr.sandbox.pg_server import (
    HOST,
    REPLICA_SLOT,
    REPLICATION_USER,
    Dsn,
    PgInstance,
    RunAs,
    Snapshot,
    accessible_bin,
    check_name,
    find_pg_bin,
    free_port,
    wait_for,
)
from dr.sandbox.pgproxy import DelayProxy


class PgLifecycle:
    """The estate's servers and their lifecycle: data root, tools, configuration, starting the
    primary and its streaming replica, connection info and bookkeeping. The replication link,
    backups and rewind build on it (:mod:`dr.sandbox.pg_link`, :mod:`dr.sandbox.pg_backups`,
    :mod:`dr.sandbox.pg_rewind`); :class:`dr.sandbox.postgres.PostgresEstate` is all of them.
    """

    def __init__(
        self,
        base_dir: Path | str,
        latency: LatencyProfile | None = None,
        *,
        dbname: str = "app",
        username: str = "app",
        password: str,
        archive_timeout: float = 60.0,
        start_timeout: float = 30.0,
        initial_backup: bool = True,
    ) -> None:
        if not password:
            raise BadInput("the sandbox database needs a non-empty master password")
        self.base_dir = Path(base_dir).absolute()
        self.latency = latency or LatencyProfile()
        self.dbname = dbname
        self.username = username
        self.__password = password
        self._repl_password = secrets.token_urlsafe(24)
        self.archive_timeout = archive_timeout
        self.start_timeout = start_timeout
        self.initial_backup = initial_backup
        self.run_as = RunAs.detect()
        self.bin = find_pg_bin()
        self.root: Path = self.base_dir / "postgres"
        self._external_root: Path | None = None
        self.instances: dict[str, PgInstance] = {}
        self.snapshots: dict[str, Snapshot] = {}
        self.proxy: DelayProxy | None = None
        self.failback_proxy: DelayProxy | None = None
        # replica -> the instance it streams from, when not the other of primary/replica (a
        # restored instance that serves: ``dr reprotect`` from it after a PITR failover)
        self.upstreams: dict[str, str] = {}
        self._killed: set[str] = set()
        # The primary's automated backups as replicated to the DR region: base backups and WAL
        # segments copied to ``replicated/`` by ship_backups(), and the time they cover up to.
        self.replicated_snapshots: dict[str, Snapshot] = {}
        self._replicated_until: dt.datetime | None = None
        self._ship_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PostgresEstate({self.base_dir}, db={self.dbname!r}, user={self.username!r}, instances={sorted(self.instances)})"

    # -- paths ------------------------------------------------------------------------------
    @property
    def archive_dir(self) -> Path:
        return self.root / "archive"

    @property
    def replicated_dir(self) -> Path:
        """The DR region's copy of the primary's backups (``archive/`` and ``backups/`` inside)."""
        return self.root / "replicated"

    @property
    def primary(self) -> PgInstance:
        return self.instances["primary"]

    @property
    def replica(self) -> PgInstance:
        return self.instances["replica"]

    def _prepare_root(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        link = self.base_dir / "postgres"
        if self.run_as.can_traverse(self.base_dir):
            link.mkdir(exist_ok=True)
            self.root = link
        else:
            # The unprivileged user cannot reach base_dir: keep the data in a private dir in /tmp.
            tmp = "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()
            self._external_root = Path(tempfile.mkdtemp(prefix="dr-sandbox-pg-", dir=tmp))
            self._external_root.chmod(0o700)
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(self._external_root)
            self.root = self._external_root
        self.run_as.chown(self.root)
        for sub in (
            "archive",
            "backups",
            "logs",
            "restores",
            "replicated",
            "replicated/archive",
            "replicated/backups",
        ):
            (self.root / sub).mkdir(exist_ok=True)
            self.run_as.chown(self.root / sub)
        self.bin = accessible_bin(self.bin, self.run_as)

    # -- subprocess helpers -----------------------------------------------------------------
    def _env(self, password: str | None = None) -> dict[str, str]:
        env = {"PATH": f"{self.bin}:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC"}
        if password is not None:
            env["PGPASSWORD"] = password
        return env

    def _run(self, args: list[str], *, password: str | None = None, timeout: float = 60.0) -> str:
        """Run a PostgreSQL tool as the server user; stderr (never a password) on failure."""
        cmd = [str(self.bin / args[0]), *args[1:]]
        try:
            res = subprocess.run(
                cmd,
                env=self._env(password),
                cwd=self.root,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                **self.run_as.popen_kwargs(),
            )
        except subprocess.TimeoutExpired:
            raise TimeoutExpired(f"{args[0]} did not finish within {timeout:g}s", resource=args[0]) from None
        if res.returncode != 0:
            raise OperationFailed(
                f"{args[0]} failed (exit {res.returncode}): {self._scrub(res.stderr.strip()[-2000:])}",
                resource=args[0],
            )
        return res.stdout

    def _scrub(self, text: str) -> str:
        for secret in (self.__password, self._repl_password):
            text = text.replace(secret, "***")
        return text

    def _connect(self, instance: PgInstance, *, dbname: str | None = None, timeout: float = 3.0) -> Any:
        import psycopg

        return psycopg.connect(
            host=instance.host,
            port=instance.port,
            dbname=dbname or "postgres",
            user=self.username,
            password=self.__password,
            connect_timeout=max(2, int(timeout)),
            autocommit=True,
        )

    def _query(
        self, instance: PgInstance, sql: str, params: tuple[Any, ...] = (), *, dbname: str | None = None
    ) -> Any:
        """First row of ``sql`` on ``instance`` (superuser connection)."""
        with self._connect(instance, dbname=dbname) as conn:
            conn.execute("SET statement_timeout = 10000")
            row = conn.execute(sql, params).fetchone()
            return row

    def _master_password(self) -> str:
        """The master password, for the estate's own tools and connections (never logged)."""
        return self.__password

    # -- configuration --------------------------------------------------------------------------
    def _server_conf(self) -> str:
        archive = str(self.archive_dir).replace("'", "''")
        return "\n".join(
            [
                "# dr sandbox",
                f"listen_addresses = '{HOST}'",
                "unix_socket_directories = ''",
                "max_connections = 40",
                "shared_buffers = 16MB",
                "wal_level = replica",
                "max_wal_senders = 10",
                "max_replication_slots = 10",
                "max_slot_wal_keep_size = 256MB",  # an abandoned slot (after a promotion) cannot fill the disk
                "wal_log_hints = on",
                "full_page_writes = on",
                "fsync = off",  # sandbox: an OS crash is not a scenario; a killed process loses nothing it flushed
                "hot_standby = on",
                "wal_receiver_status_interval = 1s",
                "wal_retrieve_retry_interval = 200ms",
                "archive_mode = on",
                # cp to a temporary name, then rename: a reader (restore, shipping) never sees half a segment
                f'archive_command = \'test ! -f "{archive}/%f" && cp "%p" "{archive}/%f.tmp" && mv "{archive}/%f.tmp" "{archive}/%f"\'',
                f"archive_timeout = {max(1, int(self.archive_timeout))}",
                "log_min_error_statement = panic",  # a failed CREATE ROLE ... PASSWORD must not be logged
                "log_statement = none",
                "timezone = 'UTC'",
                "",
            ]
        )

    @staticmethod
    def _rewrite_auto_conf(data_dir: Path, settings: dict[str, str], drop: tuple[str, ...] = ()) -> None:
        path = data_dir / "postgresql.auto.conf"
        keys = set(settings) | set(drop)
        lines = path.read_text().splitlines() if path.exists() else []
        kept = [ln for ln in lines if ln.split("=", 1)[0].strip() not in keys]
        kept += [f"{k} = '{v.replace(chr(39), chr(39) * 2)}'" for k, v in settings.items()]
        path.write_text("\n".join(kept) + "\n")

    # -- start/stop ---------------------------------------------------------------------------
    def _spawn(self, inst: PgInstance) -> None:
        """Start ``postgres`` for ``inst`` on a free port (retrying on a port race)."""
        for _attempt in range(5):
            inst.port = inst.port or free_port()
            logf = open(inst.log_path, "ab")  # noqa: SIM115 - handed to the child
            try:
                proc = subprocess.Popen(
                    [str(self.bin / "postgres"), "-D", str(inst.data_dir), "-p", str(inst.port)],
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=self._env(),
                    cwd=inst.data_dir,
                    start_new_session=True,
                    **self.run_as.popen_kwargs(),
                )
            finally:
                logf.close()
            inst.proc, inst.pid = proc, proc.pid
            self.instances[inst.name] = inst
            if self._await_accepting(inst):
                return
            if "could not bind" in inst.log_tail(5) or "already in use" in inst.log_tail(5):
                inst.port = 0
                continue
            raise OperationFailed(
                f"PostgreSQL instance {inst.name!r} exited during start-up: {self._scrub(inst.log_tail())}",
                resource=inst.name,
            )
        raise OperationFailed(
            f"PostgreSQL instance {inst.name!r}: no free port after 5 tries", resource=inst.name
        )

    def _await_accepting(self, inst: PgInstance) -> bool:
        """True once the server accepts connections; False if it died."""

        def ready() -> bool:
            if not inst.is_running():
                return True
            return inst.status() in ("ready", "standby")

        wait_for(ready, self.start_timeout, f"PostgreSQL instance {inst.name} to accept connections")
        return inst.is_running()

    def _new_instance(self, name: str, kind: str) -> PgInstance:
        check_name(name, "database instance")
        if kind in ("pitr", "snapshot") and name in self.instances:
            raise BadInput(
                f"a sandbox database instance named {name!r} already exists",
                resource=name,
                code="DBInstanceAlreadyExists",
            )
        if name in self.instances and self.instances[name].is_running():
            raise BadInput(f"a sandbox database instance named {name!r} already exists", resource=name)
        data = self.root / ("restores" if kind in ("pitr", "snapshot") else ".") / name
        data = data.resolve() if data.exists() else data
        return PgInstance(
            name=name, kind=kind, data_dir=data, port=0, log_path=self.root / "logs" / f"{name}.log"
        )

    def _start_primary(self) -> None:
        inst = self._new_instance("primary", "primary")
        pwfile = self.root / ".pwfile"
        pwfile.write_text(self.__password + "\n")
        pwfile.chmod(0o600)
        self.run_as.chown(pwfile)
        try:
            self._run(
                [
                    "initdb",
                    "-D",
                    str(inst.data_dir),
                    "-U",
                    self.username,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--wal-segsize=1",
                    "--no-sync",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        with open(inst.data_dir / "postgresql.conf", "a") as f:
            f.write(self._server_conf())
        self._spawn(inst)
        from psycopg import sql

        with self._connect(inst) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} WITH REPLICATION LOGIN PASSWORD {}").format(
                    sql.Identifier(REPLICATION_USER), sql.Literal(self._repl_password)
                )
            )
            conn.execute("SELECT pg_create_physical_replication_slot(%s)", (REPLICA_SLOT,))
            if self.dbname != "postgres":
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {} STRATEGY = FILE_COPY").format(
                        sql.Identifier(self.dbname), sql.Identifier(self.username)
                    )
                )

    def _replication_conninfo(self, port: int) -> str:
        return (
            Dsn(HOST, port, "postgres", REPLICATION_USER, self._repl_password).conninfo()
            + " application_name=dr_replica"
        )

    def _start_replica(self) -> None:
        primary = self.primary
        inst = self._new_instance("replica", "replica")
        self._run(
            [
                "pg_basebackup",
                "-h",
                HOST,
                "-p",
                str(primary.port),
                "-U",
                REPLICATION_USER,
                "-D",
                str(inst.data_dir),
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            ],
            password=self._repl_password,
        )
        self.proxy = DelayProxy(
            HOST,
            primary.port,
            delay=self.latency.duration("replication.lag"),
            upstream_delay=0.0,
            name="replication",
        ).start()
        self._make_standby(inst, self.proxy.port, REPLICA_SLOT)
        self._spawn(inst)

    def _make_standby(
        self, inst: PgInstance, upstream_port: int, slot: str, *, from_archive: bool = False
    ) -> None:
        """Configure ``inst`` as a streaming standby of ``upstream_port`` (the link's port).

        ``from_archive`` also lets it fetch WAL from the archive (a re-seeded old primary needs
        WAL the new primary already recycled); the cross-region replica never does, so WAL that
        did not cross the link is really lost.
        """
        (inst.data_dir / "recovery.signal").unlink(missing_ok=True)
        (inst.data_dir / "standby.signal").touch()
        self.run_as.chown(inst.data_dir / "standby.signal")
        settings = {"primary_conninfo": self._replication_conninfo(upstream_port), "primary_slot_name": slot}
        if from_archive:
            settings["restore_command"] = f'cp "{self.archive_dir}/%f" "%p"'
            settings["recovery_target_timeline"] = "latest"
        self._rewrite_auto_conf(
            inst.data_dir,
            settings,
            drop=(
                "restore_command",
                "recovery_target_time",
                "recovery_target_action",
                "recovery_target_timeline",
            ),
        )
        (inst.data_dir / "postgresql.auto.conf").chmod(0o600)
        self.run_as.chown(inst.data_dir / "postgresql.auto.conf")

    # -- connection info ----------------------------------------------------------------------
    def dsn(self, instance: str | PgInstance = "primary", *, dbname: str | None = None) -> Dsn:
        """Credentials-bearing DSN of an instance (for in-process use; ``str()`` is redacted)."""
        inst = instance if isinstance(instance, PgInstance) else self._get(instance)
        return Dsn(inst.host, inst.port, dbname or self.dbname, self.username, self.__password)

    def set_master_password(self, instance: str, new_password: str) -> None:
        """RDS ``ModifyDBInstance MasterUserPassword``: ``ALTER ROLE`` the master user on the
        writable server of ``instance``'s cluster, so the old password stops working at once.

        A streaming replica shares the primary's catalog, so changing the writer changes both;
        the in-memory password used for new DSNs follows.
        """
        if not new_password:
            raise BadInput("the new master password is empty", resource=instance)
        inst = self._get(instance)
        if self.in_recovery(inst):
            writer = self.writer()
            if writer is None:
                raise BadInput(
                    f"no writable database to change the password of {instance}", resource=instance
                )
            inst = writer
        from psycopg import sql as pgsql

        with self._connect(inst, dbname="postgres") as conn:
            conn.execute(
                pgsql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    pgsql.Identifier(self.username), pgsql.Literal(new_password)
                )
            )
        self.__password = new_password

    def endpoint(self, instance: str = "primary") -> tuple[str, int]:
        """(host, port) of an instance — what the sandbox reports as the RDS endpoint."""
        inst = self._get(instance)
        return inst.host, inst.port

    def _get(self, name: str) -> PgInstance:
        try:
            return self.instances[name]
        except KeyError:
            raise BadInput(f"no sandbox database instance named {name!r}", resource=name) from None

    def in_recovery(self, instance: str | PgInstance) -> bool | None:
        """True on a replica, False when writable, None when unreachable."""
        inst = instance if isinstance(instance, PgInstance) else self._get(instance)
        if not inst.is_running():
            return None
        try:
            return bool(self._query(inst, "SELECT pg_is_in_recovery()")[0])
        except Exception:
            return None

    def writer(self) -> PgInstance | None:
        """The writable instance among primary/replica (the replica after a promotion), if any."""
        for name in ("primary", "replica"):
            if name in self.instances and self.in_recovery(name) is False:
                return self.instances[name]
        return None

    def upstream_of(self, replica: str) -> str:
        """The instance ``replica`` streams from: the other of primary/replica unless
        :meth:`rewind_as_replica` was given another source."""
        return self.upstreams.get(replica) or ("replica" if replica == "primary" else "primary")

    # -- bookkeeping ---------------------------------------------------------------------------
    def pids(self) -> dict[str, int]:
        """Postmaster pid of every running instance (each leads its own process group)."""
        return {n: i.pid for n, i in self.instances.items() if i.pid is not None and i.is_running()}

    def state(self) -> dict[str, Any]:
        """JSON-serialisable description (no password): instances, pids, ports, paths, links."""
        return {
            "root": str(self.root),
            "external_root": str(self._external_root) if self._external_root else None,
            "run_as": self.run_as.name,
            "dbname": self.dbname,
            "username": self.username,
            "archive": str(self.archive_dir),
            "instances": {n: i.to_state() for n, i in self.instances.items()},
            "snapshots": {n: s.to_state() for n, s in self.snapshots.items()},
            "replicated_until": self._replicated_until.isoformat() if self._replicated_until else None,
            "replication_delay": self.proxy.delay if self.proxy else None,
        }

    def stop_all(self, timeout: float = 10.0) -> None:
        """Stop every instance this object started (immediate shutdown, then SIGKILL) and the links."""
        for inst in self.instances.values():
            if inst.is_running():
                inst.stop("immediate", timeout)
            if inst.proc is not None:
                with contextlib.suppress(Exception):
                    inst.proc.wait(timeout=1)
        for p in (self.proxy, self.failback_proxy):
            if p is not None:
                p.close()

    def cleanup(self) -> None:
        """``stop_all`` and delete the data directories (including a private /tmp root)."""
        self.stop_all()
        link = self.base_dir / "postgres"
        if self._external_root is not None:
            shutil.rmtree(self._external_root, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
        else:
            shutil.rmtree(link, ignore_errors=True)

    def iter_logs(self) -> Iterator[tuple[str, str]]:
        """(instance, last log lines) with secrets scrubbed — for diagnostics."""
        for n, i in self.instances.items():
            yield n, self._scrub(i.log_tail())
