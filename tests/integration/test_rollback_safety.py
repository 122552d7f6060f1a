"""Rollback safety on a sandbox that never failed over, as an operator runs it (subprocesses of
the CLI through a pipe): `dr failback` is refused (exit 3), the failback drill and a switchover
whose hypothesis fails change nothing, and `dr ops triage` exits 1 on an overall FAIL."""

from __future__ import annotations

import json
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import RunningSandbox, run_dr

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _dr(sb: RunningSandbox, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_dr(sb, *args, timeout=400, cwd=cwd, DR_RUNS_DIR=str(cwd / "runs"))


def _estate_state(sb: RunningSandbox) -> dict[str, Any]:
    """Which region Route53 serves, each database's role and tags (what a failback changes)."""
    from dr.aws.rds import Rds
    from dr.steps.dns_records import read_state

    estate, clients = sb.estate, sb.clients()
    out: dict[str, Any] = {"serving": read_state(clients, estate, use_test_dns=False).active_region}
    for view in (estate.primary, estate.secondary):
        rds = Rds(clients, view.region)
        inst = rds.describe_instance(view.database.identifier)
        client = clients.client("rds", view.region)
        tags = client.list_tags_for_resource(ResourceName=inst.arn)["TagList"]
        ids = sorted(i["DBInstanceIdentifier"] for i in client.describe_db_instances()["DBInstances"])
        out[view.region] = {"replica": inst.is_replica, "tags": tags, "instances": ids}
    return out


def test_failback_on_an_estate_that_never_failed_over(fresh_sandbox: RunningSandbox, tmp_path: Path) -> None:
    sb, estate = fresh_sandbox, fresh_sandbox.estate
    before = _estate_state(sb)
    assert before["serving"] == estate.primary.region and before[estate.secondary.region]["replica"]

    refused = _dr(sb, "failback", "--yes", cwd=tmp_path)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr
    said = " ".join((refused.stdout + refused.stderr).split())
    assert f"{estate.app.name} is not failed over" in said
    assert f"Route53 serves {estate.primary.region}, the stack files' primary region" in said
    assert "dr failover --to secondary" in said
    as_json = _dr(sb, "-o", "json", "failback", "--to", "secondary", "--yes", cwd=tmp_path)
    assert as_json.returncode == 3 and "not failed over" in as_json.stdout + as_json.stderr

    out = tmp_path / "failback-drill"
    proc = _dr(sb, "-o", "json", "drill", "run", "failback", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    journal = json.loads((out / "journal.json").read_text())
    steps = {s["name"]: s for s in journal["steps"]}
    assert "failed-over-to-dr" in journal["reason"]
    assert steps["failback"]["status"] == "skipped" and steps["reprotect-dr"]["status"] == "skipped"
    assert not (out / "runs").exists()  # no runbook plan ran
    inv = {s["name"]: s["status"] for s in journal["steps"] if s["phase"] == "invariant"}
    assert inv == {"single-writer": "ok", "dns-on-intended-region": "ok", "replica-replicating": "ok"}
    assert _estate_state(sb) == before


def test_switchover_whose_hypothesis_fails_runs_no_rollback(
    fresh_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """The measured bug: its failback rollback ran anyway and failed the healthy estate over."""
    sb = fresh_sandbox
    before = _estate_state(sb)
    text = (resources.files("dr.drills") / "scenarios" / "planned-switchover.yaml").read_text()
    unmet = text.replace(
        "      tolerance: {max: rpo}\nmethod:",
        "      tolerance: {max: rpo}\n    - {name: never-true, type: probe, provider: dns-points-to,"
        " arguments: {site: secondary}, tolerance: true}\nmethod:",
        1,
    )
    assert unmet != text
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (scenarios / "switchover-unmet.yaml").write_text(unmet)
    out = tmp_path / "drill"
    proc = _dr(
        sb, "-o", "json", "drill", "run", "switchover-unmet", "--scenario-dir", str(scenarios),
        "--out", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    journal = json.loads((out / "journal.json").read_text())
    steps = {s["name"]: s for s in journal["steps"]}
    for name in ("fail-back-to-primary", "reprotect-dr"):
        assert steps[name]["status"] == "skipped"
        assert "the method did not run planned-failover" in steps[name]["error"]
    assert all(s["status"] == "ok" for s in journal["steps"] if s["phase"] == "invariant")
    assert _estate_state(sb) == before


def test_triage_exit_code_follows_the_overall_status(fresh_sandbox: RunningSandbox, tmp_path: Path) -> None:
    sb = fresh_sandbox
    for region in ("both", "secondary", "primary"):
        proc = _dr(sb, "-o", "json", "ops", "triage", "--region", region, cwd=tmp_path)
        report = json.loads(proc.stdout)  # the whole report is out before the exit code
        assert report["status"] in ("ok", "warn", "fail", "error"), report
        assert proc.returncode == (1 if report["status"] == "fail" else 0), (region, report["status"])
    # the sandbox's ALB target group has no targets: the primary region's section fails
    both = json.loads(_dr(sb, "-o", "json", "ops", "triage", cwd=tmp_path).stdout)
    assert both["status"] == "fail"
    table = _dr(sb, "ops", "triage", cwd=tmp_path)
    assert table.returncode == 1 and "overall FAIL" in table.stdout
    secondary = _dr(sb, "ops", "triage", "--region", "secondary", cwd=tmp_path)
    assert secondary.returncode == 0 and "overall FAIL" not in secondary.stdout
