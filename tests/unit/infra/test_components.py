"""Key properties of each component, asserted on what the program declares under mocks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dr.infra.mockrun import MOCK_INITIAL_PASSWORD, MOCK_PASSWORD, SECRET_KEY, MockRun, secret_digest
from dr.infra.workload import database_url
from dr.topology import Estate


def _walk(value: Any, path: str = ""):  # type: ignore[no-untyped-def]
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")


# -- database -----------------------------------------------------------------------------------
def test_primary_database_is_multi_az_encrypted_protected_and_owns_its_password(
    runs: dict[str, MockRun], estate: Estate
) -> None:
    run, spec = runs["prod"], estate.primary.site.database
    db = run.one("aws:rds/instance:Instance").inputs
    assert db["identifier"] == spec.identifier
    assert db["engine"] == "postgres" and db["engineVersion"] == estate.app.database.engine_version
    assert db["multiAz"] is True
    assert db["storageEncrypted"] is True and db["kmsKeyId"] == run.outputs["kmsKeyArn"]
    assert db["backupRetentionPeriod"] >= 7 and db["backupRetentionPeriod"] == spec.backup_retention_days
    assert db["deletionProtection"] is True
    assert db["skipFinalSnapshot"] is False and db["finalSnapshotIdentifier"] == f"{spec.identifier}-final"
    assert db["performanceInsightsEnabled"] is True
    # The password is the app secret's current value (a Pulumi secret), never RDS-managed, and
    # Pulumi sends it only at creation (rotation belongs to `dr ops rotate-db-secret`).
    assert "manageMasterUserPassword" not in db and "passwordWo" not in db
    assert db["password"] == {SECRET_KEY: secret_digest(MOCK_PASSWORD)}
    assert "password" in run.one("aws:rds/instance:Instance").ignore_changes
    assert "replicateSourceDb" not in db
    assert db["dbSubnetGroupName"] == f"{estate.primary.site.name}-db"


def test_standby_database_is_a_cross_region_replica_of_the_prod_arn(
    runs: dict[str, MockRun], estate: Estate
) -> None:
    prod, dr = runs["prod"], runs["dr"]
    replica = dr.one("aws:rds/instance:Instance").inputs
    assert replica["identifier"] == estate.secondary.site.database.identifier
    # The source is exactly the ARN the prod stack exports, and it is in another region.
    assert replica["replicateSourceDb"] == prod.outputs["dbArn"]
    source_region = replica["replicateSourceDb"].split(":")[3]
    assert source_region == prod.region != dr.region
    # Its own key, in the DR region (a cross-region replica cannot use the source's key).
    assert replica["kmsKeyId"] == dr.outputs["kmsKeyArn"] != prod.outputs["kmsKeyArn"]
    assert replica["kmsKeyId"].split(":")[3] == dr.region
    assert replica["multiAz"] is True and replica["storageEncrypted"] is True
    assert replica["deletionProtection"] is True
    # RDS refuses automated backups on a PostgreSQL read replica (the provider would set them in a
    # ModifyDBInstance after the create, which fails): the standby declares none.
    assert not {"backupRetentionPeriod", "backupWindow"} & replica.keys()
    # A replica inherits engine and master user; setting them would make RDS refuse the create.
    assert not {"engine", "username", "manageMasterUserPassword", "password", "dbName"} & replica.keys()


def test_standby_replicates_the_primary_automated_backups_with_its_own_key(
    runs: dict[str, MockRun], estate: Estate
) -> None:
    """Point-in-time recovery in the DR region (a corruption reaches the replica too): the
    primary's automated backups are replicated there, encrypted with the DR key; the primary
    declares none, and after a role swap the replication follows the roles."""
    prod, dr = runs["prod"], runs["dr"]
    rep = dr.one("aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication").inputs
    assert rep["sourceDbInstanceArn"] == prod.outputs["dbArn"]
    assert rep["kmsKeyId"] == dr.outputs["kmsKeyArn"] and rep["kmsKeyId"].split(":")[3] == dr.region
    assert rep["retentionPeriod"] == estate.secondary.site.database.backup_retention_days >= 7
    kind = "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication"
    assert prod.of_type(kind) == [] and runs["promoted-dr"].of_type(kind) == []
    demoted = runs["demoted-prod"].one(kind).inputs
    assert demoted["sourceDbInstanceArn"] == runs["promoted-dr"].outputs["dbArn"]


@pytest.mark.parametrize("key", ["prod", "dr", "chess-prod", "chess-dr"])
def test_data_stores_are_protected_and_retained(runs: dict[str, MockRun], key: str) -> None:
    run = runs[key]
    stores = [
        "aws:rds/instance:Instance",
        "aws:elasticache/replicationGroup:ReplicationGroup",
        "aws:kms/key:Key",
        "aws:s3/bucket:Bucket",
    ]
    stores.append(
        "aws:dynamodb/table:Table" if run.role == "primary" else "aws:dynamodb/tableReplica:TableReplica"
    )
    for typ in stores:
        r = run.one(typ)
        assert r.protect and r.retain_on_delete, f"{key}: {typ} is not protect=True/retain_on_delete"


@pytest.mark.parametrize("key", ["prod", "dr", "chess-prod", "chess-dr", "promoted-dr", "demoted-prod"])
def test_no_database_password_is_managed_by_rds(runs: dict[str, MockRun], key: str) -> None:
    # RDS would rotate a managed password every 7 days in a secret the DR region cannot read.
    for db in runs[key].of_type("aws:rds/instance:Instance"):
        assert not db.inputs.get("manageMasterUserPassword"), f"{key}: {db.name}"
        assert "masterUserSecretKmsKeyId" not in db.inputs, f"{key}: {db.name}"


@pytest.mark.parametrize(("home", "peer"), [("prod", "dr"), ("chess-prod", "chess-dr")])
def test_home_stack_owns_the_app_secret_replicated_to_the_dr_region(
    runs: dict[str, MockRun], home: str, peer: str
) -> None:
    prod, dr = runs[home], runs[peer]
    dr_site = dr.outputs["site"]
    secret = prod.one("aws:secretsmanager/secret:Secret")
    app_secret_id = secret.inputs["name"]
    assert secret.protect and secret.retain_on_delete
    # Primary copy under the home site's key, replica in the DR region under the DR site's key
    # (the alias the DR stack declares for its data key).
    assert secret.inputs["kmsKeyId"] == prod.outputs["kmsKeyArn"]
    assert secret.inputs["replicas"] == [{"region": dr.region, "kmsKeyId": f"alias/{dr_site}-data"}]
    assert dr.one("aws:kms/alias:Alias", "data-key").inputs["name"] == f"alias/{dr_site}-data"
    # The DR stack declares no copy of its own (Secrets Manager keeps the replica).
    assert not dr.of_type("aws:secretsmanager/secret:Secret")
    assert not dr.of_type("aws:secretsmanager/secretVersion:SecretVersion")
    # The first version: the master credentials with a generated password, written once.
    version = prod.one("aws:secretsmanager/secretVersion:SecretVersion")
    assert version.ignore_changes == ["secretString"]
    db = prod.one("aws:rds/instance:Instance").inputs
    body = {
        "engine": "postgres",
        "port": int(db["port"]),
        "dbname": db["dbName"],
        "username": db["username"],
        "password": MOCK_INITIAL_PASSWORD,
        "dbInstanceIdentifier": db["identifier"],
    }
    assert version.inputs["secretString"] == {SECRET_KEY: secret_digest(json.dumps(body, sort_keys=True))}
    assert prod.outputs["appSecretArn"].split(":")[3] == prod.region
    assert dr.outputs["appSecretArn"].split(":")[3] == dr.region
    assert dr.outputs["appSecretArn"].endswith(
        f":secret:{app_secret_id}-" + prod.outputs["appSecretArn"][-6:]
    )


@pytest.mark.parametrize(
    ("key", "home"), [("dr", "prod"), ("chess-dr", "chess-prod"), ("promoted-dr", "prod")]
)
def test_dr_stack_reads_the_app_secret_only_in_its_own_region(
    runs: dict[str, MockRun], key: str, home: str
) -> None:
    """The DR stack deploys while the primary region is down: nothing of it reaches that region."""
    run, primary_region = runs[key], runs[home].region
    assert run.region != primary_region
    reads = [i for i in run.invokes if i["token"].startswith("aws:secretsmanager/")]
    assert reads, f"{key}: the workload's password is read from Secrets Manager"
    for invoke in run.invokes:
        assert invoke["region"] == run.region, f"{key}: {invoke['token']} in {invoke['region']}"
    primary_secrets = f"arn:aws:secretsmanager:{primary_region}:"
    for r in run.resources:
        for path, value in _walk(r.inputs):
            assert not (isinstance(value, str) and primary_secrets in value), (
                f"{key}: {r.type} {r.name}{path}"
            )
        assert r.region in (None, run.region), f"{key}: {r.type} {r.name} in {r.region}"


# -- cache ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["prod", "dr"])
def test_redis_group_fails_over_automatically_and_is_encrypted(
    runs: dict[str, MockRun], estate: Estate, key: str
) -> None:
    run = runs[key]
    spec = (estate.primary if key == "prod" else estate.secondary).site.cache
    rg = run.one("aws:elasticache/replicationGroup:ReplicationGroup").inputs
    assert rg["replicationGroupId"] == spec.replication_group_id
    assert rg["engine"] == "redis" and rg["engineVersion"].startswith("7")
    assert rg["automaticFailoverEnabled"] is True and rg["multiAzEnabled"] is True
    assert rg["atRestEncryptionEnabled"] is True and rg["transitEncryptionEnabled"] is True
    assert rg["kmsKeyId"] == run.outputs["kmsKeyArn"]
    assert rg["numCacheClusters"] == spec.num_cache_clusters >= 2
    assert rg["snapshotRetentionLimit"] == spec.snapshot_retention_days >= 1
    # DR runs an independent group (no global datastore membership).
    assert "globalReplicationGroupId" not in rg


# -- edge -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["prod", "dr", "chess-dr"])
def test_edge_alb_https_and_target_group_health_path(runs: dict[str, MockRun], key: str) -> None:
    run = runs[key]
    tg = run.one("aws:lb/targetGroup:TargetGroup").inputs
    assert tg["healthCheck"]["path"] == "/health"
    assert tg["healthCheck"]["enabled"] is True
    https = run.one("aws:lb/listener:Listener", "https").inputs
    assert https["protocol"] == "HTTPS" and https["port"] == 443
    assert https["loadBalancerArn"] == run.outputs["albArn"]
    assert https["certificateArn"].startswith(f"arn:aws:acm:{run.region}:")
    assert https["defaultActions"][0]["targetGroupArn"] == run.outputs["targetGroupArn"]
    cert = run.one("aws:acm/certificate:Certificate").inputs
    assert cert["validationMethod"] == "DNS"


@pytest.mark.parametrize("key", ["prod", "dr", "chess-prod"])
def test_waf_blocks_the_ip_set_rate_limits_and_uses_managed_rules(
    runs: dict[str, MockRun], estate: Estate, key: str
) -> None:
    run = runs[key]
    ip_set = run.one("aws:wafv2/ipSet:IpSet").inputs
    acl = run.one("aws:wafv2/webAcl:WebAcl").inputs
    assert acl["scope"] == ip_set["scope"] == "REGIONAL"
    rules = acl["rules"]
    block = [r for r in rules if "ipSetReferenceStatement" in r["statement"]]
    assert len(block) == 1 and "block" in block[0]["action"]
    assert block[0]["statement"]["ipSetReferenceStatement"]["arn"] == run.outputs["ipSetArn"]
    assert f"/ipset/{ip_set['name']}/" in run.outputs["ipSetArn"]
    rate = [r for r in rules if "rateBasedStatement" in r["statement"]]
    assert len(rate) == 1 and "block" in rate[0]["action"]
    if not key.startswith("chess"):
        assert rate[0]["statement"]["rateBasedStatement"]["limit"] == estate.primary.site.edge.rate_limit
    managed = {
        r["statement"]["managedRuleGroupStatement"]["name"]
        for r in rules
        if "managedRuleGroupStatement" in r["statement"]
    }
    assert {"AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet"} <= managed
    priorities = [r["priority"] for r in rules]
    assert len(set(priorities)) == len(priorities)
    assert min(priorities) == block[0]["priority"], "the block rule must be evaluated first"
    assoc = run.one("aws:wafv2/webAclAssociation:WebAclAssociation").inputs
    assert assoc["resourceArn"] == run.outputs["albArn"] and assoc["webAclArn"] == run.outputs["webAclArn"]


# -- dns ------------------------------------------------------------------------------------------
def test_failover_records_primary_and_secondary_with_health_checks(
    runs: dict[str, MockRun], estate: Estate
) -> None:
    prod, dr = runs["prod"], runs["dr"]
    zone = prod.one("aws:route53/zone:Zone").inputs
    assert zone["name"] == estate.app.domain
    assert not dr.of_type("aws:route53/zone:Zone"), "the DR stack must reference prod's zone, not create one"
    assert dr.outputs["zoneId"] == prod.outputs["zoneId"]
    for run, kind in ((prod, "PRIMARY"), (dr, "SECONDARY")):
        rec = run.one("aws:route53/record:Record", "failover").inputs
        assert rec["name"] == estate.app.record and rec["type"] == "A"
        assert rec["zoneId"] == prod.outputs["zoneId"]
        assert rec["failoverRoutingPolicies"] == [{"type": kind}]
        assert rec["healthCheckId"] == run.outputs["healthCheckId"]
        assert rec["aliases"] == [
            {
                "name": run.outputs["albDnsName"],
                "zoneId": rec["aliases"][0]["zoneId"],
                "evaluateTargetHealth": True,
            }
        ]
        hc = run.one("aws:route53/healthCheck:HealthCheck").inputs
        assert hc["resourcePath"] == estate.app.health_path
        assert hc["fqdn"] == run.outputs["albDnsName"]
        assert hc["type"] == "HTTPS" and hc["port"] == 443
    ids = {prod.one("aws:route53/record:Record", "failover").inputs["setIdentifier"]}
    ids.add(dr.one("aws:route53/record:Record", "failover").inputs["setIdentifier"])
    assert len(ids) == 2


@pytest.mark.parametrize("key", ["prod", "dr", "chess-prod", "chess-dr"])
def test_every_record_with_a_ttl_is_at_most_60s(runs: dict[str, MockRun], key: str) -> None:
    records = runs[key].of_type("aws:route53/record:Record")
    assert records
    for r in records:
        if "ttl" in r.inputs:
            assert r.inputs["ttl"] <= 60, r.name
        else:
            assert r.inputs.get("aliases"), f"{r.name}: neither a TTL nor an alias"


# -- workload -------------------------------------------------------------------------------------
def test_deployment_replicas_follow_the_role(runs: dict[str, MockRun], estate: Estate) -> None:
    for key, view in (("prod", estate.primary), ("dr", estate.secondary)):
        deployments = {d.name: d.inputs for d in runs[key].of_type("kubernetes:apps/v1:Deployment")}
        assert set(deployments) == {d.name for d in estate.app.deployments}
        for dep in estate.app.deployments:
            spec = deployments[dep.name]
            assert spec["metadata"]["namespace"] == estate.app.namespace
            assert spec["spec"]["replicas"] == estate.replica_count(view, dep)
            assert spec["spec"]["template"]["spec"]["containers"][0]["image"] == dep.image
    # The warm standby really is smaller than production.
    assert (
        runs["dr"].one("kubernetes:apps/v1:Deployment", estate.app.api.name).inputs["spec"]["replicas"]
        < (runs["prod"].one("kubernetes:apps/v1:Deployment", estate.app.api.name).inputs["spec"]["replicas"])
    )


def test_hpa_bounds_and_service(runs: dict[str, MockRun], estate: Estate) -> None:
    hpa_cfg = estate.app.hpa
    assert hpa_cfg is not None
    prod_hpa = runs["prod"].one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler").inputs["spec"]
    assert prod_hpa["minReplicas"] == hpa_cfg.min_replicas
    assert prod_hpa["maxReplicas"] == hpa_cfg.max_replicas
    assert prod_hpa["scaleTargetRef"]["name"] == hpa_cfg.deployment
    metric = prod_hpa["metrics"][0]["resource"]
    assert metric["target"]["averageUtilization"] == hpa_cfg.target_cpu_percent
    dr_hpa = runs["dr"].one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler").inputs["spec"]
    floor = estate.replica_count(estate.secondary, estate.app.deployment(hpa_cfg.deployment))
    assert dr_hpa["minReplicas"] == floor and dr_hpa["maxReplicas"] == hpa_cfg.max_replicas
    for key in ("prod", "dr"):
        services = runs[key].of_type("kubernetes:core/v1:Service")
        assert [s.name for s in services] == [estate.app.api.name]
        port = services[0].inputs["spec"]["ports"][0]
        assert port["targetPort"] == estate.app.api.port
        assert runs[key].one("aws:lb/targetGroup:TargetGroup").inputs["port"] == port["nodePort"]


def test_configmap_carries_the_feature_flags(runs: dict[str, MockRun], estate: Estate) -> None:
    for key in ("prod", "dr"):
        cm = runs[key].one("kubernetes:core/v1:ConfigMap").inputs
        assert cm["metadata"]["name"] == estate.app.config_map
        assert cm["data"] == estate.app.feature_flags


def test_db_secret_is_a_pulumi_secret_built_from_the_local_endpoint(
    runs: dict[str, MockRun], estate: Estate
) -> None:
    app = estate.app
    for key in ("prod", "dr"):
        run = runs[key]
        secret = run.one("kubernetes:core/v1:Secret").inputs
        assert secret["metadata"] == {"name": app.db_secret.name, "namespace": app.namespace}
        # MOCK_PASSWORD is the secret's CURRENT value in the stack's region (after a rotation), not
        # the initial one Pulumi generated: `pulumi up` must not restore a rotated-away password.
        url = database_url(
            "mockuser", MOCK_PASSWORD, run.outputs["dbAddress"], app.database.port, app.database.db_name
        )
        # The mocks redact secrets to a digest: equal digest = right URL AND marked secret.
        assert secret["stringData"] == {SECRET_KEY: secret_digest({app.db_secret.key: url})}


def test_database_url_percent_encodes_credentials() -> None:
    url = database_url("app_admin", "p@ss:w/rd?#", "db.example", 5432, "app")
    assert url == "postgresql://app_admin:p%40ss%3Aw%2Frd%3F%23@db.example:5432/app?sslmode=require"


@pytest.mark.parametrize("key", ["prod", "dr", "chess-prod", "chess-dr", "promoted-dr", "demoted-prod"])
def test_no_plaintext_password_in_any_resource_input_or_output(runs: dict[str, MockRun], key: str) -> None:
    run = runs[key]
    for r in run.resources:
        for path, value in _walk(r.inputs):
            assert not (isinstance(value, str) and MOCK_PASSWORD in value), f"{key}: {r.type} {r.name}{path}"
            last = path.rsplit(".", 1)[-1]
            # A password input is allowed only as a Pulumi secret (redacted by the mocks).
            assert last not in {"password", "masterPassword", "passwordWo", "authToken"} or (
                isinstance(value, dict) and set(value) == {SECRET_KEY}
            ), f"{key}: {r.type} {r.name} sets {path} in clear"
    assert MOCK_PASSWORD not in json.dumps(run.outputs)


# -- reconciliation -------------------------------------------------------------------------------
STABLE = (
    "aws:rds/instance:Instance",
    "aws:kms/key:Key",
    "aws:elasticache/replicationGroup:ReplicationGroup",
    "aws:s3/bucket:Bucket",
    "aws:eks/cluster:Cluster",
    "aws:lb/loadBalancer:LoadBalancer",
)


def test_role_swap_keeps_every_urn_and_physical_name(runs: dict[str, MockRun]) -> None:
    """After a failover, `dr reconcile` swaps the roles: nothing may be replaced or moved."""
    for before, after in ((runs["dr"], runs["promoted-dr"]), (runs["prod"], runs["demoted-prod"])):
        for typ in STABLE:
            assert before.one(typ).urn == after.one(typ).urn, typ
            assert before.one(typ).physical == after.one(typ).physical, typ
        # App-wide resources stay with their home stack (prod), whatever the roles: the zone,
        # the lock table and the app's secret (its primary copy, with the same replica).
        assert {r.urn for r in before.resources if r.type.startswith("aws:dynamodb/")} == {
            r.urn for r in after.resources if r.type.startswith("aws:dynamodb/")
        }
        secrets = [
            [(r.urn, r.inputs["replicas"]) for r in run.of_type("aws:secretsmanager/secret:Secret")]
            for run in (before, after)
        ]
        assert secrets[0] == secrets[1] and len(secrets[0]) == (before.stack == "prod")
        assert [r.urn for r in before.of_type("aws:route53/zone:Zone")] == [
            r.urn for r in after.of_type("aws:route53/zone:Zone")
        ]
        rec_before = before.one("aws:route53/record:Record", "failover")
        rec_after = after.one("aws:route53/record:Record", "failover")
        assert rec_before.urn == rec_after.urn
        assert rec_before.inputs["setIdentifier"] == rec_after.inputs["setIdentifier"]


def test_promoted_replica_drops_its_source_and_gets_backups(runs: dict[str, MockRun], estate: Estate) -> None:
    db_before = runs["dr"].one("aws:rds/instance:Instance").inputs
    db_after = runs["promoted-dr"].one("aws:rds/instance:Instance").inputs
    assert "replicateSourceDb" in db_before and "replicateSourceDb" not in db_after
    assert db_after["identifier"] == db_before["identifier"]
    assert db_after["kmsKeyId"] == db_before["kmsKeyId"]
    # No RDS-managed password on promotion (RDS would generate a new one); the password input
    # comes from the DR region's replica and is ignored on update: the promoted instance's state
    # has none, so reconcile sends none and the replicated password stays.
    assert "manageMasterUserPassword" not in db_after
    assert db_after["password"] == {SECRET_KEY: secret_digest(MOCK_PASSWORD)}
    assert "password" in runs["promoted-dr"].one("aws:rds/instance:Instance").ignore_changes
    # promoted: the primary's automated backups come back (an in-place update)
    assert db_after["backupRetentionPeriod"] == estate.secondary.site.database.backup_retention_days >= 7
    assert "backupRetentionPeriod" not in runs["demoted-prod"].one("aws:rds/instance:Instance").inputs
    rec = runs["promoted-dr"].one("aws:route53/record:Record", "failover").inputs
    assert rec["failoverRoutingPolicies"] == [{"type": "PRIMARY"}]
    assert rec["zoneId"] == runs["prod"].outputs["zoneId"]


def test_demoted_home_stack_becomes_a_replica_of_the_new_primary(runs: dict[str, MockRun]) -> None:
    demoted, new_primary = runs["demoted-prod"], runs["promoted-dr"]
    db = demoted.one("aws:rds/instance:Instance").inputs
    assert db["identifier"] == runs["prod"].one("aws:rds/instance:Instance").inputs["identifier"]
    assert db["replicateSourceDb"] == new_primary.outputs["dbArn"]
    assert db["replicateSourceDb"].split(":")[3] == new_primary.region != demoted.region
    rec = demoted.one("aws:route53/record:Record", "failover").inputs
    assert rec["failoverRoutingPolicies"] == [{"type": "SECONDARY"}]
    # Still the home stack: it keeps the zone and the lock table.
    assert demoted.one("aws:route53/zone:Zone").protect
    assert (
        demoted.one("aws:dynamodb/table:Table").physical
        == runs["prod"].one("aws:dynamodb/table:Table").physical
    )


# -- tooling --------------------------------------------------------------------------------------
def test_lock_table_is_global_and_journals_are_private_and_encrypted(
    runs: dict[str, MockRun], estate: Estate
) -> None:
    prod, dr = runs["prod"], runs["dr"]
    table = prod.one("aws:dynamodb/table:Table").inputs
    assert table["name"] == estate.lock_table
    assert table["hashKey"] == "lock_id" and table["billingMode"] == "PAY_PER_REQUEST"
    assert table["streamEnabled"] is True and table["pointInTimeRecovery"] == {"enabled": True}
    replica = dr.one("aws:dynamodb/tableReplica:TableReplica").inputs
    assert replica["globalTableArn"] == prod.outputs["lockTableArn"]
    assert not dr.of_type("aws:dynamodb/table:Table")
    for run in (prod, dr):
        bucket = run.one("aws:s3/bucket:Bucket").inputs["bucket"]
        assert bucket == estate.journal_bucket(run.region)
        sse = run.one(
            "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
        )
        rule = sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"]
        assert rule == {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": run.outputs["kmsKeyArn"]}
        block = run.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
        assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls"))
        versioning = run.one("aws:s3/bucketVersioning:BucketVersioning").inputs
        assert versioning["versioningConfiguration"] == {"status": "Enabled"}
