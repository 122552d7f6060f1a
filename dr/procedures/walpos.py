"""Has a replica replayed everything its source wrote? Compare WAL positions over psycopg.

A planned switchover promises RPO 0: the replica is promoted only once it has replayed every
write the source acknowledged before writes stopped. CloudWatch ``ReplicaLag`` can only say that
coarsely (a one-minute Maximum, sampled); the databases themselves say it exactly:
``pg_current_wal_lsn()`` on the source and ``pg_last_wal_replay_lsn()`` on the replica.

:class:`CatchUp` polls both and reports caught up once the replica's replay position has reached
the source's current position *and* the source's position has not moved for ``quiet_seconds``
(a write still in flight when the writers were scaled down — a pod draining, a client whose view
of the deployment is stale — moves the source position and restarts the quiet window).

The operator's machine may not reach the databases (private subnets on AWS): the first failure to
connect makes :meth:`CatchUp.poll` return ``None`` for good. There is no fallback: CloudWatch
``ReplicaLag`` on RDS PostgreSQL is the time since the last replayed commit and grows once writes
stop, so a planned failover refuses in its pre-flight when the positions cannot be read. Credentials come from the app's Secrets Manager secret in each database's region and
never leave this module (not in errors, not in results).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dr.aws.rds import Rds

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.procedures.pg_session import Connector

SOURCE_SQL = "SELECT pg_is_in_recovery(), pg_current_wal_lsn()::text"
REPLICA_SQL = "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text"


def lsn_to_int(text: str) -> int:
    """``'16/B374D848'`` → its 64-bit position (PostgreSQL's pg_lsn text form)."""
    high, _, low = text.strip().partition("/")
    if not low:
        raise ValueError(f"not a WAL position: {text!r}")
    return (int(high, 16) << 32) + int(low, 16)


@dataclass(frozen=True)
class DbRef:
    identifier: str
    region: str


@dataclass(frozen=True)
class Positions:
    source: int
    replica: int
    source_text: str
    replica_text: str

    @property
    def caught_up(self) -> bool:
        return self.replica >= self.source


class CatchUp:
    """Poll the WAL positions of ``source`` and ``replica`` (see the module docstring)."""

    def __init__(
        self,
        clients: ClientProvider,
        *,
        source: DbRef,
        replica: DbRef,
        secret_id: str,
        db_name: str,
        connect: Connector | None = None,
        quiet_seconds: float = 2.0,
        connect_timeout: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clients = clients
        self.source = source
        self.replica = replica
        self.secret_id = secret_id
        self.db_name = db_name
        self.connect = connect
        self.quiet_seconds = quiet_seconds
        self.connect_timeout = connect_timeout
        self.clock = clock
        self.unavailable: str | None = None  # why the databases cannot be read
        self._quiet_since: tuple[int, float] | None = None  # (source position, since)
        self.last: Positions | None = None

    def _query(self, ref: DbRef, sql: str) -> tuple[bool, str]:
        from dr.procedures.pg_session import connect_master

        inst = Rds(self.clients, ref.region).describe_instance(ref.identifier)
        if not inst.endpoint:
            raise LookupError(f"DB instance {ref.identifier} in {ref.region} has no endpoint yet")
        conn = connect_master(
            self.clients,
            inst,
            secret_id=self.secret_id,
            db_name=self.db_name,
            connect=self.connect,
            connect_timeout=self.connect_timeout,
            autocommit=True,
        )
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                row = cur.fetchone()
        finally:
            conn.close()
        if row is None or row[1] is None:
            raise LookupError(f"DB instance {ref.identifier} in {ref.region} reported no WAL position")
        return bool(row[0]), str(row[1])

    def source_readable(self) -> bool:
        """Whether the source answers as a writer with its WAL position (:attr:`unavailable` set
        when not) — all that can be checked before the replica exists (a failback creates it)."""
        try:
            recovery, _ = self._query(self.source, SOURCE_SQL)
        except Exception as exc:  # unreachable, refused, no credentials
            self.unavailable = f"{type(exc).__name__} reading the WAL position of {self.source.identifier}"
            return False
        if recovery:
            self.unavailable = f"{self.source.identifier} in recovery={recovery}"
        return not recovery

    def positions(self) -> Positions | None:
        """Both positions (source first), or None — and :attr:`unavailable` set — when unreadable."""
        if self.unavailable is not None:
            return None
        try:
            src_recovery, src = self._query(self.source, SOURCE_SQL)
            rep_recovery, rep = self._query(self.replica, REPLICA_SQL)
        except Exception as exc:  # unreachable, refused, no credentials
            self.unavailable = f"{type(exc).__name__} reading WAL positions"
            return None
        if src_recovery or not rep_recovery:
            # The source must be the writer and the replica still replaying; anything else is not
            # a state this comparison can judge (e.g. already promoted: the step's check says so).
            self.unavailable = (
                f"{self.source.identifier} in recovery={src_recovery}, "
                f"{self.replica.identifier} in recovery={rep_recovery}"
            )
            return None
        self.last = Positions(lsn_to_int(src), lsn_to_int(rep), src, rep)
        return self.last

    def poll(self) -> bool | None:
        """True once caught up and quiet; False while not yet; None when the databases are unreadable."""
        pos = self.positions()
        if pos is None:
            return None
        now = self.clock()
        if not pos.caught_up:
            self._quiet_since = None
            return False
        if self._quiet_since is None or self._quiet_since[0] != pos.source:
            self._quiet_since = (pos.source, now)
            return self.quiet_seconds <= 0
        return now - self._quiet_since[1] >= self.quiet_seconds
