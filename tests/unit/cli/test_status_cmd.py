"""`dr status` through the CLI (moto in-process + fake clusters): JSON, table, read-only."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from dr.aws.session import CallRecorder, ClientProvider
from tests.conftest import STACKS
from tests.unit.procedures.status_fixtures import Full, full

__all__ = ["full"]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> CallRecorder:
    from dr.cli.app import AppContext

    recorder = CallRecorder()
    original = AppContext.clients

    def clients(self: AppContext, *, read_only: bool = False) -> ClientProvider:
        provider = original(self, read_only=read_only)
        provider.add_recorder(recorder)
        return provider

    monkeypatch.setattr(AppContext, "clients", clients)
    return recorder


def dr(*args: str) -> Any:
    from dr.cli.main import cli

    return CliRunner().invoke(
        cli, ["--stack-dir", str(STACKS), *args], env={"COLUMNS": "250"}, catch_exceptions=False
    )


def test_status_json_and_table_read_only(full: Full, calls: CallRecorder) -> None:
    full.seeded.put_lag(0.5)
    p, s = full.estate.primary.region, full.estate.secondary.region
    result = dr("-o", "json", "status", "--kubeconfig", full.kubeconfig)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["active_region"] == p
    assert set(data["regions"]) == {p, s}
    assert data["regions"][s]["database"]["replica_lag_seconds"] == 0.5
    assert data["regions"][p]["api_pods"]["ready"] == data["regions"][p]["api_pods"]["desired"] > 0
    assert data["regions"][s]["waf"]["ip_set_entries"] == 2
    # status is read-only, and used a read-only provider with few retries
    assert calls.calls and calls.mutating() == []

    table = dr("status", "--kubeconfig", full.kubeconfig)
    assert table.exit_code == 0, table.output
    for text in (p, s, "ACTIVE", "passive", "API pods", "Route53 health check", "replica available"):
        assert text in table.output, text


def test_status_probe_client_settings() -> None:
    from pathlib import Path

    from dr.cli.app import AppContext
    from dr.cli.status_cmd import probe_clients

    clients = probe_clients(AppContext(stack_dir=Path(STACKS), stack="prod"), 1.5)
    assert (clients.read_only, clients.max_attempts, clients.connect_timeout) == (True, 2, 1.5)
    assert clients.read_timeout == 3.0
