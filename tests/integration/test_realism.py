"""The realism layer against the running sandbox (``fast`` profile): transitions, validations, faults.

Every assertion here would pass against plain moto only if moto were as strict as AWS — it is not
(promote of a non-replica succeeds, any PITR time is accepted, statuses never change), so these
tests fail without the realism layer.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integration.conftest import RunningSandbox


def _code(err: BaseException) -> str:
    return str(getattr(err, "response", {}).get("Error", {}).get("Code"))


def _observe(fn: Callable[[], str], until: str, timeout: float = 15.0) -> list[str]:
    """Poll ``fn`` and return the distinct values seen, in order, until it equals ``until``."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    delay = 0.02
    while time.monotonic() < deadline:
        value = fn()
        if not seen or seen[-1] != value:
            seen.append(value)
        if value == until:
            return seen
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)
    raise AssertionError(f"never reached {until!r}; saw {seen}")


@contextlib.contextmanager
def _held(sandbox: RunningSandbox, *kinds: str) -> Iterator[None]:
    """Hold transitions of ``kinds`` for 60 s so a test can observe them under any machine load;
    then fast-forward them (no test waits for a real duration)."""
    sandbox.admin.set_latency(**dict.fromkeys(kinds, 60.0))
    try:
        yield
    finally:
        sandbox.admin.reset_latency()


def _uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- validations ---------------------------------------------------------------------------------


def test_promoting_a_non_replica_is_refused(sandbox: RunningSandbox) -> None:
    from botocore.exceptions import ClientError

    estate = sandbox.estate
    rds = sandbox.clients().client("rds", estate.primary.region)
    with pytest.raises(ClientError) as exc:
        rds.promote_read_replica(DBInstanceIdentifier=estate.primary.database.identifier)
    assert _code(exc.value) == "InvalidDBInstanceState"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    status = rds.describe_db_instances(DBInstanceIdentifier=estate.primary.database.identifier)[
        "DBInstances"
    ][0]
    assert status["DBInstanceStatus"] == "available"


@pytest.mark.parametrize(
    "offset",
    [dt.timedelta(days=-30), dt.timedelta(hours=1)],
    ids=["before-retention-window", "in-the-future"],
)
def test_pitr_outside_the_restorable_window_is_refused(sandbox: RunningSandbox, offset: dt.timedelta) -> None:
    from botocore.exceptions import ClientError

    estate = sandbox.estate
    rds = sandbox.clients().client("rds", estate.primary.region)
    target = _uid("pitr-out")
    with pytest.raises(ClientError) as exc:
        rds.restore_db_instance_to_point_in_time(
            SourceDBInstanceIdentifier=estate.primary.database.identifier,
            TargetDBInstanceIdentifier=target,
            RestoreTime=dt.datetime.now(dt.UTC) + offset,
        )
    assert _code(exc.value) == "InvalidRestoreTime"
    # Nothing was created.
    with pytest.raises(ClientError) as missing:
        rds.describe_db_instances(DBInstanceIdentifier=target)
    assert _code(missing.value) == "DBInstanceNotFound"


def test_pitr_needs_exactly_one_of_time_or_latest(sandbox: RunningSandbox) -> None:
    from botocore.exceptions import ClientError

    estate = sandbox.estate
    rds = sandbox.clients().client("rds", estate.primary.region)
    with pytest.raises(ClientError) as exc:
        rds.restore_db_instance_to_point_in_time(
            SourceDBInstanceIdentifier=estate.primary.database.identifier,
            TargetDBInstanceIdentifier=_uid("pitr-both"),
            RestoreTime=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5),
            UseLatestRestorableTime=True,
        )
    assert _code(exc.value) == "InvalidParameterCombination"


def test_pitr_inside_the_window_creates_then_becomes_available(sandbox: RunningSandbox) -> None:
    estate = sandbox.estate
    rds = sandbox.clients().client("rds", estate.primary.region)
    primary = rds.describe_db_instances(DBInstanceIdentifier=estate.primary.database.identifier)[
        "DBInstances"
    ][0]
    latest = primary["LatestRestorableTime"]
    target = _uid("pitr-in")
    out = rds.restore_db_instance_to_point_in_time(
        SourceDBInstanceIdentifier=estate.primary.database.identifier,
        TargetDBInstanceIdentifier=target,
        RestoreTime=latest,
    )
    assert out["DBInstance"]["DBInstanceStatus"] == "creating"
    seen = _observe(
        lambda: rds.describe_db_instances(DBInstanceIdentifier=target)["DBInstances"][0]["DBInstanceStatus"],
        "available",
        timeout=60,
    )
    assert seen[0] == "creating"
    if sandbox.state["components"].get("postgres") == "running":
        # The restored instance is a real database at the endpoint RDS reports.
        psycopg = pytest.importorskip("psycopg")
        ep = rds.describe_db_instances(DBInstanceIdentifier=target)["DBInstances"][0]["Endpoint"]
        primary_ep = primary["Endpoint"]
        assert (ep["Address"], ep["Port"]) != (primary_ep["Address"], primary_ep["Port"])
        with psycopg.connect(
            host=ep["Address"],
            port=ep["Port"],
            dbname=estate.app.database.db_name,
            user=estate.app.database.username,
            password=sandbox.password(),
            connect_timeout=5,
        ) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_duplicate_route53_create_is_refused(sandbox: RunningSandbox) -> None:
    from botocore.exceptions import ClientError

    estate = sandbox.estate
    r53 = sandbox.clients().client("route53", estate.primary.region)
    zone = r53.list_hosted_zones_by_name(DNSName=estate.app.domain)["HostedZones"][0]["Id"]
    # Same name/type/set identifier as the seeded PRIMARY record but a different value: moto alone
    # accepts this (it only rejects byte-identical repeats); Route53 refuses it.
    change = {
        "Action": "CREATE",
        "ResourceRecordSet": {
            "Name": estate.app.record,
            "Type": "CNAME",
            "SetIdentifier": estate.primary.site.name,
            "Failover": "PRIMARY",
            "TTL": 30,
            "ResourceRecords": [{"Value": "elsewhere.example.com"}],
        },
    }
    with pytest.raises(ClientError) as exc:
        r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [change]})
    assert _code(exc.value) == "InvalidChangeBatch"


# -- transitions -----------------------------------------------------------------------------------


def test_snapshot_goes_creating_then_available_and_cannot_be_deleted_meanwhile(
    sandbox: RunningSandbox,
) -> None:
    from botocore.exceptions import ClientError

    estate = sandbox.estate
    rds = sandbox.clients().client("rds", estate.primary.region)
    snap = _uid("snap")
    with _held(sandbox, "rds.snapshot"):
        out = rds.create_db_snapshot(
            DBInstanceIdentifier=estate.primary.database.identifier, DBSnapshotIdentifier=snap
        )
        assert out["DBSnapshot"]["Status"] == "creating"
        with pytest.raises(ClientError) as exc:
            rds.delete_db_snapshot(DBSnapshotIdentifier=snap)
        assert _code(exc.value) == "InvalidDBSnapshotState"
        assert rds.describe_db_snapshots(DBSnapshotIdentifier=snap)["DBSnapshots"][0]["Status"] == "creating"
        assert sandbox.admin.fast_forward("rds.snapshot") >= 1
    _observe(
        lambda: rds.describe_db_snapshots(DBSnapshotIdentifier=snap)["DBSnapshots"][0]["Status"],
        "available",
        60,
    )
    rds.delete_db_snapshot(DBSnapshotIdentifier=snap)


def test_nodegroup_update_goes_updating_then_active_and_capacity_follows(sandbox: RunningSandbox) -> None:
    from botocore.exceptions import ClientError

    estate = sandbox.estate
    view = estate.secondary
    ng = view.cluster.nodegroup
    eks = sandbox.clients().client("eks", view.region)
    before = sandbox.admin.capacity()[view.cluster.name]
    assert before == ng.desired_size * ng.pods_per_node
    desired = ng.desired_size + 2

    def status() -> str:
        return str(
            eks.describe_nodegroup(clusterName=view.cluster.name, nodegroupName=ng.name)["nodegroup"][
                "status"
            ]
        )

    try:
        with _held(sandbox, "eks.nodegroup_scale", "eks.node_ready"):
            eks.update_nodegroup_config(
                clusterName=view.cluster.name,
                nodegroupName=ng.name,
                scalingConfig={"minSize": ng.min_size, "maxSize": ng.max_size, "desiredSize": desired},
            )
            assert status() == "UPDATING"
            with pytest.raises(ClientError) as exc:  # a second update while UPDATING
                eks.update_nodegroup_config(
                    clusterName=view.cluster.name,
                    nodegroupName=ng.name,
                    scalingConfig={"desiredSize": desired},
                )
            assert _code(exc.value) == "ResourceInUseException"
            assert sandbox.admin.capacity()[view.cluster.name] == before  # no new node yet
            sandbox.admin.fast_forward("eks.nodegroup_scale")
            _observe(status, "ACTIVE")
            # ACTIVE, but the new nodes join only after eks.node_ready.
            assert sandbox.admin.capacity()[view.cluster.name] == before
            sandbox.admin.fast_forward("eks.node_ready")
        deadline = time.monotonic() + 10
        while sandbox.admin.capacity()[view.cluster.name] != desired * ng.pods_per_node:
            assert time.monotonic() < deadline, "new nodes never became Ready"
            time.sleep(0.05)
    finally:
        sandbox.admin.fast_forward("eks")
        _observe(status, "ACTIVE")
        eks.update_nodegroup_config(
            clusterName=view.cluster.name,
            nodegroupName=ng.name,
            scalingConfig={"minSize": ng.min_size, "maxSize": ng.max_size, "desiredSize": ng.desired_size},
        )
        _observe(status, "ACTIVE")


def test_elasticache_test_failover_is_implemented_with_a_transition(sandbox: RunningSandbox) -> None:
    """moto has no TestFailover; the sandbox answers it and the group goes modifying -> available."""
    from botocore.exceptions import ClientError

    estate = sandbox.estate
    view = estate.secondary
    ec = sandbox.clients().client("elasticache", view.region)
    group = view.cache.replication_group_id

    def status() -> str:
        return str(ec.describe_replication_groups(ReplicationGroupId=group)["ReplicationGroups"][0]["Status"])

    with _held(sandbox, "elasticache.failover"):
        out = ec.test_failover(ReplicationGroupId=group, NodeGroupId="0001")
        assert out["ReplicationGroup"]["ReplicationGroupId"] == group
        assert out["ReplicationGroup"]["Status"] == "modifying"
        assert status() == "modifying"
        with pytest.raises(ClientError) as exc:
            ec.test_failover(ReplicationGroupId=group, NodeGroupId="0001")
        assert _code(exc.value) == "InvalidReplicationGroupState"
        sandbox.admin.fast_forward("elasticache")
    _observe(status, "available")


def test_route53_change_is_pending_then_insync(sandbox: RunningSandbox) -> None:
    estate = sandbox.estate
    r53 = sandbox.clients().client("route53", estate.primary.region)
    zone = r53.list_hosted_zones_by_name(DNSName=estate.app.domain)["HostedZones"][0]["Id"]
    name = f"{_uid('probe')}.{estate.app.domain}"
    with _held(sandbox, "route53.insync"):
        out = r53.change_resource_record_sets(
            HostedZoneId=zone,
            ChangeBatch={
                "Changes": [
                    {
                        "Action": "UPSERT",
                        "ResourceRecordSet": {
                            "Name": name,
                            "Type": "TXT",
                            "TTL": 60,
                            "ResourceRecords": [{"Value": '"x"'}],
                        },
                    }
                ]
            },
        )
        change_id = out["ChangeInfo"]["Id"]
        assert out["ChangeInfo"]["Status"] == "PENDING"
        assert r53.get_change(Id=change_id)["ChangeInfo"]["Status"] == "PENDING"
        sandbox.admin.fast_forward("route53")
    _observe(lambda: str(r53.get_change(Id=change_id)["ChangeInfo"]["Status"]), "INSYNC")
    # Each change has its own id (moto returns one fixed id for every change).
    again = r53.change_resource_record_sets(
        HostedZoneId=zone,
        ChangeBatch={
            "Changes": [
                {
                    "Action": "DELETE",
                    "ResourceRecordSet": {
                        "Name": name,
                        "Type": "TXT",
                        "TTL": 60,
                        "ResourceRecords": [{"Value": '"x"'}],
                    },
                }
            ]
        },
    )
    assert again["ChangeInfo"]["Id"] != change_id


def test_health_check_status_reflects_the_regions(sandbox: RunningSandbox) -> None:
    """Steady state: the primary serves (pods Ready, writable DB); the standby's DB is a replica."""
    estate = sandbox.estate
    r53 = sandbox.clients().client("route53", estate.primary.region)
    refs = {hc["CallerReference"]: hc["Id"] for hc in r53.list_health_checks()["HealthChecks"]}

    def status(view: Any) -> str:
        obs = r53.get_health_check_status(HealthCheckId=refs[estate.health_check_ref(view)])
        return str(obs["HealthCheckObservations"][0]["StatusReport"]["Status"])

    assert status(estate.primary).startswith("Success")
    if sandbox.state["components"].get("postgres") == "running":
        assert status(estate.secondary).startswith("Failure")


# -- faults ------------------------------------------------------------------------------------------


def test_throttling_rate_is_roughly_honoured(sandbox: RunningSandbox) -> None:
    from botocore.exceptions import ClientError

    estate = sandbox.estate
    rds = sandbox.clients().client("rds", estate.primary.region)
    other = sandbox.clients().client("rds", estate.secondary.region)
    sandbox.admin.add_fault("throttle", rate=0.5, region=estate.primary.region, service="rds")
    codes: list[str] = []
    for _ in range(80):
        try:
            rds.describe_db_instances(DBInstanceIdentifier=estate.primary.database.identifier)
            codes.append("ok")
        except ClientError as err:
            codes.append(_code(err))
    throttled = codes.count("Throttling")
    assert set(codes) <= {"ok", "Throttling"}
    assert 20 <= throttled <= 60, f"{throttled}/80 throttled at rate 0.5"
    # Only the targeted region is throttled.
    for _ in range(10):
        other.describe_db_instances(DBInstanceIdentifier=estate.secondary.database.identifier)
    sandbox.admin.clear_faults()
    rds.describe_db_instances(DBInstanceIdentifier=estate.primary.database.identifier)


def test_server_errors_are_5xx_and_retried_by_botocore(sandbox: RunningSandbox) -> None:
    from botocore.exceptions import ClientError

    estate = sandbox.estate
    eks_once = sandbox.clients().client("eks", estate.primary.region)
    rule = sandbox.admin.add_fault("error", rate=1.0, region=estate.primary.region, service="eks")
    with pytest.raises(ClientError) as exc:
        eks_once.list_clusters()
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    sandbox.admin.remove_fault(rule["id"])
    # At a partial rate, botocore's standard retries get through.
    sandbox.admin.add_fault("error", rate=0.3, region=estate.primary.region, service="eks")
    retrying = sandbox.clients(max_attempts=10).client("eks", estate.primary.region)
    for _ in range(10):
        assert estate.primary.cluster.name in retrying.list_clusters()["clusters"]
    assert sandbox.admin.faults()["injected"]["error"] >= 1


def test_unreachable_region_fails_only_that_region(sandbox: RunningSandbox) -> None:
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError

    estate = sandbox.estate
    down, up = estate.primary.region, estate.secondary.region
    per_region = sandbox.clients(endpoint_url=sandbox.state["aws_endpoints"][down])
    shared = sandbox.clients()
    sandbox.admin.add_fault("unreachable", region=down)
    # Its own endpoint refuses connections: what botocore reports for a dead regional endpoint.
    with pytest.raises(EndpointConnectionError):
        per_region.client("rds", down).describe_db_instances()
    # Through the shared endpoint, requests signed for that region have their connection dropped.
    with pytest.raises(ConnectionClosedError):
        shared.client("rds", down).describe_db_instances()
    # The other region works, and so does Route53 (a global service).
    assert shared.client("rds", up).describe_db_instances()["DBInstances"]
    assert shared.client("route53", down).list_hosted_zones()["HostedZones"]
    sandbox.admin.clear_faults()
    assert per_region.client("rds", down).describe_db_instances()["DBInstances"]
    assert shared.client("rds", down).describe_db_instances()["DBInstances"]


def test_bad_fault_rules_are_rejected(sandbox: RunningSandbox) -> None:
    from dr.sandbox.admin import SandboxAdminError

    with pytest.raises(SandboxAdminError) as exc:
        sandbox.admin.add_fault("throttle", rate=2.0)
    assert exc.value.status == 400
    with pytest.raises(SandboxAdminError) as exc:
        sandbox.admin.add_fault("meteor")
    assert exc.value.status == 400
    assert sandbox.admin.faults()["rules"] == []


def test_a_read_replica_is_created_now_not_when_its_source_was(sandbox: RunningSandbox) -> None:
    """moto copies the source into the replica, creation time included: every generation of an
    identifier then had the same InstanceCreateTime, and the names failback/reprotect derive from
    it (``<id>-old-<created>``) ran out after a few sandbox cycles."""
    estate = sandbox.estate
    rds = sandbox.clients().client("rds", estate.primary.region)
    source = rds.describe_db_instances(DBInstanceIdentifier=estate.primary.database.identifier)[
        "DBInstances"
    ][0]
    replica = _uid("created-now")
    before = dt.datetime.now(dt.UTC)
    rds.create_db_instance_read_replica(
        DBInstanceIdentifier=replica, SourceDBInstanceIdentifier=source["DBInstanceArn"]
    )
    try:
        created = rds.describe_db_instances(DBInstanceIdentifier=replica)["DBInstances"][0][
            "InstanceCreateTime"
        ]
        assert created >= before - dt.timedelta(seconds=1) and created > source["InstanceCreateTime"]
    finally:
        _observe(
            lambda: rds.describe_db_instances(DBInstanceIdentifier=replica)["DBInstances"][0][
                "DBInstanceStatus"
            ],
            "available",
            timeout=60,
        )
        from dr.aws.rds import Rds

        Rds(sandbox.clients(), estate.primary.region).delete_instance(replica, lift_protection=True)
