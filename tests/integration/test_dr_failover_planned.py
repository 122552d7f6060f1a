"""Planned `dr failover` on a private sandbox: writes stop in the primary region, the plan waits
for the real replica's lag to reach 0, then promotes (RPO 0) and moves the public name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.conftest import RunningSandbox
from tests.integration.test_dr_failover import _dr

pytestmark = pytest.mark.slow


def test_planned_failover_rpo_zero(fresh_sandbox: RunningSandbox, tmp_path: Path) -> None:
    sb = fresh_sandbox
    estate = sb.estate
    primary, secondary = estate.primary, estate.secondary
    res = _dr(
        sb, ["failover", "--to", "secondary", "--yes", "--timeout", "120", "--max-lag", "30s"], tmp_path
    )
    assert res.stdout, res.stderr[-3000:]
    out = json.loads(res.stdout)
    assert "run" in out, (res.returncode, res.stdout[-3000:])  # refused before running: why
    failed = [(s["id"], s["error"]) for s in out["run"]["steps"] if s["status"] == "failed"]
    assert out["run"]["status"] == "succeeded", failed
    assert out["active_region"] == secondary.region
    events = [json.loads(x) for x in Path(out["run"]["journal_path"]).read_text().splitlines()]
    seq = {(e["kind"], e.get("step")): e["seq"] for e in events}
    for writer in estate.app.writers:
        assert seq[("step_done", f"stop-{writer.name}")] < seq[("step_done", "replica-caught-up")]
    assert seq[("step_done", "replica-caught-up")] < seq[("step_started", "promote-db")]
    outputs = {e["key"]: e["value"] for e in events if e["kind"] == "output_set"}
    assert outputs["lag_at_cutover_seconds"] == 0
    # The sandbox's databases answer: the cutover was decided on WAL positions, not on CloudWatch.
    assert outputs["caught_up_by"] == "wal-lsn" and "/" in outputs["cutover_lsn"]
    rds = sb.clients().client("rds", secondary.region)
    db = rds.describe_db_instances(DBInstanceIdentifier=secondary.database.identifier)["DBInstances"][0]
    assert "ReadReplicaSourceDBInstanceIdentifier" not in db
    assert sb.admin.resolve(estate.app.record)["region"] == secondary.region
    assert primary.region != secondary.region


def test_failback_after_the_planned_failover(fresh_sandbox: RunningSandbox, tmp_path: Path) -> None:
    """Same module sandbox: the old primary still RUNS (a planned switchover only stopped the
    writers). Failback rewinds it into a replica of the DR database: what DR wrote comes back,
    what was written to the old primary after the switchover (diverged) is discarded."""
    from tests.integration.test_dr_failover import _connect

    sb = fresh_sandbox
    estate = sb.estate
    primary, secondary = estate.primary, estate.secondary
    if sb.admin.resolve(estate.app.record)["region"] != secondary.region:
        # xdist ran the test above on another worker (another sandbox): switch over here first.
        fo = _dr(sb, ["failover", "--to", "secondary", "--yes", "--timeout", "120"], tmp_path)
        assert fo.returncode == 0, fo.stdout[-3000:] + fo.stderr[-3000:]
        assert sb.admin.resolve(estate.app.record)["region"] == secondary.region
    with _connect(sb, secondary.region, secondary.database.identifier) as conn:
        conn.execute("CREATE TABLE failback_marker (note text)")
        conn.execute("INSERT INTO failback_marker VALUES ('written in DR')")
    with _connect(sb, primary.region, primary.database.identifier) as conn:  # still up, writable
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        conn.execute("CREATE TABLE diverged (note text)")

    res = _dr(sb, ["failback", "--yes", "--timeout", "120"], tmp_path)
    assert res.stdout, res.stderr[-3000:]
    out = json.loads(res.stdout)
    failed = [(s["id"], s["error"]) for s in out["run"]["steps"] if s["status"] == "failed"]
    assert out["run"]["status"] == "succeeded", failed
    pre = out["preflight"]
    assert pre["target_region"] == primary.region and out["active_region"] == primary.region
    assert sb.admin.resolve(estate.app.record)["region"] == primary.region
    with _connect(sb, primary.region, pre["replica"]) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        assert conn.execute("SELECT note FROM failback_marker").fetchall() == [("written in DR",)]
        assert conn.execute("SELECT to_regclass('diverged')").fetchone() == (None,)
    # The DR side is back to warm standby (deployments at the standby site's counts).
    steps = {s["id"]: s["status"] for s in out["run"]["steps"]}
    assert steps["standby-workloads"] == "done" and steps["standby-nodegroup"] in ("done", "skipped")
