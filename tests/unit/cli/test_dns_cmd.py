"""`dr dns status|failover|failback` end to end against moto."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dr.aws.route53 import HealthStatus, Route53
from dr.aws.session import CallRecorder
from tests.unit.procedures.estate_seed import Seeded, cli_calls, invoke, mutating, seeded

__all__ = ["cli_calls", "seeded"]


def _hc(seeded: Seeded, region: str) -> dict[str, Any]:
    r53 = seeded.clients.client("route53", "us-east-1")
    cfg: dict[str, Any] = r53.get_health_check(HealthCheckId=seeded.health_checks[region])["HealthCheck"][
        "HealthCheckConfig"
    ]
    return cfg


def _roles(seeded: Seeded) -> dict[str, str]:
    r53 = seeded.clients.client("route53", "us-east-1")
    recs = r53.list_resource_record_sets(HostedZoneId=seeded.zone_id)["ResourceRecordSets"]
    return {r["SetIdentifier"]: r["Failover"] for r in recs if "Failover" in r}


def _unhealthy(monkeypatch: pytest.MonkeyPatch, seeded: Seeded, region: str) -> None:
    """The checkers of ``region``'s health check report failures (moto always reports success)."""
    bad = seeded.health_checks[region]
    original = Route53.health_status

    def status(self: Route53, health_check_id: str) -> HealthStatus:
        if health_check_id == bad:
            return HealthStatus(health_check_id, observations=3, successes=0)
        return original(self, health_check_id)

    monkeypatch.setattr(Route53, "health_status", status)


def test_status_reports_primary(seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path) -> None:
    res = invoke(["dns", "status"], tmp_path)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["active_region"] == seeded.primary
    roles = {r["role"]: r["region"] for r in out["records"]}
    assert roles == {"PRIMARY": seeded.primary, "SECONDARY": seeded.secondary}
    assert all(r["health_check"]["endpoint_healthy"] for r in out["records"])
    assert out["records"][0]["health_check"]["name"] == seeded.estate.health_check_ref(seeded.estate.primary)
    assert cli_calls.mutating() == []
    table = invoke(["dns", "status"], tmp_path, json_out=False)
    assert table.exit_code == 0 and f"served from {seeded.primary}" in table.output


def test_status_sees_unhealthy_primary(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _unhealthy(monkeypatch, seeded, seeded.primary)
    out = json.loads(invoke(["dns", "status"], tmp_path).stdout)
    assert out["active_region"] == seeded.secondary


def test_failover_healthcheck_then_idempotent_then_failback(
    seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path
) -> None:
    res = invoke(["dns", "failover", "--to", "secondary", "--yes"], tmp_path)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["move"]["method"] == "healthcheck"
    assert out["active_region"] == seeded.secondary
    assert _hc(seeded, seeded.primary)["Inverted"] is True
    assert _roles(seeded) == {
        seeded.estate.primary.site.name: "PRIMARY",
        seeded.estate.secondary.site.name: "SECONDARY",
    }
    assert mutating(cli_calls) == ["route53:UpdateHealthCheck"]

    before = len(cli_calls)
    res = invoke(["dns", "failover", "--to", "secondary", "--yes"], tmp_path)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["run"]["summary"]["skipped"] == ["route-traffic"]
    assert not [c for c in cli_calls.since(before) if c.mutating and c.service == "route53"]

    res = invoke(["dns", "failback", "--yes"], tmp_path)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["active_region"] == seeded.primary
    assert _hc(seeded, seeded.primary)["Inverted"] is False


def test_failover_records_method_one_batch(seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path) -> None:
    res = invoke(["dns", "failover", "--method", "records", "--yes"], tmp_path)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["active_region"] == seeded.secondary
    est = seeded.estate
    assert _roles(seeded) == {est.primary.site.name: "SECONDARY", est.secondary.site.name: "PRIMARY"}
    assert mutating(cli_calls) == ["route53:ChangeResourceRecordSets"]
    # one transactional batch: both records deleted as listed, then re-created with the roles
    # exchanged (never two records claiming one role, as two UPSERTs would in between)
    batch = next(c for c in cli_calls.since(0) if c.operation == "ChangeResourceRecordSets")
    sent = [(c["Action"], c["SetIdentifier"]) for c in batch.params["ChangeBatch"]]
    sites = {est.primary.site.name, est.secondary.site.name}
    assert [a for a, _ in sent] == ["DELETE", "DELETE", "CREATE", "CREATE"]
    assert {s for _, s in sent[:2]} == {s for _, s in sent[2:]} == sites
    assert _hc(seeded, seeded.primary)["Inverted"] is False
    # failback (auto) sees the swapped roles and swaps them back
    res = invoke(["dns", "failback", "--yes"], tmp_path)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["move"]["method"] == "records"
    assert out["active_region"] == seeded.primary
    assert _roles(seeded) == {est.primary.site.name: "PRIMARY", est.secondary.site.name: "SECONDARY"}


def test_failover_auto_uses_records_when_primary_already_failing(
    seeded: Seeded, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Inverting a failing check would make it healthy and pull traffic back to the dead region.
    _unhealthy(monkeypatch, seeded, seeded.primary)
    res = invoke(["dns", "failover", "--yes"], tmp_path)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["move"]["method"] == "records"
    assert _hc(seeded, seeded.primary)["Inverted"] is False
    res = invoke(["dns", "failover", "--method", "healthcheck", "--yes"], tmp_path)
    assert res.exit_code == 0  # already satisfied by the records: nothing to invert


def test_failover_dry_run(seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path) -> None:
    res = invoke(["dns", "failover", "--dry-run"], tmp_path)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["run"]["status"] == "dry-run"
    ops = [op["action"] for s in out["run"]["planned"]["steps"] for op in s["operations"]]
    assert "UpdateHealthCheck" in ops
    assert cli_calls.mutating() == []
    assert _hc(seeded, seeded.primary)["Inverted"] is False


def test_failover_target_unhealthy_exit_3(
    seeded: Seeded, cli_calls: CallRecorder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _unhealthy(monkeypatch, seeded, seeded.secondary)
    res = invoke(["dns", "failover", "--to", "secondary", "--yes"], tmp_path)
    assert res.exit_code == 3
    assert seeded.estate.health_check_ref(seeded.estate.secondary) in res.output
    assert seeded.secondary in res.output
    assert cli_calls.mutating() == []
    assert _hc(seeded, seeded.primary)["Inverted"] is False
    # forced: the records are aliases with EvaluateTargetHealth, so the failing target stays
    # unhealthy whatever its check says (disabling it moved nothing). The target becomes PRIMARY
    # and the healthy old region's check is inverted: every record unhealthy → Route53 answers
    # the PRIMARY, the target.
    res = invoke(["dns", "failover", "--to", "secondary", "--yes", "--force", "--timeout", "5"], tmp_path)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["move"]["forced"] is True and out["move"]["pin_target"] is True
    assert out["move"]["method"] == "records"
    assert out["active_region"] == seeded.secondary
    est = seeded.estate
    assert _roles(seeded) == {est.primary.site.name: "SECONDARY", est.secondary.site.name: "PRIMARY"}
    assert _hc(seeded, seeded.primary)["Inverted"] is True
    assert _hc(seeded, seeded.secondary)["Disabled"] is False
    # failback restores the declared roles and clears the inversion
    res = invoke(["dns", "failback", "--yes", "--timeout", "5"], tmp_path)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["active_region"] == seeded.primary
    assert _roles(seeded) == {est.primary.site.name: "PRIMARY", est.secondary.site.name: "SECONDARY"}
    assert _hc(seeded, seeded.primary)["Inverted"] is False


def test_force_with_healthcheck_method_is_refused(
    seeded: Seeded, cli_calls: CallRecorder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _unhealthy(monkeypatch, seeded, seeded.secondary)
    res = invoke(
        ["dns", "failover", "--to", "secondary", "--yes", "--force", "--method", "healthcheck"], tmp_path
    )
    assert res.exit_code == 2
    assert "--method records" in res.output and seeded.secondary in res.output
    assert cli_calls.mutating() == []


def test_zone_missing_exit_2(seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path) -> None:
    r53 = seeded.clients.client("route53", "us-east-1")
    recs = r53.list_resource_record_sets(HostedZoneId=seeded.zone_id)["ResourceRecordSets"]
    r53.change_resource_record_sets(
        HostedZoneId=seeded.zone_id,
        ChangeBatch={
            "Changes": [{"Action": "DELETE", "ResourceRecordSet": r} for r in recs if "Failover" in r]
        },
    )
    r53.delete_hosted_zone(Id=seeded.zone_id)
    for args in (["dns", "status"], ["dns", "failover", "--yes"]):
        res = invoke(args, tmp_path)
        assert res.exit_code == 2, res.output
        assert seeded.estate.app.domain in res.output
    assert cli_calls.mutating() == []


def test_failover_lock_held_exit_3(seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path) -> None:
    from tests.unit.procedures.estate_seed import lock_held_by

    with lock_held_by(seeded.clients, seeded.estate, "bob@ops", "20261124T000000Z-123456"):
        res = invoke(["dns", "failover", "--yes"], tmp_path)
        assert res.exit_code == 3
        assert "bob@ops" in res.output
        assert mutating(cli_calls) == []
        assert _hc(seeded, seeded.primary)["Inverted"] is False
