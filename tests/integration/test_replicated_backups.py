"""The primary's automated backups replicated to the DR region, end to end on a private sandbox:
DescribeDBInstanceAutomatedBackups there, `dr readiness` counting them, and
`dr restore pitr --from replicated-backups` run as an operator runs it (a CLI subprocess) with
the primary region lost — the restored PostgreSQL holds the rows up to the time asked, none after —
then `dr failover --db` onto it and, once the region is back, `dr reprotect --db` from it."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.conftest import STACKS
from tests.integration.conftest import RunningSandbox, running_sandbox

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _dr(sb: RunningSandbox, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DR_SANDBOX_DIR": str(sb.directory), "DR_RUNS_DIR": str(sb.directory / "runs")}
    return subprocess.run(
        [sys.executable, "-m", "dr", "--stack-dir", str(STACKS), "--target", "sandbox", "-o", "json", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def _replicated(sb: RunningSandbox) -> dict[str, Any]:
    dr = sb.estate.secondary
    rds = sb.clients().client("rds", dr.region)
    entries = rds.describe_db_instance_automated_backups()["DBInstanceAutomatedBackups"]
    ours = [e for e in entries if e["DBInstanceIdentifier"] == sb.estate.primary.database.identifier]
    assert len(ours) == 1, entries
    return ours[0]


def test_replicated_backups_restore_in_dr_with_the_primary_region_lost(tmp_path: Any) -> None:
    import psycopg

    with running_sandbox(tmp_path / "sbx") as sb:
        if sb.state["components"].get("postgres") != "running":
            pytest.skip("needs the sandbox's real PostgreSQL")
        estate = sb.estate
        primary, dr = estate.primary, estate.secondary

        # The DR region lists the primary's backups, replicated, with a window that advances.
        first = _replicated(sb)
        assert re.fullmatch(
            rf"arn:aws:rds:{dr.region}:\d{{12}}:auto-backup:ab-[a-z0-9]+",
            first["DBInstanceAutomatedBackupsArn"],
        )
        assert first["Region"] == primary.region and first["DBInstanceArn"].endswith(
            f":db:{primary.database.identifier}"
        )
        assert first["Status"] == "replicating"
        assert first["RestoreWindow"]["EarliestTime"] <= first["RestoreWindow"]["LatestTime"]

        # A fresh sandbox is ready: the replicated backups are the DR region's recovery point.
        ready = _dr(sb, "readiness")
        report = json.loads(ready.stdout)
        checks = {c["name"]: c for c in report["checks"]}
        assert checks["snapshot-age"]["status"] == "pass", checks["snapshot-age"]
        assert ready.returncode == 0, [c for c in report["checks"] if c["status"] == "fail"]

        # Rows before and after the restore time, in the real primary.
        pg = sb.admin.postgres()["state"]["instances"]["primary"]
        url = dict(host="127.0.0.1", port=pg["port"], dbname=estate.app.database.db_name,
                   user=estate.app.database.username, password=sb.password())  # fmt: skip
        with psycopg.connect(**url, autocommit=True) as conn:
            conn.execute("CREATE TABLE orders (id int PRIMARY KEY)")
            conn.execute("INSERT INTO orders SELECT generate_series(1, 5)")
            time.sleep(0.5)
            target = dt.datetime.now(dt.UTC)
            time.sleep(0.5)
            conn.execute("INSERT INTO orders SELECT generate_series(6, 9)")
        deadline = time.monotonic() + 60
        while _replicated(sb)["RestoreWindow"]["LatestTime"] <= target + dt.timedelta(seconds=1):
            assert time.monotonic() < deadline, "the replicated window never advanced past the writes"
            time.sleep(0.5)
        sb.admin.region_down(primary.region)
        time.sleep(2.0)
        frozen = _replicated(sb)["RestoreWindow"]["LatestTime"]
        time.sleep(2.0)
        assert _replicated(sb)["RestoreWindow"]["LatestTime"] == frozen  # nothing ships any more

        # Outside the window: exit 2 naming it, nothing created (moto would accept any time).
        early = _dr(sb, "restore", "pitr", "--from", "replicated-backups", "--to-time",
                    "2020-01-01T00:00:00Z", "--target", "too-early", "--yes")  # fmt: skip
        assert early.returncode == 2, early.stderr
        assert "window" in early.stderr and dr.region in early.stderr
        rds = sb.clients().client("rds", dr.region)
        assert not [
            d for d in rds.describe_db_instances()["DBInstances"] if d["DBInstanceIdentifier"] == "too-early"
        ]

        stamp = target.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        plan = _dr(sb, "restore", "pitr", "--from", "replicated-backups", "--to-time", stamp,
                   "--target", "orders-pitr", "--dry-run")  # fmt: skip
        assert plan.returncode == 0, plan.stderr
        dry = json.loads(plan.stdout)
        assert dry["restore"]["from"] == "replicated-backups"
        assert dry["restore"]["backups_arn"] == first["DBInstanceAutomatedBackupsArn"]
        assert dry["restore"]["settings"]["DBSubnetGroupName"] == estate.db_subnet_group(dr)

        done = _dr(sb, "restore", "pitr", "--from", "replicated-backups", "--to-time", stamp,
                   "--target", "orders-pitr", "--yes", "--check-sql", "SELECT count(*) = 5 FROM orders",
                   "--check-sql", "SELECT max(id) = 5 FROM orders")  # fmt: skip
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        result = json.loads(done.stdout)
        assert result["run"]["status"] == "succeeded"
        inst = rds.describe_db_instances(DBInstanceIdentifier="orders-pitr")["DBInstances"][0]
        assert inst["DBSubnetGroup"]["DBSubnetGroupName"] == estate.db_subnet_group(dr)
        assert sb.password() not in done.stdout + done.stderr

        # The operator's next command: fail over onto the restored instance, not the replica.
        moved = _dr(
            sb, "failover", "--to", "secondary", "--mode", "unplanned", "--db", "orders-pitr", "--yes"
        )
        assert moved.returncode == 0, moved.stdout[-2000:] + moved.stderr[-2000:]
        report = json.loads(moved.stdout)
        assert report["run"]["status"] == "succeeded"
        assert sb.admin.resolve(estate.app.record)["region"] == dr.region
        replica = rds.describe_db_instances(DBInstanceIdentifier=dr.database.identifier)["DBInstances"][0]
        assert replica.get("ReadReplicaSourceDBInstanceIdentifier")  # the replica was left alone
        assert sb.password() not in moved.stdout + moved.stderr

        # The primary region comes back with the old primary standalone: readiness judges DR on
        # the restored instance its app uses, so it sees two writers (not DR's replica + one).
        sb.admin.region_up(primary.region)
        split = json.loads(_dr(sb, "readiness").stdout)
        writer = {c["name"]: c for c in split["checks"]}["single-writer"]
        assert writer["status"] != "pass" and primary.database.identifier in writer["reason"], writer
        assert writer["secondary"]["db"] == "orders-pitr", writer

        # `dr reprotect` alone would replicate from DR's stack database, a replica: refused, and
        # --db must name a standalone instance of the serving region (exit 2, nothing changed).
        alone = _dr(sb, "reprotect", "--yes")
        assert alone.returncode == 3 and "--db" in alone.stderr, alone.stderr
        wrong = _dr(sb, "reprotect", "--db", dr.database.identifier, "--yes")
        assert wrong.returncode == 2 and "read replica" in wrong.stderr and dr.region in wrong.stderr
        prds = sb.clients().client("rds", primary.region)
        old = prds.describe_db_instances(DBInstanceIdentifier=primary.database.identifier)["DBInstances"][0]
        assert not old.get("ReadReplicaSourceDBInstanceIdentifier")
        plan = _dr(sb, "reprotect", "--db", "orders-pitr", "--dry-run")
        assert plan.returncode == 0, plan.stderr
        pre = json.loads(plan.stdout)["preflight"]
        assert (pre["source_db"], pre["target_region"]) == ("orders-pitr", primary.region)
        assert pre["moved_aside_to"].startswith(f"{primary.database.identifier}-old-")

        done = _dr(sb, "reprotect", "--db", "orders-pitr", "--yes", "--timeout", "180")
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert json.loads(done.stdout)["run"]["status"] == "succeeded"
        back = prds.describe_db_instances(DBInstanceIdentifier=primary.database.identifier)["DBInstances"][0]
        assert back["ReadReplicaSourceDBInstanceIdentifier"].endswith(":db:orders-pitr"), back
        kept = [i["DBInstanceIdentifier"] for i in prds.describe_db_instances()["DBInstances"]]
        assert pre["moved_aside_to"] in kept  # the old primary is kept, renamed
        assert sb.password() not in done.stdout + done.stderr
        after = json.loads(_dr(sb, "readiness").stdout)
        writer = {c["name"]: c for c in after["checks"]}["single-writer"]
        assert (
            writer["status"] == "pass"
            and writer["reason"] == f"one writable database: orders-pitr ({dr.region})"
        )
