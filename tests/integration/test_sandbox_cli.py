"""`dr sandbox up/status/down` as an operator runs them: background process, idempotent up,
and down leaves no process behind (checked by pid)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import STACKS

pytestmark = pytest.mark.slow


def _dr(args: list[str], env: dict[str, str], timeout: float = 150) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dr", "--stack-dir", str(STACKS), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_up_status_down_leaves_nothing_behind(tmp_path: Path) -> None:
    directory = tmp_path / "sbx"
    env = {**os.environ, "DR_SANDBOX_DIR": str(directory)}

    up = _dr(["-o", "json", "sandbox", "up", "--latency", "none"], env)
    assert up.returncode == 0, up.stderr
    started: dict[str, Any] = json.loads(up.stdout)
    assert started["already_running"] is False
    state = json.loads((directory / "state.json").read_text())
    # The target contract: one endpoint, a kubeconfig with one context per cluster.
    assert state["aws_endpoint"].startswith("http://127.0.0.1:")
    assert Path(state["kubeconfig"]).exists()
    # No password in state.json; it lives only in a 0600 file.
    if state["postgres"]["password_file"]:
        password = Path(state["postgres"]["password_file"]).read_text().strip()
        assert password and password not in (directory / "state.json").read_text()
        assert Path(state["postgres"]["password_file"]).stat().st_mode & 0o777 == 0o600
        assert all(
            "@127.0.0.1" in dsn and ":" + password not in dsn for dsn in state["postgres"]["dsns"].values()
        )
        assert password not in up.stdout + up.stderr

    pids = [state["pids"]["manager"], *state["pids"].get("postgres", {}).values()]
    assert all(_alive(p) for p in pids)

    status = _dr(["-o", "json", "sandbox", "status"], env)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["running"] is True
    assert {p["pid"] for p in report["processes"]} == set(pids)

    again = _dr(["-o", "json", "sandbox", "up", "--latency", "none"], env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["already_running"] is True
    assert json.loads((directory / "state.json").read_text())["pids"]["manager"] == state["pids"]["manager"]

    # --target sandbox reaches it through the ordinary code path (boto3 endpoint_url).
    from dr.aws.session import ClientProvider
    from dr.target import resolve_target

    target = resolve_target("sandbox", directory)
    provider = ClientProvider(
        endpoint_url=target.endpoint_url, credentials=target.credentials, max_attempts=0
    )
    from dr.topology import load_estate

    estate = load_estate(STACKS, "prod")
    dbs = provider.client("rds", estate.primary.region).describe_db_instances()["DBInstances"]
    assert [d["DBInstanceIdentifier"] for d in dbs] == [estate.primary.database.identifier]

    down = _dr(["-o", "json", "sandbox", "down"], env)
    assert down.returncode == 0, down.stderr
    result = json.loads(down.stdout)
    assert result["still_running"] == []
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p for p in pids if _alive(p)] == []
    assert not directory.exists()

    gone = _dr(["-o", "json", "sandbox", "status"], env)
    assert json.loads(gone.stdout)["running"] is False


def test_up_with_bad_latency_is_bad_input(tmp_path: Path) -> None:
    env = {**os.environ, "DR_SANDBOX_DIR": str(tmp_path / "sbx")}
    out = _dr(["sandbox", "up", "--time-scale", "0"], env, timeout=60)
    assert out.returncode == 2
    assert "time-scale" in out.stderr
    assert not (tmp_path / "sbx" / "state.json").exists()
