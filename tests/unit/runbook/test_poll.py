from __future__ import annotations

import threading

import pytest

from dr.errors import TimeoutExpired
from dr.runbook.poll import Interrupted, PollPolicy, changed_then, wait_until


def test_intervals_start_fast_grow_and_stay_within_the_slack_bound() -> None:
    policy = PollPolicy(first=0.2, factor=1.6, cap=5.0, floor=0.5, fraction=0.04)
    elapsed = [0.0]
    gen = policy.intervals(lambda: elapsed[0])
    first = [next(gen) for _ in range(3)]
    assert first[0] == pytest.approx(0.2)
    assert first[1] == pytest.approx(0.32)
    assert first[2] == pytest.approx(0.5)  # capped by the floor while elapsed is small
    for t in (10.0, 60.0, 300.0, 3000.0):
        elapsed[0] = t
        interval = next(gen)
        assert interval <= max(1.0, 0.05 * t)  # issue 6: slack <= max(1 s, 5 %)
        assert interval <= policy.cap
    elapsed[0] = 300.0
    assert next(gen) == pytest.approx(5.0)  # long waits reach the cap, not more


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_wait_until_returns_when_true_and_polls_immediately_first() -> None:
    clock = FakeClock()
    calls = [0]

    def fn() -> bool:
        calls[0] += 1
        return calls[0] == 1

    assert wait_until(fn, 10, clock=clock, sleep=clock.sleep) == 1
    assert calls[0] == 1 and clock.now == 0.0


def test_wait_until_times_out_naming_what_and_where() -> None:
    clock = FakeClock()
    with pytest.raises(TimeoutExpired) as info:
        wait_until(
            lambda: False, 30, what="db1 available", region="us-east-1", clock=clock, sleep=clock.sleep
        )
    assert "timed out after 30s waiting for db1 available in us-east-1" in info.value.message
    assert info.value.exit_code == 1
    assert clock.now == pytest.approx(30)  # never sleeps past the deadline


def test_wait_until_stops_when_the_stop_event_is_set() -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(Interrupted):
        wait_until(lambda: False, 60, stop=stop)


def test_changed_then_ignores_a_stale_ready_state() -> None:
    statuses = iter(["available", "available", "modifying", "modifying", "available"])
    pred = changed_then(lambda: next(statuses), lambda s: s == "available")
    results = [pred() for _ in range(5)]
    assert results == [False, False, False, False, True]


def test_changed_then_with_explicit_before_and_changed() -> None:
    pred = changed_then(lambda: "available", lambda s: s == "available", before="modifying")
    assert pred() is True
    values = iter([{"replica": True}, {"replica": False}])
    pred2 = changed_then(lambda: next(values), lambda v: True, changed=lambda v: not v["replica"])
    assert [pred2(), pred2()] == [False, True]
