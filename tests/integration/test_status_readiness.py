"""`dr --target sandbox status` / `readiness` against the running sandbox (real PostgreSQL, fake
clusters, moto behind the realism layer): what an operator sees, a drift readiness must catch, and a
lost region that `status` reports without failing."""

from __future__ import annotations

import subprocess

import pytest

from tests.integration.conftest import RunningSandbox, run_dr
from tests.integration.conftest import stdout_json as _json


def _dr(sb: RunningSandbox, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run_dr(sb, *args, timeout=timeout, COLUMNS="200")


def test_status_against_the_sandbox(sandbox: RunningSandbox) -> None:
    estate = sandbox.estate
    p, s = estate.primary.region, estate.secondary.region
    proc = _dr(sandbox, "-o", "json", "status")
    assert proc.returncode == 0, proc.stderr
    data = _json(proc)
    assert data["active_region"] == p
    # the sandbox resolver answers the public name the way Route53 would
    assert data["resolves_to"]["region"] == p and data["resolves_to"]["source"] == "resolver"
    prim, sec = data["regions"][p], data["regions"][s]
    assert prim["reachable"] and sec["reachable"]
    assert prim["database"]["role"] == "writer" and prim["database"]["status"] == "available"
    assert sec["database"]["role"] == "replica"
    # ReplicaLag is published by the sandbox from the real streaming replica
    assert isinstance(sec["database"]["replica_lag_seconds"], float)
    assert prim["nodegroup"]["desired"] == estate.primary.cluster.nodegroup.desired_size
    assert prim["api_pods"]["desired"] == estate.replica_count(estate.primary, estate.app.api)
    assert prim["health_check"]["failover"] == "PRIMARY" and prim["health_check"]["route53_healthy"] is True
    assert prim["waf"]["web_acl"] == estate.primary.edge.web_acl_name
    assert prim["cluster"]["status"] == "ACTIVE" and sec["redis"]["status"] == "available"

    table = _dr(sandbox, "status")
    assert table.returncode == 0, table.stderr
    assert p in table.stdout and s in table.stdout and "served from" in table.stdout
    # the line names where the answer came from (it was eaten as rich markup)
    assert f"→ {p} [resolver]" in table.stdout, table.stdout


def test_readiness_against_the_sandbox_catches_a_waf_drift(sandbox: RunningSandbox) -> None:
    from dr.aws import wafv2

    estate = sandbox.estate
    proc = _dr(sandbox, "-o", "json", "readiness")
    data = _json(proc)
    checks = {c["name"]: c for c in data["checks"]}
    # a fresh sandbox is DR-ready: every check passes and the exit code says so
    failing = [c["name"] for c in data["checks"] if c["status"] == "fail"]
    assert proc.returncode == 0 and not failing, (failing, proc.stderr)
    for name in ("db-engine", "db-instance-class", "db-multi-az", "db-encryption", "node-capacity"):
        assert checks[name]["status"] == "pass", checks[name]
    for name in ("waf-ip-set", "container-images", "db-secret"):
        assert checks[name]["status"] == "pass", checks[name]
    assert checks["replica-lag"]["secondary"] is not None  # a real ReplicaLag value was read
    password = sandbox.password()
    assert password not in proc.stdout

    clients = sandbox.clients()
    view = estate.primary
    drift = wafv2.parse_cidr("203.0.113.99")
    wafv2.change_ip_set(clients, view.region, view.edge.ip_set_name, add=[drift])
    try:
        after = _dr(sandbox, "-o", "json", "readiness")
        assert after.returncode == 1
        waf = {c["name"]: c for c in _json(after)["checks"]}["waf-ip-set"]
        assert waf["status"] == "fail" and "only in production: 203.0.113.99/32" in waf["reason"]
    finally:
        wafv2.change_ip_set(clients, view.region, view.edge.ip_set_name, remove=[drift])


@pytest.mark.slow
def test_status_answers_for_the_dr_region_when_the_primary_region_is_lost(
    fresh_sandbox: RunningSandbox,
) -> None:
    estate = fresh_sandbox.estate
    p, s = estate.primary.region, estate.secondary.region
    fresh_sandbox.admin.region_down(p)
    proc = _dr(fresh_sandbox, "-o", "json", "status", "--timeout", "1")
    assert proc.returncode == 0, proc.stderr
    data = _json(proc)
    prim, sec = data["regions"][p], data["regions"][s]
    assert prim["reachable"] is False and prim["state"] == "unreachable"
    assert prim["database"]["state"] == "unreachable"
    assert sec["reachable"] is True and sec["database"]["role"] == "replica"
    assert any("unreachable" in n for n in data["notes"])


def test_readiness_publish_then_status_shows_the_alarm_state(sandbox: RunningSandbox) -> None:
    """`dr readiness --publish` through a pipe puts the metrics in the DR region; the sandbox
    evaluates the alarms the DR stack deploys (moto does not), and `dr status` reads them back."""
    estate = sandbox.estate
    prefix = f"{estate.app.name}-readiness-"
    proc = _dr(sandbox, "-o", "json", "readiness", "--publish")
    data = _json(proc)
    assert proc.returncode == (1 if data["counts"]["fail"] else 0), proc.stderr
    pub = data["published"]
    assert pub["region"] == estate.secondary.region and pub["namespace"] == estate.app.readiness.namespace
    failed = {c["name"] for c in data["checks"] if c["status"] == "fail"}

    status = _json(_dr(sandbox, "-o", "json", "status"))
    rd = status["readiness"]
    assert rd["region"] == estate.secondary.region and rd["error"] is None
    states = {a["name"]: a["state"] for a in rd["alarms"]}
    for check in (c["name"] for c in data["checks"]):
        assert states[f"{prefix}{check}"] == ("ALARM" if check in failed else "OK"), check
    assert set(rd["firing"]) >= {f"{prefix}{c}" for c in failed}
    table = _dr(sandbox, "status")
    assert table.returncode == 0 and "readiness alarms" in table.stdout
    assert sandbox.password() not in proc.stdout + table.stdout
