from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dr.errors import ConfigError
from dr.topology import load_estate

ROOT = Path(__file__).resolve().parents[2]


def _edit(stack_dir: Path, stack: str, mutate) -> None:
    path = stack_dir / f"Pulumi.{stack}.yaml"
    doc = yaml.safe_load(path.read_text())
    mutate(doc["config"])
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def test_default_estate_matches_the_runbook(estate) -> None:
    assert estate.app.name == "claude-deployment"
    assert estate.primary.region == "us-west-2" and estate.secondary.region == "us-east-1"
    assert estate.primary.cluster.name == "claude-deployment-prod"
    assert estate.secondary.cluster.name == "claude-deployment-dr"
    assert estate.primary.cluster.nodegroup.name == "primary"
    assert estate.primary.database.identifier == "claude-deployment-primary"
    assert estate.secondary.database.identifier == "claude-deployment-replica"
    assert estate.app.api.name == "claude-deployment-api" and estate.app.api.replicas == 6
    assert estate.app.db_secret.name == "claude-deployment-db-secret"
    assert estate.app.db_secret.key == "database-url"
    assert estate.primary.edge.ip_set_name == "malicious-ips"
    assert estate.app.record == "api.claude-deployment.com"
    assert estate.app.ttl <= 60


def test_either_stack_loads_the_same_estate(estate) -> None:
    from tests.conftest import STACKS

    other = load_estate(STACKS, "dr")
    assert other.primary == estate.primary and other.secondary == estate.secondary


def test_standby_replica_counts(estate) -> None:
    api = estate.app.api
    assert estate.replica_count(estate.primary, api) == 6
    assert estate.replica_count(estate.secondary, api) == 1


def test_site_lookup(estate) -> None:
    assert estate.site("secondary") is estate.secondary
    assert estate.site("us-west-2") is estate.primary
    assert estate.site("dr") is estate.secondary
    with pytest.raises(ConfigError, match="eu-west-9"):
        estate.site("eu-west-9")


def test_other_app_in_other_regions_loads_from_its_own_stack_files() -> None:
    est = load_estate(ROOT / "examples" / "chess-ai" / "stacks", "prod")
    assert est.app.name == "chess-ai"
    assert est.primary.region == "eu-west-1" and est.secondary.region == "eu-central-1"
    assert "claude" not in str(est.physical_names())


@pytest.mark.parametrize(
    ("stack", "mutate", "needle"),
    [
        ("dr", lambda c: c.__setitem__("aws:region", "us-weast-2"), "not an AWS region"),
        ("dr", lambda c: c.__setitem__("aws:region", "us-west-2"), "another region"),
        (
            "prod",
            lambda c: c["dr-toolkit:site"]["database"].__setitem__("identifier", "1bad--id"),
            "identifier",
        ),
        ("prod", lambda c: c["dr-toolkit:site"]["database"].__setitem__("identifier", "ends-"), "identifier"),
        ("prod", lambda c: c["dr-toolkit:app"].__setitem__("ttl", 300), "ttl"),
        ("prod", lambda c: c["dr-toolkit:app"]["deployments"][0].__setitem__("replicas", -1), "replicas"),
        (
            "prod",
            lambda c: c["dr-toolkit:site"]["cluster"]["nodegroup"].__setitem__("desiredSize", 50),
            "desiredSize",
        ),
        ("prod", lambda c: c["dr-toolkit:site"]["edge"].__setitem__("albName", "x" * 40), "albName"),
        (
            "prod",
            lambda c: c["dr-toolkit:site"]["cache"].__setitem__("numCacheClusters", 1),
            "numCacheClusters",
        ),
        (
            "prod",
            lambda c: c["dr-toolkit:site"]["edge"].__setitem__("blockedAddresses", ["10.0.0.300/32"]),
            "CIDR",
        ),
        ("prod", lambda c: c.__setitem__("dr-toolkit:role", "standby"), "role"),
        ("prod", lambda c: c["dr-toolkit:app"].__setitem__("namespace", "other-ns"), "app.namespace"),
        ("prod", lambda c: c["dr-toolkit:site"].__setitem__("clustr", {}), "clustr"),
        ("prod", lambda c: c.pop("dr-toolkit:peerStack"), "peerStack"),
        ("prod", lambda c: c["dr-toolkit:app"]["database"].__setitem__("username", "postgres"), "username"),
        (
            "prod",
            lambda c: c["dr-toolkit:app"]["database"].__setitem__("engineVersion", "14"),
            "engineVersion",
        ),
        ("prod", lambda c: c["dr-toolkit:app"].__setitem__("record", "api.other.com"), "record"),
    ],
)
def test_bad_config_is_one_clear_error_naming_file_and_key(stack_dir, stack, mutate, needle) -> None:
    # edit both files when the change is app-wide, so only the intended error fires
    _edit(stack_dir, stack, mutate)
    with pytest.raises(ConfigError) as info:
        load_estate(stack_dir, "prod")
    message = info.value.format_message()
    assert needle in message
    assert ".yaml" in message
    assert info.value.exit_code == 2


def test_unknown_stack_lists_available(stack_dir) -> None:
    with pytest.raises(ConfigError, match=r"unknown stack 'staging'.*prod"):
        load_estate(stack_dir, "staging")


def test_malformed_yaml_names_line(stack_dir) -> None:
    (stack_dir / "Pulumi.prod.yaml").write_text("config:\n  aws:region: [us-west-2\n")
    with pytest.raises(ConfigError, match=r"Pulumi.prod.yaml:? line \d+"):
        load_estate(stack_dir, "prod")


def test_physical_names_cover_both_regions(estate) -> None:
    names = estate.physical_names()
    assert names["rds_instance"] == {
        "us-west-2/claude-deployment-primary",
        "us-east-1/claude-deployment-replica",
    }
    assert names["route53_record"] == {"api.claude-deployment.com"}
    assert len(names["s3_bucket"]) == 2
