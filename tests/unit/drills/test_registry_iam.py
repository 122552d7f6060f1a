"""What a provider declares about IAM at its registration: one declaration per provider, kept by
the implementations of other targets that repeat none, and what the drill policy is built from."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dr.drills import drill_iam, registry
from dr.procedures.iam import Need

REBOOT = (Need("rds:DescribeDBInstances", "both"), Need("rds:RebootDBInstance", "both"))


@pytest.fixture
def scratch() -> Iterator[str]:
    name = "t-iam-fault"
    yield name
    registry.unregister("action", name)


def _fn(ctx: Any) -> None:
    return None


def test_another_target_keeps_the_declaration(scratch: str) -> None:
    registry.register_action(scratch, target="aws", iam=REBOOT)(_fn)
    registry.register_action(scratch, target="sandbox")(_fn)  # the same calls, through the sandbox
    prov = registry.get("action", scratch)
    assert prov is not None and prov.iam == REBOOT and prov.targets() == ["aws", "sandbox"]
    assert set(REBOOT) <= set(drill_iam.needs())


def test_two_declarations_are_refused(scratch: str) -> None:
    registry.register_action(scratch, target="aws", iam=REBOOT)(_fn)
    with pytest.raises(ValueError, match="two IAM declarations"):
        registry.register_action(scratch, target="sandbox", iam=REBOOT[:1])(_fn)
    registry.register_action(scratch, target="x", policy_of="failover")(_fn)
    with pytest.raises(ValueError, match="two procedures' policies"):
        registry.register_action(scratch, target="y", policy_of="restore")(_fn)


def test_the_drill_needs_are_the_real_providers_declarations() -> None:
    """drill_iam imports the registering modules itself: no scenario loaded beforehand."""
    needs = drill_iam.needs()
    assert Need("elasticache:TestFailover", "both") in needs
    assert Need("route53:ListHostedZonesByName", "global") in needs
    assert len(needs) == len(set(needs))
    # actions that run a procedure add nothing of their own
    failover = registry.get("action", "failover")
    assert failover is not None and failover.policy_of == "failover" and failover.iam == ()
