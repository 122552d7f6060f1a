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
    # The seeded cross-region replica is in its own region's subnet group (not the source's).
    seeded = (
        sb.clients()
        .client("rds", secondary.region)
        .describe_db_instances(DBInstanceIdentifier=secondary.database.identifier)["DBInstances"][0]
    )
    assert seeded["DBSubnetGroup"]["DBSubnetGroupName"] == estate.db_subnet_group(secondary)
    assert estate.db_subnet_group(secondary) != estate.db_subnet_group(primary)

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


def _connect(sb: RunningSandbox, region: str, ident: str) -> Any:
    """psycopg connection to the database RDS reports for ``ident`` (the sandbox's local one)."""
    import psycopg

    rds = sb.clients().client("rds", region)
    ep = rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]["Endpoint"]
    db = sb.estate.app.database
    return psycopg.connect(
        host=ep["Address"],
        port=ep["Port"],
        dbname=db.db_name,
        user=db.username,
        password=sb.password(),
        autocommit=True,
        connect_timeout=5,
    )


def test_failback_after_the_failover(fresh_sandbox: RunningSandbox, tmp_path: Path) -> None:
    """Same module sandbox, after the failover above (old primary KILLED): re-protect (the killed
    primary is rewound), planned failover back, warm standby — and what DR wrote comes back."""
    from botocore.exceptions import ClientError

    sb = fresh_sandbox
    estate = sb.estate
    primary, secondary = estate.primary, estate.secondary
    if sb.admin.resolve(estate.app.record)["region"] != secondary.region:
        # xdist ran the test above on another worker (another sandbox): fail over here first.
        sb.admin.region_down(primary.region)
        fo = _dr(sb, ["failover", "--mode", "unplanned", "--yes", "--timeout", "120"], tmp_path)
        assert fo.returncode == 0, fo.stdout[-3000:] + fo.stderr[-3000:]
        sb.admin.region_up(primary.region)
        assert sb.admin.resolve(estate.app.record)["region"] == secondary.region
    # What the DR region wrote while it served must be in the original region after the failback.
    with _connect(sb, secondary.region, secondary.database.identifier) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS failback_marker (note text)")
        conn.execute("INSERT INTO failback_marker VALUES ('written in DR')")
    # A subnet group is resolved in the replica's (destination) region, as RDS does; a missing one
    # is refused there, and nothing is created.
    rds = sb.clients().client("rds", primary.region)
    source_arn = (
        sb.clients()
        .client("rds", secondary.region)
        .describe_db_instances(DBInstanceIdentifier=secondary.database.identifier)["DBInstances"][0][
            "DBInstanceArn"
        ]
    )
    with pytest.raises(ClientError) as err:
        rds.create_db_instance_read_replica(
            DBInstanceIdentifier="no-such-group-replica",
            SourceDBInstanceIdentifier=source_arn,
            DBSubnetGroupName="no-such-group",
        )
    assert err.value.response["Error"]["Code"] == "DBSubnetGroupNotFoundFault"
    idents = {d["DBInstanceIdentifier"] for d in rds.describe_db_instances()["DBInstances"]}
    assert "no-such-group-replica" not in idents

    res = _dr(sb, ["failback", "--yes", "--timeout", "120"], tmp_path)
    assert res.stdout, res.stderr[-3000:]
    out = json.loads(res.stdout)
    failed = [(s["id"], s["error"]) for s in out["run"]["steps"] if s["status"] == "failed"]
    assert out["run"]["status"] == "succeeded", failed
    pre = out["preflight"]
    assert pre["target_region"] == primary.region and pre["replica_renamed"] is False
    assert pre["replica"] == primary.database.identifier
    assert pre["moved_aside_to"].startswith(f"{primary.database.identifier}-old-")
    assert out["active_region"] == primary.region
    db = rds.describe_db_instances(DBInstanceIdentifier=pre["replica"])["DBInstances"][0]
    assert db["DBInstanceStatus"] == "available" and "ReadReplicaSourceDBInstanceIdentifier" not in db
    assert db["DBSubnetGroup"]["DBSubnetGroupName"] == estate.db_subnet_group(primary)
    assert sb.admin.resolve(estate.app.record)["region"] == primary.region
    # The replica's lag was measured and published under its new identifier before promotion.
    steps = {s["id"]: s for s in out["run"]["steps"]}
    assert steps["replica-in-sync"]["status"] == "done"
    with _connect(sb, primary.region, pre["replica"]) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        assert conn.execute("SELECT note FROM failback_marker").fetchall() == [("written in DR",)]
        conn.execute("INSERT INTO failback_marker VALUES ('written after failback')")

    # DR is a stale standalone instance now: reprotect makes it a replica of the original region
    # again, under its own identifier (the stale one renamed and kept) — and a failover can run.
    assert any("dr reprotect" in w for w in pre["warnings"])
    dr_rds = sb.clients().client("rds", secondary.region)
    assert (
        "ReadReplicaSourceDBInstanceIdentifier"
        not in dr_rds.describe_db_instances(DBInstanceIdentifier=secondary.database.identifier)[
            "DBInstances"
        ][0]
    )
    refused = _dr(sb, ["failover", "--mode", "unplanned", "--dry-run"], tmp_path)
    assert refused.returncode == 3, refused.stdout[-2000:] + refused.stderr[-2000:]
    res = _dr(sb, ["reprotect", "--yes", "--timeout", "120"], tmp_path)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out = json.loads(res.stdout)
    assert out["run"]["status"] == "succeeded"
    aside = out["preflight"]["moved_aside_to"]
    assert aside.startswith(f"{secondary.database.identifier}-old-")
    kept = dr_rds.describe_db_instances(DBInstanceIdentifier=aside)["DBInstances"][0]
    assert "ReadReplicaSourceDBInstanceIdentifier" not in kept
    new = dr_rds.describe_db_instances(DBInstanceIdentifier=secondary.database.identifier)["DBInstances"][0]
    assert new["ReadReplicaSourceDBInstanceIdentifier"].endswith(f":db:{primary.database.identifier}")
    # ... and it is a real streaming replica: what the primary writes arrives there.
    with _connect(sb, primary.region, primary.database.identifier) as conn:
        conn.execute("INSERT INTO failback_marker VALUES ('written after reprotect')")
    import time

    deadline = time.monotonic() + 30
    with _connect(sb, secondary.region, secondary.database.identifier) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        while time.monotonic() < deadline:
            rows = conn.execute("SELECT note FROM failback_marker ORDER BY note").fetchall()
            if ("written after reprotect",) in rows:
                break
            time.sleep(0.2)
        assert ("written after reprotect",) in rows
    again = _dr(sb, ["failover", "--mode", "unplanned", "--dry-run"], tmp_path)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
