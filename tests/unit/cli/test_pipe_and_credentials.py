"""`dr` as users run it: a subprocess whose stdout is a pipe, with no or bad AWS credentials.

CliRunner hides all three of the things checked here: rich's width when stdout is not a terminal,
botocore exceptions raised outside an adapter (they reached the user as tracebacks), and whether
stdout holds nothing but the JSON document.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
STACKS = ROOT / "stacks"
CHESS = ROOT / "examples" / "chess-ai" / "stacks"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment with no AWS credentials anywhere (no keys, no profile, no config, no IMDS)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_") and not k.startswith("DR_") and k != "COLUMNS"
    }
    env.update(
        AWS_CONFIG_FILE=str(tmp_path / "no-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        COLUMNS="40",  # a narrow "terminal": a pipe must still get every cell whole
        TERM="xterm-256color",
    )
    env.update(extra)
    return env


def dr(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dr", *args],
        cwd=tmp_path,
        env=_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout, proc.stdout


@pytest.mark.parametrize(
    "procedure", ["failover", "failback", "reprotect", "drill", "snapshot", "restore", "ops"]
)
def test_iam_policy_into_a_file_is_valid_json(tmp_path: Path, procedure: str) -> None:
    """`dr iam-policy … > policy.json` must be loadable by `aws iam create-policy`: no wrapping of
    long ARNs at the terminal width, no colour, nothing but the document on stdout."""
    proc = dr(
        tmp_path,
        "--stack-dir",
        str(STACKS),
        "iam-policy",
        "--procedure",
        procedure,
        "--account-id",
        "123456789012",
        "--zone-id",
        "Z0123456789ABCDEFGHIJ",
    )
    _no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout
    doc = json.loads(proc.stdout)
    assert doc["Version"] == "2012-10-17"
    arns = [
        r
        for st in doc["Statement"]
        for r in (st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]])
    ]
    assert any(len(a) > 40 for a in arns)  # long enough that a 40-column wrap would have split one


def test_json_output_through_a_pipe_parses(tmp_path: Path) -> None:
    proc = dr(tmp_path, "--stack-dir", str(CHESS), "-o", "json", "topology", "show")
    _no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert "chess" in json.dumps(data)


def test_table_through_a_pipe_is_never_cut(tmp_path: Path) -> None:
    """COLUMNS=40 and stdout a pipe: every cell is whole (no '…'), as `dr readiness | cat` in CI needs."""
    proc = dr(tmp_path, "--stack-dir", str(STACKS), "topology", "show")
    _no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout
    assert "replication_group=claude-deployment-prod-redis" in proc.stdout
    assert "identifier=claude-deployment-replica" in proc.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("failover", "--to", "secondary", "--export", "asl"),
        ("iam-policy", "--procedure", "failover"),  # no --account-id: STS GetCallerIdentity
        ("readiness",),
        ("doctor",),
        ("readiness", "--publish"),  # nothing is published without credentials either
        ("reprotect", "--db", "orders-pitr", "--dry-run"),
    ],
    ids=[
        "status",
        "export-asl",
        "iam-policy-sts",
        "readiness",
        "doctor",
        "readiness-publish",
        "reprotect-db",
    ],
)
def test_no_credentials_is_one_message_exit_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    proc = dr(tmp_path, "--stack-dir", str(STACKS), *args)
    _no_traceback(proc)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "no AWS credentials" in proc.stderr
    assert "aws sso login" in proc.stderr or "aws configure" in proc.stderr
    assert proc.stdout.strip() == ""  # nothing half-written to a file the user redirected into


def test_no_credentials_in_json_mode_is_a_json_error(tmp_path: Path) -> None:
    proc = dr(tmp_path, "--stack-dir", str(STACKS), "-o", "json", "status")
    _no_traceback(proc)
    assert proc.returncode == 2
    err = json.loads(proc.stdout)
    assert "credentials" in json.dumps(err).lower()


def test_unknown_profile_names_the_profile_and_the_fix(tmp_path: Path) -> None:
    proc = dr(tmp_path, "--stack-dir", str(STACKS), "--profile", "no-such-profile", "status")
    _no_traceback(proc)
    assert proc.returncode == 2
    assert "'no-such-profile'" in proc.stderr
    assert "aws configure sso --profile no-such-profile" in proc.stderr


def test_unknown_profile_from_the_environment(tmp_path: Path) -> None:
    proc = dr(tmp_path, "--stack-dir", str(CHESS), "status", AWS_PROFILE="ops-sso")
    _no_traceback(proc)
    assert proc.returncode == 2
    assert "ops-sso" in proc.stderr


def test_profile_without_credentials_names_it(tmp_path: Path) -> None:
    """A profile that exists but holds nothing usable (a typo'd SSO profile, say)."""
    (tmp_path / "no-config").write_text("[profile half]\nregion = us-east-1\n")
    proc = dr(tmp_path, "--stack-dir", str(STACKS), "--profile", "half", "status")
    _no_traceback(proc)
    assert proc.returncode == 2
    assert "half" in proc.stderr
    assert "--profile half" in proc.stderr
