"""`dr ops …` end to end: moto for AWS, the fake Kubernetes API (real client) for the clusters."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner, Result
from moto import mock_aws

from dr.cli.main import cli
from tests.unit.kube.estate_fixtures import OLD_PASSWORD, clusters, seed_eks, seed_light


@dataclass
class Env:
    estate: Any
    apis: dict[str, Any]
    kubeconfig: str
    tmp: Path

    @property
    def ns(self) -> str:
        return self.estate.app.namespace

    def fake(self, which: str = "primary") -> Any:
        view = self.estate.primary if which == "primary" else self.estate.secondary
        return self.apis[view.cluster.name]

    def deployment(self, name: str, which: str = "primary") -> dict[str, Any]:
        return self.fake(which).get("deployments", self.ns, name)

    def invoke(self, *args: str, json_out: bool = True) -> Result:
        pre = ["-o", "json"] if json_out else []
        return CliRunner().invoke(
            cli,
            [*pre, "ops", "--kubeconfig", self.kubeconfig, *args],
            env={"DR_RUNS_DIR": str(self.tmp / "runs")},
        )

    def ip_set(self, region: str) -> list[str]:
        waf = boto3.client("wafv2", region_name=region)
        summary = waf.list_ip_sets(Scope="REGIONAL")["IPSets"][0]
        return sorted(
            waf.get_ip_set(Name=summary["Name"], Scope="REGIONAL", Id=summary["Id"])["IPSet"]["Addresses"]
        )


@pytest.fixture
def env(estate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    monkeypatch.setattr("dr.aws.eks.SETTLE_SECONDS", 0.0)
    with mock_aws():
        seed_light(estate)
        with clusters(estate, tmp_path) as (apis, kc):
            yield Env(estate, apis, kc, tmp_path)


def _json(res: Result) -> dict[str, Any]:
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


# -- scale ----------------------------------------------------------------------------------------


def test_scale_by_short_name_waits_for_ready_pods(env: Env) -> None:
    api = env.estate.app.api.name
    out = _json(env.invoke("scale", "api", "--replicas", "10", "--yes"))
    assert out["scale"]["from"] == 6 and out["scale"]["to"] == 10
    assert out["run"]["status"] == "succeeded"
    dep = env.deployment(api)
    assert dep["spec"]["replicas"] == 10 and dep["status"]["readyReplicas"] == 10
    assert env.deployment(api, "secondary")["spec"]["replicas"] == 1  # other region untouched


def test_scale_outside_hpa_bounds_needs_adjust_hpa(env: Env) -> None:
    api = env.estate.app.api.name
    res = env.invoke("scale", api, "--replicas", "30", "--yes")
    assert res.exit_code == 2
    assert "HPA" in res.output and "--adjust-hpa" in res.output and env.estate.primary.region in res.output
    assert env.deployment(api)["spec"]["replicas"] == 6
    out = _json(env.invoke("scale", api, "--replicas", "30", "--adjust-hpa", "--yes"))
    assert out["scale"]["hpa"]["new_max"] == 30
    assert env.deployment(api)["spec"]["replicas"] == 30  # not clamped back by the HPA
    hpa = env.fake().list_objects("horizontalpodautoscalers", env.ns)[0]
    assert hpa["spec"]["maxReplicas"] == 30


SCALE_BAD_INPUT = [
    (["scale", "ghost", "--replicas", "3"], "unknown deployment 'ghost'"),
    (["scale", "api", "--replicas", "-1"], "out of bounds"),
    (["scale", "api", "--replicas", "5000"], "out of bounds"),
    (["scale", "api"], "--replicas is required"),
    (["scale", "api", "--replicas", "3", "--region", "mars"], "not a site"),
    (["scale", "nodegroup", "--min", "5", "--max", "3"], "min <= desired <= max"),
    (["scale", "nodegroup", "--max", "900"], "exceeds the EKS limit"),
    (["scale", "nodegroup", "--desired", "-2"], "cannot be negative"),
]


@pytest.mark.slow
def test_scale_bad_input_exits_2_and_changes_nothing(env: Env) -> None:
    seed_eks(env.estate)
    eks = boto3.client("eks", region_name=env.estate.primary.region)
    for args, needle in SCALE_BAD_INPUT:
        res = env.invoke(*args, "--yes")
        assert res.exit_code == 2, (args, res.output)
        assert needle in res.output, (args, res.output)
        assert env.deployment(env.estate.app.api.name)["spec"]["replicas"] == 6
        ng = eks.describe_nodegroup(clusterName=env.estate.primary.cluster.name, nodegroupName="primary")
        sc = ng["nodegroup"]["scalingConfig"]
        assert (sc["minSize"], sc["maxSize"], sc["desiredSize"]) == (3, 20, 6)


ONE_SITE = [
    (["scale", "api", "--replicas", "3", "--yes"], "--region must name one site for scale"),
    (["hpa", "api", "--min", "8", "--yes"], "--region must name one site"),
    (["history", "api"], "--region must name one site"),
    (["rollback", "api", "--yes"], "--region must name one site for rollback"),
    (["stop-writes", "--yes"], "--region must name one site"),
    (["resume-writes", "--yes"], "--region must name one site"),
    (["quarantine", "api-0", "--yes"], "--region must name one site"),
]


def test_one_site_commands_refuse_both_regions(env: Env) -> None:
    for args, needle in ONE_SITE:
        res = env.invoke(*args, "--region", "both")
        assert res.exit_code == 2, (args, res.output)
        assert res.output == f"Error: {needle}\n→ use primary or secondary\n", args
    assert env.deployment(env.estate.app.api.name)["spec"]["replicas"] == 6


def test_hpa_show_set_and_bad_bounds(env: Env) -> None:
    shown = _json(env.invoke("hpa", "api"))
    assert (shown["hpa"]["min"], shown["hpa"]["max"]) == (6, 20)
    out = _json(env.invoke("hpa", "api", "--min", "8", "--yes"))
    assert (out["new_min"], out["new_max"]) == (8, 20)
    hpa = env.fake().list_objects("horizontalpodautoscalers", env.ns)[0]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (8, 20)
    assert env.deployment(env.estate.app.api.name)["spec"]["replicas"] == 8  # the HPA acted on the new floor
    for args in (["--min", "30"], ["--max", "0"]):
        res = env.invoke("hpa", "api", *args, "--yes")
        assert res.exit_code == 2 and "min <= max" in res.output
    res = env.invoke("hpa", "worker", "--min", "2", "--yes")
    assert res.exit_code == 2 and "no HorizontalPodAutoscaler" in res.output


def test_scale_dry_run_changes_nothing_and_prints_the_plan(env: Env) -> None:
    out = _json(env.invoke("scale", "api", "--replicas", "12", "--dry-run"))
    assert out["run"]["status"] == "dry-run"
    assert any(
        op["action"] == "PatchDeploymentScale"
        for s in out["run"]["planned"]["steps"]
        for op in s["operations"]
    )
    assert env.deployment(env.estate.app.api.name)["spec"]["replicas"] == 6


@pytest.mark.slow
def test_scale_nodegroup_in_secondary(env: Env) -> None:
    seed_eks(env.estate)
    out = _json(
        env.invoke(
            "scale",
            "nodegroup",
            "--min",
            "3",
            "--max",
            "20",
            "--desired",
            "6",
            "--region",
            "secondary",
            "--yes",
        )
    )
    assert out["nodegroup"]["from"] == {"min": 1, "max": 20, "desired": 1}
    view = env.estate.secondary
    sc = boto3.client("eks", region_name=view.region).describe_nodegroup(
        clusterName=view.cluster.name, nodegroupName=view.cluster.nodegroup.name
    )["nodegroup"]["scalingConfig"]
    assert (sc["minSize"], sc["maxSize"], sc["desiredSize"]) == (3, 20, 6)
    again = _json(env.invoke("scale", "nodegroup", "--desired", "6", "--region", "secondary", "--yes"))
    assert again["run"]["summary"]["skipped"] == ["scale-nodegroup"]


# -- rollback / history -----------------------------------------------------------------------------


def test_rollback_to_previous_and_to_revision(env: Env) -> None:
    api = env.estate.app.api.name
    _json(
        env.invoke("flag", "set", "db-pool-max", "150", "--region", "primary", "--yes")
    )  # restart → revision 2
    hist = _json(env.invoke("history", "api"))
    assert [r["revision"] for r in hist["revisions"]] == [1, 2]
    out = _json(env.invoke("rollback", "api", "--yes"))
    assert out["rollback"]["from_revision"] == 2 and out["rollback"]["to_revision"] == 1
    dep = env.deployment(api)
    assert "annotations" not in dep["spec"]["template"]["metadata"]  # revision 1's template (no restartedAt)
    assert dep["status"]["updatedReplicas"] == 6 and dep["status"]["readyReplicas"] == 6
    res = env.invoke("rollback", "api", "--to-revision", "42", "--yes")
    assert res.exit_code == 2 and "no revision 42" in res.output


def test_rollback_without_history_is_bad_input(env: Env) -> None:
    res = env.invoke("rollback", "worker", "--yes")
    assert res.exit_code == 2 and "no previous revision" in res.output


# -- flags, circuit breaker, maintenance ------------------------------------------------------------


def test_maintenance_on_patches_both_regions_and_restarts(env: Env) -> None:
    cm = env.estate.app.config_map
    out = _json(env.invoke("maintenance", "on", "--yes"))
    assert out["flags"] == {"maintenance-mode": "true"}
    for which in ("primary", "secondary"):
        assert env.fake(which).get("configmaps", env.ns, cm)["data"]["maintenance-mode"] == "true"
    api = env.deployment(env.estate.app.api.name)
    assert "kubectl.kubernetes.io/restartedAt" in api["spec"]["template"]["metadata"]["annotations"]
    worker_dr = env.deployment(env.estate.app.deployments[1].name, "secondary")
    assert (
        worker_dr["spec"]["replicas"] == 0 and "annotations" not in worker_dr["spec"]["template"]["metadata"]
    )
    # Idempotent: already on → nothing patched, nothing restarted.
    again = _json(env.invoke("maintenance", "on", "--yes"))
    assert set(again["run"]["summary"]["skipped"]) == {
        s["id"] for s in again["run"]["steps"] if not s["id"].startswith("wait-")
    }


def test_flag_disable_unknown_and_dry_run(env: Env) -> None:
    res = env.invoke("flag", "disable", "no-such-flag", "--yes")
    assert (
        res.exit_code == 2
        and "unknown feature flag" in res.output
        and "circuit-breaker-enabled" in res.output
    )
    out = _json(env.invoke("circuit-breaker", "on", "--dry-run"))
    assert out["run"]["status"] == "dry-run"
    cm = env.fake().get("configmaps", env.ns, env.estate.app.config_map)["data"]
    assert cm["circuit-breaker-enabled"] == "false"
    _json(env.invoke("circuit-breaker", "on", "--yes", "--no-restart"))
    flags = _json(env.invoke("flag", "list", "--region", "both"))
    assert {r: f["circuit-breaker-enabled"] for r, f in flags.items()} == dict.fromkeys(
        env.estate.regions, "true"
    )
    _json(env.invoke("flag", "enable", "maintenance-mode", "--region", "secondary", "--yes", "--no-restart"))
    flags = _json(env.invoke("flag", "list", "--region", "both"))
    assert flags[env.estate.secondary.region]["maintenance-mode"] == "true"
    assert flags[env.estate.primary.region]["maintenance-mode"] == "false"
    assert (
        env.fake().get("configmaps", env.ns, env.estate.app.config_map)["data"]["circuit-breaker-enabled"]
        == "true"
    )


# -- stop / resume writes --------------------------------------------------------------------------------


def test_stop_and_resume_writes_restores_exact_counts(env: Env) -> None:
    api, worker = (d.name for d in env.estate.app.deployments)
    env.fake().set_scale(env.ns, worker, 3)
    _json(env.invoke("stop-writes", "--yes"))
    for name, count in ((api, 6), (worker, 3)):
        dep = env.deployment(name)
        assert dep["spec"]["replicas"] == 0
        assert dep["metadata"]["annotations"]["dr-toolkit/replicas-before-stop-writes"] == str(count)
    assert env.fake().pods(env.ns) == []
    # A second stop must not overwrite the recorded counts with 0.
    _json(env.invoke("stop-writes", "--yes"))
    assert env.deployment(api)["metadata"]["annotations"]["dr-toolkit/replicas-before-stop-writes"] == "6"
    out = _json(env.invoke("resume-writes", "--yes"))
    assert out["restored"] == {api: 6, worker: 3}
    for name, count in ((api, 6), (worker, 3)):
        dep = env.deployment(name)
        assert dep["spec"]["replicas"] == count and dep["status"]["readyReplicas"] == count
        assert "dr-toolkit/replicas-before-stop-writes" not in dep["metadata"].get("annotations", {})


def test_stop_writes_dry_run_changes_nothing(env: Env) -> None:
    # resume-writes with nothing stopped: nothing to do, nothing changed.
    idle = _json(env.invoke("resume-writes", "--yes"))
    assert set(idle["restored"].values()) == {None} and idle["run"]["status"] == "succeeded"
    out = _json(env.invoke("stop-writes", "--dry-run"))
    assert out["run"]["status"] == "dry-run"
    assert env.deployment(env.estate.app.api.name)["spec"]["replicas"] == 6
    assert "dr-toolkit/replicas-before-stop-writes" not in env.deployment(env.estate.app.api.name)[
        "metadata"
    ].get("annotations", {})


# -- WAF -------------------------------------------------------------------------------------------------


def test_waf_block_unblock_both_regions_keeping_entries(env: Env) -> None:
    regions = env.estate.regions
    out = _json(env.invoke("waf", "block", "203.0.113.7", "198.51.100.0/24", "--yes"))
    assert out["waf"]["cidrs"] == ["203.0.113.7/32", "198.51.100.0/24"]
    for region in regions:
        assert env.ip_set(region) == ["192.0.2.1/32", "198.51.100.0/24", "203.0.113.7/32"]
    again = _json(env.invoke("waf", "block", "203.0.113.7/32", "--yes"))
    assert len(again["run"]["summary"]["skipped"]) == 2  # idempotent: no UpdateIPSet
    _json(env.invoke("waf", "unblock", "198.51.100.0/24", "--yes"))
    for region in regions:
        assert env.ip_set(region) == ["192.0.2.1/32", "203.0.113.7/32"]


WAF_BAD_INPUT = [
    ("10.0.0.1/33", "not an IP address or CIDR"),
    ("10.0.0.1/24", "host bits set"),
    ("bogus", "not an IP address or CIDR"),
    ("2001:db8::/32", "IPv6"),
    ("0.0.0.0/0", "every address"),
]


def test_waf_bad_cidr_exits_2_and_changes_nothing(env: Env) -> None:
    for cidr, needle in WAF_BAD_INPUT:
        res = env.invoke("waf", "block", "203.0.113.9", cidr, "--yes")
        assert res.exit_code == 2, (cidr, res.output)
        assert needle in res.output, (cidr, res.output)
        for region in env.estate.regions:
            assert env.ip_set(region) == ["192.0.2.1/32"]


def test_waf_dry_run(env: Env) -> None:
    out = _json(env.invoke("waf", "block", "203.0.113.7", "--dry-run"))
    assert out["run"]["status"] == "dry-run"
    assert env.ip_set(env.estate.primary.region) == ["192.0.2.1/32"]
    listed = _json(env.invoke("waf", "list"))
    assert [(x["region"], x["addresses"]) for x in listed] == [
        (r, ["192.0.2.1/32"]) for r in env.estate.regions
    ]


# -- quarantine ---------------------------------------------------------------------------------------------


def test_quarantine_labels_pod_and_denies_all_traffic(env: Env) -> None:
    pod = env.fake().pods(env.ns, f"app={env.estate.app.api.name}")[0]["metadata"]["name"]
    out = _json(env.invoke("quarantine", pod, "--yes"))
    assert out["quarantine"]["pod"] == pod
    assert env.fake().get("pods", env.ns, pod)["metadata"]["labels"]["security"] == "quarantine"
    pol = env.fake().get("networkpolicies", env.ns, "dr-quarantine-deny-all")
    assert pol["spec"] == {
        "podSelector": {"matchLabels": {"security": "quarantine"}},
        "policyTypes": ["Ingress", "Egress"],
    }
    res = env.invoke("quarantine", "no-such-pod", "--yes")
    assert res.exit_code == 2 and "pod no-such-pod not found" in res.output


# -- rotate-db-secret -----------------------------------------------------------------------------------------


def test_rotate_db_secret_everywhere_and_never_printed(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    from moto.backends import get_backend

    # Everything the toolkit logs (DEBUG) and every library at INFO. (botocore's own DEBUG log dumps
    # request bodies — never enable it around secrets; the CLI does not.)
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="dr")
    estate = env.estate
    res = env.invoke("rotate-db-secret", "--yes")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["run"]["status"] == "succeeded"
    sm = boto3.client("secretsmanager", region_name=estate.primary.region)
    new = json.loads(sm.get_secret_value(SecretId=estate.app.db_secret.secrets_manager_id)["SecretString"])[
        "password"
    ]
    assert new != OLD_PASSWORD and len(new) >= 32
    dr_sm = boto3.client("secretsmanager", region_name=estate.secondary.region)
    assert (
        json.loads(dr_sm.get_secret_value(SecretId=estate.app.db_secret.secrets_manager_id)["SecretString"])[
            "password"
        ]
        == new
    )
    db = get_backend("rds")["123456789012"][estate.primary.region].databases[
        estate.primary.database.identifier
    ]
    assert db._master_user_password == new  # the old password no longer opens the database
    for which in ("primary", "secondary"):
        url = env.fake(which).secret_value(
            estate.app.namespace, estate.app.db_secret.name, estate.app.db_secret.key
        )
        assert f":{new}@" in url and OLD_PASSWORD not in url
        api = env.deployment(estate.app.api.name, which)
        assert "kubectl.kubernetes.io/restartedAt" in api["spec"]["template"]["metadata"]["annotations"]
    # The secret appears nowhere: stdout, stderr, logs, journal files.
    assert new not in res.stdout and new not in res.stderr and new not in res.output
    assert new not in caplog.text
    journals = list((env.tmp / "runs").rglob("*"))
    assert any(p.name.endswith(".jsonl") for p in journals)
    for path in journals:
        if path.is_file():
            assert new not in path.read_text(errors="replace"), path


def test_rotate_on_the_replica_site_is_refused(env: Env) -> None:
    res = env.invoke("rotate-db-secret", "--region", "secondary", "--yes")
    assert res.exit_code == 2 and "read replica" in res.output


def test_rotate_dry_run_changes_nothing(env: Env) -> None:
    estate = env.estate
    out = _json(env.invoke("rotate-db-secret", "--dry-run"))
    assert out["run"]["status"] == "dry-run"
    sm = boto3.client("secretsmanager", region_name=estate.primary.region)
    assert (
        json.loads(sm.get_secret_value(SecretId=estate.app.db_secret.secrets_manager_id)["SecretString"])[
            "password"
        ]
        == OLD_PASSWORD
    )
    url = env.fake().secret_value(estate.app.namespace, estate.app.db_secret.name, estate.app.db_secret.key)
    assert OLD_PASSWORD in url


# -- triage -------------------------------------------------------------------------------------------------------


def test_triage_json_markdown_and_degraded_sections(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = env.fake()
    pod = fake.pods(env.ns, f"app={env.estate.app.api.name}")[0]["metadata"]["name"]
    for _ in range(3):
        fake.crash_pod(env.ns, pod)
    fake.set_node_condition(fake.node_names()[0], "DiskPressure", "True")
    from dr.aws import elbv2
    from dr.errors import OperationFailed

    real = elbv2.target_health

    def flaky(clients: Any, region: str, name: str) -> Any:
        if region == env.estate.secondary.region:
            raise OperationFailed(f"describe target group {name} in {region} failed: ServiceUnavailable")
        return real(clients, region, name)

    monkeypatch.setattr(elbv2, "target_health", flaky)
    md = env.tmp / "triage.md"
    res = env.invoke("triage", "--markdown", str(md))
    assert res.exit_code == 1, res.output  # overall FAIL (0/0 ALB targets): the whole report, then exit 1
    out = json.loads(res.stdout)
    assert out["status"] == "fail"
    by = {(s["name"], s["region"]): s for s in out["sections"]}
    primary, secondary = env.estate.primary.region, env.estate.secondary.region
    assert by[("Pods", primary)]["status"] == "warn" and "3 restarts" in by[("Pods", primary)]["summary"]
    assert by[("Nodes", primary)]["status"] == "warn"
    assert by[("Warning events", primary)]["status"] == "warn"
    alb_dr = by[("ALB targets", secondary)]
    assert alb_dr["status"] == "error" and "ServiceUnavailable" in alb_dr["error"]
    # The failing section does not stop the others of that region.
    assert by[("Deployments", secondary)]["status"] == "ok" and by[("RDS", secondary)]["status"] == "ok"
    assert by[("RDS", primary)]["rows"][0][2] == "primary"
    assert by[("RDS", secondary)]["rows"][0][2] == "replica"
    assert by[("Certificates", primary)]["status"] == "warn"  # no certificate in moto
    text = md.read_text()
    assert "## Triage" in text and "| pod | phase |" in text and "could not collect" in text


def test_triage_table_output(env: Env) -> None:
    res = env.invoke("triage", "--region", "primary", json_out=False)
    assert res.exit_code == 1, res.output  # 0/0 healthy ALB targets fail: the table whole, then exit 1
    assert "Triage" in res.stdout and "Deployments" in res.stdout


# -- certificates ------------------------------------------------------------------------------------------------


def _self_signed(name: str, days_valid: tuple[int, int], key: Any = None) -> tuple[bytes, bytes]:
    """A self-signed certificate for ``name`` (PEM) and its key (RSA 2048 unless ``key`` is given)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=days_valid[0]))
        .not_valid_after(now + dt.timedelta(days=days_valid[1]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    pk = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return pem, pk


def test_cert_check_warns_then_fails_when_expired(env: Env) -> None:
    record = env.estate.app.record
    for region in env.estate.regions:
        pem, key = _self_signed(record, (-300, 10))
        boto3.client("acm", region_name=region).import_certificate(Certificate=pem, PrivateKey=key)
    res = env.invoke("cert", "check")
    out = _json(res)
    assert out["expired"] is False
    assert {c["verdict"] for c in out["certificates"]} == {"expiring"}
    assert any("expires in" in w for w in out["warnings"])
    # moto refuses to import an expired certificate: judge the same ones 30 days from now.
    import datetime as dt

    from dr.aws.session import ClientProvider
    from dr.kube import KubeFactory  # noqa: F401  (import check: procedures load without k8s)
    from dr.procedures.ops_security import cert_check

    later = cert_check(
        ClientProvider(),
        env.estate,
        [env.estate.primary],
        now=dt.datetime.now(dt.UTC) + dt.timedelta(days=30),
    )
    assert later.expired and later.exit_code == 1
    assert later.certificates[0]["verdict"] == "expired"


def test_cert_check_cli_exits_1_when_expired(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt

    from dr.aws import acm

    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    cert = acm.Certificate(
        "arn:aws:acm:x", "r", env.estate.app.record, (env.estate.app.record,), "EXPIRED", past, True, None
    )
    monkeypatch.setattr(acm, "certificates_for", lambda *_a, **_k: [cert])
    res = env.invoke("cert", "check")
    assert res.exit_code == 1
    assert json.loads(res.stdout)["expired"] is True
    table = env.invoke("cert", "check", json_out=False)
    assert table.exit_code == 1 and "EXPIRED" in table.output


# -- the run lock -----------------------------------------------------------------------------------


def test_ops_that_change_what_a_failover_changes_wait_for_no_one_else(env: Env) -> None:
    """While another run (a failover) holds the estate's run lock, `ops scale` / `stop-writes` exit 3
    naming the holder and change nothing; security responses (waf block) still go through;
    `ops --no-lock` is the explicit way around a lock table that cannot be reached."""
    from dr.aws.session import ClientProvider
    from tests.unit.procedures.estate_seed import lock_held_by

    estate, api = env.estate, env.estate.app.api.name
    with lock_held_by(ClientProvider(), estate, "oncall-b@laptop", "failover-run-1"):
        for args in (["scale", "api", "--replicas", "10", "--yes"], ["stop-writes", "--yes"]):
            res = env.invoke(*args)
            assert res.exit_code == 3, res.output
            assert "oncall-b@laptop" in res.output + str(res.stderr)
        assert env.deployment(api)["spec"]["replicas"] == 6  # untouched
        assert _json(env.invoke("waf", "block", "203.0.113.9", "--yes"))["run"]["status"] == "succeeded"
        assert "203.0.113.9/32" in env.ip_set(estate.primary.region)
        res = CliRunner().invoke(
            cli,
            [
                "-o",
                "json",
                "ops",
                "--kubeconfig",
                env.kubeconfig,
                "--no-lock",
                "scale",
                "api",
                "--replicas",
                "7",
                "--yes",
            ],
            env={"DR_RUNS_DIR": str(env.tmp / "runs")},
        )
        assert res.exit_code == 0, res.output
        assert env.deployment(api)["spec"]["replicas"] == 7
    # lock free again: the locked path works and releases the lock afterwards
    assert _json(env.invoke("scale", "api", "--replicas", "8", "--yes"))["run"]["status"] == "succeeded"
    assert _json(env.invoke("scale", "api", "--replicas", "6", "--yes"))["run"]["status"] == "succeeded"


def _refuse_password_on_managed(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto accepts MasterUserPassword on an RDS-managed instance; RDS (and the sandbox) refuse it.
    And RDS's rotation of its secret ends with a new AWSCURRENT password (moto's leaves none)."""
    import secrets as _secrets

    from moto.rds.exceptions import RDSClientError
    from moto.rds.models import MasterUserSecret, RDSBackend

    from dr.sandbox.fakeaws.rds_models import managed_password_conflict

    def rotate(self: Any) -> None:
        value = json.loads(self.secret.secret_string)
        value["password"] = _secrets.token_urlsafe(24)
        self.secretsmanager.put_secret_value(self.secret.arn, json.dumps(value), None, None, ["AWSCURRENT"])

    monkeypatch.setattr(MasterUserSecret, "rotate_secret", rotate)

    original = RDSBackend.modify_db_instance

    def modify(self: Any, db_instance_identifier: str, db_kwargs: dict[str, Any]) -> Any:
        db = self.databases.get(db_instance_identifier)
        params = {"MasterUserPassword": db_kwargs.get("master_user_password")}
        if db is not None and managed_password_conflict(db, params) is not None:
            raise RDSClientError("InvalidParameterCombination", "MasterUserPassword on a managed instance")
        return original(self, db_instance_identifier, db_kwargs)

    monkeypatch.setattr(RDSBackend, "modify_db_instance", modify)


def test_rotate_on_an_rds_managed_password_lets_rds_rotate_it(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An instance created with ManageMasterUserPassword: RDS refuses MasterUserPassword, so the
    rotation asks RDS to rotate (RotateMasterUserPassword) and copies RDS's new password into the
    app's secret and both clusters — never printed."""
    _refuse_password_on_managed(monkeypatch)
    caplog.set_level(logging.DEBUG, logger="dr")
    estate = env.estate
    region, ident = estate.primary.region, estate.primary.database.identifier
    rds = boto3.client("rds", region_name=region)
    rds.modify_db_instance(DBInstanceIdentifier=ident, ManageMasterUserPassword=True, ApplyImmediately=True)
    managed = rds.describe_db_instances(DBInstanceIdentifier=ident)["DBInstances"][0]["MasterUserSecret"]
    sm = boto3.client("secretsmanager", region_name=region)
    before = sm.get_secret_value(SecretId=managed["SecretArn"])

    res = env.invoke("rotate-db-secret", "--yes")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["rotation"]["managed_secret"] is True

    after = sm.get_secret_value(SecretId=managed["SecretArn"])
    assert after["VersionId"] != before["VersionId"]  # RDS rotated its own secret
    new = json.loads(after["SecretString"])["password"]
    assert new and new != json.loads(before["SecretString"])["password"]
    for r in estate.regions:
        app_secret = boto3.client("secretsmanager", region_name=r).get_secret_value(
            SecretId=estate.app.db_secret.secrets_manager_id
        )
        assert json.loads(app_secret["SecretString"])["password"] == new
    for which in ("primary", "secondary"):
        url = env.fake(which).secret_value(
            estate.app.namespace, estate.app.db_secret.name, estate.app.db_secret.key
        )
        assert f":{new}@" in url
    assert new not in res.output and new not in caplog.text


def test_rotate_with_a_replicated_secret_writes_only_its_primary_copy(env: Env) -> None:
    """The app's secret is a multi-region secret (primary in the primary region, replica in DR):
    Secrets Manager refuses PutSecretValue on the replica and copies every new version itself, so
    the rotation writes the primary copy and waits until the DR replica holds the new password."""
    estate = env.estate
    sid = estate.app.db_secret.secrets_manager_id
    dr_sm = boto3.client("secretsmanager", region_name=estate.secondary.region)
    dr_sm.delete_secret(SecretId=sid, ForceDeleteWithoutRecovery=True)
    boto3.client("secretsmanager", region_name=estate.primary.region).replicate_secret_to_regions(
        SecretId=sid, AddReplicaRegions=[{"Region": estate.secondary.region}]
    )
    assert dr_sm.describe_secret(SecretId=sid)["PrimaryRegion"] == estate.primary.region

    res = env.invoke("rotate-db-secret", "--yes")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["rotation"]["replica_regions"] == [estate.secondary.region]
    steps = {s["id"]: s for s in out["run"]["steps"]}
    assert f"secretsmanager-{estate.secondary.site.name}" not in steps  # never written directly
    assert steps[f"secretsmanager-replica-{estate.secondary.site.name}"]["status"] in ("done", "skipped")
    new = json.loads(dr_sm.get_secret_value(SecretId=sid)["SecretString"])["password"]
    assert new != OLD_PASSWORD
    url = env.fake("secondary").secret_value(
        estate.app.namespace, estate.app.db_secret.name, estate.app.db_secret.key
    )
    assert f":{new}@" in url and new not in res.output
