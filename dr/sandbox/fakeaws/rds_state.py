"""What the fake keeps about RDS beside moto's models: restorable lags, replicated backups, and when
each instance's automated backups (re)started."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dr.sandbox.latency import REALISTIC, LatencyProfile

# (destination region, source instance ARN) -> [earliest, latest] restorable times of its replicated backups
ReplicatedWindowFn = Callable[[str, str], tuple[dt.datetime, dt.datetime] | None]


@dataclass
class RdsState:
    """What the fake keeps about RDS beside moto's models."""

    # How far behind "now" LatestRestorableTime is (real RDS: up to ~5 minutes).
    restorable_lag: float = 0.0
    # How far the replicated backups' LatestTime trails "now" when no real archive is wired.
    replicated_lag: float = 0.0
    # Automated backups replicated into another region (StartDBInstanceAutomatedBackupsReplication),
    # by their auto-backup ARN in the destination region.
    backup_replications: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Instance ARN -> when its automated backups (re)started: its promotion to a standalone.
    backups_since: dict[str, dt.datetime] = field(default_factory=dict)
    # What the local PostgreSQL's replicated WAL archive really covers (None: nothing replicated
    # yet). Without it the window is modelled from the clock: replication start ... now -
    # ``rds.replicated_backup_lag``.
    replicated_window_fn: ReplicatedWindowFn | None = None

    @classmethod
    def for_profile(cls, profile: LatencyProfile) -> RdsState:
        """The lags of ``profile`` (0 unless the profile is realistic or overrides them)."""

        def lag(what: str) -> float:
            return profile.duration(what) if what in REALISTIC or what in profile.overrides else 0.0

        return cls(restorable_lag=lag("rds.restorable_lag"), replicated_lag=lag("rds.replicated_backup_lag"))
