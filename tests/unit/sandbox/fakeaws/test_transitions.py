"""The transition table and its scheduler thread."""

from __future__ import annotations

import threading
import time

from dr.sandbox.fakeaws.transitions import Transitions


def test_zero_duration_transition_completes_before_returning() -> None:
    table = Transitions()
    done: list[str] = []
    tr = table.begin("rds.promote", "us-east-1", "db", "modifying", 0.0, lambda: done.append("x"))
    assert tr.done and done == ["x"]
    assert table.active() == []


def test_timed_transition_is_visible_then_completes_once() -> None:
    table = Transitions()
    table.start()
    done = threading.Event()
    calls: list[int] = []
    try:
        table.begin(
            "rds.snapshot", "us-west-2", "s1", "creating", 0.05, lambda: (calls.append(1), done.set())
        )
        active = table.get("rds.snap", "us-west-2", "s1")
        assert active is not None and active.status == "creating"
        assert done.wait(5)
        assert table.wait_idle(5)
        assert table.get("rds.snap", "us-west-2", "s1") is None
        assert calls == [1]
    finally:
        table.stop()


def test_failing_completion_does_not_kill_the_scheduler() -> None:
    table = Transitions()
    table.start()
    ok = threading.Event()
    try:
        table.begin("a", "r", "1", "x", 0.01, lambda: 1 / 0)  # type: ignore[func-returns-value]
        table.begin("a", "r", "2", "x", 0.02, ok.set)
        assert ok.wait(5)
    finally:
        table.stop()


def test_fast_forward_completes_only_the_matching_transitions() -> None:
    table = Transitions()
    table.start()
    done: list[str] = []
    try:
        table.begin("rds.snapshot", "r", "s1", "creating", 60, lambda: done.append("snap"))
        table.begin("eks.nodegroup_scale", "r", "ng", "UPDATING", 60, lambda: done.append("ng"))
        assert table.fast_forward("rds.") == 1
        deadline = time.monotonic() + 5
        while done != ["snap"]:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert [t.kind for t in table.active()] == ["eks.nodegroup_scale"]
    finally:
        table.stop()
