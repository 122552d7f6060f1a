"""The sandbox is seeded with exactly the estate's physical names, in both regions, really wired."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import RunningSandbox


def test_seeded_names_equal_the_estate_contract(sandbox: RunningSandbox) -> None:
    expected = {k: sorted(v) for k, v in sandbox.estate.physical_names().items()}
    assert sandbox.state["seeded"]["names"] == expected


def test_rds_primary_multi_az_and_cross_region_replica(sandbox: RunningSandbox) -> None:
    estate = sandbox.estate
    clients = sandbox.clients()
    primary = clients.client("rds", estate.primary.region).describe_db_instances(
        DBInstanceIdentifier=estate.primary.database.identifier
    )["DBInstances"][0]
    replica = clients.client("rds", estate.secondary.region).describe_db_instances(
        DBInstanceIdentifier=estate.secondary.database.identifier
    )["DBInstances"][0]
    assert primary["MultiAZ"] is True
    assert primary["Engine"] == "postgres"
    assert primary["BackupRetentionPeriod"] == estate.primary.database.backup_retention_days
    assert "ReadReplicaSourceDBInstanceIdentifier" not in primary
    assert replica["ReadReplicaSourceDBInstanceIdentifier"] == primary["DBInstanceArn"]
    assert replica["DBInstanceArn"] in primary["ReadReplicaDBInstanceIdentifiers"]
    # LatestRestorableTime is reported for the primary (PITR source), not for the replica.
    assert "LatestRestorableTime" in primary
    assert "LatestRestorableTime" not in replica


def test_rds_endpoints_are_the_real_local_postgres(sandbox: RunningSandbox) -> None:
    psycopg = pytest.importorskip("psycopg")
    estate = sandbox.estate
    if sandbox.state["components"].get("postgres") != "running":
        pytest.skip(f"no real PostgreSQL: {sandbox.state['components'].get('postgres')}")
    clients = sandbox.clients()
    roles = {}
    for view in (estate.primary, estate.secondary):
        db = clients.client("rds", view.region).describe_db_instances(
            DBInstanceIdentifier=view.database.identifier
        )
        ep = db["DBInstances"][0]["Endpoint"]
        assert ep["Address"] == "127.0.0.1"
        sm = clients.client("secretsmanager", view.region)
        secret = json.loads(
            sm.get_secret_value(SecretId=estate.app.db_secret.secrets_manager_id)["SecretString"]
        )
        # One multi-region secret (as the Pulumi program declares it): primary copy in the primary
        # region, a replica in DR; its credentials work on each region's database endpoint.
        described = sm.describe_secret(SecretId=estate.app.db_secret.secrets_manager_id)
        assert described.get("PrimaryRegion", view.region) == estate.primary.region
        assert "host" not in secret
        with psycopg.connect(
            host=ep["Address"],
            port=ep["Port"],
            dbname=secret["dbname"],
            user=secret["username"],
            password=secret["password"],
            connect_timeout=5,
        ) as conn:
            roles[view.role] = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
    assert roles == {"primary": False, "standby": True}


def test_route53_failover_records_and_health_checks(sandbox: RunningSandbox) -> None:
    estate = sandbox.estate
    r53 = sandbox.clients().client("route53", estate.primary.region)
    zones = r53.list_hosted_zones_by_name(DNSName=estate.app.domain)["HostedZones"]
    zone = next(z for z in zones if z["Name"].rstrip(".") == estate.app.domain)
    records = [
        r
        for r in r53.list_resource_record_sets(HostedZoneId=zone["Id"])["ResourceRecordSets"]
        if r["Name"].rstrip(".") == estate.app.record
    ]
    assert sorted(r["Failover"] for r in records) == ["PRIMARY", "SECONDARY"]
    refs = {hc["Id"]: hc["CallerReference"] for hc in r53.list_health_checks()["HealthChecks"]}
    by_failover = {r["Failover"]: refs[r["HealthCheckId"]] for r in records}
    assert by_failover == {
        "PRIMARY": estate.health_check_ref(estate.primary),
        "SECONDARY": estate.health_check_ref(estate.secondary),
    }
    assert all(r["TTL"] == estate.app.ttl for r in records)


def test_lock_table_journal_buckets_waf_in_both_regions(sandbox: RunningSandbox) -> None:
    estate = sandbox.estate
    clients = sandbox.clients()
    for view in (estate.primary, estate.secondary):
        table = clients.client("dynamodb", view.region).describe_table(TableName=estate.lock_table)["Table"]
        assert table["KeySchema"] == [{"AttributeName": "name", "KeyType": "HASH"}]
        clients.client("s3", view.region).head_bucket(Bucket=estate.journal_bucket(view.region))
        waf = clients.client("wafv2", view.region)
        acls = {a["Name"] for a in waf.list_web_acls(Scope="REGIONAL")["WebACLs"]}
        ip_sets = {s["Name"] for s in waf.list_ip_sets(Scope="REGIONAL")["IPSets"]}
        assert view.edge.web_acl_name in acls
        assert view.edge.ip_set_name in ip_sets
        ng = clients.client("eks", view.region).describe_nodegroup(
            clusterName=view.cluster.name, nodegroupName=view.cluster.nodegroup.name
        )["nodegroup"]
        assert ng["scalingConfig"]["desiredSize"] == view.cluster.nodegroup.desired_size


def test_replica_lag_metric_is_published(sandbox: RunningSandbox) -> None:
    import datetime as dt
    import time

    estate = sandbox.estate
    cw = sandbox.clients().client("cloudwatch", estate.secondary.region)
    now = dt.datetime.now(dt.UTC)
    points: list = []
    deadline = time.monotonic() + 10
    while not points and time.monotonic() < deadline:
        points = cw.get_metric_statistics(
            Namespace="AWS/RDS",
            MetricName="ReplicaLag",
            Dimensions=[{"Name": "DBInstanceIdentifier", "Value": estate.secondary.database.identifier}],
            StartTime=now - dt.timedelta(minutes=10),
            EndTime=now + dt.timedelta(minutes=1),
            Period=60,
            Statistics=["Maximum"],
        )["Datapoints"]
        time.sleep(0.3)
    assert points, "no ReplicaLag datapoint published for the replica"
    assert all(p["Maximum"] >= 0 for p in points)


def test_kubeconfig_has_one_context_per_cluster(sandbox: RunningSandbox) -> None:
    import yaml

    doc = yaml.safe_load(Path(sandbox.state["kubeconfig"]).read_text())
    estate = sandbox.estate
    assert {c["name"] for c in doc["contexts"]} == {
        estate.primary.cluster.name,
        estate.secondary.cluster.name,
    }


def _program_runs(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> list[Any]:
    """The prod + dr stacks under Pulumi mocks; reuses tests/unit/infra's session cache when present
    (same lock, read only: its format is theirs)."""
    import fcntl

    from dr.infra.mockrun import MockRun, run_many_subprocess
    from tests.conftest import STACKS

    base = tmp_path_factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent
    with open(shared / "infra-mockruns.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cache = shared / "infra-mockruns.json"
        if cache.exists():
            data = json.loads(cache.read_text())
            if "prod" in data and "dr" in data:
                return [MockRun.from_json(data["prod"]), MockRun.from_json(data["dr"])]
    return list(run_many_subprocess({"prod": (str(STACKS), "prod"), "dr": (str(STACKS), "dr")}).values())


@pytest.mark.slow
def test_pulumi_program_declares_the_names_the_sandbox_creates(
    sandbox: RunningSandbox, tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> None:
    """AGREEMENT TEST: physical names of the Pulumi program (under mocks) == what the sandbox seeded."""
    mockrun = pytest.importorskip("dr.infra.mockrun")
    runs = _program_runs(tmp_path_factory, worker_id)
    declared = {k: sorted(v) for k, v in mockrun.physical_names(runs).items()}
    assert declared == sandbox.state["seeded"]["names"]


@pytest.mark.parametrize("postgres", [True, False], ids=["postgres", "no-postgres"])
def test_each_cluster_secret_already_names_its_own_instance_as_the_pulumi_program_builds_it(
    sandbox: RunningSandbox, tmp_path: Path, postgres: bool
) -> None:
    """Both sites' DB secrets hold exactly the URL a failover to that site would write (its own
    endpoint, the region's Secrets Manager credentials), so `patch-db-secret` finds nothing to
    change and the pods are not restarted — as on AWS. Without PostgreSQL the host is moto's."""
    from dr.kube import KubeFactory
    from dr.steps.workload_steps import desired_database_url
    from tests.integration.conftest import running_sandbox

    def check(sb: RunningSandbox) -> None:
        clients = sb.clients()
        kube = KubeFactory(kubeconfig=sb.state["kubeconfig"], clients=clients)
        app = sb.estate.app
        try:
            for view in (sb.estate.primary, sb.estate.secondary):
                current = kube(view).read_secret_key(app.namespace, app.db_secret.name, app.db_secret.key)
                want = desired_database_url(clients, sb.estate, view, view.database.identifier, current)
                assert current == want, view.region  # SecretValue compares values, never prints them
        finally:
            kube.close()

    if postgres:
        check(sandbox)
    else:
        with running_sandbox(tmp_path / "sbx", postgres=False) as sb:
            assert sb.state["components"].get("postgres") != "running"
            check(sb)
