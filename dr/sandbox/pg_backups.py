"""Backups of the sandbox PostgreSQL estate: base-backup snapshots, point-in-time restore from the
WAL archive, and the automated backups replicated to the DR region."""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from pathlib import Path

from dr.errors import BadInput, OperationFailed, TimeoutExpired
from dr.sandbox.pg_lifecycle import PgLifecycle
from dr.sandbox.pg_server import (
    REPLICATION_USER,
    WAL_SEGMENT_BYTES,
    PgInstance,
    Snapshot,
    check_name,
    link_or_copy,
    utcnow,
    wait_for,
)

log = logging.getLogger(__name__)


class PgBackups(PgLifecycle):
    """Snapshots, PITR and the DR region's copy of the backups; each restore is a new, real server."""

    def snapshot(self, name: str, instance: str | None = None) -> Snapshot:
        """Take a base backup (``pg_basebackup -X stream``) of ``instance`` (default: the writer)."""
        check_name(name, "snapshot")
        if name in self.snapshots:
            raise BadInput(f"snapshot {name!r} already exists", resource=name, code="DBSnapshotAlreadyExists")
        inst = self._get(instance) if instance else self.writer()
        if inst is None or not inst.is_running():
            raise OperationFailed(f"cannot snapshot: no running source instance for {name!r}", resource=name)
        dest = self.root / "backups" / name
        started = utcnow()
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
        snap = Snapshot(name=name, path=dest, source=inst.name, started_at=started, completed_at=utcnow())
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
                    wait_for(
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
            started = utcnow()
            try:
                with self._connect(primary) as conn:
                    row = conn.execute("SELECT pg_walfile_name(pg_switch_wal() - 1)").fetchone()
            except Exception as exc:  # the primary died meanwhile: nothing shipped this round
                log.debug("ship_backups: switch failed: %s", type(exc).__name__)
                return None
            seg = row[0] if row else None
            if seg:
                wait_for(lambda: (self.archive_dir / seg).exists(), timeout, "the WAL segment to be archived")
            dest = self.replicated_dir / "archive"
            for f in sorted(self.archive_dir.iterdir()):
                if (dest / f.name).exists() or f.name.endswith(".tmp"):
                    continue
                if len(f.name) == 24 and f.stat().st_size != WAL_SEGMENT_BYTES:
                    continue  # still being archived (an old archive_command copied in place)
                link_or_copy(f, dest / f.name)  # an archived file never changes; keeps its time
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

            shutil.copytree(snap.path, staging, symlinks=True, copy_function=link_or_copy)
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

        wait_for(promoted, timeout, f"{name} to reach the recovery target")
        return inst
