"""Resume after an injected crash never repeats a side effect (moto RDS + CallRecorder)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto import mock_aws

from dr.aws.session import CallRecorder, ClientProvider
from dr.errors import BadInput
from dr.runbook.journal import Journal
from dr.runbook.runner import run_plan
from tests.unit.runbook.snapplan import Crash, create_db, snapshot_exists, snapshot_plan


@pytest.fixture
def clients() -> Iterator[ClientProvider]:
    with mock_aws():
        provider = ClientProvider()
        create_db(provider)
        yield provider


def _run(plan, clients, runs_dir, resume=None, recorder=None):  # type: ignore[no-untyped-def]
    return run_plan(
        plan,
        {"clients": clients},
        dry_run=False,
        assume_yes=True,
        resume=resume,
        runs_dir=runs_dir,
        lock=None,
        break_lock=False,
        output="json",
        recorder=recorder,
    )


def _creates(recorder: CallRecorder) -> Counter[str]:
    return Counter(
        c.params.get("DBSnapshotIdentifier", "?")
        for c in recorder.mutating()
        if c.operation == "CreateDBSnapshot"
    )


@pytest.mark.parametrize("where", ["after_call", "in_wait"])
def test_crash_mid_step_then_resume_completes_without_duplicate_calls(
    clients: ClientProvider, tmp_path: Path, where: str
) -> None:
    recorder = clients.add_recorder(CallRecorder())
    with pytest.raises(Crash):
        _run(snapshot_plan(clients, crash={"s2": where}), clients, tmp_path, recorder=recorder)
    assert snapshot_exists(clients, "manual-snapshot-s2")  # the side effect happened before the crash
    assert not snapshot_exists(clients, "manual-snapshot-s3")
    (run_id,) = [p.name for p in tmp_path.iterdir()]
    state = Journal.load(tmp_path, run_id)
    assert state.completed == {"s1"} and state.interrupted == ["s2"]
    expected_outputs = {"s1_arn", "s2_arn"} if where == "in_wait" else {"s1_arn"}
    assert set(state.outputs) == expected_outputs  # outputs set before the crash are restored
    assert ("s2" in state.action_done) == (where == "in_wait")

    result = _run(snapshot_plan(clients), clients, tmp_path, resume=run_id, recorder=recorder)
    assert result.status == "succeeded", result.summary()
    assert result.run_id == run_id
    assert result.step("s1").status == "done" and result.step("s1").resumed  # not re-run
    assert result.step("s2").status == "skipped"  # check() saw the snapshot: no second create
    assert result.step("s3").status == "done"
    assert _creates(recorder) == {"manual-snapshot-s1": 1, "manual-snapshot-s2": 1, "manual-snapshot-s3": 1}

    lines = [json.loads(x) for x in state.path.read_text().splitlines()]
    kinds = [e["kind"] for e in lines]
    assert "run_resumed" in kinds and kinds[-1] == "run_finished"
    done_s3 = next(e for e in lines if e["kind"] == "step_done" and e["step"] == "s3")
    assert [(c["operation"], c["params"]["DBSnapshotIdentifier"]) for c in done_s3["calls"]] == [
        ("CreateDBSnapshot", "manual-snapshot-s3")
    ]


def test_journal_attributes_each_mutating_call_to_its_step(clients: ClientProvider, tmp_path: Path) -> None:
    result = _run(snapshot_plan(clients), clients, tmp_path)  # run_plan attaches its own recorder
    assert result.status == "succeeded"
    for sid in ("s1", "s2", "s3"):
        calls = result.step(sid).calls
        assert [c["params"]["DBSnapshotIdentifier"] for c in calls] == [f"manual-snapshot-{sid}"]
        assert all(c["mutating"] and c["region"] == "us-east-1" for c in calls)
    assert clients.recorders == []  # the run's own recorder is detached afterwards


def test_rerunning_a_completed_plan_is_idempotent(clients: ClientProvider, tmp_path: Path) -> None:
    recorder = clients.add_recorder(CallRecorder())
    _run(snapshot_plan(clients), clients, tmp_path, recorder=recorder)
    second = _run(snapshot_plan(clients), clients, tmp_path / "again", recorder=recorder)
    assert [s.status for s in second.steps] == ["skipped", "skipped", "skipped"]
    assert sum(_creates(recorder).values()) == 3


def test_resume_with_another_plan_is_refused(clients: ClientProvider, tmp_path: Path) -> None:
    with pytest.raises(Crash):
        _run(snapshot_plan(clients, crash={"s1": "after_call"}), clients, tmp_path)
    (run_id,) = [p.name for p in tmp_path.iterdir()]
    other = snapshot_plan(clients, names=("x1",))
    other.name = "other"
    with pytest.raises(BadInput, match="was plan 'snapshots'"):
        _run(other, clients, tmp_path, resume=run_id)
    renamed = snapshot_plan(clients, names=("x1",))
    with pytest.raises(BadInput, match="no longer has"):
        _run(renamed, clients, tmp_path, resume=run_id)


def test_concurrent_executors_sharing_a_recorder_attribute_calls_to_their_own_steps(
    clients: ClientProvider,
) -> None:
    import threading

    from dr.runbook.executor import Executor, RunResult
    from dr.runbook.plan import StepContext

    recorder = clients.add_recorder(CallRecorder())
    original_record = recorder.record
    barrier = threading.Barrier(2, timeout=10)
    plans = [snapshot_plan(clients, names=("a1", "a2")), snapshot_plan(clients, names=("b1", "b2"))]
    for plan in plans:
        first = plan.steps[0]
        act = first.action
        assert act is not None

        def synced(ctx: StepContext, act=act) -> None:  # type: ignore[no-untyped-def]
            barrier.wait()  # both runs are inside a step at the same time
            act(ctx)

        first.action = synced
    results: list[RunResult] = []

    def go(plan) -> None:  # type: ignore[no-untyped-def]
        results.append(Executor(plan, StepContext(run_id=plan.steps[0].id), recorder=recorder).run())

    threads = [threading.Thread(target=go, args=(p,)) for p in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 2 and all(r.status == "succeeded" for r in results)
    for r in results:
        for s in r.steps:
            assert [c["params"]["DBSnapshotIdentifier"] for c in s.calls] == [f"manual-snapshot-{s.id}"]
    assert recorder.record == original_record  # the hook is removed once the last executor ends
    assert len(recorder.mutating()) == 4
