"""The bridge between the sandbox's RDS instances and its real PostgreSQL servers.

The bridge maps each RDS instance of the estate (region, identifier) to a local PostgreSQL
server and turns the realism layer's RDS hooks into PostgreSQL operations: a promote promotes the
server, a restore (snapshot or point in time) re-seeds one, a new read replica rewinds a diverged
server into a replica, losing a region kills the servers in it. The RDS endpoint is the local
server's port and ReplicaLag its measured lag.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dr.errors import BadInput, OperationFailed

if TYPE_CHECKING:
    from dr.sandbox.fakeaws.middleware import Realism
    from dr.topology import Estate

log = logging.getLogger(__name__)


class RdsBridge:
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
