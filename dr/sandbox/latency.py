"""Latency profiles: how long the sandbox takes for what real AWS takes minutes to do.

``realistic`` carries figures measured on real AWS (seconds); ``time_scale`` shrinks them so a
drill with realistic *proportions* fits in a demo (``--time-scale 0.05`` turns a 5-minute RDS
promotion into 15 s). ``none`` makes everything instant for unit tests; ``fast`` keeps short but
non-zero transitions so tests still observe state *changing*.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Literal

ProfileName = Literal["none", "fast", "realistic"]

# (min, max) seconds on real AWS.
REALISTIC: dict[str, tuple[float, float]] = {
    "rds.promote": (180.0, 300.0),  # PromoteReadReplica: modifying -> available, standalone
    "rds.reboot_failover": (60.0, 120.0),  # RebootDBInstance ForceFailover (Multi-AZ)
    "rds.snapshot": (120.0, 300.0),  # CreateDBSnapshot creating -> available
    "rds.snapshot_copy": (300.0, 600.0),  # cross-region CopyDBSnapshot
    "rds.restore": (600.0, 900.0),  # restore-to-PITR / from snapshot: creating -> available
    "rds.create_replica": (900.0, 1200.0),  # CreateDBInstanceReadReplica (cross-region)
    "rds.modify": (30.0, 90.0),  # ModifyDBInstance (e.g. master password)
    "elasticache.failover": (30.0, 60.0),
    "elasticache.snapshot": (60.0, 180.0),
    "elasticache.restore": (300.0, 600.0),
    "eks.nodegroup_scale": (45.0, 75.0),  # UpdateNodegroupConfig: updating -> active
    "eks.node_ready": (30.0, 60.0),  # a new node joins and is Ready after the nodegroup is active
    "k8s.pod_ready": (30.0, 65.0),  # image pull + readiness probe
    "route53.insync": (30.0, 60.0),  # ChangeResourceRecordSets PENDING -> INSYNC
    "route53.health_eval": (10.0, 30.0),  # health checkers agree on a new state
    "replication.lag": (0.5, 2.0),  # cross-region WAL shipping delay
    "rds.restorable_lag": (300.0, 300.0),  # LatestRestorableTime trails "now" by up to ~5 minutes
    # RestoreWindow.LatestTime of automated backups replicated to another region trails further
    "rds.replicated_backup_lag": (300.0, 600.0),
}

FAST_SECONDS = 0.2


@dataclass(frozen=True)
class LatencyProfile:
    name: ProfileName = "none"
    time_scale: float = 1.0
    seed: int | None = None
    # Overrides of individual durations (seconds, before scaling), e.g. {"rds.promote": 2.0}.
    overrides: dict[str, float] = field(default_factory=dict)

    def duration(self, what: str) -> float:
        """Seconds the sandbox should take for ``what`` (already scaled)."""
        if what in self.overrides:
            return self.overrides[what] * self.time_scale
        if self.name == "none":
            return 0.0
        if self.name == "fast":
            return FAST_SECONDS * (0.5 if what == "replication.lag" else 1.0)
        low, high = REALISTIC[what]
        # seeded by a string (hashed with SHA-512, not by hash(): str hashes differ per process), so
        # the same seed draws the same durations in every process — the benchmark's two sandboxes
        # (parallel and sequential) did not, and their ratio measured the dice as much as the plan
        rng = random.Random(None if self.seed is None else f"{self.seed}:{what}")
        return rng.uniform(low, high) * self.time_scale

    def with_overrides(self, **values: float) -> LatencyProfile:
        return replace(
            self, overrides={**self.overrides, **{k.replace("__", "."): v for k, v in values.items()}}
        )


def profile(name: str = "none", time_scale: float = 1.0, seed: int | None = None) -> LatencyProfile:
    if name not in ("none", "fast", "realistic"):
        from dr.errors import BadInput

        raise BadInput(f"unknown latency profile {name!r}: use none, fast or realistic")
    if time_scale <= 0:
        from dr.errors import BadInput

        raise BadInput(f"--time-scale must be > 0, got {time_scale}")
    return LatencyProfile(name=name, time_scale=time_scale, seed=seed)  # type: ignore[arg-type]
