"""`dr readiness` through the CLI: JSON checks, table, exit 1 on a fail / 0 otherwise, bad input 2."""

from __future__ import annotations

import json

from tests.unit.cli.test_status_cmd import calls, dr
from tests.unit.procedures.status_fixtures import Full, full
from tests.unit.procedures.test_readiness import _snapshot_in_dr

__all__ = ["calls", "full"]


def test_readiness_exit_codes_json_and_table(full: Full, calls: object) -> None:
    full.seeded.put_lag(1.0)
    result = dr("-o", "json", "readiness", "--kubeconfig", full.kubeconfig)
    assert result.exit_code == 1, result.output  # no snapshot in DR yet
    data = json.loads(result.output)
    assert data["status"] == "fail" and data["counts"]["fail"] == 1
    by_name = {c["name"]: c for c in data["checks"]}
    assert set(by_name["snapshot-age"]) == {"name", "status", "reason", "primary", "secondary"}
    assert by_name["snapshot-age"]["status"] == "fail"
    assert by_name["db-instance-class"]["status"] == "pass"
    assert calls.mutating() == []  # type: ignore[attr-defined]

    _snapshot_in_dr(full)
    ok = dr("-o", "json", "readiness", "--kubeconfig", full.kubeconfig)
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["status"] == "warn"  # certificates: none in moto

    stale = dr("-o", "json", "readiness", "--kubeconfig", full.kubeconfig, "--snapshot-warn", "0s")
    assert stale.exit_code == 0
    checks = {c["name"]: c["status"] for c in json.loads(stale.output)["checks"]}
    assert checks["snapshot-age"] == "warn"

    table = dr("readiness", "--kubeconfig", full.kubeconfig, "--snapshot-fail", "0s", "--snapshot-warn", "0s")
    assert table.exit_code == 1
    for text in ("db-instance-class", "waf-ip-set", "snapshot-age", "fail", full.estate.secondary.region):
        assert text in table.output, text


def test_readiness_bad_thresholds_exit_2() -> None:
    result = dr("readiness", "--snapshot-warn", "2d", "--snapshot-fail", "1d")
    assert result.exit_code == 2
    assert "--snapshot-fail" in result.output
    bad = dr("readiness", "--snapshot-warn", "soon")
    assert bad.exit_code == 2 and "not a duration" in bad.output
