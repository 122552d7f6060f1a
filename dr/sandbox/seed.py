"""Seed the moto server with the two-region estate, through the same boto3 code path as real AWS.

Every physical name comes from :class:`dr.topology.Estate` (never hard-coded here); clients come from
:class:`dr.aws.session.ClientProvider` pointed at the sandbox endpoint with
:data:`dr.target.SANDBOX_CREDENTIALS`. :func:`seed_estate` returns a :class:`SeedResult` whose
``names`` use the same keys and formats as :meth:`Estate.physical_names` — the test contract.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.topology import Estate, SiteView

log = logging.getLogger("dr.sandbox.seed")

EKS_ROLE = "arn:aws:iam::123456789012:role/{name}-eks"
NODE_ROLE = "arn:aws:iam::123456789012:role/{name}-nodes"
LOCK_KEY = "name"  # hash key of the DynamoDB lock table (dr/runbook/lock.py)


@dataclass
class DbEndpoint:
    """Where a site's database really is (the local PostgreSQL, or moto's fake address)."""

    host: str
    port: int
    password: str = field(repr=False)


@dataclass
class SeedResult:
    names: dict[str, set[str]] = field(default_factory=dict)
    ids: dict[str, dict[str, str]] = field(default_factory=dict)  # region -> kind -> AWS id/arn/dns
    # region -> the endpoint and password its Secrets Manager secret names (never in to_dict)
    databases: dict[str, DbEndpoint] = field(default_factory=dict, repr=False)

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, kind: str, name: str) -> None:
        with self._lock:
            self.names.setdefault(kind, set()).add(name)

    def to_dict(self) -> dict[str, Any]:
        return {"names": {k: sorted(v) for k, v in self.names.items()}, "ids": self.ids}


def _subnets(cidr: str, count: int) -> list[str]:
    net = ipaddress.IPv4Network(cidr)
    prefix = min(net.prefixlen + 4, 28)
    return [str(s) for s in list(net.subnets(new_prefix=prefix))[:count]]


def _zones(ec2: Any, view: SiteView) -> list[str]:
    """The region's first ``azCount`` available zones, as EC2 lists them (never guessed by letter:
    ap-northeast-1 has no 'b', us-west-1 has two zones, ca-central-1's are a/b/d)."""
    names = sorted(
        z["ZoneName"]
        for z in ec2.describe_availability_zones()["AvailabilityZones"]
        if z.get("State", "available") == "available"
        and z.get("ZoneType", "availability-zone") == "availability-zone"
    )
    if len(names) < view.site.az_count:
        from dr.errors import ConfigError

        raise ConfigError(
            f"site {view.site.name!r}: azCount is {view.site.az_count} but {view.region} has "
            f"{len(names)} availability zone(s) ({', '.join(names) or 'none'}); set azCount to {len(names)} or less",
            resource=view.site.name,
            region=view.region,
        )
    return names[: view.site.az_count]


def _seed_network(clients: ClientProvider, estate: Estate, view: SiteView, ids: dict[str, str]) -> list[str]:
    ec2 = clients.client("ec2", view.region)
    db_sg = estate.db_security_group(view)
    vpc = ec2.create_vpc(
        CidrBlock=view.site.vpc_cidr,
        TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": view.site.name}]}],
    )["Vpc"]["VpcId"]
    ids["vpc"] = vpc
    subnet_ids = []
    for az, cidr in zip(_zones(ec2, view), _subnets(view.site.vpc_cidr, view.site.az_count), strict=True):
        subnet = ec2.create_subnet(
            VpcId=vpc,
            CidrBlock=cidr,
            AvailabilityZone=az,
            TagSpecifications=[
                {"ResourceType": "subnet", "Tags": [{"Key": "Name", "Value": f"{view.site.name}-{az}"}]}
            ],
        )
        subnet_ids.append(subnet["Subnet"]["SubnetId"])
    # the database security group, tagged as the Pulumi program tags it (a re-created replica is
    # placed in it by that tag)
    sg = ec2.create_security_group(
        GroupName=f"{view.site.name}-data",
        Description="data tier",
        VpcId=vpc,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": [{"Key": "Name", "Value": db_sg}]}],
    )
    ids["security_group"] = sg["GroupId"]
    return subnet_ids


def _seed_cluster(clients: ClientProvider, view: SiteView, subnets: list[str], result: SeedResult) -> None:
    eks = clients.client("eks", view.region)
    c = view.cluster
    eks.create_cluster(
        name=c.name,
        version=c.version,
        roleArn=EKS_ROLE.format(name=c.name),
        resourcesVpcConfig={"subnetIds": subnets},
    )
    ng = c.nodegroup
    eks.create_nodegroup(
        clusterName=c.name,
        nodegroupName=ng.name,
        scalingConfig={"minSize": ng.min_size, "maxSize": ng.max_size, "desiredSize": ng.desired_size},
        subnets=subnets,
        instanceTypes=list(ng.instance_types),
        nodeRole=NODE_ROLE.format(name=c.name),
    )
    result.add("eks_cluster", f"{view.region}/{c.name}")
    result.add("eks_nodegroup", f"{view.region}/{c.name}/{ng.name}")


def _seed_database(
    clients: ClientProvider,
    estate: Estate,
    view: SiteView,
    subnets: list[str],
    ids: dict[str, str],
    password: str,
    source_arn: str | None,
    result: SeedResult,
) -> str:
    rds = clients.client("rds", view.region)
    db, app = view.database, estate.app.database
    group = estate.db_subnet_group(view)
    rds.create_db_subnet_group(
        DBSubnetGroupName=group, DBSubnetGroupDescription=view.site.name, SubnetIds=subnets
    )
    common: dict[str, Any] = {
        "DBInstanceIdentifier": db.identifier,
        "DBInstanceClass": db.instance_class,
        "MultiAZ": db.multi_az,
        "DBSubnetGroupName": group,
        "VpcSecurityGroupIds": [ids["security_group"]],
        "DeletionProtection": db.deletion_protection,
        "Tags": [{"Key": "dr-toolkit:site", "Value": view.site.name}],
    }
    if source_arn is None:
        out = rds.create_db_instance(
            Engine="postgres",
            EngineVersion=app.engine_version,
            AllocatedStorage=db.allocated_storage,
            DBName=app.db_name,
            MasterUsername=app.username,
            MasterUserPassword=password,
            BackupRetentionPeriod=db.backup_retention_days,
            Port=app.port,
            StorageEncrypted=True,
            **common,
        )
    else:
        # moto looks a cross-region replica's subnet group up in the *source* region; the realism
        # layer resolves it in this (the replica's) region, as RDS does, even while seeding.
        out = rds.create_db_instance_read_replica(SourceDBInstanceIdentifier=source_arn, **common)
    result.add("rds_instance", f"{view.region}/{db.identifier}")
    arn: str = out["DBInstance"]["DBInstanceArn"]
    ids["rds_arn"] = arn
    return arn


def _seed_backup_replication(
    clients: ClientProvider, estate: Estate, primary_arn: str, result: SeedResult
) -> None:
    """The DR stack's ``aws.rds.InstanceAutomatedBackupsReplication``: the primary's automated
    backups and transaction logs replicated to the DR region (its point-in-time recovery there)."""
    dr = estate.secondary
    out = clients.client("rds", dr.region).start_db_instance_automated_backups_replication(
        SourceDBInstanceArn=primary_arn, BackupRetentionPeriod=dr.database.backup_retention_days
    )
    # An id, not a physical name: the Pulumi resource has no name of its own.
    result.ids[dr.region]["rds_backup_replication"] = out["DBInstanceAutomatedBackup"][
        "DBInstanceAutomatedBackupsArn"
    ]


def _seed_readiness_alarms(clients: ClientProvider, estate: Estate) -> None:
    """What the DR stack deploys for continuous readiness (dr/infra/readiness_alarms.py): the SNS topic
    and the alarms on the readiness metrics, in the DR region (the schedule is not modelled:
    `dr readiness --publish` publishes, the realism layer evaluates the alarms)."""
    from dr.procedures.readiness_metrics import alarm_specs

    region = estate.secondary.region
    topic = clients.client("sns", region).create_topic(Name=estate.readiness_topic)["TopicArn"]
    cw = clients.client("cloudwatch", region)
    for spec in alarm_specs(estate.app):
        cw.put_metric_alarm(**spec.put_kwargs(estate.app.readiness.namespace, [topic]))


def _seed_cache(
    clients: ClientProvider, estate: Estate, view: SiteView, subnets: list[str], result: SeedResult
) -> None:
    ec = clients.client("elasticache", view.region)
    cache = view.cache
    group = estate.cache_subnet_group(view)
    ec.create_cache_subnet_group(
        CacheSubnetGroupName=group, CacheSubnetGroupDescription=view.site.name, SubnetIds=subnets
    )
    ec.create_replication_group(
        ReplicationGroupId=cache.replication_group_id,
        ReplicationGroupDescription=f"{estate.app.name} {view.site.name}",
        Engine="redis",
        EngineVersion=cache.engine_version,
        CacheNodeType=cache.node_type,
        NumCacheClusters=cache.num_cache_clusters,
        AutomaticFailoverEnabled=True,
        MultiAZEnabled=True,
        CacheSubnetGroupName=group,
        SnapshotRetentionLimit=cache.snapshot_retention_days,
        AtRestEncryptionEnabled=True,
        TransitEncryptionEnabled=True,
    )
    result.add("elasticache_replication_group", f"{view.region}/{cache.replication_group_id}")


def _seed_edge(
    clients: ClientProvider,
    estate: Estate,
    view: SiteView,
    subnets: list[str],
    ids: dict[str, str],
    result: SeedResult,
) -> None:
    elb = clients.client("elbv2", view.region)
    edge = view.edge
    lb = elb.create_load_balancer(
        Name=edge.alb_name, Subnets=subnets, Type="application", Scheme="internet-facing"
    )
    lb_arn = lb["LoadBalancers"][0]["LoadBalancerArn"]
    ids["alb_arn"] = lb_arn
    ids["alb_dns"] = lb["LoadBalancers"][0]["DNSName"]
    tg = elb.create_target_group(
        Name=edge.target_group_name,
        Protocol="HTTP",
        Port=estate.app.api.port,
        VpcId=ids["vpc"],
        TargetType="ip",
        HealthCheckPath=estate.app.health_path,
    )
    tg_arn = tg["TargetGroups"][0]["TargetGroupArn"]
    ids["target_group_arn"] = tg_arn
    elb.create_listener(
        LoadBalancerArn=lb_arn,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": tg_arn}],
    )
    result.add("alb", f"{view.region}/{edge.alb_name}")
    result.add("target_group", f"{view.region}/{edge.target_group_name}")

    waf = clients.client("wafv2", view.region)
    ip_set = waf.create_ip_set(
        Name=edge.ip_set_name,
        Scope="REGIONAL",
        IPAddressVersion="IPV4",
        Addresses=list(edge.blocked_addresses),
        Description=f"{estate.app.name} blocked addresses",
    )["Summary"]
    visibility = {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True}
    acl = waf.create_web_acl(
        Name=edge.web_acl_name,
        Scope="REGIONAL",
        DefaultAction={"Allow": {}},
        VisibilityConfig={**visibility, "MetricName": edge.web_acl_name},
        Rules=[
            {
                "Name": "block-malicious-ips",
                "Priority": 0,
                "Statement": {"IPSetReferenceStatement": {"ARN": ip_set["ARN"]}},
                "Action": {"Block": {}},
                "VisibilityConfig": {**visibility, "MetricName": "block-malicious-ips"},
            },
            {
                "Name": "rate-limit",
                "Priority": 1,
                "Statement": {"RateBasedStatement": {"Limit": edge.rate_limit, "AggregateKeyType": "IP"}},
                "Action": {"Block": {}},
                "VisibilityConfig": {**visibility, "MetricName": "rate-limit"},
            },
        ],
    )["Summary"]
    waf.associate_web_acl(WebACLArn=acl["ARN"], ResourceArn=lb_arn)
    ids["ip_set_id"] = ip_set["Id"]
    ids["web_acl_arn"] = acl["ARN"]
    result.add("wafv2_ip_set", f"{view.region}/{edge.ip_set_name}")
    result.add("wafv2_web_acl", f"{view.region}/{edge.web_acl_name}")


def _seed_dns(clients: ClientProvider, estate: Estate, result: SeedResult) -> None:
    r53 = clients.client("route53", estate.primary.region)
    app = estate.app
    zone = r53.create_hosted_zone(Name=app.domain, CallerReference=f"{app.name}-zone")["HostedZone"]["Id"]
    zone_id = zone.rsplit("/", 1)[-1]
    result.ids.setdefault("global", {})["hosted_zone_id"] = zone_id
    result.add("route53_zone", app.domain)
    changes = []
    for view, failover in ((estate.primary, "PRIMARY"), (estate.secondary, "SECONDARY")):
        alb_dns = result.ids[view.region]["alb_dns"]
        hc = r53.create_health_check(
            CallerReference=estate.health_check_ref(view),
            HealthCheckConfig={
                "Type": "HTTPS",
                "FullyQualifiedDomainName": alb_dns,
                "Port": 443,
                "ResourcePath": app.health_path,
                "RequestInterval": 10,
                "FailureThreshold": 3,
            },
        )["HealthCheck"]["Id"]
        r53.change_tags_for_resource(
            ResourceType="healthcheck",
            ResourceId=hc,
            AddTags=[{"Key": "Name", "Value": estate.health_check_ref(view)}],
        )
        result.ids[view.region]["health_check_id"] = hc
        result.add("route53_health_check", estate.health_check_ref(view))
        changes.append(
            {
                "Action": "CREATE",
                "ResourceRecordSet": {
                    "Name": app.record,
                    "Type": "CNAME",
                    "SetIdentifier": view.site.name,
                    "Failover": failover,
                    "TTL": app.ttl,
                    "HealthCheckId": hc,
                    "ResourceRecords": [{"Value": alb_dns}],
                },
            }
        )
    r53.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": changes})
    result.add("route53_record", app.record)


def _seed_state_stores(clients: ClientProvider, estate: Estate, view: SiteView, result: SeedResult) -> None:
    ddb = clients.client("dynamodb", view.region)
    ddb.create_table(
        TableName=estate.lock_table,
        AttributeDefinitions=[{"AttributeName": LOCK_KEY, "AttributeType": "S"}],
        KeySchema=[{"AttributeName": LOCK_KEY, "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    result.add("dynamodb_table", estate.lock_table)
    s3 = clients.client("s3", view.region)
    bucket = estate.journal_bucket(view.region)
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if view.region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": view.region}
    s3.create_bucket(**kwargs)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    result.add("s3_bucket", bucket)


def _seed_secret(clients: ClientProvider, estate: Estate, password: str, result: SeedResult) -> None:
    """The app's master credentials as the Pulumi program declares them: one multi-region secret,
    primary copy in the primary region under its site's key, replica in the DR region under the
    DR site's key (Secrets Manager copies every new version there; a replica refuses writes)."""
    primary, dr = estate.primary, estate.secondary
    app = estate.app
    value = {
        "engine": "postgres",
        "username": app.database.username,
        "password": password,
        "port": app.database.port,
        "dbname": app.database.db_name,
        "dbInstanceIdentifier": primary.database.identifier,
    }
    clients.client("secretsmanager", primary.region).create_secret(
        Name=app.db_secret.secrets_manager_id,
        Description=f"{app.name} database master credentials (primary copy {primary.region}, replica {dr.region})",
        KmsKeyId=result.ids[primary.region]["kms_key"],
        SecretString=json.dumps(value),
        AddReplicaRegions=[{"Region": dr.region, "KmsKeyId": result.ids[dr.region]["kms_key"]}],
    )
    for view in (primary, dr):
        result.add("secretsmanager_secret", f"{view.region}/{app.db_secret.secrets_manager_id}")


def _seed_kms(clients: ClientProvider, estate: Estate, view: SiteView, result: SeedResult) -> None:
    """The site's data key and its alias (the Pulumi program's; failback encrypts with it)."""
    kms = clients.client("kms", view.region)
    key = kms.create_key(
        Description=f"{view.site.name} data", Tags=[{"TagKey": "dr-toolkit:site", "TagValue": view.site.name}]
    )
    kms.create_alias(AliasName=estate.kms_alias(view), TargetKeyId=key["KeyMetadata"]["KeyId"])
    result.ids[view.region]["kms_key"] = key["KeyMetadata"]["Arn"]


def create_operator_role(
    clients: ClientProvider,
    estate: Estate,
    *,
    role: str | None = None,
    drop: dict[str, set[str]] | None = None,
    denies: bool = False,
) -> str:
    """An operator's role with the policy `dr iam-policy --procedure P` prints for every procedure
    (minus the ``drop`` actions of a procedure); returns its ARN. Only the Allow statements unless
    ``denies``: the restore policy's Deny on the estate's databases would refuse what failback,
    reprotect and ops must do to them — in an account, restore gets a role of its own."""
    from dr.drills import drill_iam
    from dr.procedures.iam import PROCEDURES, policy
    from dr.sandbox.fakeaws.wire import ACCOUNT_ID, OPERATOR_ROLE

    drill_iam.install()

    name = role or OPERATOR_ROLE
    iam = clients.client("iam", "us-east-1")
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"}, "Action": "sts:AssumeRole"}],
    }  # fmt: skip
    arn = str(iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])
    for procedure in PROCEDURES:
        doc = policy(estate, procedure, account_id=ACCOUNT_ID, target=estate.secondary)
        dropped = (drop or {}).get(procedure, set())
        for st in doc["Statement"]:
            st["Action"] = [a for a in st["Action"] if a not in dropped]
        doc["Statement"] = [
            st for st in doc["Statement"] if st["Action"] and (denies or st["Effect"] == "Allow")
        ]
        pol = iam.create_policy(PolicyName=f"{name}-{procedure}", PolicyDocument=json.dumps(doc))["Policy"][
            "Arn"
        ]
        iam.attach_role_policy(RoleName=name, PolicyArn=pol)
    return arn


def _seed_operator(clients: ClientProvider, estate: Estate, result: SeedResult) -> None:
    """The role the sandbox's caller is a session of (dr.sandbox.fakeaws answers GetCallerIdentity)."""
    result.ids.setdefault("global", {})["operator_role"] = create_operator_role(clients, estate)


def seed_estate(
    estate: Estate,
    clients: ClientProvider,
    databases: dict[str, DbEndpoint] | Callable[[], dict[str, DbEndpoint] | None] | None = None,
    password: str | None = None,
) -> SeedResult:
    """Create the whole estate in both regions. ``databases``: region -> real endpoint + password.

    ``databases`` may be a callable, called only when the secrets are written (last), so the local
    PostgreSQL can start while the rest is seeded. Without it (no local PostgreSQL) a random
    master password (``password``, else random) is used and the secret points at moto's fake RDS
    address.
    """
    result = SeedResult()
    views = (estate.primary, estate.secondary)
    for view in views:
        result.ids.setdefault(view.region, {})
    subnets: dict[str, list[str]] = {}

    def region_part(view: SiteView) -> None:
        ids = result.ids[view.region]
        subnets[view.region] = _seed_network(clients, estate, view, ids)
        _seed_cluster(clients, view, subnets[view.region], result)
        _seed_cache(clients, estate, view, subnets[view.region], result)
        _seed_edge(clients, estate, view, subnets[view.region], ids, result)
        _seed_state_stores(clients, estate, view, result)
        _seed_kms(clients, estate, view, result)

    # The two regions are independent: seed them in parallel (moto's server is threaded).
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="seed") as pool:
        for future in [pool.submit(region_part, view) for view in views]:
            future.result()
    _seed_dns(clients, estate, result)
    _seed_operator(clients, estate, result)
    _seed_readiness_alarms(clients, estate)
    real = databases() if callable(databases) else databases
    password = real[estate.primary.region].password if real else (password or secrets.token_urlsafe(18))
    primary_arn = _seed_database(
        clients, estate, estate.primary, subnets[estate.primary.region], result.ids[estate.primary.region],
        password, None, result,
    )  # fmt: skip
    _seed_database(
        clients, estate, estate.secondary, subnets[estate.secondary.region], result.ids[estate.secondary.region],
        password, primary_arn, result,
    )  # fmt: skip
    _seed_backup_replication(clients, estate, primary_arn, result)
    for view in views:
        endpoint = (real or {}).get(view.region)
        if endpoint is None:
            rds = clients.client("rds", view.region)
            ep = rds.describe_db_instances(DBInstanceIdentifier=view.database.identifier)["DBInstances"][0][
                "Endpoint"
            ]
            endpoint = DbEndpoint(ep["Address"], int(ep["Port"]), password)
        result.databases[view.region] = endpoint
    _seed_secret(clients, estate, password, result)
    log.info("seeded %d resources", sum(len(v) for v in result.names.values()))
    return result
