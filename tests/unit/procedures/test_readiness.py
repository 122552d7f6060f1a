"""`dr readiness` procedure: drifts introduced on purpose flip exactly the right check."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from dr.procedures.readiness import ReadinessReport, check_readiness
from dr.procedures.readiness_checks import FAIL, PASS, WARN
from dr.procedures.readiness_reads import secret_host
from dr.procedures.status import Outcome
from tests.unit.procedures.estate_seed import PASSWORD, create_restored
from tests.unit.procedures.status_fixtures import Full, full
from tests.unit.procedures.test_status import DeadRegion

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


def test_ready_baseline_snapshot_thresholds_and_certificates(full: Full) -> None:
    full.seeded.put_lag(1.0)
    start = len(full.recorder)
    report = _run(full)
    _only_changed(report)
    assert report.exit_code == 1  # no snapshot in DR: a fail
    assert [c.name for c in report.failed] == ["snapshot-age"]
    dr_region = full.seeded.estate.secondary.region
    assert f"dr snapshot copy --snapshot <id> --to {dr_region}" in report.check("snapshot-age").reason
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

    # snapshot age thresholds are configurable
    warn = _run(full, snapshot_warn=dt.timedelta(0), snapshot_fail=dt.timedelta(days=7))
    assert warn.check("snapshot-age").status == WARN
    fail = _run(full, snapshot_warn=dt.timedelta(0), snapshot_fail=dt.timedelta(0))
    assert fail.check("snapshot-age").status == FAIL and fail.exit_code == 1

    # certificates: valid in both regions, then one expiring soon in DR
    p, s = full.estate.primary.region, full.estate.secondary.region
    for region in (p, s):
        cert, key = _cert(200)
        full.clients.client("acm", region).import_certificate(Certificate=cert, PrivateKey=key)
    _only_changed(_run(full), snapshot_age=PASS, certificate_expiry=PASS)
    cert, key = _cert(10)
    arn = full.clients.client("acm", s).list_certificates()["CertificateSummaryList"][0]["CertificateArn"]
    full.clients.client("acm", s).import_certificate(CertificateArn=arn, Certificate=cert, PrivateKey=key)
    soon = _run(full, cert_warn_days=30)
    assert soon.check("certificate-expiry").status == WARN
    assert s in soon.check("certificate-expiry").reason
    assert _run(full, cert_warn_days=5).check("certificate-expiry").status == PASS


def _patch_image(full: Full, image: str) -> None:
    app = full.estate.app
    full.api(full.estate.secondary.region).patch(
        "deployments",
        app.namespace,
        app.api.name,
        {"spec": {"template": {"spec": {"containers": [{"name": "api", "image": image}]}}}},
        "application/strategic-merge-patch+json",
    )


def _set_secret(full: Full, data: dict[str, Any]) -> None:
    app = full.estate.app
    full.api(full.estate.secondary.region).patch(
        "secrets", app.namespace, app.db_secret.name, {"data": data}, "application/merge-patch+json"
    )


def test_each_drift_flips_only_its_check_and_undoing_it_restores_readiness(full: Full) -> None:
    """Drifts introduced on purpose, one at a time, each undone before the next."""
    import base64

    from dr.aws import wafv2

    full.seeded.put_lag(1.0)
    est = full.estate
    p, s, app = est.primary, est.secondary, est.app
    rds = full.clients.client("rds", s.region)
    eks = full.clients.client("eks", s.region)
    secret_key = app.db_secret.key
    b64 = lambda text: base64.b64encode(text.encode()).decode()  # noqa: E731
    dr_url = full.api(s.region).secret_value(app.namespace, app.db_secret.name, secret_key)
    prod_url = full.api(p.region).secret_value(app.namespace, app.db_secret.name, secret_key)
    ng = s.cluster.nodegroup
    blocked = wafv2.parse_cidr("203.0.113.7")

    def scaling(mx: int) -> dict[str, int]:
        return {"minSize": ng.min_size, "maxSize": mx, "desiredSize": ng.desired_size}

    drifts: list[tuple[str, Any, Any, dict[str, str], list[str]]] = [
        (
            "DR instance class and single-AZ",
            lambda: rds.modify_db_instance(
                DBInstanceIdentifier=s.database.identifier,
                DBInstanceClass="db.r6g.large",
                MultiAZ=False,
                ApplyImmediately=True,
            ),
            lambda: rds.modify_db_instance(
                DBInstanceIdentifier=s.database.identifier,
                DBInstanceClass=s.database.instance_class,
                MultiAZ=True,
                ApplyImmediately=True,
            ),
            {"db_instance_class": FAIL, "db_multi_az": FAIL},
            ["db.r6g.large", "single-AZ"],
        ),
        (
            "WAF entry only in production",
            lambda: wafv2.change_ip_set(full.clients, p.region, p.edge.ip_set_name, add=[blocked]),
            lambda: wafv2.change_ip_set(full.clients, p.region, p.edge.ip_set_name, remove=[blocked]),
            {"waf_ip_set": FAIL},
            ["only in production: 203.0.113.7/32"],
        ),
        (
            "another image in DR",
            lambda: _patch_image(full, "ghcr.io/x/api:0.9.9"),
            lambda: _patch_image(full, app.api.image),
            {"container_images": FAIL},
            [app.api.name, "0.9.9"],
        ),
        (
            "DR secret points at the production database",
            lambda: _set_secret(full, {secret_key: b64(prod_url)}),
            lambda: _set_secret(full, {secret_key: b64(dr_url)}),
            {"db_secret": FAIL},
            ["production database", p.database.identifier],
        ),
        (
            "DR secret key missing",
            lambda: _set_secret(full, {secret_key: None}),
            lambda: _set_secret(full, {secret_key: b64(dr_url)}),
            {"db_secret": FAIL},
            ["has no key"],
        ),
        (
            "DR nodegroup too small for production",
            lambda: eks.update_nodegroup_config(
                clusterName=s.cluster.name, nodegroupName=ng.name, scalingConfig=scaling(1)
            ),
            lambda: eks.update_nodegroup_config(
                clusterName=s.cluster.name, nodegroupName=ng.name, scalingConfig=scaling(ng.max_size)
            ),
            {"node_capacity": FAIL},
            ["max 1 < production desired 6", "at most 4 pods"],
        ),
    ]
    _only_changed(_run(full))
    for what, apply, undo, expected, texts in drifts:
        apply()
        report = _run(full)
        _only_changed(report, **expected)
        reasons = " ".join(c.reason + " " + json.dumps(c.secondary) for c in report.checks)
        for text in texts:
            assert text in reasons, (what, text)
        dumped = json.dumps(report.to_dict(), default=str)
        assert PASSWORD not in dumped and prod_url not in dumped and dr_url not in dumped, what
        undo()
        _only_changed(_run(full))

    # A DR region that does not answer: its checks fail, saying why; nothing raises.
    dead = DeadRegion(_session=full.clients._session, max_attempts=1, retry_mode="standard")
    dead.dead = s.region
    lost = _statuses(check_readiness(est, dead, full.kube))
    for name in (
        "db-engine",
        "db-instance-class",
        "node-capacity",
        "waf-ip-set",
        "replica-lag",
        "snapshot-age",
    ):
        assert lost[name] == FAIL, name
    assert lost["container-images"] == PASS  # the clusters still answer


def test_replica_lag_against_rpo_budget_then_promoted_replica(full: Full) -> None:
    budget = full.estate.app.objectives.rpo_seconds
    assert _run(full).check("replica-lag").status == WARN  # no datapoint at all
    full.seeded.put_lag(budget + 25)
    report = _run(full)
    _only_changed(report, replica_lag=FAIL)
    assert f"{budget + 25:g}s exceeds" in report.check("replica-lag").reason
    s = full.estate.secondary
    full.clients.client("rds", s.region).promote_read_replica(DBInstanceIdentifier=s.database.identifier)
    promoted = _run(full).check("replica-lag")
    assert (
        promoted.status == FAIL
        and "not a read replica" in promoted.reason
        and "dr reprotect" in promoted.reason
    )


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
    from dr.procedures.readiness_checks import waf_check

    check = waf_check(Outcome(error="boom"), Outcome(value=None))
    assert check.status == FAIL and "could not read primary: boom" in check.reason


def test_db_secret_compares_host_and_port_as_in_the_sandbox(estate: Any) -> None:
    """Both databases on 127.0.0.1 (the sandbox): the port tells them apart."""
    from types import SimpleNamespace

    from dr.procedures.readiness_checks import secret_check

    prod = Outcome(value={"db": SimpleNamespace(endpoint="127.0.0.1", port=5001)})
    dr_db = Outcome(value={"db": SimpleNamespace(endpoint="127.0.0.1", port=5002)})
    ok_prod_secret = Outcome(value=("127.0.0.1", 5001))

    def check(dr_secret: tuple[str, int], sm: tuple[str | None, int | None] = (None, None)) -> Any:
        return secret_check(prod, dr_db, ok_prod_secret, Outcome(value=dr_secret), Outcome(value=sm), estate)

    assert check(("127.0.0.1", 5002)).status == PASS
    at_prod = check(("127.0.0.1", 5001))
    assert at_prod.status == FAIL and "production database" in at_prod.reason
    elsewhere = check(("127.0.0.1", 5999))
    assert elsewhere.status == FAIL and "production database" not in elsewhere.reason
    assert "127.0.0.1:5002" in elsewhere.reason  # the expected DR endpoint is named
    sm_off = check(("127.0.0.1", 5002), sm=("127.0.0.1", 5001))
    assert sm_off.status == WARN and "Secrets Manager" in sm_off.reason
    missing = secret_check(
        prod, dr_db, ok_prod_secret, Outcome(error="no key"), Outcome(value=(None, None)), estate
    )
    assert missing.status == FAIL and "no key" in missing.reason


def test_automated_backups_replicated_to_dr_are_a_recovery_point(full: Full) -> None:
    """The DR stack replicates the primary's automated backups (point-in-time recovery in DR):
    their newest restorable time counts like a snapshot copied there. moto has no backup
    replication, so RDS's answer is given here (its documented shape)."""
    from botocore.awsrequest import AWSResponse

    from dr.aws.rds import Rds

    full.seeded.put_lag(1.0)
    p, s = full.estate.primary, full.estate.secondary
    latest = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=5)

    def backups(instance: str, region: str, status: str) -> dict[str, Any]:
        return {
            "DBInstanceArn": f"arn:aws:rds:{region}:123456789012:db:{instance}",
            "DBInstanceIdentifier": instance,
            "Region": region,
            "Status": status,
            "RestoreWindow": {"EarliestTime": latest - dt.timedelta(days=1), "LatestTime": latest},
        }

    answer = {
        "DBInstanceAutomatedBackups": [
            backups(p.database.identifier, p.region, "replicating"),
            backups(s.database.identifier, s.region, "active"),  # DR's own: not the primary's
        ]
    }
    client = full.clients.client("rds", s.region)
    client.meta.events.register(
        "before-call.rds.DescribeDBInstanceAutomatedBackups",
        lambda **_: (AWSResponse("https://rds", 200, {}, None), answer),
    )
    (replicated,) = Rds(full.clients, s.region).replicated_backups(p.region)
    assert replicated.instance == p.database.identifier and replicated.latest == latest

    report = _run(full)
    _only_changed(report, snapshot_age=PASS)
    cell = report.check("snapshot-age").secondary
    assert p.database.identifier in cell and "replicated" in cell
    # thresholds apply to its newest restorable time
    old = _run(full, snapshot_warn=dt.timedelta(0), snapshot_fail=dt.timedelta(minutes=1))
    assert old.check("snapshot-age").status == FAIL


def test_two_writable_databases_with_writers_beside_the_unserved_one_is_split_brain(
    full: Full, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a failover the old primary may come back standalone and writable: readiness fails while
    writers run beside the database Route53 does not serve, warns once they are stopped, and says
    which commands settle it (names, regions; nothing changed by readiness itself)."""
    estate, s = full.estate, full.estate.secondary
    ns, writers = estate.app.namespace, [d.name for d in estate.app.writers]
    assert _run(full).check("single-writer").status == PASS  # DR is a replica: one writable database
    # DR promoted while Route53 still serves the primary (e.g. `dr promote` without a DNS move)
    full.clients.client("rds", s.region).promote_read_replica(DBInstanceIdentifier=s.database.identifier)
    for name in writers:
        full.api("secondary").set_scale(ns, name, 1)
    start = len(full.recorder)
    split = _run(full).check("single-writer")
    assert split.status == FAIL, split.reason
    assert "split brain" in split.reason and s.database.identifier in split.reason
    assert f"dr ops stop-writes --region {s.region}" in split.reason
    assert f"dr reprotect --region {s.region}" in split.reason
    assert split.secondary["writers"] == dict.fromkeys(writers, 1)
    assert [c for c in full.recorder.since(start) if c.mutating] == []
    for name in writers:  # fenced: no writer beside the unserved database
        full.api("secondary").set_scale(ns, name, 0)
    fenced = _run(full).check("single-writer")
    assert fenced.status == WARN and "no writer runs there" in fenced.reason
    # Route53 unreadable: it cannot tell which database serves — a fail saying so
    import dr.steps.dns_records as dns_records

    def unreadable(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("Route53 throttled")

    monkeypatch.setattr(dns_records, "read_state", unreadable)
    blind = _run(full).check("single-writer")
    assert blind.status == FAIL and "Route53 could not be read" in blind.reason


def _restored_and_served(full: Full, which: str) -> str:
    """A standalone instance in ``which``'s region (what `dr restore pitr` creates), and that
    site's DB secret pointing at it (a repoint, or `dr failover --db`)."""
    import base64

    view, app = full.estate.site(which), full.estate.app
    restored = f"{view.database.identifier}-pitr-120000"
    ep = create_restored(full.clients, view.region, restored)["Endpoint"]
    url = (
        f"postgresql://{app.database.username}:{PASSWORD}@{ep['Address']}:{ep['Port']}/{app.database.db_name}"
    )
    data = {app.db_secret.key: base64.b64encode(url.encode()).decode()}
    full.api(view.region).patch(
        "secrets", app.namespace, app.db_secret.name, {"data": data}, "application/merge-patch+json"
    )
    return restored


def test_single_writer_judges_the_restored_instance_dr_was_failed_over_onto(full: Full) -> None:
    """`dr failover --db <restored>` leaves DR's own database a replica and the old primary
    standalone: two writers, though the stack files' instances show one. Readiness judges the
    served side on the database its secret points at (as the post-drill invariants do)."""
    estate, p = full.estate, full.estate.primary
    restored = _restored_and_served(full, "secondary")
    r53 = full.clients.client("route53", "us-east-1")
    r53.update_health_check(HealthCheckId=full.seeded.health_checks[p.region], Inverted=True)
    split = _run(full).check("single-writer")
    assert split.status == FAIL and "split brain" in split.reason, split.reason
    assert p.database.identifier in split.reason
    assert f"dr reprotect --region {p.region} --db {restored}" in split.reason
    assert split.secondary["db"] == restored and split.secondary["writable"] is True
    for d in estate.app.writers:
        full.api("primary").set_scale(estate.app.namespace, d.name, 0)
    fenced = _run(full).check("single-writer")
    assert fenced.status == WARN and "no writer runs there" in fenced.reason
    # the DB secret's own check is unchanged: it still wants DR's stack database
    assert _run(full).check("db-secret").status == FAIL


def test_single_writer_after_a_repoint_in_the_primary_region_names_the_restored_instance(full: Full) -> None:
    """The db-corruption runbook repoints the primary's app onto an in-region restore: that is the
    one writer readiness names (the corrupt instance beside it serves no one)."""
    restored = _restored_and_served(full, "primary")
    check = _run(full).check("single-writer")
    assert check.status == PASS and check.primary["db"] == restored, check.to_dict()
    assert check.reason == f"one writable database: {restored} ({full.estate.primary.region})"
