"""Fault rules: validation, matching, rates and region loss."""

from __future__ import annotations

import pytest

from dr.sandbox.fakeaws.faults import FaultRule, Faults
from dr.sandbox.fakeaws.wire import (
    AwsRequest,
)


def _req(
    region: str = "us-west-2", service: str = "rds", operation: str = "DescribeDBInstances"
) -> AwsRequest:
    return AwsRequest(service, region, operation, "POST", "/", b"")


def test_fault_rule_validation() -> None:
    with pytest.raises(ValueError, match="rate"):
        FaultRule(kind="throttle", rate=1.5)
    with pytest.raises(ValueError, match="kind"):
        FaultRule(kind="meteor")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown fault field"):
        FaultRule.from_dict({"kind": "error", "severity": "high"})


def test_fault_rule_matching() -> None:
    rule = FaultRule(kind="throttle", region="us-west-2", service="rds", operation="DescribeDBInstances")
    assert rule.matches(_req())
    assert not rule.matches(_req(region="us-east-1"))
    assert not rule.matches(_req(service="eks"))
    assert not rule.matches(_req(operation="PromoteReadReplica"))
    down = FaultRule(kind="unreachable", region="us-east-1")
    assert down.matches(_req(region="us-east-1"))
    # Route53 is global: a regional outage does not take it down.
    assert not down.matches(_req(region="us-east-1", service="route53"))


def test_fault_rate_is_honoured_statistically() -> None:
    faults = Faults(seed=7)
    faults.add(FaultRule(kind="error", rate=0.3))
    hits = sum(faults.pick(_req()) is not None for _ in range(4000))
    assert 0.26 < hits / 4000 < 0.34
    assert faults.injected["error"] == hits


def test_region_down_notifies_listeners_and_up_restores() -> None:
    faults = Faults()
    events: list[tuple[str, bool]] = []
    faults.listeners.append(lambda region, up: events.append((region, up)))
    faults.set_region_down("us-west-2")
    assert faults.region_down("us-west-2") and not faults.region_down("us-east-1")
    assert faults.pick(_req()) is not None
    faults.set_region_up("us-west-2")
    assert not faults.region_down("us-west-2")
    assert faults.pick(_req()) is None
    assert events == [("us-west-2", False), ("us-west-2", True)]
