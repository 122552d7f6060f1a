"""`dr failover` on a private sandbox (moto server + realism transitions + fake Kubernetes API +
real PostgreSQL): the primary region is lost, the failover runs through the CLI against the DR
region only, and the public name ends up served by a writable database. Then `dr reconcile`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import STACKS
from tests.integration.conftest import RunningSandbox

pytestmark = pytest.mark.slow


def _dr(sb: RunningSandbox, args: list[str], tmp_path: Path, stack_dir: Path = STACKS) -> Any:
    env = {
        **os.environ,
        "DR_TARGET": "sandbox",
        "DR_SANDBOX_DIR": str(sb.directory),
        "DR_RUNS_DIR": str(tmp_path / "runs"),
    }
    return subprocess.run(
        [sys.executable, "-m", "dr", "--stack-dir", str(stack_dir), "-o", "json", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_unplanned_failover_then_reconcile(fresh_sandbox: RunningSandbox, tmp_path: Path) -> None:
    sb = fresh_sandbox
    estate = sb.estate
    primary, secondary = estate.primary, estate.secondary

    dry = _dr(sb, ["failover", "--mode", "unplanned", "--dry-run"], tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["run"]["status"] == "dry-run"

    sb.admin.region_down(primary.region)
    res = _dr(sb, ["failover", "--mode", "unplanned", "--yes", "--timeout", "120"], tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out = json.loads(res.stdout)
    failed = [(s["id"], s["status"], s["error"]) for s in out["run"]["steps"] if s["status"] != "done"]
    assert out["run"]["status"] == "succeeded", failed
    assert out["active_region"] == secondary.region
    assert out["run"]["ratio"] is not None and out["run"]["critical_path"]

    rds = sb.clients().client("rds", secondary.region)
    db = rds.describe_db_instances(DBInstanceIdentifier=secondary.database.identifier)["DBInstances"][0]
    assert db["DBInstanceStatus"] == "available" and "ReadReplicaSourceDBInstanceIdentifier" not in db
    answer = sb.admin.resolve(estate.app.record)
    assert answer["region"] == secondary.region

    # The run's journal shows the order: DNS moved after the DB was writable and pods were Ready.
    journal = Path(out["run"]["journal_path"]).read_text().splitlines()
    events = [json.loads(line) for line in journal]
    seq = {(e["kind"], e.get("step")): e["seq"] for e in events}
    flip = seq[("step_started", "route-traffic")]
    for prereq in ("promote-db", "pods-ready", "target-healthy"):
        done = seq.get(("step_done", prereq)) or seq.get(("step_skipped", prereq))
        assert done is not None and done < flip, prereq

    # Keep Pulumi in step: reconcile a copy of the stack files (Route53 + RDS decide the primary).
    stacks = tmp_path / "stacks"
    shutil.copytree(STACKS, stacks)
    rec = _dr(sb, ["reconcile", "--yes"], tmp_path, stack_dir=stacks)
    assert rec.returncode == 0, rec.stderr
    change = json.loads(rec.stdout)
    assert change["primary"] == secondary.stack and change["written"] is True
    sb.admin.region_up(primary.region)


@pytest.mark.xfail(
    strict=True,
    reason="moto resolves the DBSubnetGroupName of a cross-region CreateDBInstanceReadReplica in the "
    "SOURCE region (moto/rds/models.py: the replica is copy.copy(primary), whose region is the "
    "source's); real RDS uses the destination region's group. Needs a fix in the sandbox realism layer.",
)
def test_failback_after_the_failover(fresh_sandbox: RunningSandbox, tmp_path: Path) -> None:
    """Same module sandbox, after the failover above: re-protect, planned failover back, warm standby."""
    sb = fresh_sandbox
    estate = sb.estate
    primary, secondary = estate.primary, estate.secondary
    if sb.admin.resolve(estate.app.record)["region"] != secondary.region:
        pytest.skip("runs after test_unplanned_failover_then_reconcile")
    res = _dr(sb, ["failback", "--yes", "--timeout", "120"], tmp_path)
    assert res.stdout, res.stderr[-3000:]
    out = json.loads(res.stdout)
    failed = [(s["id"], s["error"]) for s in out["run"]["steps"] if s["status"] == "failed"]
    assert out["run"]["status"] == "succeeded", failed
    pre = out["preflight"]
    assert pre["target_region"] == primary.region and pre["replica_renamed"] is True
    assert out["active_region"] == primary.region
    rds = sb.clients().client("rds", primary.region)
    db = rds.describe_db_instances(DBInstanceIdentifier=pre["replica"])["DBInstances"][0]
    assert db["DBInstanceStatus"] == "available" and "ReadReplicaSourceDBInstanceIdentifier" not in db
    assert sb.admin.resolve(estate.app.record)["region"] == primary.region
