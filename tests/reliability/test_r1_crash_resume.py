"""R1: a real ``kill -9`` of ``python -m dr failover`` after each step in turn, then ``--resume``.

The failover runs in a subprocess against moto behind the sandbox's realism layer (transitions,
AWS-side validations) and the fake clusters. A test-only hook (``DR_RELIABILITY_HANG_AFTER``,
tests/reliability/callog.py) freezes the whole process (SIGSTOP) the moment the journal records the
chosen event for the chosen step; the test then sends SIGKILL. Every AWS/Kubernetes mutating call is
written to a call log *before* it is sent, so the log holds everything that reached the wire.

The crash points form chains on one estate: run 1 dies after step A, its ``--resume`` dies after
step B, and so on; the last ``--resume`` must complete. Steps with an action are killed right after
the action's side effect (``step_action_done``: the side effect happened, the step is not yet done —
the hardest case for idempotence); steps with only a wait after ``step_done``. Across all runs of a
chain, no mutating call may repeat.

Duplicates are counted where the side effect happens: the requests moto and the fake clusters
*received* (:mod:`tests.reliability.received`). The client's call log is written before a request
is sent, so a process frozen between logging a request and writing it to the socket lists a call
the server never saw, and the resumed run's legitimate re-send looked like a duplicate (seen under
load: ``PromoteReadReplica`` in flight on a parallel thread when another step's crash point froze
the process).
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.harness import Estate, running_estate
from tests.reliability.received import ReceivedLog

pytestmark = pytest.mark.slow
SEGMENTS = 2


def _plan_steps(e: Estate) -> list[tuple[str, bool]]:
    """(step id, has an action) of the unplanned failover plan, in plan order (read-only)."""
    from dr.procedures.failover import failover_plan
    from dr.procedures.failover_gates import preflight

    pre = preflight(
        e.clients, e.estate, target=e.estate.secondary, mode="unplanned", max_lag=dt.timedelta(seconds=30)
    )
    plan = failover_plan(e.estate, pre, timeout=60)
    return [(s.id, s.action is not None) for s in plan.steps]


def _completed(e: Estate, run_id: str) -> set[str]:
    from dr.runbook.journal import Journal

    return set(Journal.load(e.runs, run_id).completed)


def _crash_run(e: Estate, args: list[str], event: str, step: str, log: Path, marker: Path) -> bool:
    """Run ``dr`` until it reaches (event, step), then kill -9 it. False if it finished first."""
    marker.unlink(missing_ok=True)
    child = e.spawn(
        args, log=log, DR_RELIABILITY_HANG_AFTER=f"{event}:{step}", DR_RELIABILITY_MARKER=str(marker)
    )
    deadline = time.monotonic() + 120
    try:
        while not marker.exists() and child.poll() is None:
            assert time.monotonic() < deadline, f"the run never reached {event}:{step}"
            time.sleep(0.02)
    finally:
        killed = child.poll() is None and child.kill9() == -signal.SIGKILL
    if killed:
        return True
    result = child.wait()
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-2000:])
    return False


def _count(received: list[str], prefix: str) -> int:
    return sum(1 for key in received if key.startswith(prefix))


def _run_id(e: Estate) -> str:
    (run_id,) = [p.name for p in e.runs.iterdir() if p.is_dir()]
    return run_id


@pytest.mark.timeout(600)  # a chain of runs; the per-test default (240 s) is for one command
@pytest.mark.parametrize("segment", range(SEGMENTS), ids=[f"chain{i}" for i in range(SEGMENTS)])
def test_kill_9_after_each_step_then_resume(
    segment: int, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    base = ["failover", "--mode", "unplanned", "--yes", "--timeout", "60"]
    with running_estate(tmp_path / "estate") as e:
        steps = _plan_steps(e)
        start = e.received.mark()
        points = [(sid, action) for i, (sid, action) in enumerate(steps) if i % SEGMENTS == segment]
        logs: list[Path] = []
        crashed: list[str] = []
        run_id: str | None = None
        for sid, has_action in points:
            if run_id is not None and sid in _completed(e, run_id):
                continue  # finished while the previous run died (a parallel step): no crash point left
            log = e.new_log(sid)
            logs.append(log)
            args = base if run_id is None else [*base, "--resume", run_id]
            event = "step_action_done" if has_action else "step_done"
            if not _crash_run(e, args, event, sid, log, tmp_path / "marker"):
                break  # the run completed before reaching the point (all remaining steps done)
            crashed.append(f"{event}:{sid}")
            run_id = run_id or _run_id(e)
            assert sid in _completed(e, run_id) or event == "step_action_done"
        assert crashed, "no crash point was reached"
        record_property("crash_points", len(crashed))
        assert run_id is not None
        final = e.new_log("final")
        logs.append(final)
        res = e.dr([*base, "--resume", run_id], log=final)
        assert res.returncode == 0, (res.stdout[-3000:], res.stderr[-3000:])
        out: dict[str, Any] = json.loads(res.stdout)
        assert out["run"]["status"] == "succeeded", out["run"]
        assert out["active_region"] == e.estate.secondary.region

        received = e.received.since(start)
        assert ReceivedLog.duplicates(received) == {}, crashed
        assert _count(received, "rds:PromoteReadReplica@") == 1
        assert _count(received, "route53:ChangeResourceRecordSets@") == 1
        db = e.clients.client("rds", e.estate.secondary.region).describe_db_instances(
            DBInstanceIdentifier=e.estate.secondary.database.identifier
        )["DBInstances"][0]
        assert "ReadReplicaSourceDBInstanceIdentifier" not in db


@pytest.mark.timeout(600)
def test_kill_9_of_a_fresh_python_m_dr_process(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    """The same crash with a brand-new interpreter (``python -m dr``, hooks from shim/sitecustomize.py),
    so the forked processes above are known to behave like the real command: killed right after the
    promotion was requested, the resumed run does not request it again."""
    import subprocess
    import sys

    base = ["failover", "--mode", "unplanned", "--yes", "--timeout", "60"]
    with running_estate(tmp_path / "estate") as e:
        first, final, marker = e.new_log("fresh"), e.new_log("final"), tmp_path / "marker"
        start = e.received.mark()
        env = e.env(
            first, DR_RELIABILITY_HANG_AFTER="step_action_done:promote-db", DR_RELIABILITY_MARKER=str(marker)
        )
        child = subprocess.Popen(
            [sys.executable, "-m", "dr", "-o", "json", *base],
            env=env,
            cwd=e.directory,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 300
        try:
            while not marker.exists():
                assert child.poll() is None, child.communicate()[1][-2000:]
                assert time.monotonic() < deadline, "never reached promote-db"
                time.sleep(0.05)
            child.send_signal(signal.SIGKILL)
        finally:
            child.wait(timeout=60)
        assert child.returncode == -signal.SIGKILL
        record_property("crash_points", 1)
        run_id = _run_id(e)
        res = e.dr([*base, "--resume", run_id], log=final)
        assert res.returncode == 0, (res.stdout[-2000:], res.stderr[-2000:])
        received = e.received.since(start)
        assert _count(received, "rds:PromoteReadReplica@") == 1, received
        assert ReceivedLog.duplicates(received) == {}
