"""Game-day drills end to end on a private sandbox: `dr --target sandbox drill run <scenario>`
exactly as an operator runs it (a subprocess of the CLI), through the real failover procedure,
the realism layer's region loss and the real PostgreSQL replication — then the evidence.

These prove the whole chain: a planned switchover loses nothing (measured RPO 0), an abrupt
region loss loses what was in flight, no more than the injected replication lag.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import STACKS
from tests.integration.conftest import RunningSandbox, running_sandbox

# Each test starts its own sandbox (drills change the estate for good); a test that runs several
# drills runs them in an order that leaves each one the estate it expects.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _drill(
    sb: RunningSandbox, scenario: str, out: Path, scenario_dir: Path | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    env = {**os.environ, "DR_SANDBOX_DIR": str(sb.directory), "DR_RUNS_DIR": str(out.parent / "runs")}
    args = ["--stack-dir", str(STACKS), "--target", "sandbox", "-o", "json"]
    if scenario_dir is not None:
        args = [*args, "drill", "run", "--scenario-dir", str(scenario_dir)]
    else:
        args = [*args, "drill", "run"]
    proc = subprocess.run(
        [sys.executable, "-m", "dr", *args, scenario, "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    journal = json.loads((out / "journal.json").read_text()) if (out / "journal.json").exists() else {}
    return proc, journal


def _why(proc: subprocess.CompletedProcess[str], journal: dict[str, Any]) -> object:
    """What a failed drill says about itself: step statuses, errors and the RTO/RPO notes."""
    if not journal:
        return proc.stdout[-3000:] + proc.stderr[-3000:]
    return {
        "status": journal.get("status"),
        "reason": journal.get("reason"),
        "steps": [(s["name"], s["status"], (s.get("error") or "")[:300]) for s in journal.get("steps", [])],
        "objectives": journal.get("objectives_result"),
        "measurements": {
            k: {f: v.get(f) for f in ("measured", "rto_seconds", "rpo_seconds", "note") if f in v}
            for k, v in (journal.get("measurements") or {}).items()
            if isinstance(v, dict)
        },
        "stderr": proc.stderr[-1500:],
    }


def _steps(journal: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in journal["steps"]}


def _check_evidence(out: Path, scenario: str, password: str) -> None:
    """Every evidence file exists and parses; the numbers agree with the journal."""
    from junitparser import JUnitXml
    from prometheus_client.parser import text_string_to_metric_families

    journal = json.loads((out / "journal.json").read_text())
    for name in ("report.md", "report.html"):
        text = (out / name).read_text()
        assert scenario in text, name
    assert "<svg" in (out / "report.html").read_text()
    xml = JUnitXml.fromfile(str(out / "junit.xml"))
    cases = [case for suite in xml for case in suite]
    assert {c.name for c in cases} >= {s["name"] for s in journal["steps"]}
    samples = {
        s.name: s.value
        for fam in text_string_to_metric_families((out / "metrics.prom").read_text())
        for s in fam.samples
    }
    rpo = journal["measurements"]["rpo"]["rpo_seconds"]
    assert samples["dr_drill_rpo_seconds"] == pytest.approx(rpo, abs=1e-3)
    assert samples["dr_drill_success"] == 1.0
    # No secret in any evidence file (the sandbox's master password).
    assert password
    for f in out.rglob("*"):
        if f.is_file():
            assert password not in f.read_text(errors="replace"), f.name


def _bounded_rollbacks(tmp_path: Path, name: str, seconds: float = 150.0) -> Path:
    """The shipped scenario, its rollbacks bounded in time (same name: --scenario-dir overrides).

    The planned switchover's rollback is a full failback (re-protect, wait in sync, switch back,
    whose planned lag-0 gate waits for a CloudWatch minute that began after writes stopped): a
    stuck failback must not hold the test up beyond its own timeout."""
    import yaml

    text = (resources.files("dr.drills") / "scenarios" / f"{name}.yaml").read_text()
    doc = yaml.safe_load(text)
    for act in doc.get("rollbacks") or []:
        act["timeout"] = seconds
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return folder


def _assert_dr_replicates(sb: RunningSandbox) -> None:
    """The DR database is a read replica of the primary again (RDS and its real PostgreSQL)."""
    dr = sb.estate.secondary
    db = (
        sb.clients()
        .client("rds", dr.region)
        .describe_db_instances(DBInstanceIdentifier=dr.database.identifier)
    )
    source = db["DBInstances"][0].get("ReadReplicaSourceDBInstanceIdentifier", "")
    assert source.endswith(f":db:{sb.estate.primary.database.identifier}"), source
    assert sb.admin.postgres()["state"]["instances"]["replica"]["kind"] == "replica"


def test_planned_switchover_loses_nothing(tmp_path: Path) -> None:
    with running_sandbox(tmp_path / "sbx") as sb:
        if sb.state["components"].get("postgres") != "running":
            pytest.skip("needs the sandbox's real PostgreSQL")
        out = tmp_path / "evidence"
        proc, journal = _drill(
            sb, "planned-switchover", out, _bounded_rollbacks(tmp_path, "planned-switchover")
        )
        assert proc.returncode == 0, _why(proc, journal)
        result = json.loads(proc.stdout)
        assert result["status"] == "succeeded" and result["rpo_seconds"] == 0.0

        rpo = journal["measurements"]["rpo"]
        assert rpo["measured"] and rpo["rpo_seconds"] == 0.0 and rpo["rows_lost"] == 0
        assert rpo["writes_on_old_primary"] > 0  # the heartbeat really wrote before the switch
        steps = _steps(journal)
        assert steps["dns-on-secondary"]["status"] == "ok"
        # The failover ran through the runbook engine: its run id and step timings are journaled.
        run = steps["planned-failover"]["value"]
        assert run["status"] == "succeeded" and run["run_id"] and run["critical_path"]
        timed = {s["id"]: s for s in run["steps"]}
        assert timed["promote-db"]["status"] == "done" and timed["promote-db"]["duration"] is not None
        assert timed["replica-caught-up"]["status"] == "done"  # planned: lag 0 before promoting
        assert Path(run["journal_path"]).exists()
        # The rollback is a real failback: re-protected (the old primary, still running, rewound
        # into a replica), planned switch back, DR to warm standby; the public name is home again.
        back = steps["fail-back-to-primary"]
        assert back["status"] == "ok", back.get("error")
        fb = {s["id"]: s["status"] for s in back["value"]["steps"]}
        assert back["value"]["status"] == "succeeded", fb
        assert fb["create-replica"] == "done" and fb["replica-in-sync"] == "done"
        assert fb["promote-db"] == "done" and fb["route-traffic"] == "done"
        assert back["value"]["active_region"] == sb.estate.primary.region
        assert sb.admin.resolve(sb.estate.app.record)["region"] == sb.estate.primary.region
        # ... and DR is protected again: its database a replica of the primary (game day over,
        # the next real failover has something to promote).
        again = steps["reprotect-dr"]
        assert again["status"] == "ok" and again["value"]["status"] == "succeeded", again.get("error")
        _assert_dr_replicates(sb)
        _check_evidence(out, "planned-switchover", sb.password())


def test_region_loss_loses_at_most_the_injected_lag_then_the_failback_drill_brings_it_home(
    tmp_path: Path,
) -> None:
    """`drill run region-loss` (the primary region lost, its PostgreSQL SIGKILLed with 1 s of WAL
    in the link; unplanned failover; the region's API back as the rollback), then on the same
    estate `drill run failback`: the killed primary is rewound into a replica of the DR database,
    caught up, promoted, and the public name served from the primary region again."""
    from dr.cli.drill_cmd import load_activities
    from dr.drills.scenario import resolve

    load_activities()  # the sandbox's faults too (region-loss), as `dr drill` registers them

    lose = next(a for a in resolve("region-loss").scenario.method if a.provider == "region-loss")
    lag = float(lose.arguments["lag_seconds"])
    assert lag > 0, "the shipped region-loss scenario injects replication lag"
    with running_sandbox(tmp_path / "sbx") as sb:
        if sb.state["components"].get("postgres") != "running":
            pytest.skip("needs the sandbox's real PostgreSQL")
        primary = sb.estate.primary
        out = tmp_path / "evidence"
        proc, journal = _drill(sb, "region-loss", out)
        assert proc.returncode == 0, _why(proc, journal)

        rpo = journal["measurements"]["rpo"]
        assert rpo["measured"] and not rpo["complete_loss"]
        # Acknowledged writes were really lost, and no more than the WAL held in the link.
        assert 0.0 < rpo["rpo_seconds"] <= lag + 1.0, rpo
        assert rpo["rows_lost"] > 0
        rto = journal["measurements"]["rto"]
        assert rto["measured"] and rto["rto_seconds"] > 0 and rto["failed_samples"] > 0
        assert rto["first_failure_at"] >= journal["fault_at"]

        steps = _steps(journal)
        assert steps["unplanned-failover"]["value"]["status"] == "succeeded"
        assert steps["unplanned-failover"]["value"]["preflight"]["mode"] == "unplanned"
        assert steps["dr-database-writable"]["status"] == "ok"
        assert steps["restore-primary-region"]["status"] == "ok"  # the rollback ran
        # After the rollback the lost region's API answers again; traffic stays in DR.
        rds = sb.clients().client("rds", primary.region)
        assert rds.describe_db_instances()["DBInstances"]
        assert sb.admin.resolve(sb.estate.app.record)["region"] == sb.estate.secondary.region
        _check_evidence(out, "region-loss", sb.password())

        out = tmp_path / "failback-evidence"
        proc, journal = _drill(sb, "failback", out)
        assert proc.returncode == 0, _why(proc, journal)
        assert json.loads(proc.stdout)["status"] == "succeeded"
        steps = _steps(journal)
        assert all(s["status"] == "ok" for s in journal["steps"]), steps
        run = steps["failback"]["value"]
        assert run["status"] == "succeeded" and run["preflight"]["target_region"] == primary.region
        assert steps["dns-on-primary"]["status"] == "ok"
        assert sb.admin.resolve(sb.estate.app.record)["region"] == primary.region
        pg = sb.admin.postgres()["state"]["instances"]
        assert pg["primary"]["running"] and pg["replica"]["running"]
        assert steps["reprotect-dr"]["value"]["status"] == "succeeded"
        assert steps["dr-replicating-again"]["status"] == "ok"
        _assert_dr_replicates(sb)


def _reprotected_from(sb: Any, view: Any, restored: str, journal: dict[str, Any]) -> dict[str, str]:
    """``view``'s database is a replica of ``restored``, the instance it replaced is kept renamed
    ``<identifier>-old-…``, and the post-drill invariants judged ``restored`` as the writer it
    replicates from. Returns the invariants' details by name."""
    rds = sb.clients().client("rds", view.region)
    rep = rds.describe_db_instances(DBInstanceIdentifier=view.database.identifier)["DBInstances"][0]
    assert rep.get("ReadReplicaSourceDBInstanceIdentifier", "").endswith(f":db:{restored}"), rep
    kept = [i["DBInstanceIdentifier"] for i in rds.describe_db_instances()["DBInstances"]]
    assert any(i.startswith(f"{view.database.identifier}-old-") for i in kept), kept
    after = next(e for e in journal["events"] if e["kind"] == "estate_after")
    details = {i["name"]: i["detail"] for i in after["invariants"]}
    assert details["replica-replicating"].endswith(f"replicates from {restored} (available)"), details
    return details


def test_runbook_drills_on_one_sandbox(tmp_path: Path) -> None:
    """bad-deploy (rollout undo), az-failure (RDS reboot with failover + Redis TestFailover) and
    db-corruption (the chess-ai runbook: stop writes, PITR before the corruption, repoint, scale
    back) in turn on one sandbox: each leaves the estate serving from the primary region."""
    with running_sandbox(tmp_path / "sbx") as sb:
        if sb.state["components"].get("postgres") != "running":
            pytest.skip("needs the sandbox's real PostgreSQL")
        primary = sb.estate.primary
        for scenario in ("bad-deploy", "az-failure", "db-corruption"):
            out = tmp_path / scenario
            proc, journal = _drill(sb, scenario, out)
            assert proc.returncode == 0, (scenario, _why(proc, journal))
            assert all(s["status"] == "ok" for s in journal["steps"]), scenario
            assert sb.admin.resolve(sb.estate.app.record)["region"] == primary.region, scenario
        # db-corruption: the app now uses the restored instance, where the bad rows never were.
        steps = _steps(journal)
        restored = steps["restore-before-corruption"]["value"]["restored_db"]
        assert steps["repoint-app"]["value"]["database"] == restored
        assert steps["data-intact-before"]["value"] is True and steps["data-intact-after"]["value"] is True
        rds = sb.clients().client("rds", primary.region)
        assert rds.describe_db_instances(DBInstanceIdentifier=restored)["DBInstances"][0][
            "DBInstanceStatus"
        ] == ("available")
        # ... and DR was re-protected from it: its replica no longer follows the corrupt primary
        # (renamed aside and kept), judged by the invariants on the restored instance.
        details = _reprotected_from(sb, sb.estate.secondary, restored, journal)
        assert details["single-writer"] == f"one writable database: {restored} ({primary.region})", details
        rpo = journal["measurements"]["rpo"]
        # Writes after the restore point are lost by design: at least the restore margin (1 s).
        assert rpo["measured"] and rpo["rpo_seconds"] >= 1.0 and rpo["rows_lost"] > 0


def test_region_loss_with_a_corrupted_replica_restores_in_dr_from_replicated_backups(
    tmp_path: Path,
) -> None:
    """`drill run region-loss-corrupt-replica`: corrupt rows replicated to DR, then the primary
    region lost. The DR region restores from the primary's automated backups replicated there
    (its own replica is corrupt, the primary's archive gone with its region) to just before the
    corruption and fails over onto that instance: the restored PostgreSQL holds the heartbeats up
    to the restore time and none after, no corrupt row, and the RPO is the restore margin."""
    from dr.cli.drill_cmd import load_activities
    from dr.drills.scenario import resolve

    load_activities()  # the sandbox's faults too (region-loss), as `dr drill` registers them

    sc = resolve("region-loss-corrupt-replica").scenario
    restore = next(a for a in sc.method if a.provider == "restore-pitr")
    margin = float(restore.arguments["seconds_before"])
    with running_sandbox(tmp_path / "sbx") as sb:
        if sb.state["components"].get("postgres") != "running":
            pytest.skip("needs the sandbox's real PostgreSQL")
        dr = sb.estate.secondary
        out = tmp_path / "evidence"
        proc, journal = _drill(sb, "region-loss-corrupt-replica", out)
        assert proc.returncode == 0, _why(proc, journal)
        steps = _steps(journal)

        # The restore came from the replicated backups in the DR region, before the corruption.
        pitr = steps["pitr-in-dr-before-corruption"]["value"]
        assert pitr["from"] == "replicated-backups" and pitr["status"] == "succeeded"
        restored = pitr["restored_db"]
        rds = sb.clients().client("rds", dr.region)
        inst = rds.describe_db_instances(DBInstanceIdentifier=restored)["DBInstances"][0]
        # ... with the DR site's network, not the (lost) source's.
        assert inst["DBSubnetGroup"]["DBSubnetGroupName"] == sb.estate.db_subnet_group(dr)
        # The app now uses it: the failover skipped promoting the corrupt replica.
        failover = steps["fail-over-onto-restored-db"]["value"]
        assert failover["preflight"]["db"] == restored
        replica = rds.describe_db_instances(DBInstanceIdentifier=dr.database.identifier)["DBInstances"][0]
        assert replica.get("ReadReplicaSourceDBInstanceIdentifier"), "the corrupt replica was promoted"
        # Rows checked in PostgreSQL: up to the restore time, none after the corruption, no corrupt row.
        assert steps["rows-up-to-restore-time-only"]["status"] == "ok", steps["rows-up-to-restore-time-only"]
        assert steps["no-corrupt-rows"]["status"] == "ok"

        # The old, corrupt primary came back writable: the rollback re-protected the primary region
        # from the restored instance (the old one renamed aside, kept), so the estate ends with one
        # writer — the restored instance, where DNS points — and a replica of it to fail back to.
        assert steps["reprotect-primary-from-restored"]["status"] == "ok", _why(proc, journal)
        details = _reprotected_from(sb, sb.estate.primary, restored, journal)
        inv = {s["name"]: s for s in journal["steps"] if s["phase"] == "invariant"}
        assert {n: s["status"] for n, s in inv.items()} == {
            "single-writer": "ok",
            "dns-on-intended-region": "ok",
            "replica-replicating": "ok",
        }, _why(proc, journal)
        # ... judged against the restored instance, not the stack files' (corrupt) DR replica
        assert f"one writable database: {restored} ({dr.region})" == details["single-writer"], details

        rpo = journal["measurements"]["rpo"]
        assert rpo["measured"] and rpo["rows_lost"] > 0, rpo  # the margin before the corruption
        assert 0.0 < rpo["rpo_seconds"] <= margin + 0.5, rpo
        rto = journal["measurements"]["rto"]
        assert rto["measured"] and rto["rto_seconds"] > 0 and rto["first_failure_at"] >= journal["fault_at"]
        _check_evidence(out, "region-loss-corrupt-replica", sb.password())
