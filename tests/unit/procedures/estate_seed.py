"""A small two-region estate in moto, seeded from the shipped topology (stacks/).

* us-west-2: RDS primary (encrypted, 7-day retention, subnet group, SG, parameter group), Redis group
* us-east-1: cross-region read replica of it, Redis group, the DynamoDB lock table
* KMS keys with the estate's data-key aliases in both regions
* Route53: the public zone, one health check per site (tagged Name=<site>-health) and the
  PRIMARY/SECONDARY failover alias records of app.record
* CloudWatch ReplicaLag datapoints are put by the tests that need them (``put_lag``)
* Secrets Manager: the DB master credentials secret in both regions

moto's PromoteReadReplica only flips a private flag and leaves ``ReadReplicaSourceDBInstanceIdentifier``
in DescribeDBInstances; real RDS clears it once the promotion completes. ``fix_moto_promote`` makes
moto do what RDS does (and nothing more), so tests exercise our completion condition honestly.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from dr.aws.session import CallRecorder, ClientProvider
from dr.topology import Estate, load_estate

ROOT = Path(__file__).resolve().parents[3]
STACKS = ROOT / "stacks"
PASSWORD = "s3cr3t-Pa55word-never-printed"


@dataclass
class Seeded:
    estate: Estate
    clients: ClientProvider
    zone_id: str
    health_checks: dict[str, str]  # region -> health check id
    kms: dict[str, str]  # region -> key arn
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def primary(self) -> str:
        return self.estate.primary.region

    @property
    def secondary(self) -> str:
        return self.estate.secondary.region

    def rds(self, region: str) -> Any:
        return self.clients.client("rds", region)

    def db(self, region: str, ident: str) -> dict[str, Any]:
        db: dict[str, Any] = self.rds(region).describe_db_instances(DBInstanceIdentifier=ident)[
            "DBInstances"
        ][0]
        return db

    def put_lag(self, seconds: float, *, db: str | None = None, at: dt.datetime | None = None) -> None:
        self.clients.client("cloudwatch", self.secondary).put_metric_data(
            Namespace="AWS/RDS",
            MetricData=[
                {
                    "MetricName": "ReplicaLag",
                    "Dimensions": [
                        {
                            "Name": "DBInstanceIdentifier",
                            "Value": db or self.estate.secondary.database.identifier,
                        }
                    ],
                    "Value": seconds,
                    "Unit": "Seconds",
                    "Timestamp": at or dt.datetime.now(dt.UTC),
                }
            ],
        )


def put_caught_up(clients: Any, region: str, db: str, now: dt.datetime, *, minutes_ahead: int = 1) -> None:
    """ReplicaLag 0 for ``db`` at ``now`` and in each of the ``minutes_ahead`` minutes after it.

    A planned switch's caught-up wait compares WAL positions when it can reach the databases; in
    moto it cannot, and its CloudWatch fallback only trusts a period that began after writes
    stopped (at ``now`` under the frozen clock): this is that period.
    """
    clients.client("cloudwatch", region).put_metric_data(
        Namespace="AWS/RDS",
        MetricData=[
            {
                "MetricName": "ReplicaLag",
                "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": db}],
                "Value": 0.0,
                "Unit": "Seconds",
                "Timestamp": at,
            }
            for at in (
                now,
                *(
                    now.replace(second=0, microsecond=0) + dt.timedelta(minutes=m)
                    for m in range(1, minutes_ahead + 1)
                ),
            )
        ],
    )


def create_restored(
    clients: Any, region: str, identifier: str, *, password: str = "not-a-real-one-1"
) -> dict[str, Any]:
    """A standalone instance tagged as `dr restore pitr` tags its restores (what `dr failover --db`
    accepts), created directly: moto's RestoreDBInstanceToPointInTime describes the result as a
    read replica of its source, which a restored instance is not."""
    from dr.procedures.support import TAG_CREATED_BY, TAG_RESTORED_FROM

    rds = clients.client("rds", region)
    rds.create_db_instance(
        DBInstanceIdentifier=identifier,
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="app",
        MasterUserPassword=password,
        AllocatedStorage=20,
        BackupRetentionPeriod=1,
        Tags=[{"Key": TAG_CREATED_BY, "Value": "dr-toolkit"}, {"Key": TAG_RESTORED_FROM, "Value": "pitr"}],
    )
    inst: dict[str, Any] = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
    return inst


def fix_moto_promote(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto clear the replica source on promote, as RDS does when the promotion completes, and
    apply RDS's default backup retention (1 day) when the request names none."""
    from moto.rds.models import RDSBackend

    original = RDSBackend.promote_read_replica

    def promote(self: Any, db_kwargs: dict[str, Any]) -> Any:
        database = self.databases[db_kwargs["db_instance_identifier"]]
        was_replica = database.is_replica
        if was_replica and db_kwargs.get("backup_retention_period") in (None, ""):
            # RDS: BackupRetentionPeriod "Default: 1" (moto keeps the copied source's value)
            db_kwargs = {**db_kwargs, "backup_retention_period": 1}
        result = original(self, db_kwargs)
        if was_replica:
            database.source_db_instance_identifier = None
        return result

    monkeypatch.setattr(RDSBackend, "promote_read_replica", promote)


def fix_moto_route53_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto accept a batch that DELETEs and re-CREATEs a record set, as Route53 does."""
    from moto.route53.models import Route53Backend

    from dr.sandbox.fakeaws.backends import route53_batch_as_whole

    original = Route53Backend.change_resource_record_sets
    monkeypatch.setattr(
        Route53Backend,
        "change_resource_record_sets",
        route53_batch_as_whole(getattr(original, "__wrapped__", original)),
    )


def fix_moto_replica_region(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolve a cross-region replica's DBSubnetGroupName in the replica's region, as RDS does
    (moto sets it on the copy of the source before moving the copy to the destination backend;
    the sandbox's realism layer works around the same bug)."""
    from moto.rds.models import RDSBackend

    original = RDSBackend.create_db_instance_read_replica

    def create(self: Any, db_kwargs: dict[str, Any]) -> Any:
        group = db_kwargs.get("db_subnet_group_name")
        if group is None or not self.arn_regex.match(db_kwargs["source_db_instance_identifier"]):
            return original(self, db_kwargs)
        replica = original(self, {k: v for k, v in db_kwargs.items() if k != "db_subnet_group_name"})
        replica.db_subnet_group_name = group  # looked up in this (the destination) region
        return replica

    monkeypatch.setattr(RDSBackend, "create_db_instance_read_replica", create)


def _network(clients: ClientProvider, estate: Estate, view: Any, *, vpc: bool) -> dict[str, Any]:
    rds = clients.client("rds", view.region)
    rds.create_db_parameter_group(
        DBParameterGroupName=f"{estate.app.name}-pg15", DBParameterGroupFamily="postgres15", Description="pg"
    )
    if not vpc:  # EC2 in moto is slow to start; only the inheritance tests need a subnet group
        return {"sg": f"sg-{view.site.name}", "pg": f"{estate.app.name}-pg15", "subnet_group": None}
    return {"pg": f"{estate.app.name}-pg15", **db_network(clients, estate, view)}


def db_network(clients: ClientProvider, estate: Estate, view: Any) -> dict[str, Any]:
    """The site's VPC, two subnets, its database security group (tagged ``Name`` as the Pulumi
    program tags it) and DB subnet group — what a re-created replica is placed in."""
    rds = clients.client("rds", view.region)
    ec2 = clients.client("ec2", view.region)
    vpc_id = ec2.create_vpc(CidrBlock=view.site.vpc_cidr)["Vpc"]["VpcId"]
    base = view.site.vpc_cidr.split(".")
    subnets = [
        ec2.create_subnet(
            VpcId=vpc_id,
            CidrBlock=f"{base[0]}.{base[1]}.{i}.0/24",
            AvailabilityZone=f"{view.region}{'abc'[i]}",
        )["Subnet"]["SubnetId"]
        for i in range(2)
    ]
    sg = ec2.create_security_group(
        GroupName=f"{view.site.name}-db",
        Description="db",
        VpcId=vpc_id,
        TagSpecifications=[
            {
                "ResourceType": "security-group",
                "Tags": [{"Key": "Name", "Value": estate.db_security_group(view)}],
            }
        ],
    )["GroupId"]
    rds.create_db_subnet_group(
        DBSubnetGroupName=estate.db_subnet_group(view), DBSubnetGroupDescription="db", SubnetIds=subnets
    )
    return {"sg": sg, "subnet_group": estate.db_subnet_group(view), "vpc": vpc_id}


def seed(clients: ClientProvider, estate: Estate, *, vpc: bool = False) -> Seeded:
    p, s = estate.primary, estate.secondary
    kms: dict[str, str] = {}
    for view in (p, s):
        k = clients.client("kms", view.region)
        key = k.create_key(Description=f"{view.site.name} data")["KeyMetadata"]
        k.create_alias(AliasName=estate.kms_alias(view), TargetKeyId=key["KeyId"])
        kms[view.region] = key["Arn"]
    net = {view.region: _network(clients, estate, view, vpc=vpc) for view in (p, s)}
    db = p.database
    primary = clients.client("rds", p.region).create_db_instance(
        DBInstanceIdentifier=db.identifier,
        Engine="postgres",
        EngineVersion="15.8",
        DBInstanceClass=db.instance_class,
        MasterUsername=estate.app.database.username,
        MasterUserPassword=PASSWORD,
        DBName=estate.app.database.db_name,
        AllocatedStorage=db.allocated_storage,
        MultiAZ=db.multi_az,
        BackupRetentionPeriod=db.backup_retention_days,
        StorageEncrypted=True,
        KmsKeyId=kms[p.region],
        VpcSecurityGroupIds=[net[p.region]["sg"]],
        DBParameterGroupName=net[p.region]["pg"],
        **({"DBSubnetGroupName": net[p.region]["subnet_group"]} if vpc else {}),
    )["DBInstance"]
    clients.client("rds", s.region).create_db_instance_read_replica(
        DBInstanceIdentifier=s.database.identifier,
        SourceDBInstanceIdentifier=primary["DBInstanceArn"],
        DBInstanceClass=s.database.instance_class,
        KmsKeyId=kms[s.region],
        SourceRegion=p.region,
    )
    for view in (p, s):
        clients.client("elasticache", view.region).create_replication_group(
            ReplicationGroupId=view.cache.replication_group_id,
            ReplicationGroupDescription="cache",
            Engine="redis",
            CacheNodeType=view.cache.node_type,
            NumCacheClusters=view.cache.num_cache_clusters,
        )
        clients.client("secretsmanager", view.region).create_secret(
            Name=estate.app.db_secret.secrets_manager_id,
            SecretString=json.dumps({"username": estate.app.database.username, "password": PASSWORD}),
        )
    r53 = clients.client("route53", "us-east-1")
    zone_id = r53.create_hosted_zone(Name=estate.app.domain, CallerReference="seed")["HostedZone"][
        "Id"
    ].split("/")[-1]
    checks: dict[str, str] = {}
    changes = []
    for view, role in ((p, "PRIMARY"), (s, "SECONDARY")):
        alb = f"{view.edge.alb_name}-123456.{view.region}.elb.amazonaws.com"
        hc = r53.create_health_check(
            CallerReference=f"hc-{view.region}",
            HealthCheckConfig={
                "Type": "HTTPS",
                "FullyQualifiedDomainName": alb,
                "ResourcePath": estate.app.health_path,
                "Port": 443,
                "RequestInterval": 10,
                "FailureThreshold": 3,
            },
        )["HealthCheck"]["Id"]
        r53.change_tags_for_resource(
            ResourceType="healthcheck",
            ResourceId=hc,
            AddTags=[{"Key": "Name", "Value": estate.health_check_ref(view)}],
        )
        checks[view.region] = hc
        changes.append(
            {
                "Action": "CREATE",
                "ResourceRecordSet": {
                    "Name": estate.app.record,
                    "Type": "A",
                    "SetIdentifier": view.site.name,
                    "Failover": role,
                    "HealthCheckId": hc,
                    "AliasTarget": {
                        "HostedZoneId": "Z1H1FL5HABSF5",
                        "DNSName": alb,
                        "EvaluateTargetHealth": True,
                    },
                },
            }
        )
    r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})
    from dr.runbook.lock import create_lock_table

    create_lock_table(clients, estate.lock_table, s.region)
    return Seeded(estate, clients, zone_id, checks, kms, {"net": net})


@pytest.fixture
def seeded(monkeypatch: pytest.MonkeyPatch) -> Iterator[Seeded]:
    """The estate in moto (mock_aws active for the whole test)."""
    fix_moto_promote(monkeypatch)
    fix_moto_route53_batch(monkeypatch)
    fix_moto_replica_region(monkeypatch)
    with mock_aws():
        estate = load_estate(STACKS, "prod")
        yield seed(ClientProvider(), estate)


@pytest.fixture
def seeded_vpc(monkeypatch: pytest.MonkeyPatch) -> Iterator[Seeded]:
    """Like ``seeded`` plus VPCs, subnets and DB subnet groups (slower: moto EC2)."""
    fix_moto_promote(monkeypatch)
    fix_moto_route53_batch(monkeypatch)
    fix_moto_replica_region(monkeypatch)
    with mock_aws():
        estate = load_estate(STACKS, "prod")
        yield seed(ClientProvider(), estate, vpc=True)


@pytest.fixture
def cli_calls(monkeypatch: pytest.MonkeyPatch) -> CallRecorder:
    """Records every API call made by ClientProviders that CLI commands build."""
    from dr.cli.app import AppContext

    recorder = CallRecorder()
    original = AppContext.clients

    def clients(self: AppContext, *, read_only: bool = False) -> ClientProvider:
        provider = original(self, read_only=read_only)
        provider.add_recorder(recorder)
        return provider

    monkeypatch.setattr(AppContext, "clients", clients)
    return recorder


def invoke(args: list[str], tmp_path: Path, *, json_out: bool = True) -> Any:
    """Run ``dr`` in-process; returns the click Result (exit_code, output, stderr)."""
    from click.testing import CliRunner

    from dr.cli.main import cli

    base = ["--stack-dir", str(STACKS)] + (["-o", "json"] if json_out else [])
    runner = CliRunner()
    env = {"DR_RUNS_DIR": str(tmp_path / "runs"), "COLUMNS": "250"}
    return runner.invoke(cli, [*base, *args], env=env, catch_exceptions=False)


def mutating(recorder: CallRecorder) -> list[str]:
    """Mutating operations sent, excluding the run lock (DynamoDB) and journal mirror (S3) writes."""
    return [f"{c.service}:{c.operation}" for c in recorder.mutating() if c.service not in ("dynamodb", "s3")]


@contextlib.contextmanager
def lock_held_by(
    clients: ClientProvider, estate: Estate, holder: str, run_id: str = "other-run"
) -> Iterator[Any]:
    """Another run holding the estate's run lock (in the copy every command locks in) meanwhile."""
    from dr.runbook.lock import estate_lock

    other = estate_lock(clients, estate, holder=holder)
    other.acquire(run_id=run_id)
    try:
        yield other
    finally:
        other.release()


def other_app_snapshot(
    clients: ClientProvider, region: str, snapshot: str, group: str = "other-app-redis"
) -> None:
    """Another application's Redis group in ``region`` with a snapshot taken now (newer than any
    of the estate's): restores and readiness must never use it."""
    ec = clients.client("elasticache", region)
    ec.create_replication_group(
        ReplicationGroupId=group,
        ReplicationGroupDescription="another app",
        Engine="redis",
        NumCacheClusters=1,
    )
    ec.create_snapshot(ReplicationGroupId=group, SnapshotName=snapshot)


class CaughtUpPg:
    """A psycopg ``connect`` for the databases moto models (endpoint → instance): every one is at
    the same WAL position, in recovery exactly while moto says it is a read replica — what the
    WAL comparison of a planned switchover reads when the databases are reachable and idle."""

    def __init__(self, account: str = "123456789012") -> None:
        self.account = account
        self.connects: list[str] = []

    def _instance(self, host: str) -> Any:
        from moto.rds.models import rds_backends

        for backend in rds_backends[self.account].values():
            for db in backend.databases.values():
                if db.address == host:
                    return db
        raise OSError(f"could not connect to server: {host} does not answer")

    def connect(self, **kw: Any) -> Any:
        from tests.unit.procedures.pgfake import FixedWalConn

        self.connects.append(str(kw["host"]))
        return FixedWalConn(bool(self._instance(str(kw["host"])).is_replica))
