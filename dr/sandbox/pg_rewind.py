"""Failback and re-protection for the sandbox PostgreSQL estate: ``pg_rewind`` a diverged server and
start it as a replica of the writer, through a delaying link of its own."""

from __future__ import annotations

from pathlib import Path

from dr.errors import BadInput
from dr.sandbox.pg_lifecycle import PgLifecycle
from dr.sandbox.pg_server import (
    HOST,
    Dsn,
    PgInstance,
)
from dr.sandbox.pgproxy import DelayProxy


class PgRewind(PgLifecycle):
    """Rewind/re-seed a server as a replica of the writer (failback, ``dr reprotect``)."""

    def rewind_old_primary_as_replica(self, timeout: float = 60.0) -> PgInstance:
        """Failback preparation: :meth:`rewind_as_replica` of the old primary."""
        return self.rewind_as_replica("primary", timeout=timeout)

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
        dsn = Dsn(new.host, new.port, "postgres", self.username, self._master_password())
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
            password=self._master_password(),
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
