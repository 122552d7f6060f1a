"""Every `dr` command, run as users run it in scripts: a subprocess whose stdout is a pipe.

* ``-o json``: stdout is one JSON document and nothing else — no colour or control characters, no
  line wrapped at the terminal width (a wrapped string is a newline inside a JSON string: invalid),
  whatever ``COLUMNS``/``TERM``/``FORCE_COLOR`` say;
* tables: no cell cut or shortened ("…") on a pipe, however narrow ``COLUMNS`` is.

The commands run against the sandbox (``--target sandbox``), read-only: changes are ``--dry-run``.
:func:`test_every_command_has_a_pipe_case` walks the click tree, so a new command without a case
here (or a stated reason it prints no JSON) fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import STACKS
from tests.integration.conftest import RunningSandbox
from tests.integration.conftest import stdout_json as _json

ROOT = Path(__file__).resolve().parents[2]
CHESS = ROOT / "examples" / "chess-ai" / "stacks"

# Anything but the newline and spaces JSON indentation uses: ESC (colour, cursor moves), CR, tabs, NUL…
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class Case:
    id: str
    command: str  # the click path ("ops waf block"): what the enumeration test checks
    args: tuple[str, ...]  # may hold {placeholders} filled from the sandbox (see _names)
    codes: tuple[int, ...] = (0,)
    table: bool = True  # also run it without -o json and check no cell is cut


# fmt: off
CASES: list[Case] = [
    Case("status", "status", ("status",)),
    Case("readiness", "readiness", ("readiness",), (0, 1)),
    Case("doctor", "doctor", ("doctor",)),
    Case("topology-show", "topology show", ("topology", "show")),
    Case("topology-show-chess", "topology show", ("--stack-dir", str(CHESS), "topology", "show")),
    Case("topology-schema", "topology schema", ("topology", "schema"), table=False),
    Case("topology-init", "topology init", ("topology", "init", "--app", "pipe-demo", "--primary-region",
         "eu-west-1", "--dr-region", "eu-central-1", "--domain", "pipe-demo.example.com", "--dir",
         "{tmp}/init-{mode}")),
    Case("iam-policy", "iam-policy", ("iam-policy", "--procedure", "failover"), table=False),
    Case("iam-policy-reprotect", "iam-policy", ("iam-policy", "--procedure", "reprotect"), table=False),
    Case("failover-dry-run", "failover", ("failover", "--to", "secondary", "--dry-run")),
    Case("failover-unplanned-dry-run", "failover", ("failover", "--mode", "unplanned", "--dry-run")),
    Case("failover-export-asl", "failover", ("failover", "--to", "secondary", "--export", "asl"),
         table=False),
    # the sandbox was never failed over: failback refuses (exit 3) with its error as JSON
    Case("failback-dry-run", "failback", ("failback", "--dry-run"), (3,)),
    Case("reprotect-dry-run", "reprotect", ("reprotect", "--dry-run")),
    Case("reconcile-dry-run", "reconcile", ("reconcile", "--primary", "secondary", "--dry-run")),
    Case("promote-dry-run", "promote", ("promote", "--dry-run")),
    Case("dns-status", "dns status", ("dns", "status")),
    # 3: the sandbox's DR health check may not have reported healthy yet (the gate answers in JSON too)
    Case("dns-failover-dry-run", "dns failover", ("dns", "failover", "--to", "secondary", "--dry-run"),
         (0, 3)),
    Case("dns-failback-dry-run", "dns failback", ("dns", "failback", "--dry-run")),
    Case("snapshot-list", "snapshot list", ("snapshot", "list")),
    Case("snapshot-create-dry-run", "snapshot create", ("snapshot", "create", "--dry-run")),
    Case("snapshot-copy-dry-run", "snapshot copy", ("snapshot", "copy", "--snapshot", "{snapshot}",
         "--target-name", "pipe-copy", "--dry-run")),
    Case("snapshot-prune-dry-run", "snapshot prune", ("snapshot", "prune", "--keep-last", "3", "--dry-run")),
    Case("restore-pitr-dry-run", "restore pitr", ("restore", "pitr", "--to-time", "{pitr_time}", "--target",
         "pipe-pitr", "--dry-run")),
    Case("restore-snapshot-dry-run", "restore snapshot", ("restore", "snapshot", "--snapshot", "{snapshot}",
         "--target", "pipe-restored", "--dry-run")),
    Case("fleet-plan", "fleet plan", ("fleet", "plan", "--file", "{fleet}")),
    Case("fleet-failover-dry-run", "fleet failover", ("fleet", "failover", "--file", "{fleet}", "--dry-run")),
    Case("drill-list", "drill list", ("drill", "list")),
    Case("drill-run-dry-run", "drill run", ("drill", "run", "planned-switchover", "--dry-run")),
    Case("drill-history", "drill history", ("drill", "history", "--dir", "{drills}")),
    Case("drill-report", "drill report", ("drill", "report", "{drill_run}")),
    Case("incident-start", "incident start", ("incident", "start", "--sev", "2", "--summary",
         "checkout errors in {primary_region}", "--dir", "{tmp}/incidents-{mode}")),
    Case("incident-update", "incident update", ("incident", "update", "--summary", "failing over",
         "--dir", "{open_incident}")),
    Case("incident-resolve", "incident resolve", ("incident", "resolve", "--summary", "served from DR",
         "--dir", "{open_incident}")),
    Case("incident-list", "incident list", ("incident", "list", "--dir", "{open_incident}")),
    # the sandbox ALB target groups are empty: triage reports FAIL, exit 1
    Case("ops-triage", "ops triage", ("ops", "triage"), (0, 1)),
    Case("ops-history", "ops history", ("ops", "history", "{api}")),
    Case("ops-rollback-nothing-to-roll-back", "ops rollback", ("ops", "rollback", "{api}", "--dry-run"),
         (2,)),
    Case("ops-scale-dry-run", "ops scale", ("ops", "scale", "api", "--replicas", "{api_replicas}",
         "--dry-run")),
    Case("ops-hpa-dry-run", "ops hpa", ("ops", "hpa", "api", "--min", "2", "--max", "9", "--dry-run")),
    Case("ops-stop-writes-dry-run", "ops stop-writes", ("ops", "stop-writes", "--dry-run")),
    Case("ops-resume-writes-dry-run", "ops resume-writes", ("ops", "resume-writes", "--dry-run")),
    Case("ops-rotate-db-secret-dry-run", "ops rotate-db-secret", ("ops", "rotate-db-secret", "--dry-run")),
    Case("ops-quarantine-dry-run", "ops quarantine", ("ops", "quarantine", "{pod}", "--dry-run")),
    Case("ops-maintenance-dry-run", "ops maintenance", ("ops", "maintenance", "on", "--dry-run")),
    Case("ops-circuit-breaker-dry-run", "ops circuit-breaker", ("ops", "circuit-breaker", "on", "--dry-run")),
    Case("ops-flag-list", "ops flag list", ("ops", "flag", "list")),
    Case("ops-flag-set-dry-run", "ops flag set", ("ops", "flag", "set", "pipe-test", "on", "--dry-run")),
    Case("ops-flag-enable-dry-run", "ops flag enable", ("ops", "flag", "enable", "maintenance-mode", "--dry-run")),
    Case("ops-flag-disable-dry-run", "ops flag disable", ("ops", "flag", "disable", "maintenance-mode", "--dry-run")),
    Case("ops-waf-list", "ops waf list", ("ops", "waf", "list")),
    Case("ops-waf-block-dry-run", "ops waf block", ("ops", "waf", "block", "203.0.113.0/24", "--dry-run")),
    Case("ops-waf-unblock-dry-run", "ops waf unblock", ("ops", "waf", "unblock", "203.0.113.0/24",
         "--dry-run")),
    Case("ops-cert-check", "ops cert check", ("ops", "cert", "check")),
    Case("sandbox-status", "sandbox status", ("sandbox", "status")),
    Case("sandbox-up-already-running", "sandbox up", ("sandbox", "up")),
]
# fmt: on

# Commands with no case above, and why.
NOT_RUN = {
    "sandbox down": "stops the sandbox every other case runs against (its JSON: tests/integration/test_sandbox_cli.py)",
}

# A narrow terminal that asks for colour: a pipe must be indifferent to both.
TERMINAL = {
    "COLUMNS": "20",
    "LINES": "5",
    "TERM": "xterm-256color",
    "FORCE_COLOR": "1",
    "CLICOLOR_FORCE": "1",
}


def _leaf_commands() -> set[str]:
    import click

    from dr.cli.main import cli

    ctx = click.Context(cli)
    found: set[str] = set()

    def walk(cmd: click.Command, path: list[str]) -> None:
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None, name
                walk(sub, [*path, name])
        else:
            found.add(" ".join(path))

    walk(cli, [])
    return found


def test_every_command_has_a_pipe_case() -> None:
    """A command added to the CLI needs a case here (or a reason in NOT_RUN): its JSON must be
    proven to parse through a pipe."""
    covered = {c.command for c in CASES} | set(NOT_RUN)
    leaves = _leaf_commands()
    assert leaves - covered == set(), f"commands with no pipe case: {sorted(leaves - covered)}"
    assert covered - leaves == set(), f"cases for commands that do not exist: {sorted(covered - leaves)}"


# -- the fixtures the cases need --------------------------------------------------------------------


def _inside_restore_window(rds: Any, identifier: str, wait: float = 90) -> str:
    """A time inside the instance's point-in-time window (RestoreWindow of its automated backups),
    waiting for the window to open on a fresh sandbox: "1 minute ago" can precede its start."""
    deadline = time.monotonic() + wait
    while True:
        backups = rds.describe_db_instance_automated_backups(DBInstanceIdentifier=identifier)
        window = next(iter(backups["DBInstanceAutomatedBackups"]), {}).get("RestoreWindow") or {}
        earliest, latest = window.get("EarliestTime"), window.get("LatestTime")
        if earliest and latest and latest > earliest:
            return str((earliest + (latest - earliest) / 2).isoformat())
        assert time.monotonic() < deadline, f"no restore window for {identifier} after {wait}s: {backups}"
        time.sleep(1)


@pytest.fixture(scope="module")
def names(sandbox: RunningSandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    from dr.drills.evidence import DrillJournal

    tmp = tmp_path_factory.mktemp("pipe")
    estate = sandbox.estate
    primary, secondary = estate.primary, estate.secondary
    rds = sandbox.clients().client("rds", primary.region)
    snaps = rds.describe_db_snapshots(DBInstanceIdentifier=primary.database.identifier)["DBSnapshots"]
    assert snaps, "the sandbox seeds snapshots of the primary"
    fleet = tmp / "fleet.yaml"
    fleet.write_text(
        yaml.safe_dump(
            {
                "databases": [{"identifier": secondary.database.identifier, "region": secondary.region}],
                "records": [],
            }
        )
    )
    drills = tmp / "drills"
    run = drills / "20261201T000000Z-planned-switchover"
    DrillJournal(
        run / "journal.json",
        {
            "run_id": "r-pipe",
            "scenario": {"name": "planned-switchover"},
            "target": "sandbox",
            "status": "succeeded",
            "exit_code": 0,
            "started_t": 1000.0,
            "measurements": {"rto": {"rto_seconds": 42.0}, "rpo": {"rpo_seconds": 0.0}},
            "objectives_result": [{"name": "rto", "met": True}],
        },
    )
    triage = _json(_dr(sandbox, tmp, "ops", "triage", json_out=True, env=TERMINAL))
    pitr_time = _inside_restore_window(rds, primary.database.identifier)
    pods = next(s for s in triage["sections"] if s["name"] == "Pods")["rows"]
    yield {
        "tmp": str(tmp),
        "snapshot": snaps[0]["DBSnapshotIdentifier"],
        "fleet": str(fleet),
        "drills": str(drills),
        "drill_run": str(run),
        "primary_region": primary.region,
        "api": estate.app.api.name,
        "api_replicas": str(estate.replica_count(primary, estate.app.api)),
        "pod": pods[0][0],
        "pitr_time": pitr_time,
    }


def _dr(
    sb: RunningSandbox, cwd: Path, *args: str, json_out: bool, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    full = {
        **{k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")},
        "DR_SANDBOX_DIR": str(sb.directory),
        "DR_RUNS_DIR": str(cwd / "runs"),
        **env,
    }
    head = ["--stack-dir", str(STACKS), "--target", "sandbox", *(["-o", "json"] if json_out else [])]
    if "--stack-dir" in args:  # the case names its own estate
        head = head[2:]
    return subprocess.run(
        [sys.executable, "-m", "dr", *head, *args],
        cwd=cwd,
        env=full,
        capture_output=True,  # pipes, not a terminal: what `dr … | jq` and `> file` get
        text=True,
        timeout=180,
    )


def _fill(sb: RunningSandbox, case: Case, names: dict[str, str], mode: str) -> list[str]:
    """The case's arguments; ``{open_incident}``: a directory of its own holding one open incident."""
    extra = {"mode": mode, "open_incident": ""}
    if any("{open_incident}" in a for a in case.args):
        from dr.procedures import incident

        base = Path(names["tmp"]) / f"incident-{case.id}-{mode}"
        incident.start(sb.estate, base, sev=2, summary="checkout errors", post=False)
        extra["open_incident"] = str(base)
    return [a.format(**extra, **names) for a in case.args]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_json_through_a_pipe_is_exact(sandbox: RunningSandbox, names: dict[str, str], case: Case) -> None:
    tmp = Path(names["tmp"])
    proc = _dr(sandbox, tmp, *_fill(sandbox, case, names, "json"), json_out=True, env=TERMINAL)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in case.codes, (proc.returncode, proc.stdout[-800:], proc.stderr[-2000:])
    assert CONTROL.search(proc.stdout) is None, repr(CONTROL.search(proc.stdout))
    doc = _json(proc)
    if proc.returncode in (2, 3):  # a refused command still answers in JSON, naming what is wrong
        assert doc["error"] and doc["message"] and doc["exit_code"] == proc.returncode, doc
    else:
        assert not (isinstance(doc, dict) and "error" in doc and "exit_code" in doc), doc


@pytest.mark.parametrize("case", [c for c in CASES if c.table], ids=[c.id for c in CASES if c.table])
def test_table_through_a_pipe_is_never_cut(
    sandbox: RunningSandbox, names: dict[str, str], case: Case
) -> None:
    tmp = Path(names["tmp"])
    proc = _dr(
        sandbox,
        tmp,
        *_fill(sandbox, case, names, "table"),
        json_out=False,
        env={"COLUMNS": "30", "TERM": "xterm"},
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in case.codes, (proc.returncode, proc.stdout[-800:], proc.stderr[-2000:])
    assert "…" not in proc.stdout, proc.stdout
    assert "\x1b" not in proc.stdout  # no colour into a pipe unless asked (FORCE_COLOR)
