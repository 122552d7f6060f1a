"""Shared by the ops/incident tests: a light moto seeding of what `dr ops` touches + the fake clusters.

(`dr.sandbox.seed.seed_estate` seeds everything and takes ~5 s; these tests need seconds in total.)
Import as ``from tests.unit.kube.estate_fixtures import ...``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

OLD_PASSWORD = "Old-Passw0rd-xyz"


def seed_light(estate: Any, *, blocked: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """WAF IP sets, Secrets Manager secrets, RDS primary + replica, target groups and ElastiCache
    groups in both regions, through boto3 under mock_aws (EKS: :func:`seed_eks`)."""
    import boto3

    session = boto3.session.Session()
    ids: dict[str, Any] = {}
    primary_arn = None
    for view in (estate.primary, estate.secondary):
        region = view.region
        waf = session.client("wafv2", region_name=region)
        waf.create_ip_set(
            Name=view.edge.ip_set_name,
            Scope="REGIONAL",
            IPAddressVersion="IPV4",
            Addresses=list((blocked or {}).get(region, ["192.0.2.1/32"])),
        )
        elb = session.client("elbv2", region_name=region)
        tg = elb.create_target_group(Name=view.edge.target_group_name, TargetType="lambda")
        ids[f"tg-{region}"] = tg["TargetGroups"][0]["TargetGroupArn"]
        rds = session.client("rds", region_name=region)
        if primary_arn is None:
            out = rds.create_db_instance(
                DBInstanceIdentifier=view.database.identifier,
                DBInstanceClass=view.database.instance_class,
                Engine="postgres",
                AllocatedStorage=100,
                MasterUsername=estate.app.database.username,
                MasterUserPassword=OLD_PASSWORD,
            )
            primary_arn = out["DBInstance"]["DBInstanceArn"]
        else:
            rds.create_db_instance_read_replica(
                DBInstanceIdentifier=view.database.identifier, SourceDBInstanceIdentifier=primary_arn
            )
        session.client("secretsmanager", region_name=region).create_secret(
            Name=estate.app.db_secret.secrets_manager_id,
            SecretString=json.dumps(
                {"username": estate.app.database.username, "password": OLD_PASSWORD, "host": "db"}
            ),
        )
        ec = session.client("elasticache", region_name=region)
        ec.create_replication_group(
            ReplicationGroupId=view.cache.replication_group_id,
            ReplicationGroupDescription="cache",
            Engine="redis",
            CacheNodeType=view.cache.node_type,
            NumCacheClusters=view.cache.num_cache_clusters,
        )
    # the run lock's table in the DR region (the DR stack's tooling deploys it)
    from dr.aws.session import ClientProvider
    from dr.runbook.lock import create_lock_table

    create_lock_table(ClientProvider(), estate.lock_table, estate.secondary.region)
    return ids


def seed_eks(estate: Any) -> None:
    """EKS clusters + nodegroups in both regions (separate: moto's EKS role check costs ~1 s)."""
    import boto3

    session = boto3.session.Session()
    subnet = "subnet-0123456789abcdef0"
    for view in (estate.primary, estate.secondary):
        region = view.region
        eks = session.client("eks", region_name=region)
        eks.create_cluster(
            name=view.cluster.name,
            roleArn="arn:aws:iam::123456789012:role/eks",
            resourcesVpcConfig={"subnetIds": [subnet]},
        )
        ng = view.cluster.nodegroup
        eks.create_nodegroup(
            clusterName=view.cluster.name,
            nodegroupName=ng.name,
            scalingConfig={"minSize": ng.min_size, "maxSize": ng.max_size, "desiredSize": ng.desired_size},
            subnets=[subnet],
            nodeRole="arn:aws:iam::123456789012:role/nodes",
        )


def database_urls(estate: Any, password: str = OLD_PASSWORD) -> dict[str, str]:
    user, db = estate.app.database.username, estate.app.database.db_name
    return {
        "primary": f"postgresql://{user}:{password}@{estate.primary.database.identifier}.db:5432/{db}",
        "standby": f"postgresql://{user}:{password}@{estate.secondary.database.identifier}.db:5432/{db}",
    }


@contextmanager
def clusters(
    estate: Any, tmp_path: Path, *, capacity: int = 100, latency: Any = None
) -> Iterator[tuple[dict[str, Any], str]]:
    """Both fake clusters (seeded, kubeconfig written): yields ({cluster: FakeKubeApi}, kubeconfig)."""
    from dr.sandbox.fakekube import serve_estate

    kc = str(tmp_path / "kubeconfig")
    with serve_estate(
        estate, kc, latency=latency, capacity_fn=lambda _c: capacity, database_urls=database_urls(estate)
    ) as apis:
        yield apis, kc


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)
