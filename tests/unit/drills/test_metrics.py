"""RPO and RTO computed from scripted heartbeat and probe logs."""

from __future__ import annotations

import pytest

from dr.drills.metrics import Ack, Disruption, Sample, compute_rpo, compute_rto, old_primary_acks

OLD, NEW = "old-primary", "promoted"


def acks(label: str, seqs: range, t0: float = 100.0, step: float = 0.1) -> list[Ack]:
    return [Ack(s, t0 + (s - seqs.start) * step, label) for s in seqs]


# ------------------------------------------------------------------------------------------ RPO


def test_rpo_zero_when_nothing_lost() -> None:
    log = acks(OLD, range(1, 51))
    res = compute_rpo(log, [Disruption(105.05, OLD, "failed")], fault_at=105.0, present=set(range(1, 51)))
    assert res.measured and res.rpo_seconds == 0.0 and res.rows_lost == 0
    assert res.writes_on_old_primary == 50


def test_rpo_until_the_corruption_ignores_the_writes_a_restore_discards_on_purpose() -> None:
    """Region lost at 105 after a corruption at 103; the restore went back to 102.5: the RPO is
    the distance from the restore point to the last write acknowledged before the corruption,
    not to the loss (writes 31..50 came after the corruption and are meant to be gone)."""
    log = acks(OLD, range(1, 51))  # seq n acknowledged at 100 + (n - 1) / 10
    present = set(range(1, 26))  # restored to 102.5: seq 25 (102.4) is the newest kept
    loss = [Disruption(105.0, OLD, "failed")]
    res = compute_rpo(log, loss, fault_at=104.95, present=present, until=103.0)
    assert res.measured and res.last_ack_seq == 30 and res.rows_lost == 5
    assert res.rpo_seconds == pytest.approx(0.5)
    whole = compute_rpo(log, loss, fault_at=104.95, present=present)
    assert whole.rpo_seconds == pytest.approx(2.5)  # counted to the loss


def test_rpo_is_last_ack_minus_newest_present() -> None:
    log = acks(OLD, range(1, 51))  # seq 50 acknowledged at 104.9
    present = set(range(1, 38))  # 38..50 never reached the replica
    res = compute_rpo(log, [Disruption(105.0, OLD, "failed")], fault_at=104.95, present=present)
    assert res.measured
    assert res.rows_lost == 13
    assert res.last_ack_seq == 50 and res.newest_present_seq == 37
    assert res.rpo_seconds == pytest.approx(104.9 - 103.6)


def test_rpo_counts_gaps_not_only_the_tail() -> None:
    log = acks(OLD, range(1, 11))
    res = compute_rpo(log, [], fault_at=None, present=set(range(1, 11)) - {4})
    assert res.rows_lost == 1
    assert res.rpo_seconds == pytest.approx(0.0)  # newest (10) is present: last ack − newest = 0


def test_rpo_all_lost_is_a_lower_bound() -> None:
    log = acks(OLD, range(1, 21))
    res = compute_rpo(log, [Disruption(103.0, OLD, "failed")], fault_at=102.5, present=set())
    assert res.measured and res.complete_loss
    assert res.rows_lost == 20
    assert res.rpo_seconds == pytest.approx(1.9)


def test_rpo_ignores_writes_after_recovery_even_to_the_same_endpoint() -> None:
    before = acks(OLD, range(1, 21))  # up to 101.9
    after = acks(OLD, range(30, 40), t0=110.0)  # Multi-AZ: same endpoint after recovery
    dis = [Disruption(102.0, OLD, "failed")]
    old = old_primary_acks(before + after, dis, fault_at=101.95)
    assert [a.seq for a in old] == list(range(1, 21))
    res = compute_rpo(before + after, dis, fault_at=101.95, present=set(range(1, 16)) | set(range(30, 40)))
    assert res.rows_lost == 5
    assert res.rpo_seconds == pytest.approx(101.9 - 101.4)


def test_rpo_writes_to_the_promoted_db_are_not_old_primary_writes() -> None:
    log = acks(OLD, range(1, 11)) + acks(NEW, range(20, 30), t0=120.0)
    dis = [Disruption(101.0, None, "paused"), Disruption(120.0, NEW, "switched")]
    res = compute_rpo(log, dis, fault_at=100.95, present=set(range(1, 11)) | set(range(20, 30)))
    assert res.writes_on_old_primary == 10 and res.rpo_seconds == 0.0


def test_disruptions_before_the_fault_do_not_end_the_old_primary_window() -> None:
    log = acks(OLD, range(1, 31))
    dis = [Disruption(100.55, OLD, "failed"), Disruption(102.95, OLD, "failed")]
    assert len(old_primary_acks(log, dis, fault_at=102.9)) == 30


def test_rpo_not_measured_without_data() -> None:
    assert not compute_rpo([], [], 1.0, set()).measured
    res = compute_rpo(acks(OLD, range(1, 5)), [], 1.0, None)
    assert not res.measured and "could not be read" in res.note


# ------------------------------------------------------------------------------------------ RTO


def probes(pattern: str, t0: float = 0.0, step: float = 0.25) -> list[Sample]:
    return [Sample(t0 + i * step, c == "+") for i, c in enumerate(pattern)]


def test_rto_first_sustained_success_after_fault() -> None:
    # fault at 1.0 (sample 4); down for 8 samples; up from sample 12 (t=3.0)
    log = probes("++++--------+++++")
    res = compute_rto(log, fault_at=1.0, sustained=4)
    assert res.measured and res.recovered_at == 3.0
    assert res.rto_seconds == pytest.approx(2.0)
    assert res.failed_samples == 8
    assert res.downtime_seconds == pytest.approx(2.0)


def test_rto_flapping_needs_a_sustained_run() -> None:
    log = probes("++--++-+++-++++++")
    res = compute_rto(log, fault_at=0.5, sustained=4)
    # runs after the fault: "--", "++", "-", "+++", "-", "++++++" -> the last run starts at index 11
    assert res.recovered_at == pytest.approx(11 * 0.25)
    assert res.rto_seconds == pytest.approx(11 * 0.25 - 0.5)


def test_rto_no_downtime_is_the_first_probe_after_the_fault() -> None:
    res = compute_rto(probes("++++++++"), fault_at=0.6, sustained=3)
    assert res.rto_seconds == pytest.approx(0.75 - 0.6)
    assert res.failed_samples == 0 and res.downtime_seconds == 0.0


def test_rto_never_recovered() -> None:
    res = compute_rto(probes("+++-----+++"), fault_at=0.7, sustained=4)
    assert not res.measured and res.rto_seconds is None
    assert "never recovered" in res.note and "last run: 3" in res.note


def test_rto_until_cuts_off_rollback_samples() -> None:
    log = probes("++------++++++")
    assert compute_rto(log, fault_at=0.5, sustained=2).measured
    assert not compute_rto(log, fault_at=0.5, sustained=2, until=1.9).measured


def test_rto_without_fault_or_samples() -> None:
    assert compute_rto(probes("++++"), fault_at=None).note == "no fault was injected"
    assert not compute_rto([], fault_at=1.0).measured


def test_sample_row_round_trip() -> None:
    s = Sample(1.5, True, "http://127.0.0.1:1", 200, 201, 0.01, "")
    assert Sample.from_row(s.to_row()) == s


def test_rpo_ignores_writes_acknowledged_after_the_read_back() -> None:
    # the writer keeps running while the drill reads the promoted DB: a write acknowledged after
    # the read cannot be in what was read, and is not a loss
    log = acks(OLD, range(1, 11))
    present = set(range(1, 9))  # 9 and 10 were acknowledged after the read at 100.75
    assert compute_rpo(log, [], fault_at=100.0, present=present).rows_lost == 2
    res = compute_rpo(log, [], fault_at=100.0, present=present, read_at=100.75)
    assert res.rows_lost == 0 and res.rpo_seconds == 0.0


def test_rto_ignores_successes_before_the_outage_began() -> None:
    """The fault action may start before the endpoint fails (writes stopped first, or the region
    lost at the end of its action): recovery is the first sustained run after the first failure."""
    from dr.drills.metrics import Sample, compute_rto

    oks = [Sample(t=100.0 + i * 0.25, ok=True) for i in range(8)]  # 100.00 .. 101.75 still up
    down = [Sample(t=102.0 + i * 0.25, ok=False) for i in range(8)]  # 102.00 .. 103.75 down
    back = [Sample(t=104.0 + i * 0.25, ok=True) for i in range(4)]
    res = compute_rto(oks + down + back, fault_at=100.0, sustained=4)
    assert res.measured and res.rto_seconds == 4.0 and res.recovered_at == 104.0
