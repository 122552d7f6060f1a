from __future__ import annotations

import pytest

from dr.runbook.plan import Operation, Plan, PlanError, Step, StepContext, StepServices, subset


def _s(sid: str, *deps: str, est: float = 1.0) -> Step:
    return Step(id=sid, title=sid, region="us-east-1", service="rds", depends_on=deps, estimate=est)


def test_unknown_dependency_is_rejected_naming_both_steps() -> None:
    with pytest.raises(PlanError, match=r"'b' depends on unknown step\(s\) zz"):
        Plan("p", [_s("a"), _s("b", "zz")])


def test_cycle_is_rejected_with_the_cycle() -> None:
    with pytest.raises(PlanError, match="cycle") as info:
        Plan("p", [_s("a", "c"), _s("b", "a"), _s("c", "b")])
    assert all(x in str(info.value) for x in "abc")


def test_duplicate_ids_rejected() -> None:
    with pytest.raises(PlanError, match="twice"):
        Plan("p", [_s("a"), _s("a")])


def test_order_respects_dependencies_and_declaration_order() -> None:
    plan = Plan("p", [_s("dns", "promote", "pods"), _s("pods", "scale"), _s("scale"), _s("promote")])
    order = plan.order()
    assert order.index("scale") < order.index("pods") < order.index("dns")
    assert order.index("promote") < order.index("dns")
    assert order[:2] == ["scale", "promote"]


def test_critical_path_is_the_longest_weighted_chain() -> None:
    plan = Plan(
        "p",
        [
            _s("scale", est=60),
            _s("pods", "scale", est=45),
            _s("promote", est=300),
            _s("dns", "pods", "promote", est=40),
        ],
    )
    path, total = plan.critical_path()
    assert path == ["promote", "dns"] and total == 340
    path, total = plan.critical_path({"promote": 10})
    assert path == ["scale", "pods", "dns"] and total == 145


def test_ancestors_and_subset() -> None:
    plan = Plan("p", [_s("a"), _s("b", "a"), _s("c", "b"), _s("d")])
    assert plan.ancestors("c") == {"a", "b"}
    small = subset(plan, ["b", "c", "d"])
    assert small.step("b").depends_on == () and small.order() == ["b", "d", "c"]


def test_operations_and_mutating_flag() -> None:
    op = Operation("rds", "PromoteReadReplica", "us-east-1", {"DBInstanceIdentifier": "x"})
    step = Step(id="p", title="promote", region="us-east-1", service="rds", operations=(op,))
    read = Step(
        id="r",
        title="read",
        region="us-east-1",
        service="rds",
        operations=(Operation("rds", "DescribeDBInstances", "us-east-1", mutating=False),),
    )
    assert step.mutating and not read.mutating
    assert Plan("p", [step, read]).to_dict()["steps"][0]["operations"][0]["action"] == "PromoteReadReplica"
    assert op.iam_action == "rds:PromoteReadReplica"


def test_a_mapping_of_services_becomes_typed_fields_and_the_rest_extra() -> None:
    clients, estate = object(), object()
    ctx = StepContext(run_id="r", services={"clients": clients, "estate": estate, "world": 1})
    assert ctx.services.clients is clients and ctx.services.estate is estate
    assert ctx.services.kube is None and dict(ctx.services.extra) == {"world": 1}
    typed = StepServices(clients=clients)  # type: ignore[arg-type]
    assert StepContext(run_id="r", services=typed).services is typed
    assert StepServices.coerce(None) == StepServices()
