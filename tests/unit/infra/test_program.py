"""The Pulumi program under mocks: both stacks build, names come from the topology, outputs exist."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dr.infra.mockrun import MockRun, physical_names
from dr.topology import load_estate

ROOT = Path(__file__).resolve().parents[3]
STACKS = ROOT / "stacks"
CHESS = ROOT / "examples" / "chess-ai" / "stacks"

COMPONENTS = {
    "dr:infra:Estate",
    "dr:infra:Network",
    "dr:infra:Cluster",
    "dr:infra:Database",
    "dr:infra:Cache",
    "dr:infra:Edge",
    "dr:infra:Dns",
    "dr:infra:Workload",
    "dr:infra:Tooling",
}

CLI_OUTPUTS = [
    "role",
    "region",
    "clusterName",
    "nodegroupName",
    "dbIdentifier",
    "dbArn",
    "dbEndpoint",
    "redisGroupId",
    "albArn",
    "albDnsName",
    "targetGroupArn",
    "webAclArn",
    "ipSetId",
    "ipSetArn",
    "zoneId",
    "healthCheckId",
    "kmsKeyArn",
    "appSecretArn",
]


@pytest.mark.parametrize("key", ["prod", "dr", "chess-prod", "chess-dr"])
def test_every_component_is_built_and_parents_its_children(runs: dict[str, MockRun], key: str) -> None:
    run = runs[key]
    types = {r.type for r in run.resources}
    assert types >= COMPONENTS, COMPONENTS - types
    # The home stack (no primaryStackRef) owns the zone.
    assert ("dr:infra:HostedZone" in types) == (key in ("prod", "chess-prod"))
    component_urns = {r.urn for r in run.resources if r.type.startswith("dr:infra:")}
    for r in run.resources:
        if r.type.startswith(("aws:", "kubernetes:")):
            assert r.parent in component_urns, f"{r.type} {r.name} is not a child of a dr:infra component"
        if r.type.startswith("kubernetes:"):
            # Every Kubernetes object goes to the cluster built in this stack, never to ~/.kube/config.
            assert "pulumi:providers:kubernetes::k8s" in r.provider, r.name


@pytest.mark.parametrize("key", ["prod", "dr", "chess-prod", "chess-dr"])
def test_stack_outputs_name_every_identifier_the_cli_needs(runs: dict[str, MockRun], key: str) -> None:
    run = runs[key]
    missing = [k for k in CLI_OUTPUTS if not run.outputs.get(k)]
    assert not missing, f"{key}: outputs missing or empty: {missing}"
    assert run.outputs["role"] == run.role
    assert run.outputs["region"] == run.region
    db = run.one("aws:rds/instance:Instance")
    assert run.outputs["dbIdentifier"] == db.inputs["identifier"]
    assert run.outputs["clusterName"] == run.one("aws:eks/cluster:Cluster").inputs["name"]


@pytest.mark.parametrize(("prefix", "stack_dir"), [("", STACKS), ("chess-", CHESS)])
def test_declared_physical_names_equal_the_topology_contract(
    runs: dict[str, MockRun], prefix: str, stack_dir: Path
) -> None:
    estate = load_estate(stack_dir, "prod")
    declared = physical_names([runs[prefix + "prod"], runs[prefix + "dr"]])
    expected = estate.physical_names()
    assert declared.keys() == expected.keys()
    for kind in expected:
        assert declared[kind] == expected[kind], kind


def test_nothing_of_claude_deployment_leaks_into_another_app(runs: dict[str, MockRun]) -> None:
    for key in ("chess-prod", "chess-dr"):
        dumped = json.dumps(runs[key].to_json())
        assert "claude" not in dumped.lower(), f"{key} mentions claude-deployment: something is hard-coded"
    regions = {runs["chess-prod"].region, runs["chess-dr"].region}
    assert regions == {"eu-west-1", "eu-central-1"}
    for key in ("chess-prod", "chess-dr"):
        for r in runs[key].resources:
            if r.region is not None:
                assert r.region == runs[key].region, f"{r.type} {r.name} in {r.region}"


def test_network_spreads_subnets_and_nat_over_every_az(runs: dict[str, MockRun], estate) -> None:  # type: ignore[no-untyped-def]
    from dr.infra.network import subnet_cidrs

    for key, view in (("prod", estate.primary), ("dr", estate.secondary)):
        run = runs[key]
        subnets = run.of_type("aws:ec2/subnet:Subnet")
        n = view.site.az_count
        assert len(subnets) == 2 * n
        assert len({s.inputs["availabilityZone"] for s in subnets}) == n
        assert len(run.of_type("aws:ec2/natGateway:NatGateway")) == n
        public, private = subnet_cidrs(view.site.vpc_cidr, n)
        assert sorted(s.inputs["cidrBlock"] for s in subnets) == sorted(public + private)
        assert run.one("aws:ec2/vpc:Vpc").inputs["cidrBlock"] == view.site.vpc_cidr


def test_subnet_cidrs_do_not_overlap() -> None:
    import ipaddress

    from dr.infra.network import subnet_cidrs

    public, private = subnet_cidrs("10.4.0.0/24", 6)
    nets = [ipaddress.ip_network(c) for c in public + private]
    assert len(nets) == 12
    assert all(not a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])
    assert all(n.subnet_of(ipaddress.ip_network("10.4.0.0/24")) for n in nets)  # type: ignore[arg-type]


def test_cluster_version_and_nodegroup_come_from_the_site(runs: dict[str, MockRun], estate) -> None:  # type: ignore[no-untyped-def]
    for key, view in (("prod", estate.primary), ("dr", estate.secondary)):
        run = runs[key]
        cluster = run.one("aws:eks/cluster:Cluster")
        assert cluster.inputs["version"] == view.site.cluster.version
        ng = run.one("aws:eks/nodeGroup:NodeGroup")
        spec = view.site.cluster.nodegroup
        assert ng.inputs["nodeGroupName"] == spec.name
        assert ng.inputs["scalingConfig"] == {
            "minSize": spec.min_size,
            "maxSize": spec.max_size,
            "desiredSize": spec.desired_size,
        }
        assert ng.inputs["instanceTypes"] == spec.instance_types
        kubeconfig = json.loads(run.one("pulumi:providers:kubernetes").inputs["kubeconfig"])
        assert kubeconfig["clusters"][0]["cluster"]["server"].startswith("https://")
        assert kubeconfig["users"][0]["user"]["exec"]["args"] == [
            "eks",
            "get-token",
            "--cluster-name",
            view.site.cluster.name,
            "--region",
            view.region,
        ]
