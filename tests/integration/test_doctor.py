"""`dr doctor` as an operator runs it: a subprocess through a pipe against the sandbox — every check
passes on the seeded estate (ours and the chess-ai one), and a role narrowed on purpose exits 1
naming the procedure, the missing actions and the command that prints the fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, STACKS
from tests.integration.conftest import RunningSandbox
from tests.integration.test_status_readiness import _json

CHESS = ROOT / "examples" / "chess-ai" / "stacks"


def _dr(
    directory: Path, *args: str, stacks: Path = STACKS, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DR_SANDBOX_DIR": str(directory), "COLUMNS": "80", "DR_STACK": ""}
    return subprocess.run(
        [sys.executable, "-m", "dr", "--stack-dir", str(stacks), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def test_doctor_passes_on_the_sandbox_json_and_table(sandbox: RunningSandbox) -> None:
    proc = _dr(sandbox.directory, "--target", "sandbox", "-o", "json", "doctor")
    data = _json(proc)
    assert proc.returncode == 0, [c for c in data["checks"] if c["status"] != "pass"]
    assert data["status"] == "pass" and data["counts"]["fail"] == 0 and data["counts"]["warn"] == 0
    assert data["identity"]["arn"] == "arn:aws:sts::123456789012:assumed-role/sandbox/operator"
    assert {c["area"] for c in data["checks"]} == {
        "identity", "region", "resource", "iam", "kubernetes", "state", "drift",
    }  # fmt: skip
    # a table through a pipe at COLUMNS=80: every cell whole (the longest detail is on one line)
    table = _dr(sandbox.directory, "--target", "sandbox", "doctor")
    assert table.returncode == 0, table.stderr[-2000:]
    longest = max((c["detail"] for c in data["checks"]), key=len)
    assert longest in table.stdout
    assert "…" not in table.stdout and "\x1b[" not in table.stdout


def test_a_narrowed_operator_role_fails_naming_the_fix(sandbox: RunningSandbox) -> None:
    iam = sandbox.clients().client("iam", "us-east-1")
    arn = "arn:aws:iam::123456789012:policy/sandbox-failover"
    iam.detach_role_policy(RoleName="sandbox", PolicyArn=arn)
    try:
        proc = _dr(sandbox.directory, "--target", "sandbox", "-o", "json", "doctor")
    finally:
        iam.attach_role_policy(RoleName="sandbox", PolicyArn=arn)
    data = _json(proc)
    assert proc.returncode == 1
    failed = {c["name"]: c for c in data["checks"] if c["status"] == "fail"}
    assert set(failed) == {"iam failover"}
    check = failed["iam failover"]
    missing = {m["action"] for m in check["data"]["missing"]}
    assert "rds:PromoteReadReplica" in missing
    assert "rds:PromoteReadReplica" in check["detail"]
    assert "iam-policy --procedure failover" in check["fix"] and "role/sandbox" in check["fix"]


@pytest.mark.slow
def test_doctor_passes_on_another_estate(tmp_path: Path) -> None:
    """The chess-ai estate: other app, regions (eu-west-1 / eu-central-1), names."""
    directory = tmp_path / "sbx"
    up = _dr(directory, "sandbox", "up", "--latency", "none", stacks=CHESS)
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        proc = _dr(directory, "--target", "sandbox", "-o", "json", "doctor", stacks=CHESS)
        data = _json(proc)
        assert proc.returncode == 0, [c for c in data["checks"] if c["status"] != "pass"]
        assert (data["primary_region"], data["secondary_region"]) == ("eu-west-1", "eu-central-1")
        assert any(c["name"].startswith("RDS instance chess") for c in data["checks"])
    finally:
        _dr(directory, "sandbox", "down", stacks=CHESS, timeout=120)
