"""An estate written by `dr topology init` (other app, regions whose zones are not a/b/c, stacks
not called prod/dr, PostgreSQL 17, a custom health path) runs end to end as a user runs it:
`dr sandbox up`, `dr failover`, `dr failback`, each a subprocess through a pipe. The other region
pairs are validated and seeded in tests/unit/test_byo_estate.py (cheap)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = [("ap-northeast-1", "us-west-1", "17")]


def _run(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dr", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def _json(res: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert res.stdout, res.stderr[-3000:]
    data: dict[str, Any] = json.loads(res.stdout)
    return data


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


@pytest.mark.parametrize(("primary", "dr", "version"), SAMPLES)
def test_generated_estate_up_failover_failback(tmp_path: Path, primary: str, dr: str, version: str) -> None:
    stacks = tmp_path / "estate"
    env = {
        **os.environ,
        "DR_SANDBOX_DIR": str(tmp_path / "sbx"),
        "DR_RUNS_DIR": str(tmp_path / "runs"),
        "DR_STACK": "",
        "PULUMI_STACK": "",
    }
    init = _run(
        ["-o", "json", "topology", "init", "--app", "ledger", "--primary-region", primary,
         "--dr-region", dr, "--dir", str(stacks), "--engine-version", version, "--health-path", "/healthz"],
        env,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    base = ["--stack-dir", str(stacks), "-o", "json"]  # no --stack: the one primary stack is found
    try:
        up = _run([*base, "sandbox", "up", "--latency", "none"], env)
        assert up.returncode == 0, up.stderr[-3000:]
        health = _json(up)["health_urls"]
        assert set(health) == {primary, dr} and all(u.endswith("/healthz") for u in health.values())
        assert _status(health[primary]) == 200

        sbx = [*base, "--target", "sandbox"]
        fo = _run(
            [*sbx, "failover", "--to", "secondary", "--mode", "planned", "--yes", "--timeout", "120"], env
        )
        out = _json(fo)
        assert fo.returncode == 0, [(s["id"], s["error"]) for s in out["run"]["steps"] if s["error"]]
        assert out["active_region"] == dr
        # the printed hint carries the options of this run: copied as is, it reaches this estate
        assert out["reconcile_command"].startswith(
            f"dr --stack-dir {stacks} --stack ledger-{primary} --target sandbox reconcile"
        )

        fb = _run([*sbx, "failback", "--yes", "--timeout", "120"], env)
        out = _json(fb)
        assert fb.returncode == 0, [(s["id"], s["error"]) for s in out["run"]["steps"] if s["error"]]
        assert out["active_region"] == primary
        assert _status(health[primary]) == 200
    finally:
        _run(["sandbox", "down"], env, timeout=120)
