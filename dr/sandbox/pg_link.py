"""The replication link of the sandbox PostgreSQL estate: its delay, the measured lag, promotion,
and losing the primary (a cut link drops the WAL in flight)."""

from __future__ import annotations

import contextlib
import logging
import time

from dr.errors import OperationFailed, TimeoutExpired
from dr.sandbox.pg_lifecycle import PgLifecycle
from dr.sandbox.pg_server import (
    parse_lsn,
    wait_for,
)

log = logging.getLogger(__name__)


class PgLink(PgLifecycle):
    """Replication control: delay, lag, promotion, a lost or stopped primary."""

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
        replay_lsn, since_replay, streaming, upstream_lsn = rec[1], rec[2], bool(rec[3]), parse_lsn(up[1])
        if replay_lsn is not None and parse_lsn(replay_lsn) >= upstream_lsn:
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
            return bool(row and row[0] is not None and parse_lsn(row[0]) >= upstream_lsn)

        with contextlib.suppress(TimeoutExpired):
            wait_for(replayed, settle, f"{replica} to replay")
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
        wait_for(lambda: self.lag_seconds(replica) == 0.0, timeout, f"{replica} to catch up")

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

        wait_for(writable, timeout, f"{name} to become writable")
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
