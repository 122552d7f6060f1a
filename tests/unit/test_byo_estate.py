"""Bring-your-own estate: nothing hard-wired to the shipped one (stack names, regions, zones,
health path, engine version, stack config dir, lag budgets) and `dr topology init/schema`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from dr.errors import ConfigError
from dr.estate_template import render_pair, write_pair
from dr.topology import default_stack, load_estate, stack_config_dir

ROOT = Path(__file__).resolve().parents[2]

# ≥ 6 region pairs, three of them with zones that are not <region>a/b/c (ap-northeast-1: a/c/d,
# us-west-1: a/b only, ca-central-1: a/b/d), × PostgreSQL 15/16/17.
PAIRS = [
    ("ap-northeast-1", "ap-southeast-2", "15"),
    ("us-west-1", "us-east-2", "16"),
    ("ca-central-1", "us-east-1", "17"),
    ("eu-west-1", "eu-central-1", "16"),
    ("sa-east-1", "us-east-1", "15"),
    ("eu-north-1", "ap-northeast-1", "17"),
    ("us-east-2", "us-west-1", "17"),
]


def _pair(tmp_path: Path, primary: str = "eu-west-1", dr: str = "eu-central-1", version: str = "16") -> Path:
    write_pair(tmp_path, render_pair("shop", primary, dr, engine_version=version))
    return tmp_path


def _dr(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dr", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )


# -- generated estates ------------------------------------------------------------------------


@pytest.mark.parametrize(("primary", "dr", "version"), PAIRS)
def test_generated_pair_validates_and_derives_the_family(
    tmp_path: Path, primary: str, dr: str, version: str
) -> None:
    estate = load_estate(_pair(tmp_path, primary, dr, version))  # no --stack: the one primary
    assert estate.regions == (primary, dr)
    assert estate.primary.stack == f"shop-{primary}" and estate.secondary.stack == f"shop-{dr}"
    assert estate.parameter_group_family == f"postgres{version}"
    assert all(len(v.edge.alb_name) <= 32 for v in (estate.primary, estate.secondary))


@pytest.mark.parametrize(("primary", "dr", "version"), PAIRS)
def test_seeding_uses_the_regions_real_zones(tmp_path: Path, primary: str, dr: str, version: str) -> None:
    """The sandbox's network seeding (what crashed with "availabilityZone is invalid")."""
    from moto import mock_aws

    from dr.aws.session import ClientProvider
    from dr.sandbox.seed import _seed_network

    estate = load_estate(_pair(tmp_path, primary, dr, version))
    with mock_aws():
        clients = ClientProvider()
        for view in (estate.primary, estate.secondary):
            ids: dict[str, str] = {}
            subnet_ids = _seed_network(clients, estate, view, ids)
            ec2 = clients.client("ec2", view.region)
            real = {z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]}
            used = [s["AvailabilityZone"] for s in ec2.describe_subnets(SubnetIds=subnet_ids)["Subnets"]]
            assert len(set(used)) == view.site.az_count and set(used) <= real


def test_more_zones_than_the_region_has_is_a_config_error(tmp_path: Path) -> None:
    from moto import mock_aws

    from dr.aws.session import ClientProvider
    from dr.sandbox.seed import _seed_network

    files = render_pair("shop", "us-west-1", "us-east-2")
    name = "Pulumi.shop-us-west-1.yaml"
    files[name] = files[name].replace("azCount: 2", "azCount: 3")
    write_pair(tmp_path, files)
    estate = load_estate(tmp_path)
    with mock_aws(), pytest.raises(ConfigError, match=r"us-west-1 has 2 availability zone\(s\)"):
        _seed_network(ClientProvider(), estate, estate.primary, {})


def test_topology_init_then_show_through_the_cli(tmp_path: Path) -> None:
    init = _dr(
        ["-o", "json", "topology", "init", "--app", "ledger", "--primary-region", "ca-central-1",
         "--dr-region", "us-west-1", "--dir", str(tmp_path), "--engine-version", "17"]
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    out = json.loads(init.stdout)
    assert out["primary_stack"] == "ledger-ca-central-1" and len(out["files"]) == 2
    text = Path(out["files"][0]).read_text()
    assert "# " in text and 'engineVersion: "17"' in text  # commented, as asked
    show = _dr(["--stack-dir", str(tmp_path), "-o", "json", "topology", "show"])
    assert show.returncode == 0, show.stderr
    assert json.loads(show.stdout)["sites"]["secondary"]["region"] == "us-west-1"
    again = _dr(["topology", "init", "--app", "ledger", "--primary-region", "ca-central-1",
                 "--dr-region", "us-west-1", "--dir", str(tmp_path)])  # fmt: skip
    assert again.returncode == 2 and "already exist" in again.stderr and "Traceback" not in again.stderr
    bad = _dr(["topology", "init", "--app", "Bad_Name", "--primary-region", "eu-west-1",
               "--dr-region", "eu-west-1", "--dir", str(tmp_path / "x")])  # fmt: skip
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert not (tmp_path / "x").exists() or not list((tmp_path / "x").iterdir())


def test_schema_is_generated_from_the_model_and_accepts_generated_files(tmp_path: Path) -> None:
    import jsonschema

    res = _dr(["topology", "schema"])
    assert res.returncode == 0, res.stderr
    schema = json.loads(res.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    for path in _pair(tmp_path, "ap-northeast-1", "us-west-1", "17").glob("Pulumi.*.yaml"):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    shipped = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())
    jsonschema.validate(shipped, schema)
    shipped["config"]["dr-toolkit:app"]["helthPath"] = "/x"  # a typo is caught in the editor too
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(shipped, schema)


# -- default stack ----------------------------------------------------------------------------


def test_default_stack_is_the_one_primary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PULUMI_STACK", raising=False)
    assert default_stack(_pair(tmp_path)) == "shop-eu-west-1"
    monkeypatch.setenv("PULUMI_STACK", "acme/dr-toolkit/shop-eu-central-1")
    assert default_stack(tmp_path) == "shop-eu-central-1"


def test_two_primaries_are_ambiguous_exit_2_naming_them(tmp_path: Path) -> None:
    _pair(tmp_path)
    write_pair(tmp_path, render_pair("till", "us-west-2", "us-east-1"))
    env = {"PULUMI_STACK": "", "DR_STACK": ""}
    res = _dr(["--stack-dir", str(tmp_path), "topology", "show"], env)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "shop-eu-west-1" in res.stderr and "till-us-west-2" in res.stderr and "--stack" in res.stderr
    ok = _dr(
        ["--stack-dir", str(tmp_path), "--stack", "till-us-west-2", "-o", "json", "topology", "show"], env
    )
    assert ok.returncode == 0 and json.loads(ok.stdout)["app"] == "till"


# -- parameter group family -------------------------------------------------------------------


def test_declared_family_must_match_the_engine_version(tmp_path: Path) -> None:
    files = render_pair("shop", "eu-west-1", "eu-central-1", engine_version="16")
    for name in files:
        files[name] = files[name].replace(
            "multiAz: true", "multiAz: true\n      parameterGroupFamily: postgres15"
        )
    write_pair(tmp_path, files)
    with pytest.raises(ConfigError, match=r"does not match app\.database\.engineVersion '16'"):
        load_estate(tmp_path)


# -- stackConfigDir ---------------------------------------------------------------------------


def test_orchestrator_reads_the_stack_config_dir_of_pulumi_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dr.infra.orchestrator import load_estate_for
    from dr.topology import read_stack

    (tmp_path / "Pulumi.yaml").write_text("name: dr-toolkit\nruntime: python\nstackConfigDir: config/envs\n")
    _pair(tmp_path / "config" / "envs")
    monkeypatch.chdir(tmp_path)
    assert stack_config_dir() == Path("config/envs")
    cfg = read_stack(Path("config/envs"), "shop-eu-central-1")
    estate = load_estate_for(cfg)
    assert estate is not None and estate.primary.site.cluster.nodegroup.desired_size == 3
    (tmp_path / "Pulumi.yaml").write_text("name: dr-toolkit\nruntime: python\n")
    assert stack_config_dir() == Path(".")  # Pulumi's default: the project directory


# -- health path ------------------------------------------------------------------------------


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def test_health_server_serves_the_estates_health_path_only() -> None:
    from dr.sandbox.health import RegionHealthServer

    with RegionHealthServer(
        "eu-west-1", ready_pods=lambda: 0, database_url=lambda: None, health_path="/healthz"
    ) as s:
        assert s.health_url.endswith("/healthz")
        assert _status(s.url + "/healthz") == 503  # answered: no Ready pod
        assert _status(s.url + "/health") == 404
        assert _status(s.url + "/") == 404


def test_a_failed_endpoint_probe_reports_the_http_status(tmp_path: Path) -> None:
    from dr.drills.drill_context import DrillContext
    from dr.drills.lifecycle import DrillRunner
    from dr.drills.prober import HttpCheck
    from dr.drills.scenario import parse_scenario
    from dr.sandbox.health import RegionHealthServer

    text = """
title: t
measure: {heartbeat: false, prober: false}
steady-state-hypothesis:
  probes: [{name: api-healthy, type: probe, provider: endpoint, tolerance: true}]
method: [{name: p, type: action, provider: pause, arguments: {seconds: 0}}]
"""
    with RegionHealthServer(
        "eu-west-1", ready_pods=lambda: 0, database_url=lambda: None, health_path="/healthz"
    ) as s:
        ctx = DrillContext(
            run_id="r1", target="sandbox", services={"resolver": lambda: s.url, "check": HttpCheck("/health")}
        )
        res = DrillRunner(parse_scenario(text, "t.yaml"), ctx, out_dir=tmp_path / "run").run()
    step = next(x for x in res.steps if x.name == "api-healthy")
    assert step.status == "failed" and "GET /health answered HTTP 404" in str(step.error)


# -- lag budgets ------------------------------------------------------------------------------


def test_scenario_budgets_come_from_the_estates_objectives(tmp_path: Path) -> None:
    from dr.drills.drill_context import DrillContext
    from dr.drills.lifecycle import plan
    from dr.drills.scenario import resolve

    files = render_pair("shop", "eu-west-1", "eu-central-1")
    for name in files:
        files[name] = files[name].replace("rpoSeconds: 5", "rpoSeconds: 12")
    write_pair(tmp_path, files)
    estate = load_estate(tmp_path)
    ctx = DrillContext(run_id="r1", target="sandbox", estate=estate)
    planned = plan(resolve("planned-switchover"), ctx)
    lag = [a for p in planned["phases"] for a in p["activities"] if a["provider"] == "replica-lag"]
    assert lag and all(a["tolerance"] == {"max": 12.0} for a in lag)
    failover = next(a for p in planned["phases"] for a in p["activities"] if a["provider"] == "failover")
    assert failover["arguments"].get("max_lag_seconds") is None  # the provider uses the estate's RPO
    # a scenario may override the estate's budget with a number
    from dr.drills.scenario import parse_scenario

    own = parse_scenario(
        "title: t\nmethod: [{name: p, type: action, provider: pause, arguments: {seconds: 0}}]\n"
        "verification:\n  probes:\n"
        "    - {name: a, type: probe, provider: replica-lag, tolerance: {max: 3}}\n"
        "    - {name: b, type: probe, provider: replica-lag, tolerance: {max: rto}}\n",
        "own.yaml",
    )
    tolerances = [
        a["tolerance"] for p in plan(own, ctx)["phases"] for a in p["activities"] if a["type"] == "probe"
    ]
    assert tolerances == [{"max": 3.0}, {"max": 900.0}]
