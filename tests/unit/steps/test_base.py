"""The catalogue's contract: typed services, one clock, kinds as registered singletons."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from dr.errors import ConfigError
from dr.procedures import support
from dr.runbook.plan import Step, StepContext, StepServices
from dr.steps import KINDS, NODEGROUP_SCALE
from dr.steps.base import IamRead, StepKind, utcnow


def test_services_are_typed_from_the_runs_mapping() -> None:
    clients, kube, connect = object(), (lambda view: view), (lambda **kw: kw)
    ctx = StepContext(run_id="r", services=support.services(clients, "estate", kube=kube, pg_connect=connect))  # type: ignore[arg-type]
    svc = StepServices.of(ctx)
    assert (svc.clients, svc.estate, svc.kube, svc.pg_connect) == (clients, "estate", kube, connect)
    with pytest.raises(ConfigError, match="no AWS clients"):
        StepServices.of(StepContext(run_id="r", services={}))


def test_a_step_without_a_kube_connection_names_the_cluster() -> None:
    class View:
        class cluster:
            name = "dr-eks"

    with pytest.raises(ConfigError, match="dr-eks"):
        StepServices(clients=object()).kube_for(View())  # type: ignore[arg-type]


def test_procedures_and_steps_share_one_clock() -> None:
    frozen = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    support.set_clock(lambda: frozen)
    try:
        assert utcnow() == support.utcnow() == frozen
    finally:
        support.set_clock(None)
    assert utcnow() != frozen


def test_kinds_are_singletons_with_unique_names_and_resolved_reads() -> None:
    assert len({k.name for k in KINDS}) == len(KINDS) == len({type(k) for k in KINDS})
    assert all(isinstance(k, StepKind) for k in KINDS)

    class Probe(StepKind):
        name = "probe"
        reads = (IamRead("rds:DescribeDBInstances"), IamRead("route53:GetChange", "global"))

        def build(self, *args: Any, **kwargs: Any) -> Step:
            return self.adopt(Step("p", "p", "eu-west-1", "rds"))

    step = Probe().build()
    assert step.kind is not None and step.kind.name == "probe"
    assert step.kind.iam_reads(step) == (
        ("rds:DescribeDBInstances", "eu-west-1"),
        ("route53:GetChange", None),
    )
    assert "probe" in repr(step.kind) and NODEGROUP_SCALE.name == "nodegroup-scale"


def test_a_steps_kind_is_not_part_of_its_persisted_form() -> None:
    step = Step("s", "s", None, "local")
    bare = step.to_dict()
    step.kind = NODEGROUP_SCALE
    assert step.to_dict() == bare and "kind" not in bare
