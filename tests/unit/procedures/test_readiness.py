"""`dr readiness` procedure: drifts introduced on purpose flip exactly the right check."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from dr.procedures.readiness import FAIL, PASS, WARN, ReadinessReport, check_readiness, secret_host
from dr.procedures.status import Outcome
from tests.unit.procedures.estate_seed import PASSWORD
from tests.unit.procedures.test_status import DeadRegion
from tests.unit.procedures.test_status_fixtures import Full, full

__all__ = ["full"]

# Checks the moto baseline cannot pass (it has no snapshot and no certificate).
BASELINE_NOT_PASSING = {"snapshot-age": FAIL, "certificate-expiry": WARN}


def _run(full: Full, **kwargs: Any) -> ReadinessReport:
    return check_readiness(full.estate, full.clients, full.kube, **kwargs)


def _statuses(report: ReadinessReport) -> dict[str, str]:
    return {c.name: c.status for c in report.checks}


def _only_changed(report: ReadinessReport, **expected: str) -> None:
    """Every check as in the baseline except ``expected`` (name with '_' for '-')."""
    want = {c.name: PASS for c in report.checks} | BASELINE_NOT_PASSING
    want |= {k.replace("_", "-"): v for k, v in expected.items()}
    assert _statuses(report) == want, [c.to_dict() for c in report.checks if c.status != want[c.name]]


def _snapshot_in_dr(full: Full) -> str:
    p, s = full.estate.primary, full.estate.secondary
    src = full.clients.client("rds", p.region).create_db_snapshot(
        DBInstanceIdentifier=p.database.identifier, DBSnapshotIdentifier="manual-snapshot-20261124-080000"
    )["DBSnapshot"]
    full.clients.client("rds", s.region).copy_db_snapshot(
        SourceDBSnapshotIdentifier=src["DBSnapshotArn"],
        TargetDBSnapshotIdentifier="manual-snapshot-20261124-080000",
        SourceRegion=p.region,
        KmsKeyId=full.seeded.kms[s.region],
    )
    return "manual-snapshot-20261124-080000"


def test_ready_baseline_then_snapshot_copied_to_dr(full: Full) -> None:
    full.seeded.put_lag(1.0)
    start = len(full.recorder)
    report = _run(full)
    _only_changed(report)
    assert report.exit_code == 1  # no snapshot in DR: a fail
    assert [c.name for c in report.failed] == ["snapshot-age"]
    snap = _snapshot_in_dr(full)
    after = _run(full)
    _only_changed(after, snapshot_age=PASS)
    assert after.exit_code == 0
    assert snap in after.check("snapshot-age").secondary
    reads = full.recorder.since(start)
    assert [
        c for c in reads if c.mutating and c.operation not in ("CreateDBSnapshot", "CopyDBSnapshot")
    ] == []
    # the DB secret's password never reaches the report
    assert PASSWORD not in json.dumps(after.to_dict(), default=str)


def test_snapshot_thresholds_are_configurable(full: Full) -> None:
    full.seeded.put_lag(1.0)
    _snapshot_in_dr(full)
    warn = _run(full, snapshot_warn=dt.timedelta(0), snapshot_fail=dt.timedelta(days=7))
    assert warn.check("snapshot-age").status == WARN
    fail = _run(full, snapshot_warn=dt.timedelta(0), snapshot_fail=dt.timedelta(0))
    assert fail.check("snapshot-age").status == FAIL and fail.exit_code == 1


def test_drift_instance_class_and_multi_az(full: Full) -> None:
    full.seeded.put_lag(1.0)
    s = full.estate.secondary
    full.clients.client("rds", s.region).modify_db_instance(
        DBInstanceIdentifier=s.database.identifier,
        DBInstanceClass="db.r6g.large",
        MultiAZ=False,
        ApplyImmediately=True,
    )
    report = _run(full)
    _only_changed(report, db_instance_class=FAIL, db_multi_az=FAIL)
    check = report.check("db-instance-class")
    assert (check.primary, check.secondary) == (full.estate.primary.database.instance_class, "db.r6g.large")


def test_drift_waf_entry_only_in_production(full: Full) -> None:
    full.seeded.put_lag(1.0)
    from dr.aws import wafv2

    p = full.estate.primary
    wafv2.change_ip_set(full.clients, p.region, p.edge.ip_set_name, add=[wafv2.parse_cidr("203.0.113.7")])
    report = _run(full)
    _only_changed(report, waf_ip_set=FAIL)
    reason = report.check("waf-ip-set").reason
    assert "only in production: 203.0.113.7/32" in reason and "only in DR" not in reason


def test_drift_image_in_dr(full: Full) -> None:
    full.seeded.put_lag(1.0)
    app = full.estate.app
    api = full.api(full.estate.secondary.region)
    api.patch(
        "deployments",
        app.namespace,
        app.api.name,
        {"spec": {"template": {"spec": {"containers": [{"name": "api", "image": "ghcr.io/x/api:0.9.9"}]}}}},
        "application/strategic-merge-patch+json",
    )
    report = _run(full)
    _only_changed(report, container_images=FAIL)
    check = report.check("container-images")
    assert app.api.name in check.reason and "0.9.9" in check.reason
    assert check.secondary[app.api.name] == ["ghcr.io/x/api:0.9.9"]


def test_replica_lag_against_rpo_budget(full: Full) -> None:
    budget = full.estate.app.objectives.rpo_seconds
    assert _run(full).check("replica-lag").status == WARN  # no datapoint at all
    full.seeded.put_lag(budget + 25)
    report = _run(full)
    _only_changed(report, replica_lag=FAIL)
    assert f"{budget + 25:g}s exceeds" in report.check("replica-lag").reason


def test_dr_secret_pointing_at_production_fails_without_printing_it(full: Full) -> None:
    full.seeded.put_lag(1.0)
    app = full.estate.app
    prod_url = full.api(full.estate.primary.region).secret_value(
        app.namespace, app.db_secret.name, app.db_secret.key
    )
    import base64

    full.api(full.estate.secondary.region).patch(
        "secrets",
        app.namespace,
        app.db_secret.name,
        {"data": {app.db_secret.key: base64.b64encode(prod_url.encode()).decode()}},
        "application/merge-patch+json",
    )
    report = _run(full)
    _only_changed(report, db_secret=FAIL)
    check = report.check("db-secret")
    assert "production database" in check.reason
    assert full.estate.primary.database.identifier in check.secondary
    text = json.dumps(report.to_dict(), default=str)
    assert PASSWORD not in text and prod_url not in text


def test_dr_secret_key_missing(full: Full) -> None:
    full.seeded.put_lag(1.0)
    app = full.estate.app
    full.api(full.estate.secondary.region).patch(
        "secrets",
        app.namespace,
        app.db_secret.name,
        {"data": {app.db_secret.key: None, "other": "eA=="}},
        "application/merge-patch+json",
    )
    report = _run(full)
    _only_changed(report, db_secret=FAIL)
    assert "has no key" in report.check("db-secret").reason


def test_node_capacity_below_production(full: Full) -> None:
    full.seeded.put_lag(1.0)
    s = full.estate.secondary
    full.clients.client("eks", s.region).update_nodegroup_config(
        clusterName=s.cluster.name,
        nodegroupName=s.cluster.nodegroup.name,
        scalingConfig={"minSize": 1, "maxSize": 1, "desiredSize": 1},
    )
    report = _run(full)
    _only_changed(report, node_capacity=FAIL)
    reason = report.check("node-capacity").reason
    assert "max 1 < production desired 6" in reason and "at most 4 pods" in reason


def test_promoted_dr_database_fails_replication(full: Full) -> None:
    full.seeded.put_lag(1.0)
    s = full.estate.secondary
    full.clients.client("rds", s.region).promote_read_replica(DBInstanceIdentifier=s.database.identifier)
    report = _run(full)
    assert report.check("replica-lag").status == FAIL
    assert "not a read replica" in report.check("replica-lag").reason


def test_unreachable_dr_region_fails_checks_without_raising(full: Full) -> None:
    dead = DeadRegion(_session=full.clients._session, max_attempts=1, retry_mode="standard")
    dead.dead = full.estate.secondary.region
    report = check_readiness(full.estate, dead, full.kube)
    st = _statuses(report)
    for name in (
        "db-engine",
        "db-instance-class",
        "node-capacity",
        "waf-ip-set",
        "replica-lag",
        "snapshot-age",
    ):
        assert st[name] == FAIL, name
    assert "EndpointConnectionError" in report.check("db-engine").reason
    # what lives outside AWS's regional APIs is still compared (the clusters answer)
    assert st["container-images"] == PASS


def _cert(days: float) -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "*.claude-deployment.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("*.claude-deployment.com")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), pem_key


def test_certificate_expiry(full: Full) -> None:
    full.seeded.put_lag(1.0)
    p, s = full.estate.primary.region, full.estate.secondary.region
    for region, days in ((p, 200), (s, 200)):
        cert, key = _cert(days)
        full.clients.client("acm", region).import_certificate(Certificate=cert, PrivateKey=key)
    assert _run(full).check("certificate-expiry").status == PASS
    cert, key = _cert(10)
    arn = full.clients.client("acm", s).list_certificates()["CertificateSummaryList"][0]["CertificateArn"]
    full.clients.client("acm", s).import_certificate(CertificateArn=arn, Certificate=cert, PrivateKey=key)
    report = _run(full, cert_warn_days=30)
    assert report.check("certificate-expiry").status == WARN
    assert s in report.check("certificate-expiry").reason
    assert _run(full, cert_warn_days=5).check("certificate-expiry").status == PASS


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("postgresql://u:pw@db.example:5433/app", ("db.example", 5433)),
        ("postgresql://u:pw@db.example/app", ("db.example", None)),
        (json.dumps({"host": "h.example", "port": 5432, "password": "x"}), ("h.example", 5432)),
        (json.dumps({"username": "u", "password": "x"}), (None, None)),
        ("not a url", (None, None)),
    ],
)
def test_secret_host_returns_only_host_and_port(value: str, expected: tuple[Any, Any]) -> None:
    assert secret_host(value) == expected


def test_unreadable_side_is_a_fail_naming_the_side() -> None:
    from dr.procedures.readiness import _waf_check

    check = _waf_check(Outcome(error="boom"), Outcome(value=None))
    assert check.status == FAIL and "could not read primary: boom" in check.reason
