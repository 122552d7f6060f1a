"""RDS / ElastiCache / CloudWatch / KMS adapters against moto: typed errors name resource and region."""

from __future__ import annotations

import datetime as dt

import pytest
from moto import mock_aws

from dr.aws.cloudwatch import replica_lag
from dr.aws.elasticache import ElastiCache
from dr.aws.kms import key_arn
from dr.aws.rds import Rds
from dr.aws.session import ClientProvider
from dr.errors import NotFound

REGION = "eu-west-1"


@pytest.fixture
def clients():  # type: ignore[no-untyped-def]
    with mock_aws():
        yield ClientProvider()


def test_not_found_is_typed(clients: ClientProvider) -> None:
    rds = Rds(clients, REGION)
    with pytest.raises(NotFound) as err:
        rds.describe_instance("ghost")
    assert (
        err.value.region == REGION and "ghost" in err.value.message and err.value.code == "DBInstanceNotFound"
    )
    assert rds.find_instance("ghost") is None and rds.find_snapshot("ghost") is None
    with pytest.raises(NotFound, match="ghost"):
        rds.describe_snapshot("ghost")
    with pytest.raises(NotFound) as cerr:
        ElastiCache(clients, REGION).describe_replication_group("ghost")
    assert cerr.value.region == REGION
    assert ElastiCache(clients, REGION).find_replication_group("ghost") is None


def test_instance_fields_and_snapshot_listing(clients: ClientProvider) -> None:
    client = clients.client("rds", REGION)
    client.create_db_instance(
        DBInstanceIdentifier="db1",
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        MasterUsername="app_admin",
        MasterUserPassword="not-a-real-password",
        AllocatedStorage=20,
        BackupRetentionPeriod=3,
        MultiAZ=True,
    )
    rds = Rds(clients, REGION)
    inst = rds.describe_instance("db1")
    assert (inst.instance_class, inst.multi_az, inst.backup_retention_days, inst.is_replica) == (
        "db.t3.micro",
        True,
        3,
        False,
    )
    assert inst.latest_restorable_time is not None and inst.latest_restorable_time.tzinfo is not None
    for i in range(3):
        rds.create_snapshot("db1", f"manual-{i}", tags={"a": "b"})
    snaps = rds.list_snapshots(instance="db1")
    assert {s.identifier for s in snaps if not s.automated} == {"manual-0", "manual-1", "manual-2"}
    rds.delete_snapshot("manual-1")
    assert rds.find_snapshot("manual-1") is None


def test_replica_lag_newest_datapoint(clients: ClientProvider) -> None:
    cw = clients.client("cloudwatch", REGION)
    now = dt.datetime.now(dt.UTC)
    for ago, value in ((5, 9.0), (1, 2.0)):
        cw.put_metric_data(
            Namespace="AWS/RDS",
            MetricData=[
                {
                    "MetricName": "ReplicaLag",
                    "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": "rep"}],
                    "Value": value,
                    "Timestamp": now - dt.timedelta(minutes=ago),
                }
            ],
        )
    point = replica_lag(clients, REGION, "rep")
    assert point is not None and point.value == 2.0
    assert replica_lag(clients, REGION, "other") is None


def test_kms_alias_lookup(clients: ClientProvider) -> None:
    kms = clients.client("kms", REGION)
    key = kms.create_key()["KeyMetadata"]
    kms.create_alias(AliasName="alias/site-data", TargetKeyId=key["KeyId"])
    assert key_arn(clients, REGION, "alias/site-data") == key["Arn"]
    assert key_arn(clients, REGION, "alias/missing") is None
    assert key_arn(clients, "us-east-1", "alias/site-data") is None  # keys never leave their region
