"""The heartbeat writer and the measured RPO.

During a drill a background thread inserts a row into ``dr_heartbeat(seq bigint primary key,
written_at timestamptz)`` on the database the application writes to (every 100 ms by default)
and records each *acknowledged* write locally with the client's clock. After recovery the rows
present on the promoted database are read back, and::

    RPO = time of the last write acknowledged by the old primary
          − time of the newest of those writes present on the promoted database

Both times are taken from the local log (the client's clock), so server clock skew does not
enter. ``seq`` starts at the writer's start time in milliseconds, so runs never collide.

"Acknowledged by the old primary" means: acknowledged by the first database written to, before
the first disruption (failed write, paused writes, or a different database) at or after the
fault. Writes after recovery — even to the same endpoint after a Multi-AZ failover — do not count.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from dr.drills.metrics import Ack, Disruption, RpoResult, compute_rpo

TABLE = "dr_heartbeat"


@dataclass(frozen=True)
class HeartbeatTarget:
    """A database to write heartbeats to. ``conninfo`` is secret: never journaled or printed."""

    label: str
    conninfo: str = field(repr=False)

    @classmethod
    def from_conninfo(cls, conninfo: str, label: str | None = None) -> HeartbeatTarget:
        return cls(label=label or display_conninfo(conninfo), conninfo=conninfo)

    @property
    def display(self) -> str:
        return display_conninfo(self.conninfo)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "database": self.display}


_URL = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*)://(?:[^@/]*@)?(?P<rest>[^?]*)")
_KV_SECRET = re.compile(r"(password|passfile|sslpassword)\s*=\s*('[^']*'|\S+)", re.I)


def display_conninfo(conninfo: str) -> str:
    """``postgresql://user:pw@host:5432/db?x`` -> ``postgresql://host:5432/db`` (no user, no secret)."""
    m = _URL.match(conninfo)
    if m:
        return f"{m['scheme']}://{m['rest']}"
    return _KV_SECRET.sub(r"\1=***", conninfo)


class HeartbeatStore(Protocol):
    """Database access of the writer (psycopg in production, a fake in unit tests)."""

    def ensure_table(self, target: HeartbeatTarget) -> None: ...

    def insert(self, target: HeartbeatTarget, seq: int) -> None: ...

    def present(self, target: HeartbeatTarget, low: int, high: int) -> set[int]: ...

    def close(self) -> None: ...


class PsycopgStore:
    """One autocommit psycopg connection per target; any error drops the connection."""

    def __init__(self, connect_timeout: float = 2.0, statement_timeout_ms: int = 2000) -> None:
        self.connect_timeout = connect_timeout
        self.statement_timeout_ms = statement_timeout_ms
        self._conns: dict[str, Any] = {}

    def _conn(self, target: HeartbeatTarget) -> Any:
        import psycopg

        conn = self._conns.get(target.label)
        if conn is None or conn.closed:
            conn = psycopg.connect(
                target.conninfo,
                autocommit=True,
                connect_timeout=max(1, int(self.connect_timeout)),
                options=f"-c statement_timeout={self.statement_timeout_ms}",
            )
            self._conns[target.label] = conn
        return conn

    def _run(self, target: HeartbeatTarget, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            cur = self._conn(target).execute(sql, params)
            return cur.fetchall() if cur.description else []
        except Exception:
            conn = self._conns.pop(target.label, None)
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
            raise

    def ensure_table(self, target: HeartbeatTarget) -> None:
        self._run(
            target,
            f"CREATE TABLE IF NOT EXISTS {TABLE} (seq bigint PRIMARY KEY, written_at timestamptz NOT NULL DEFAULT now())",
        )

    def insert(self, target: HeartbeatTarget, seq: int) -> None:
        self._run(target, f"INSERT INTO {TABLE} (seq, written_at) VALUES (%s, now())", (seq,))

    def present(self, target: HeartbeatTarget, low: int, high: int) -> set[int]:
        rows = self._run(target, f"SELECT seq FROM {TABLE} WHERE seq BETWEEN %s AND %s", (low, high))
        return {int(r[0]) for r in rows}

    def close(self) -> None:
        for conn in self._conns.values():
            with contextlib.suppress(Exception):
                conn.close()
        self._conns.clear()


# ---------------------------------------------------------------------------------------------
# The writer thread
# ---------------------------------------------------------------------------------------------


class HeartbeatWriter:
    """Writes a heartbeat every ``interval`` seconds to ``target_fn()`` in a background thread."""

    def __init__(
        self,
        target_fn: Callable[[], HeartbeatTarget | None],
        store: HeartbeatStore | None = None,
        *,
        interval: float = 0.1,
        clock: Callable[[], float] = time.time,
        seq_base: int | None = None,
    ) -> None:
        self.target_fn = target_fn
        self.store: HeartbeatStore = store if store is not None else PsycopgStore()
        self.interval = interval
        self.clock = clock
        self.seq_base = seq_base if seq_base is not None else int(clock() * 1000)
        self.acks: list[Ack] = []
        self.disruptions: list[Disruption] = []
        self.attempts = 0
        self.notes: list[str] = []
        self._seq = self.seq_base
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._last_label: str | None = None
        self._healthy = True
        # When the promoted database was last read back (acks after it do not count).
        self.read_at: float | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        target = self._target()
        if target is not None:
            try:
                self.store.ensure_table(target)
            except Exception as exc:
                self.notes.append(f"could not create {TABLE} on {target.label}: {_short(exc)}")
        self._thread = threading.Thread(target=self._loop, name="dr-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.store.close()

    def _target(self) -> HeartbeatTarget | None:
        try:
            return self.target_fn()
        except Exception as exc:
            self._disrupt(None, "failed", f"target lookup: {_short(exc)}")
            return None

    def _disrupt(self, label: str | None, kind: str, error: str = "") -> None:
        with self._lock:
            if self._healthy or kind == "switched":
                self.disruptions.append(Disruption(self.clock(), label, kind, error))
            self._healthy = False

    def tick(self) -> None:
        """One heartbeat attempt (the loop calls it; tests may call it directly)."""
        target = self._target()
        if target is None:
            self._disrupt(None, "paused")
            return
        if self._last_label is not None and target.label != self._last_label:
            self._disrupt(target.label, "switched")
        self._last_label = target.label
        seq = self._seq
        self.attempts += 1
        try:
            self.store.insert(target, seq)
        except Exception as exc:
            self._disrupt(target.label, "failed", _short(exc))
            self._seq += 1  # the outcome of a failed commit is unknown: never reuse its seq
            return
        t = self.clock()
        with self._lock:
            self.acks.append(Ack(seq, t, target.label))
            self._healthy = True
        self._seq += 1

    def _loop(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.tick()
            next_at += self.interval
            now = time.monotonic()
            if next_at < now:  # a slow write: skip the missed slots rather than burst
                next_at = now
            self._stop.wait(next_at - now)

    # -- after recovery ------------------------------------------------------------------------
    def collect(
        self, target: HeartbeatTarget | None, attempts: int = 5, pause: float = 0.5
    ) -> set[int] | None:
        """Seqs of this run present on ``target`` (None when it cannot be read)."""
        if target is None or not self.acks:
            return None
        low, high = self.seq_base, self._seq
        for i in range(attempts):
            try:
                self.read_at = self.clock()
                return self.store.present(target, low, high)
            except Exception as exc:
                if i == attempts - 1:
                    self.notes.append(f"reading heartbeats on {target.label} failed: {_short(exc)}")
                else:
                    time.sleep(pause * (i + 1))  # a just-promoted DB may need a moment
        return None

    def result(
        self, fault_at: float | None, present: set[int] | None, until: float | None = None
    ) -> RpoResult:
        with self._lock:
            return compute_rpo(
                list(self.acks), list(self.disruptions), fault_at, present, self.read_at, until
            )

    def log(self) -> dict[str, Any]:
        """The journal's record of the writer (no connection strings)."""
        with self._lock:
            return {
                "interval": self.interval,
                "seq_base": self.seq_base,
                "attempts": self.attempts,
                "acks": [[a.seq, round(a.t, 4), a.label] for a in self.acks],
                "disruptions": [d.__dict__ for d in self.disruptions],
                "notes": list(self.notes),
                "read_at": self.read_at,
            }


def acks_from_log(log: dict[str, Any]) -> tuple[list[Ack], list[Disruption]]:
    acks = [Ack(int(s), float(t), str(label)) for s, t, label in log.get("acks", [])]
    disruptions = [Disruption(**d) for d in log.get("disruptions", [])]
    return acks, disruptions


def _short(exc: BaseException) -> str:
    from dr.runbook.journal import scrub_text

    return scrub_text(f"{type(exc).__name__}: {exc}".splitlines()[0])[:200]
