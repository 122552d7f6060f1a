"""Test doubles for drills: an in-memory two-database world and a scripted endpoint."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from dr.drills.heartbeat import HeartbeatTarget
from dr.drills.prober import CheckOutcome

OLD = HeartbeatTarget("old-primary", "postgresql://app:s3cret-pw@old.db.internal:5432/app")
NEW = HeartbeatTarget("promoted", "postgresql://app:s3cret-pw@new.db.internal:5432/app")


@dataclass
class FakeWorld:
    """Two databases with asynchronous replication; the app points at ``current``.

    ``replicate_lag_rows``: the newest rows the replica has not received when the primary dies.
    """

    rows: dict[str, set[int]] = field(default_factory=lambda: {OLD.label: set(), NEW.label: set()})
    primary_up: bool = True
    current: HeartbeatTarget | None = OLD
    replicate_lag_rows: int = 0
    endpoint_ok: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- HeartbeatStore
    def ensure_table(self, target: HeartbeatTarget) -> None:
        pass

    def insert(self, target: HeartbeatTarget, seq: int) -> None:
        with self.lock:
            if target.label == OLD.label and not self.primary_up:
                raise ConnectionError(f"connection to {target.conninfo} refused")
            self.rows[target.label].add(seq)

    def present(self, target: HeartbeatTarget, low: int, high: int) -> set[int]:
        with self.lock:
            return {s for s in self.rows[target.label] if low <= s <= high}

    def close(self) -> None:
        pass

    # -- faults and recovery
    def lose_primary(self) -> None:
        with self.lock:
            self.primary_up = False
            self.endpoint_ok = False

    def promote(self) -> None:
        with self.lock:
            old = sorted(self.rows[OLD.label])
            kept = old[: len(old) - self.replicate_lag_rows] if self.replicate_lag_rows else old
            self.rows[NEW.label] |= set(kept)
            self.current = NEW
            self.endpoint_ok = True

    # -- measurement hooks
    def target(self) -> HeartbeatTarget | None:
        return self.current

    def resolver(self) -> str:
        return "http://new.lb" if self.current is NEW else "http://old.lb"

    def check(self, base_url: str) -> CheckOutcome:
        if self.endpoint_ok:
            return CheckOutcome(True, 200, 201)
        return CheckOutcome(False, error="connection refused")
