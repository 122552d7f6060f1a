"""The realism layer on a real moto server in this process (no estate, no PostgreSQL).

moto's backends are process-global: these tests create uniquely named resources and never run
under ``mock_aws``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from dr.sandbox.fakeaws.faults import FaultRule
from dr.sandbox.fakeaws.middleware import Realism
from dr.sandbox.latency import LatencyProfile
from dr.sandbox.server import MotoServer

pytestmark = pytest.mark.slow  # moto's RDS import + a 2 s promotion


@pytest.fixture
def layer() -> Iterator[tuple[Realism, MotoServer]]:
    realism = Realism(None, LatencyProfile("none", overrides={"rds.promote": 2.0}))
    server = MotoServer(middleware=realism.middleware, regions=["us-west-2", "us-east-1"]).start()
    realism.faults.listeners.append(lambda region, up: server.set_region_listening(region, up))
    realism.start()
    try:
        yield realism, server
    finally:
        realism.stop()
        server.stop()


def _clients(url: str, **kwargs: Any) -> Any:
    from dr.aws.session import ClientProvider
    from dr.target import SANDBOX_CREDENTIALS

    kwargs.setdefault("max_attempts", 0)
    return ClientProvider(endpoint_url=url, credentials=dict(SANDBOX_CREDENTIALS), **kwargs)


def test_promote_keeps_the_replica_until_the_transition_ends(layer: tuple[Realism, MotoServer]) -> None:
    realism, server = layer
    clients = _clients(server.url)
    west, east, src, rep, arn = _primary_and_replica(clients)
    promoted: list[tuple[str, str]] = []
    realism.on("rds.promoted", lambda region, identifier: promoted.append((region, identifier)))

    out = east.promote_read_replica(DBInstanceIdentifier=rep)["DBInstance"]
    assert out["DBInstanceStatus"] == "modifying"
    during = east.describe_db_instances(DBInstanceIdentifier=rep)["DBInstances"][0]
    assert during["DBInstanceStatus"] == "modifying"
    assert during["ReadReplicaSourceDBInstanceIdentifier"] == arn  # still a replica
    assert promoted == []
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as busy:  # a second promote while modifying
        east.promote_read_replica(DBInstanceIdentifier=rep)
    assert busy.value.response["Error"]["Code"] == "InvalidDBInstanceState"

    assert realism.transitions.wait_idle(10)
    after = east.describe_db_instances(DBInstanceIdentifier=rep)["DBInstances"][0]
    assert after["DBInstanceStatus"] == "available"
    assert "ReadReplicaSourceDBInstanceIdentifier" not in after
    source = west.describe_db_instances(DBInstanceIdentifier=src)["DBInstances"][0]
    assert not source.get("ReadReplicaDBInstanceIdentifiers")
    assert promoted == [("us-east-1", rep)]


def test_unreachable_refuse_and_hang(layer: tuple[Realism, MotoServer]) -> None:
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

    realism, server = layer
    rule = realism.faults.add(FaultRule(kind="unreachable", region="us-east-1"))
    with pytest.raises(ConnectionClosedError):
        _clients(server.url).client("sqs", "us-east-1").list_queues()
    with pytest.raises(EndpointConnectionError):
        _clients(server.region_urls["us-east-1"]).client("sqs", "us-east-1").list_queues()
    _clients(server.url).client("sqs", "us-west-2").list_queues()
    realism.faults.remove(rule.id)
    _clients(server.region_urls["us-east-1"]).client("sqs", "us-east-1").list_queues()

    realism.faults.add(
        FaultRule(kind="unreachable", region="us-west-2", service="sqs", mode="hang", hang_seconds=1.0)
    )
    with pytest.raises(ReadTimeoutError):
        _clients(server.url, read_timeout=0.2).client("sqs", "us-west-2").list_queues()


def _cnames(action: str, count: int, value_len: int, zone_name: str) -> list[dict[str, Any]]:
    value = ("x" * (value_len - len(zone_name) - 1) + "." + zone_name)[-value_len:]
    return [
        {
            "Action": action,
            "ResourceRecordSet": {
                "Name": f"db{i:04d}.{zone_name}",
                "Type": "CNAME",
                "TTL": 60,
                "ResourceRecords": [{"Value": value}],
            },
        }
        for i in range(count)
    ]


def test_route53_batch_limits_count_upsert_twice(layer: tuple[Realism, MotoServer]) -> None:
    """Route53 refuses a batch over 32,000 Value characters or 1,000 ResourceRecord elements,
    UPSERT counting both twice (moto accepts any size)."""
    from botocore.exceptions import ClientError

    _, server = layer
    r53 = _clients(server.url).client("route53", "us-east-1")
    name = f"limits-{uuid.uuid4().hex[:6]}.example.com"
    zone = r53.create_hosted_zone(Name=name, CallerReference=name)["HostedZone"]["Id"].split("/")[-1]
    # 400 values of 50 characters: 20,000 as CREATE (accepted), 40,000 counted as UPSERT (refused)
    r53.change_resource_record_sets(
        HostedZoneId=zone, ChangeBatch={"Changes": _cnames("CREATE", 400, 50, name)}
    )
    with pytest.raises(ClientError) as chars:
        r53.change_resource_record_sets(
            HostedZoneId=zone, ChangeBatch={"Changes": _cnames("UPSERT", 400, 50, name)}
        )
    assert chars.value.response["Error"]["Code"] == "InvalidChangeBatch"
    assert "32000" in chars.value.response["Error"]["Message"]
    # 320 x 50 x 2 = 32,000: exactly at the limit is accepted
    r53.change_resource_record_sets(
        HostedZoneId=zone, ChangeBatch={"Changes": _cnames("UPSERT", 320, 50, name)}
    )
    # 501 short values: 501 elements as CREATE, 1,002 counted as UPSERT
    with pytest.raises(ClientError) as count:
        r53.change_resource_record_sets(
            HostedZoneId=zone, ChangeBatch={"Changes": _cnames("UPSERT", 501, 2 + len(name), name)}
        )
    assert count.value.response["Error"]["Code"] == "InvalidChangeBatch"
    assert "1000" in count.value.response["Error"]["Message"]


def _primary_and_replica(clients: Any) -> tuple[Any, Any, str, str, str]:
    west, east = clients.client("rds", "us-west-2"), clients.client("rds", "us-east-1")
    src, rep = f"src-{uuid.uuid4().hex[:6]}", f"rep-{uuid.uuid4().hex[:6]}"
    arn = west.create_db_instance(
        DBInstanceIdentifier=src,
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        AllocatedStorage=20,
        MasterUsername="app_admin",
        MasterUserPassword="x" * 16,
        BackupRetentionPeriod=7,
    )["DBInstance"]["DBInstanceArn"]
    east.create_db_instance_read_replica(DBInstanceIdentifier=rep, SourceDBInstanceIdentifier=arn)
    return west, east, src, rep, arn


def test_automated_backups_replication_and_pitr_from_it(layer: tuple[Realism, MotoServer]) -> None:
    """What moto lacks: StartDBInstanceAutomatedBackupsReplication, the replicated entry with its
    RestoreWindow in the destination region, and RestoreDBInstanceToPointInTime from its ARN —
    validated against that window, the source region unreachable."""
    import datetime as dt

    from botocore.exceptions import ClientError

    realism, server = layer
    clients = _clients(server.url)
    west, east, src, _rep, arn = _primary_and_replica(clients)
    with pytest.raises(ClientError) as same:
        west.start_db_instance_automated_backups_replication(SourceDBInstanceArn=arn)
    assert same.value.response["Error"]["Code"] == "InvalidParameterValue"
    started = east.start_db_instance_automated_backups_replication(
        SourceDBInstanceArn=arn, BackupRetentionPeriod=7
    )
    backup_arn = started["DBInstanceAutomatedBackup"]["DBInstanceAutomatedBackupsArn"]
    assert backup_arn.startswith("arn:aws:rds:us-east-1:") and ":auto-backup:ab-" in backup_arn
    with pytest.raises(ClientError) as twice:
        east.start_db_instance_automated_backups_replication(SourceDBInstanceArn=arn)
    assert twice.value.response["Error"]["Code"] == "InvalidDBInstanceAutomatedBackupState"

    (entry,) = east.describe_db_instance_automated_backups(DBInstanceAutomatedBackupsArn=backup_arn)[
        "DBInstanceAutomatedBackups"
    ]
    assert entry["DBInstanceArn"] == arn and entry["Region"] == "us-west-2"
    window = entry["RestoreWindow"]
    (own,) = west.describe_db_instance_automated_backups(DBInstanceIdentifier=src)[
        "DBInstanceAutomatedBackups"
    ]
    assert own["DBInstanceAutomatedBackupsReplications"] == [{"DBInstanceAutomatedBackupsArn": backup_arn}]

    realism.region_down("us-west-2")
    try:
        with pytest.raises(ClientError) as late:
            east.restore_db_instance_to_point_in_time(
                SourceDBInstanceAutomatedBackupsArn=backup_arn,
                TargetDBInstanceIdentifier=f"late-{uuid.uuid4().hex[:6]}",
                RestoreTime=window["LatestTime"] + dt.timedelta(hours=1),
            )
        assert late.value.response["Error"]["Code"] == "InvalidRestoreTime"
        with pytest.raises(ClientError) as unknown:
            east.restore_db_instance_to_point_in_time(
                SourceDBInstanceAutomatedBackupsArn=backup_arn[:-4] + "zzzz",
                TargetDBInstanceIdentifier=f"x-{uuid.uuid4().hex[:6]}",
                UseLatestRestorableTime=True,
            )
        assert unknown.value.response["Error"]["Code"] == "DBInstanceAutomatedBackupNotFound"
        target = f"pitr-{uuid.uuid4().hex[:6]}"
        out = east.restore_db_instance_to_point_in_time(
            SourceDBInstanceAutomatedBackupsArn=backup_arn,
            TargetDBInstanceIdentifier=target,
            RestoreTime=window["LatestTime"],
            Tags=[{"Key": "dr:restored-from", "Value": src}],
        )["DBInstance"]
        assert out["DBInstanceIdentifier"] == target and out["Engine"] == "postgres"
    finally:
        realism.region_up("us-west-2")


def test_a_promoted_replicas_window_starts_at_its_promotion(layer: tuple[Realism, MotoServer]) -> None:
    """A PostgreSQL read replica has no automated backups: once promoted, its RestoreWindow begins
    at the promotion, not at its creation — a restore to before it is refused."""
    import time

    from botocore.exceptions import ClientError

    realism, server = layer
    clients = _clients(server.url)
    _west, east, _src, rep, _arn = _primary_and_replica(clients)
    created = east.describe_db_instances(DBInstanceIdentifier=rep)["DBInstances"][0]["InstanceCreateTime"]
    time.sleep(1.0)
    east.promote_read_replica(DBInstanceIdentifier=rep, BackupRetentionPeriod=7)
    assert realism.transitions.wait_idle(10)
    (own,) = east.describe_db_instance_automated_backups(DBInstanceIdentifier=rep)[
        "DBInstanceAutomatedBackups"
    ]
    assert own["RestoreWindow"]["EarliestTime"] > created
    with pytest.raises(ClientError) as early:
        east.restore_db_instance_to_point_in_time(
            SourceDBInstanceIdentifier=rep,
            TargetDBInstanceIdentifier=f"e-{uuid.uuid4().hex[:6]}",
            RestoreTime=created,
        )
    assert early.value.response["Error"]["Code"] == "InvalidRestoreTime"


def test_an_in_region_point_in_time_restore_is_a_standalone_instance(
    layer: tuple[Realism, MotoServer],
) -> None:
    """moto copies SourceDBInstanceIdentifier onto the restored instance, which then describes as a
    read replica of its source; on AWS it is standalone (what `dr reprotect --db` and the
    invariants' "database really serving" rely on)."""
    _realism, server = layer
    west, _east, src, _rep, _arn = _primary_and_replica(_clients(server.url))
    target = f"pitr-{uuid.uuid4().hex[:6]}"
    out = west.restore_db_instance_to_point_in_time(
        SourceDBInstanceIdentifier=src, TargetDBInstanceIdentifier=target, UseLatestRestorableTime=True
    )["DBInstance"]
    assert "ReadReplicaSourceDBInstanceIdentifier" not in out
    (described,) = west.describe_db_instances(DBInstanceIdentifier=target)["DBInstances"]
    assert "ReadReplicaSourceDBInstanceIdentifier" not in described, described
