"""Executor: DAG order, parallelism, limits, failure handling, skip, timeout, Ctrl-C.

Concurrency is asserted with threading primitives (barriers/events with a generous timeout that
only expires when the behaviour is wrong), never with timing.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from dr.errors import BadInput
from dr.runbook.executor import Executor, RunResult
from dr.runbook.journal import Journal
from dr.runbook.plan import Plan, Step, StepContext
from dr.runbook.poll import PollPolicy

FAST = PollPolicy(first=0.005, factor=1.5, cap=0.02, floor=0.02, fraction=0.0)
GUARD = 5.0  # seconds a correct executor never needs; only a wrong one waits this long


def step(sid: str, *deps: str, service: str = "rds", **kw: Any) -> Step:
    return Step(id=sid, title=sid, region="us-east-1", service=service, depends_on=deps, **kw)


def run(plan: Plan, tmp_path: Path | None = None, **kw: Any) -> RunResult:
    journal = Journal.create(tmp_path, plan.name) if tmp_path is not None else None
    ctx = StepContext(run_id=journal.run_id if journal else "test")
    try:
        return Executor(plan, ctx, journal=journal, poll=FAST, **kw).run()
    finally:
        if journal is not None:
            journal.close()


def events(result: RunResult) -> list[dict[str, Any]]:
    assert result.journal_path
    return [json.loads(line) for line in Path(result.journal_path).read_text().splitlines()]


def test_independent_steps_run_in_parallel() -> None:
    barrier = threading.Barrier(3, timeout=GUARD)
    plan = Plan("p", [step(s, action=lambda _c: barrier.wait()) for s in "abc"])
    result = run(plan)
    # A sequential executor would break the barrier (BrokenBarrierError -> failed).
    assert result.status == "succeeded", result.summary()


def test_dependants_start_as_soon_as_their_dependency_finishes() -> None:
    """c depends only on a; b (independent, still running) waits for c to start."""
    c_started = threading.Event()

    def slow_b(_ctx: StepContext) -> None:
        if not c_started.wait(GUARD):
            raise AssertionError("c did not start while b was running")

    plan = Plan(
        "p",
        [step("a"), step("b", action=slow_b), step("c", "a", action=lambda _c: c_started.set())],
    )
    result = run(plan)
    assert result.status == "succeeded", result.summary()


def test_dependencies_are_respected() -> None:
    seen: list[str] = []
    lock = threading.Lock()

    def rec(name: str) -> Any:
        def action(_ctx: StepContext) -> None:
            with lock:
                seen.append(name)

        return action

    plan = Plan(
        "p",
        [
            step("dns", "promote", "pods", action=rec("dns")),
            step("pods", "scale", action=rec("pods")),
            step("scale", action=rec("scale")),
            step("promote", action=rec("promote")),
        ],
    )
    assert run(plan).status == "succeeded"
    assert seen.index("scale") < seen.index("pods") < seen.index("dns")
    assert seen.index("promote") < seen.index("dns")
    assert len(seen) == 4


def test_per_service_limit_caps_concurrency() -> None:
    active, peak = [0], [0]
    lock = threading.Lock()

    def action(_ctx: StepContext) -> None:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        # Give a second rds step every chance to start if the limit were not enforced.
        other_started.wait(0.05)
        with lock:
            active[0] -= 1

    other_started = threading.Event()
    eks_barrier = threading.Barrier(2, timeout=GUARD)
    plan = Plan(
        "p",
        [step(f"r{i}", action=action) for i in range(4)]
        + [step(f"e{i}", service="eks", action=lambda _c: eks_barrier.wait()) for i in range(2)],
    )
    result = run(plan, limits={"rds": 1})
    assert result.status == "succeeded", result.summary()
    assert peak[0] == 1  # rds serialised, while the two eks steps still ran together (barrier)


def test_service_region_limit_key_is_honoured() -> None:
    active, peak = [0], [0]
    lock = threading.Lock()

    def action(_ctx: StepContext) -> None:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        threading.Event().wait(0.02)
        with lock:
            active[0] -= 1

    plan = Plan("p", [step(f"r{i}", action=action) for i in range(3)])
    assert run(plan, limits={"rds:us-east-1": 1}).status == "succeeded"
    assert peak[0] == 1


def test_zero_limit_is_rejected() -> None:
    with pytest.raises(BadInput, match="rds=0"):
        Executor(Plan("p", [step("a")]), StepContext(run_id="x"), limits={"rds": 0})


def test_failed_step_stops_new_steps_and_reports_exactly(tmp_path: Path) -> None:
    failing_started = threading.Event()
    slow_may_finish = threading.Event()

    def slow(_ctx: StepContext) -> None:
        if not failing_started.wait(GUARD):
            raise AssertionError("bad started late")
        slow_may_finish.wait(GUARD)

    def bad(_ctx: StepContext) -> None:
        failing_started.set()
        raise RuntimeError("promote refused: InvalidDBInstanceState")

    def finish_slow_on_failure(sid: str, status: str) -> None:
        if sid == "bad" and status == "failed":
            slow_may_finish.set()

    progress = type("P", (), {"step_changed": staticmethod(finish_slow_on_failure)})()
    plan = Plan(
        "p",
        [
            step("slow", action=slow),
            step("bad", action=bad),
            step("after_slow", "slow"),
            step("after_bad", "bad"),
        ],
    )
    result = run(plan, tmp_path, progress=progress)
    assert result.status == "failed"
    assert result.step("slow").status == "done"  # running steps finish
    assert result.step("bad").status == "failed"
    assert "InvalidDBInstanceState" in (result.step("bad").error or "")
    assert result.step("after_slow").status == "not_started"  # not started after the failure
    assert result.step("after_bad").status == "not_started"
    assert result.summary()["not_started"] == ["after_slow", "after_bad"]
    kinds = [(e["kind"], e.get("step")) for e in events(result)]
    assert ("step_failed", "bad") in kinds
    assert ("step_started", "after_slow") not in kinds
    assert kinds[-1] == ("run_finished", None)


def test_check_true_skips_action_and_wait() -> None:
    called: list[str] = []
    plan = Plan(
        "p",
        [
            step(
                "a",
                check=lambda _c: True,
                action=lambda _c: called.append("action"),
                wait=lambda _c: called.append("wait") is not None,
            ),
            step("b", "a", action=lambda _c: called.append("b")),
        ],
    )
    result = run(plan)
    assert result.step("a").status == "skipped"
    assert called == ["b"]  # dependants of a skipped step still run


def test_wait_is_polled_until_true() -> None:
    polls = [0]

    def ready(_ctx: StepContext) -> bool:
        polls[0] += 1
        return polls[0] >= 4

    result = run(Plan("p", [step("a", wait=ready)]))
    assert result.step("a").status == "done"
    assert polls[0] == 4 == result.step("a").polls
    a = result.step("a")
    assert a.started_at is not None and a.ended_at is not None and a.started_at <= a.ended_at


def test_timeout_fails_the_step_with_timeout_expired(tmp_path: Path) -> None:
    plan = Plan("p", [step("a", wait=lambda _c: False, timeout=0.1), step("b", "a")])
    result = run(plan, tmp_path)
    assert result.step("a").status == "failed"
    assert "timed out after 0.1s waiting for step a" in (result.step("a").error or "")
    assert "us-east-1" in (result.step("a").error or "")
    assert result.step("b").status == "not_started"


def test_keyboard_interrupt_records_and_reraises(tmp_path: Path) -> None:
    polling = threading.Event()

    def poll_forever(_ctx: StepContext) -> bool:
        polling.set()
        return False

    def ctrl_c(_ctx: StepContext) -> None:
        polling.wait(GUARD)
        raise KeyboardInterrupt

    plan = Plan(
        "p", [step("waiting", wait=poll_forever, timeout=60), step("boom", action=ctrl_c), step("c", "boom")]
    )
    journal = Journal.create(tmp_path, "p")
    with pytest.raises(KeyboardInterrupt):
        Executor(plan, StepContext(run_id=journal.run_id), journal=journal, poll=FAST).run()
    journal.close()
    lines = [json.loads(x) for x in journal.path.read_text().splitlines()]
    kinds = [(e["kind"], e.get("step")) for e in lines]
    assert ("step_interrupted", "waiting") in kinds  # the poll stopped promptly (timeout is 60 s)
    assert ("step_interrupted", "boom") in kinds
    assert kinds[-1][0] == "run_interrupted"
    assert ("step_started", "c") not in kinds
    state = Journal.load(tmp_path, journal.run_id)
    assert set(state.interrupted) == {"waiting", "boom"}


def test_critical_path_and_ratio_use_measured_durations() -> None:
    now = [0.0]

    def clock() -> float:
        return now[0]

    def advance(seconds: float) -> Any:
        def action(_ctx: StepContext) -> None:
            now[0] += seconds

        return action

    plan = Plan(
        "p", [step("a", action=advance(10), estimate=1), step("b", "a", action=advance(5), estimate=100)]
    )
    result = run(plan, clock=clock, max_workers=1)
    assert result.critical_path == ["a", "b"]
    assert result.critical_path_seconds == pytest.approx(15)
    assert result.wall_seconds == pytest.approx(15)
    assert result.ratio == pytest.approx(1.0)


def test_resume_marks_completed_steps_done_without_running_them() -> None:
    ran: list[str] = []
    plan = Plan(
        "p", [step("a", action=lambda _c: ran.append("a")), step("b", "a", action=lambda _c: ran.append("b"))]
    )
    result = run(plan, completed={"a"})
    assert ran == ["b"]
    assert result.step("a").status == "done" and result.step("a").resumed


def test_unknown_completed_step_is_rejected() -> None:
    with pytest.raises(BadInput, match="zz"):
        Executor(Plan("p", [step("a")]), StepContext(run_id="x"), completed={"zz"})


def test_outputs_set_by_a_step_reach_its_dependants() -> None:
    got: list[Any] = []
    plan = Plan(
        "p",
        [
            step("promote", action=lambda c: c.set("endpoint", "db.us-east-1.example")),
            step("patch", "promote", action=lambda c: got.append(c.get("endpoint"))),
        ],
    )
    assert run(plan).status == "succeeded"
    assert got == ["db.us-east-1.example"]


def test_a_step_polling_policy_applies_to_that_steps_wait_only() -> None:
    """``step_polls`` (the benchmark's botocore-waiter steps) replaces the run's policy for the named
    steps; the others keep it. Which policy a wait used is read from the intervals it asked for."""
    asked: dict[str, list[float]] = {"run": [], "a": []}

    class Spy(PollPolicy):
        def __init__(self, name: str) -> None:
            super().__init__(first=0.001, factor=1.0, cap=0.001, floor=0.001, fraction=0.0)
            object.__setattr__(self, "name", name)

        def intervals(self, elapsed: Any) -> Any:
            for interval in super().intervals(elapsed):
                asked[self.name].append(interval)  # type: ignore[attr-defined]
                yield interval

    def twice(polls: list[int]) -> Any:
        def wait(_ctx: StepContext) -> bool:
            polls[0] += 1
            return polls[0] >= 3

        return wait

    plan = Plan("p", [step("a", wait=twice([0])), step("b", "a", wait=twice([0]))])
    result = Executor(plan, StepContext(run_id="t"), poll=Spy("run"), step_polls={"a": Spy("a")}).run()
    assert result.status == "succeeded", result.summary()
    # one interval per poll: a's from its own policy, b's from the run's
    assert len(asked["a"]) == 3 and len(asked["run"]) == 3
    with pytest.raises(BadInput, match="nope"):
        Executor(plan, StepContext(run_id="t"), step_polls={"nope": PollPolicy()})
