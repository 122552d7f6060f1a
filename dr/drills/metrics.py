"""Pure computations of the measured RPO and RTO from the drill's logs (unit-tested on scripted logs).

* RPO (heartbeat log): time of the last write acknowledged by the old primary − time of the
  newest of those writes present on the promoted database; 0 when nothing was lost.
* RTO (probe log): time from the fault injection to the first sample of the first run of
  ``sustained`` consecutive successful probes (healthy *and* a write went through) after it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Ack:
    seq: int
    t: float  # client time when the commit returned (epoch seconds)
    label: str


@dataclass(frozen=True)
class Disruption:
    t: float
    label: str | None
    kind: str  # failed | paused | switched
    error: str = ""


# ---------------------------------------------------------------------------------------------
# Pure computation
# ---------------------------------------------------------------------------------------------


@dataclass
class RpoResult:
    measured: bool
    rpo_seconds: float | None = None
    rows_lost: int | None = None
    writes_on_old_primary: int = 0
    last_ack_seq: int | None = None
    last_ack_at: float | None = None
    newest_present_seq: int | None = None
    newest_present_at: float | None = None
    # Nothing the old primary acknowledged is on the promoted DB: the RPO is a lower bound.
    complete_loss: bool = False
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def old_primary_acks(
    acks: list[Ack],
    disruptions: list[Disruption],
    fault_at: float | None,
    read_at: float | None = None,
    until: float | None = None,
) -> list[Ack]:
    """The writes acknowledged by the old primary (see module doc).

    ``read_at``: when the promoted database was read; writes acknowledged after it cannot be in
    what was read and do not count (the writer keeps running while the drill reads back).
    ``until``: only writes acknowledged before it count (the corruption a restore goes back before).
    """
    if not acks:
        return []
    first = acks[0].label
    cutoffs = [d.t for d in disruptions if fault_at is None or d.t >= fault_at]
    if read_at is not None:
        cutoffs.append(read_at)
    if until is not None:
        cutoffs.append(until)
    cutoff = min(cutoffs, default=float("inf"))
    return [a for a in acks if a.label == first and a.t < cutoff]


def compute_rpo(
    acks: list[Ack],
    disruptions: list[Disruption],
    fault_at: float | None,
    present: set[int] | None,
    read_at: float | None = None,
    until: float | None = None,
) -> RpoResult:
    """Measured RPO from the local write log and the seqs present on the promoted database
    (``until``: only the writes acknowledged before it count, see :func:`old_primary_acks`)."""
    old = old_primary_acks(acks, disruptions, fault_at, read_at, until)
    if not old:
        return RpoResult(False, note="no heartbeat was acknowledged by the old primary")
    last = max(old, key=lambda a: a.seq)
    base = RpoResult(
        measured=False, writes_on_old_primary=len(old), last_ack_seq=last.seq, last_ack_at=last.t
    )
    if present is None:
        base.note = "the promoted database could not be read"
        return base
    kept = [a for a in old if a.seq in present]
    lost = len(old) - len(kept)
    base.measured = True
    base.rows_lost = lost
    if not kept:
        base.complete_loss = True
        base.rpo_seconds = max(0.0, last.t - old[0].t)
        base.note = "no acknowledged heartbeat survived: the RPO is at least the whole heartbeat window"
        return base
    newest = max(kept, key=lambda a: a.seq)
    base.newest_present_seq = newest.seq
    base.newest_present_at = newest.t
    base.rpo_seconds = 0.0 if lost == 0 else max(0.0, last.t - newest.t)
    return base


# ---------------------------------------------------------------------------------------------
# RTO
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One endpoint probe: ``ok`` means /health answered healthy and the write succeeded."""

    t: float
    ok: bool
    address: str = ""
    health: int | None = None
    write: int | None = None
    latency: float | None = None
    error: str = ""

    def to_row(self) -> list[Any]:
        return [round(self.t, 4), self.ok, self.address, self.health, self.write, self.latency, self.error]

    @classmethod
    def from_row(cls, row: list[Any]) -> Sample:
        t, ok, address, health, write, latency, error = row
        return cls(float(t), bool(ok), address, health, write, latency, error)


@dataclass
class RtoResult:
    measured: bool
    rto_seconds: float | None = None
    recovered_at: float | None = None
    fault_at: float | None = None
    # Seconds after the fault during which samples failed (sum of failed sample intervals).
    downtime_seconds: float = 0.0
    first_failure_at: float | None = None
    failed_samples: int = 0
    samples_after_fault: int = 0
    sustained: int = 1
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def compute_rto(
    samples: list[Sample], fault_at: float | None, sustained: int = 4, until: float | None = None
) -> RtoResult:
    """RTO from a probe log; ``until`` ignores samples after it (e.g. once rollbacks start)."""
    if fault_at is None:
        return RtoResult(False, sustained=sustained, note="no fault was injected")
    after = sorted(
        (s for s in samples if s.t >= fault_at and (until is None or s.t <= until)), key=lambda s: s.t
    )
    res = RtoResult(False, fault_at=fault_at, sustained=sustained, samples_after_fault=len(after))
    if not after:
        res.note = "no endpoint probe ran after the fault"
        return res
    failed = [s for s in after if not s.ok]
    res.failed_samples = len(failed)
    res.first_failure_at = failed[0].t if failed else None
    for prev, cur in itertools.pairwise(after):
        if not prev.ok:
            res.downtime_seconds += cur.t - prev.t
    run_start: Sample | None = None
    run = 0
    # The outage may begin after the fault action starts (e.g. writes stopped first, or a region
    # lost at the end of its action): successes before the first failure are not a recovery.
    scan = [s for s in after if s.t >= failed[0].t] if failed else after
    for s in scan:
        if s.ok:
            if run == 0:
                run_start = s
            run += 1
            if run >= sustained and run_start is not None:
                res.measured = True
                res.recovered_at = run_start.t
                res.rto_seconds = max(0.0, run_start.t - fault_at)
                return res
        else:
            run, run_start = 0, None
    res.note = f"never recovered: no {sustained} consecutive successful probes after the fault" + (
        f" (last run: {run})" if run else ""
    )
    return res
