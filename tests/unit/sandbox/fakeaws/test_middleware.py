"""The realism layer without moto: capacity and the admin API."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dr.sandbox.fakeaws.middleware import Realism
from dr.sandbox.latency import LatencyProfile


def test_capacity_follows_nodes_and_region_loss(estate: Any) -> None:
    realism = Realism(estate, LatencyProfile())
    view = estate.secondary
    ng = view.cluster.nodegroup
    realism.set_nodes(view.region, view.cluster.name, ng.name, 3)
    assert realism.capacity(view.cluster.name) == 3 * ng.pods_per_node
    realism.faults.set_region_down(view.region)
    assert realism.capacity(view.cluster.name) == 0
    assert realism.capacity("no-such-cluster") == 0


def test_admin_api_faults_and_unknown_paths(estate: Any) -> None:
    realism = Realism(estate, LatencyProfile())
    added = realism.admin("POST", "/faults", {"kind": "throttle", "rate": 0.5, "service": "rds"}, {})["added"]
    assert added[0]["rate"] == 0.5
    assert len(realism.admin("GET", "/faults", {}, {})["rules"]) == 1
    realism.admin("DELETE", "/faults", {}, {})
    assert realism.admin("GET", "/faults", {}, {})["rules"] == []
    with pytest.raises(KeyError):
        realism.admin("POST", "/regions/mars-1/down", {}, {})
    with pytest.raises(KeyError):
        realism.admin("GET", "/nope", {}, {})
    events: list[str] = []
    realism.on("region.down", lambda region: events.append(region))
    assert realism.admin("POST", f"/regions/{estate.primary.region}/down", {}, {})["down"] is True
    assert events == [estate.primary.region]
    assert json.dumps(realism.admin("GET", "/transitions", {}, {}))


def test_admin_latency_overrides_apply_and_reset(estate: Any) -> None:
    realism = Realism(estate, LatencyProfile("fast"))
    assert realism.profile.duration("rds.promote") == pytest.approx(0.2)
    realism.admin("POST", "/latency", {"overrides": {"rds.promote": 30}}, {})
    assert realism.profile.duration("rds.promote") == 30
    with pytest.raises(ValueError):
        realism.admin("POST", "/latency", {"overrides": {"rds.promote": -1}}, {})
    realism.admin("DELETE", "/latency", {}, {})
    assert realism.profile.duration("rds.promote") == pytest.approx(0.2)


def test_each_operation_has_one_handler_in_one_service_module() -> None:
    """The dispatch table is the union of the service modules' tables: no module may shadow
    another's operation, and each key names a service whose wire protocol is known."""
    from dr.sandbox.fakeaws import (
        cloudwatch_ops,
        eks_ops,
        elasticache_ops,
        iam_ops,
        rds_backup_ops,
        rds_ops,
        route53_ops,
        sts_ops,
    )
    from dr.sandbox.fakeaws.middleware import HANDLERS, SEEDING_HANDLERS
    from dr.sandbox.fakeaws.wire import PROTOCOLS

    modules = (
        rds_ops,
        rds_backup_ops,
        eks_ops,
        elasticache_ops,
        route53_ops,
        cloudwatch_ops,
        sts_ops,
        iam_ops,
    )
    assert len(HANDLERS) == sum(len(m.HANDLERS) for m in modules)
    assert all(service in PROTOCOLS for service, _ in HANDLERS)
    assert set(SEEDING_HANDLERS) <= set(HANDLERS)
