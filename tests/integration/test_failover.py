"""Losing the primary region, end to end on a private sandbox: real database loss, real promotion,
Route53 health and the resolver's failover answer."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.conftest import RunningSandbox

pytestmark = pytest.mark.slow


def _wait(fn: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def _secret(sandbox: RunningSandbox, region: str) -> dict[str, Any]:
    """The master credentials from the app's secret IN ``region`` (the replica in DR), with the
    endpoint of that region's database (the multi-region secret holds no host)."""
    clients, estate = sandbox.clients(), sandbox.estate
    sm = clients.client("secretsmanager", region)
    value: dict[str, Any] = json.loads(
        sm.get_secret_value(SecretId=estate.app.db_secret.secrets_manager_id)["SecretString"]
    )
    view = estate.primary if estate.primary.region == region else estate.secondary
    db = clients.client("rds", region).describe_db_instances(DBInstanceIdentifier=view.database.identifier)
    endpoint = db["DBInstances"][0]["Endpoint"]
    return value | {"host": endpoint["Address"], "port": endpoint["Port"]}


def _connect(secret: dict[str, Any]) -> Any:
    import psycopg

    return psycopg.connect(
        host=secret["host"],
        port=secret["port"],
        dbname=secret["dbname"],
        user=secret["username"],
        password=secret["password"],
        connect_timeout=5,
        autocommit=True,
    )


def test_region_loss_promotion_failover_and_failback_replica(fresh_sandbox: RunningSandbox) -> None:
    pytest.importorskip("psycopg")
    sb = fresh_sandbox
    if sb.state["components"].get("postgres") != "running":
        pytest.skip("needs the real PostgreSQL")
    estate = sb.estate
    primary, secondary = estate.primary, estate.secondary
    record = estate.app.record

    # Steady state: the public name answers the primary region, whose /health is 200.
    answer = sb.admin.resolve(record)
    assert (answer["failover"], answer["region"]) == ("PRIMARY", primary.region)
    assert _http_status(answer["health_url"]) == 200
    assert _http_status(sb.state["health_urls"][secondary.region]) == 503  # its DB is a replica

    # A write acknowledged by the primary reaches the replica.
    with _connect(_secret(sb, primary.region)) as conn:
        conn.execute("CREATE TABLE drill (id int primary key, note text)")
        conn.execute("INSERT INTO drill VALUES (1, 'before the outage')")
    replica_secret = _secret(sb, secondary.region)

    def replicated() -> bool:
        with _connect(replica_secret) as conn:
            return conn.execute("SELECT to_regclass('drill') IS NOT NULL").fetchone()[0] and bool(
                conn.execute("SELECT count(*) FROM drill").fetchone()[0]
            )

    _wait(replicated, "the write to reach the replica")

    # Lose the primary region: its API is unreachable and its database is killed.
    sb.admin.region_down(primary.region)
    r53 = sb.clients().client("route53", secondary.region)
    refs = {hc["CallerReference"]: hc["Id"] for hc in r53.list_health_checks()["HealthChecks"]}

    def hc_status(view: Any) -> str:
        obs = r53.get_health_check_status(HealthCheckId=refs[estate.health_check_ref(view)])
        return str(obs["HealthCheckObservations"][0]["StatusReport"]["Status"])

    _wait(lambda: hc_status(primary).startswith("Failure"), "the primary health check to fail")
    # Both unhealthy: Route53 answers the PRIMARY record anyway ("all unhealthy = all healthy").
    assert sb.admin.resolve(record)["failover"] == "PRIMARY"
    import psycopg

    dead_port = sb.state["postgres"]["state"]["instances"]["primary"]["port"]
    with pytest.raises(psycopg.OperationalError):  # the primary's PostgreSQL is really gone
        _connect(_secret(sb, secondary.region) | {"port": dead_port}).close()

    # Promote the cross-region replica through the RDS API.
    rds = sb.clients().client("rds", secondary.region)
    out = rds.promote_read_replica(DBInstanceIdentifier=secondary.database.identifier)
    assert out["DBInstance"]["DBInstanceStatus"] == "modifying"

    def promoted() -> bool:
        db = rds.describe_db_instances(DBInstanceIdentifier=secondary.database.identifier)["DBInstances"][0]
        return db["DBInstanceStatus"] == "available" and "ReadReplicaSourceDBInstanceIdentifier" not in db

    _wait(promoted, "the promotion to finish")
    # The promoted database is really writable and kept the replicated row.
    with _connect(replica_secret) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False
        conn.execute("INSERT INTO drill VALUES (2, 'after the failover')")
        assert conn.execute("SELECT count(*) FROM drill").fetchone()[0] == 2

    # The DR region now serves: its health check passes and the resolver fails over.
    _wait(lambda: hc_status(secondary).startswith("Success"), "the secondary health check to pass")
    answer = _wait(
        lambda: (a := sb.admin.resolve(record))["failover"] == "SECONDARY" and a, "the resolver to fail over"
    )
    assert answer["region"] == secondary.region
    assert _http_status(answer["health_url"]) == 200

    # The region's API comes back; its killed database does not.
    sb.admin.region_up(primary.region)
    assert sb.clients().client("rds", primary.region).describe_db_instances()["DBInstances"]
    assert sb.admin.resolve(record)["failover"] == "SECONDARY"

    # Failback preparation: a replica created back in the old primary's region is the old
    # PostgreSQL primary, rewound (pg_rewind) and streaming from the promoted database.
    promoted_db = rds.describe_db_instances(DBInstanceIdentifier=secondary.database.identifier)[
        "DBInstances"
    ][0]
    rds_back = sb.clients().client("rds", primary.region)
    back = f"{primary.database.identifier}-fb"
    out = rds_back.create_db_instance_read_replica(
        DBInstanceIdentifier=back, SourceDBInstanceIdentifier=promoted_db["DBInstanceArn"]
    )
    assert out["DBInstance"]["DBInstanceStatus"] == "creating"

    def ready() -> Any:
        db = rds_back.describe_db_instances(DBInstanceIdentifier=back)["DBInstances"][0]
        return db if db["DBInstanceStatus"] == "available" else None

    db = _wait(ready, "the failback replica", timeout=60)
    assert db["ReadReplicaSourceDBInstanceIdentifier"] == promoted_db["DBInstanceArn"]
    secret = _secret(sb, secondary.region) | {
        "host": db["Endpoint"]["Address"],
        "port": db["Endpoint"]["Port"],
    }

    def caught_up() -> bool:
        with _connect(secret) as conn:
            in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
            return bool(in_recovery) and conn.execute("SELECT count(*) FROM drill").fetchone()[0] == 2

    _wait(caught_up, "the rewound old primary to stream the promoted database's writes")
