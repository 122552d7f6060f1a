"""The heartbeat writer against an in-memory store (no PostgreSQL needed)."""

from __future__ import annotations

import itertools
import time

from dr.drills.heartbeat import HeartbeatWriter, acks_from_log, display_conninfo
from dr.drills.metrics import compute_rpo

from .fakes import NEW, OLD, FakeWorld


def clock_from(start: float = 1000.0, step: float = 0.1):
    counter = itertools.count()
    return lambda: start + next(counter) * step


def test_writer_records_acknowledged_writes_and_measures_loss() -> None:
    world = FakeWorld(replicate_lag_rows=3)
    hb = HeartbeatWriter(world.target, world, interval=0.1, clock=clock_from(), seq_base=1)
    for _ in range(10):
        hb.tick()
    fault_at = hb.clock()
    world.lose_primary()
    for _ in range(3):  # writes fail while the region is gone
        hb.tick()
    world.promote()
    for _ in range(5):  # the app now writes to the promoted DB
        hb.tick()
    assert len(hb.acks) == 15 and hb.attempts == 18
    assert [d.kind for d in hb.disruptions] == ["failed", "switched"]
    res = hb.result(fault_at, hb.collect(NEW))
    assert res.measured
    assert res.writes_on_old_primary == 10
    assert res.rows_lost == 3 and res.last_ack_seq == 10 and res.newest_present_seq == 7
    old_acks = {a.seq: a.t for a in hb.acks}
    assert res.rpo_seconds == old_acks[10] - old_acks[7]


def test_failed_write_never_reuses_its_seq() -> None:
    world = FakeWorld()
    hb = HeartbeatWriter(world.target, world, clock=clock_from(), seq_base=100)
    hb.tick()
    world.primary_up = False
    hb.tick()
    world.primary_up = True
    hb.tick()
    assert [a.seq for a in hb.acks] == [100, 102]


def test_paused_writes_are_a_disruption_and_collect_needs_a_target() -> None:
    world = FakeWorld()
    hb = HeartbeatWriter(world.target, world, clock=clock_from(), seq_base=1)
    hb.tick()
    world.current = None  # writes stopped (planned switchover)
    hb.tick()
    hb.tick()
    assert [d.kind for d in hb.disruptions] == ["paused"]
    assert hb.collect(None) is None


def test_collect_gives_up_and_notes_when_the_promoted_db_is_unreadable() -> None:
    class Broken(FakeWorld):
        def present(self, target, low, high):  # type: ignore[no-untyped-def]
            raise ConnectionError("password=hunter2 host=x")

    world = Broken()
    hb = HeartbeatWriter(world.target, world, clock=clock_from(), seq_base=1)
    hb.tick()
    assert hb.collect(NEW, attempts=2, pause=0.0) is None
    assert "hunter2" not in hb.notes[0] and "password=***" in hb.notes[0]


def test_log_round_trips_and_hides_connection_strings() -> None:
    world = FakeWorld(replicate_lag_rows=1)
    hb = HeartbeatWriter(world.target, world, clock=clock_from(), seq_base=1)
    for _ in range(4):
        hb.tick()
    log = hb.log()
    assert "s3cret" not in repr(log)
    acks, disruptions = acks_from_log(log)
    world.promote()
    assert compute_rpo(acks, disruptions, None, world.rows[NEW.label]).rows_lost == 1


def test_background_thread_writes_until_stopped() -> None:
    world = FakeWorld()
    hb = HeartbeatWriter(world.target, world, interval=0.005)
    hb.start()
    deadline = time.monotonic() + 5
    while len(hb.acks) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    hb.stop()
    count = len(hb.acks)
    assert count >= 3
    time.sleep(0.03)
    assert len(hb.acks) == count  # stopped means stopped
    assert hb.seq_base > 1_600_000_000_000  # ms since the epoch: runs never collide


def test_display_conninfo_drops_credentials() -> None:
    assert display_conninfo(OLD.conninfo) == "postgresql://old.db.internal:5432/app"
    assert display_conninfo("host=h dbname=d password=pw user=u") == "host=h dbname=d password=*** user=u"
    assert "s3cret" not in repr(OLD) and "s3cret" not in str(OLD.to_dict())


def test_writes_after_the_read_back_are_not_counted_as_lost() -> None:
    world = FakeWorld()
    hb = HeartbeatWriter(world.target, world, clock=clock_from(), seq_base=1)
    for _ in range(5):
        hb.tick()
    present = hb.collect(OLD)  # the drill reads back while the writer keeps going
    hb.tick()
    hb.tick()
    res = hb.result(fault_at=None, present=present)
    assert res.rows_lost == 0 and res.rpo_seconds == 0.0 and res.writes_on_old_primary == 5
    assert hb.log()["read_at"] == hb.read_at
