"""The whole estate for `dr status` / `dr readiness` unit tests: moto (both regions) + fake clusters.

Builds on ``estate_seed.seed`` (RDS primary + cross-region replica, Redis, Route53, secrets) and
adds what status/readiness read: EKS clusters + nodegroups, ALB target groups, WAF IP sets + web
ACLs, and the two fake Kubernetes APIs whose DB secrets point at the moto RDS endpoints. The DR
replica is made Multi-AZ and given the primary's parameter group, so the baseline is *ready*
(every check passes except the ones about things the seed has none of: snapshots, certificates).
Not a test module: it holds no tests, only the ``full`` fixture the status/readiness tests import.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from dr.aws.session import CallRecorder, ClientProvider
from dr.kube import KubeFactory
from tests.unit.procedures.estate_seed import PASSWORD, STACKS, Seeded, fix_moto_promote, seed


@dataclass
class Full:
    seeded: Seeded
    kube: KubeFactory
    apis: dict[str, Any]  # cluster name -> FakeKubeApi
    kubeconfig: str
    recorder: CallRecorder
    ids: dict[str, Any] = field(default_factory=dict)

    @property
    def estate(self) -> Any:
        return self.seeded.estate

    @property
    def clients(self) -> ClientProvider:
        return self.seeded.clients

    def api(self, which: str) -> Any:
        return self.apis[self.estate.site(which).cluster.name]


def _urls(clients: ClientProvider, estate: Any) -> dict[str, str]:
    out = {}
    for view in (estate.primary, estate.secondary):
        db = clients.client("rds", view.region).describe_db_instances(
            DBInstanceIdentifier=view.database.identifier
        )["DBInstances"][0]
        ep = db["Endpoint"]
        user, name = estate.app.database.username, estate.app.database.db_name
        out[view.role] = f"postgresql://{user}:{PASSWORD}@{ep['Address']}:{ep['Port']}/{name}"
    return out


def seed_extras(clients: ClientProvider, estate: Any) -> dict[str, Any]:
    ids: dict[str, Any] = {}
    subnet = "subnet-0123456789abcdef0"
    for view in (estate.primary, estate.secondary):
        region = view.region
        eks = clients.client("eks", region)
        eks.create_cluster(
            name=view.cluster.name,
            version=view.cluster.version,
            roleArn="arn:aws:iam::123456789012:role/eks",
            resourcesVpcConfig={"subnetIds": [subnet]},
        )
        ng = view.cluster.nodegroup
        eks.create_nodegroup(
            clusterName=view.cluster.name,
            nodegroupName=ng.name,
            scalingConfig={"minSize": ng.min_size, "maxSize": ng.max_size, "desiredSize": ng.desired_size},
            instanceTypes=list(ng.instance_types),
            subnets=[subnet],
            nodeRole="arn:aws:iam::123456789012:role/nodes",
        )
        elb = clients.client("elbv2", region)
        tg = elb.create_target_group(Name=view.edge.target_group_name, TargetType="lambda")
        ids[f"tg-{region}"] = tg["TargetGroups"][0]["TargetGroupArn"]
        waf = clients.client("wafv2", region)
        ip_set = waf.create_ip_set(
            Name=view.edge.ip_set_name,
            Scope="REGIONAL",
            IPAddressVersion="IPV4",
            Addresses=["192.0.2.1/32", "198.51.100.0/24"],
        )["Summary"]
        ids[f"ipset-{region}"] = ip_set
        vis = {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True, "MetricName": "m"}
        waf.create_web_acl(
            Name=view.edge.web_acl_name, Scope="REGIONAL", DefaultAction={"Allow": {}}, VisibilityConfig=vis
        )
    # The DR replica as the DR stack declares it: Multi-AZ, same parameter group family.
    s = estate.secondary
    rds = clients.client("rds", s.region)
    rds.create_db_parameter_group(
        DBParameterGroupName=f"{estate.app.name}-pg15-dr",
        DBParameterGroupFamily="postgres15",
        Description="pg",
    )
    rds.modify_db_instance(
        DBInstanceIdentifier=s.database.identifier,
        MultiAZ=s.database.multi_az,
        DBParameterGroupName=f"{estate.app.name}-pg15-dr",
        ApplyImmediately=True,
    )
    return ids


_SESSIONS: list[Any] = []


def _session() -> Any:
    """One boto3 session per worker: a new session re-parses every service model (~seconds)."""
    if not _SESSIONS:
        _SESSIONS.append(ClientProvider()._boto_session())
    return _SESSIONS[0]


def provider(**kwargs: Any) -> ClientProvider:
    """A ClientProvider sharing the worker's boto3 session (use inside the ``full`` fixture)."""
    return ClientProvider(_session=_session(), **kwargs)


@pytest.fixture
def full(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Full]:
    from dr.sandbox.fakekube import serve_estate
    from dr.topology import load_estate

    fix_moto_promote(monkeypatch)
    with mock_aws():
        estate = load_estate(STACKS, "prod")
        clients = ClientProvider(_session=_session())
        seeded = seed(clients, estate)
        ids = seed_extras(clients, estate)
        kc = str(tmp_path / "kubeconfig")
        with serve_estate(
            estate, kc, capacity_fn=lambda _c: 100, database_urls=_urls(clients, estate)
        ) as apis:
            recorder = clients.add_recorder(CallRecorder())
            kube = KubeFactory(kubeconfig=kc, clients=clients, read_only=True)
            try:
                yield Full(seeded, kube, apis, kc, recorder, ids)
            finally:
                kube.close()
