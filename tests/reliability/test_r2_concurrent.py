"""R2: two `dr failover` processes started together: exactly one runs, the other exits 3 naming the holder.

Both are real processes racing for the run lock (a DynamoDB conditional write in the surviving
region). Each holds still for a few seconds after its first step (test hook), so whichever wins
still holds the lock when the other arrives, however loaded the machine is.
"""

from __future__ import annotations

import json

import pytest

from tests.reliability.harness import Estate, infra_mutations, sent_mutations

pytestmark = pytest.mark.slow


def test_two_concurrent_failovers_one_runs_other_exits_3(fresh_estate: Estate) -> None:
    e = fresh_estate
    args = ["failover", "--mode", "unplanned", "--yes", "--timeout", "60"]
    logs = [e.new_log("a"), e.new_log("b")]
    pause = {"DR_RELIABILITY_PAUSE_AFTER": "step_done:scale-nodegroup:6"}
    children = [e.spawn(args, log=log, **pause) for log in logs]
    results = [c.wait(180) for c in children]
    codes = sorted(r.returncode for r in results)
    assert codes == [0, 3], [(r.returncode, r.stderr[-1500:]) for r in results]
    winner, loser = (0, 1) if results[0].returncode == 0 else (1, 0)
    run = json.loads(results[winner].stdout)["run"]
    assert run["status"] == "succeeded"
    err = results[loser].stderr
    # The refusal names the holder (user@host, its run id, pid) and what to do.
    assert "is held by" in err and run["run_id"] in err, err
    assert f"pid {children[winner].pid}" in err, err
    # The loser changed nothing: at most its refused conditional lock write.
    assert infra_mutations(sent_mutations(logs[loser])) == []
    assert [c["operation"] for c in sent_mutations(logs[loser])] in ([], ["PutItem"])
