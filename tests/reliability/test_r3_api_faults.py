"""R3: throttling and 5xx injected into 20 % of all AWS API calls: `dr failover` still completes.

The faults come from the sandbox's realism layer (``Faults``: ThrottlingException / 5xx answers,
chosen at random per request, in every region and service, the lock table and journal mirror too).
botocore's retry mode (standard, 8 attempts) and our waits absorb them; nothing is done twice.
(With the adaptive mode, whose client-side limiter slows a client after a throttle, each run
took twice as long: see dr/aws/session.py.)
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from tests.reliability.harness import Estate, duplicates, sent_mutations
from tests.unit.procedures.estate_seed import put_caught_up

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("mode", ["unplanned", "planned"])
def test_failover_completes_with_20_percent_throttling_and_5xx(fresh_estate: Estate, mode: str) -> None:
    from dr.sandbox.fakeaws.faults import FaultRule

    e = fresh_estate
    extra: dict[str, str] = {}
    if mode == "planned":
        # The replica is caught up: ReplicaLag within budget for the lag gate, and (this harness has
        # no database) a fake psycopg whose databases all answer at one WAL position, so the
        # switchover can prove RPO 0 by WAL position as it must.
        db = e.estate.secondary.database.identifier
        put_caught_up(e.clients, e.estate.secondary.region, db, dt.datetime.now(dt.UTC), minutes_ahead=2)
        extra["DR_RELIABILITY_FAKE_PG"] = "caught-up"
    faults = e.realism.faults
    faults.add(FaultRule("throttle", rate=0.1))
    faults.add(FaultRule("error", rate=0.1 / 0.9))  # 10 % of all calls (after the throttled ones)
    log = e.new_log(mode)
    res = e.dr(["failover", "--mode", mode, "--yes", "--timeout", "90"], log=log, timeout=240, **extra)
    injected = dict(faults.injected)
    faults.clear()
    assert res.returncode == 0, (_failed_steps(res.stdout), res.stderr[-3000:])
    out = json.loads(res.stdout)
    assert out["run"]["status"] == "succeeded"
    assert out["active_region"] == e.estate.secondary.region
    calls = sent_mutations(log)
    assert duplicates(calls) == {}
    # The faults really hit this run (not a vacuous pass).
    assert injected["throttle"] >= 2 and injected["error"] >= 2, injected


def _failed_steps(stdout: str) -> object:
    """The steps that did not finish, with their errors (the run JSON is long; this is what matters)."""
    try:
        run = json.loads(stdout)["run"]
    except (ValueError, KeyError):
        return stdout[-3000:]
    return [
        (s["id"], s["status"], s["error"]) for s in run["steps"] if s["status"] not in ("done", "skipped")
    ]
