"""Every kind of step agrees with itself: what it calls locally, what its Step Functions states
call and what its IAM policy grants are the same actions.

The failover (planned), then the failback, run step by step in moto (+ EKS and the fake Kubernetes
APIs) with every AWS call recorded and attributed to the step that made it; each step is also
compiled alone to States Language. The restore and snapshot plans (:mod:`tests.unit.steps.cli_runs`)
run first; their kinds are not exportable, so they have no ASL to compare. For each kind of
:data:`dr.steps.KINDS`, over all its steps: local calls ⊆ IAM actions (operations + ``iam_reads``),
ASL calls ⊆ IAM actions, and every IAM action is called locally or by the ASL, or is one of the
kind's conditional paths (with a reason).
"""

from __future__ import annotations

import datetime as dt
import inspect
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any, ClassVar

import pytest

from dr.aws.iam_names import iam_action
from dr.aws.session import CallRecorder
from dr.procedures.iam import static_plans
from dr.procedures.stepfunctions import asl_options
from dr.procedures.support import services
from dr.runbook.asl import compile_plan
from dr.runbook.plan import Plan, Step, StepContext
from dr.steps import KINDS, PROMOTE_REPLICA
from dr.steps.base import IamRead, StepKind
from dr.steps.db_promotion import PromoteReplica
from dr.steps.ops_workload_steps import OpsKind
from tests.unit.procedures import test_failover as _failover
from tests.unit.procedures.estate_seed import db_network, put_caught_up
from tests.unit.procedures.test_failover import Env
from tests.unit.steps.cli_runs import cli_plans

env = _failover.env  # the failover tests' estate (moto + EKS + fake Kubernetes APIs)

Calls = dict[str, set[str]]  # step id -> IAM actions
Outputs = dict[str, set[str]]  # step id -> the output keys it recorded


def run_steps(env: Env, plan: Plan, outputs: Outputs | None = None) -> Calls:
    """Run ``plan``'s steps one at a time in order (check, action, wait as the executor does),
    recording the AWS calls each one makes."""
    recorder = env.clients.add_recorder(CallRecorder())
    ctx = StepContext(
        run_id="agreement",
        services=services(env.clients, env.estate, kube=env.kube, pg_connect=env.pg.connect),
    )
    out: Calls = {}
    current: list[str] = []
    if outputs is not None:
        ctx.add_set_listener(lambda key, _value: outputs.setdefault(current[-1], set()).add(key))
    try:
        for sid in plan.order():
            step = plan.step(sid)
            current.append(f"{plan.name}/{sid}")
            mark = len(recorder)
            if not (step.check is not None and step.check(ctx)):
                if step.action is not None:
                    step.action(ctx)
                if step.wait is not None:
                    deadline = time.monotonic() + 30
                    while not step.wait(ctx):
                        assert time.monotonic() < deadline, f"step {sid} never completed"
                        time.sleep(0.02)
            out[sid] = {
                iam_action(c.service, c.operation)
                for c in recorder.since(mark)
                if (c.service, c.operation) != ("cloudwatch", "PutMetricData")  # the sandbox's own
            }
    finally:
        env.clients.recorders.remove(recorder)
    return out


def asl_actions(step: Step, env: Env) -> set[str]:
    """The actions the Tasks of ``step`` compiled alone call (``eks:call``: the cluster read)."""
    est = env.estate
    opts = asl_options(est, est.secondary)
    opts = replace(
        opts, clusters={v.region: v.cluster.name for v in (est.primary, est.secondary)}, journal_bucket=None
    )
    defn = compile_plan(Plan("one", [replace(step, depends_on=())]), opts)
    out: set[str] = set()

    def walk(block: Mapping[str, Any]) -> None:
        for st in block.get("States", {}).values():
            res = str(st.get("Resource", ""))
            if res.startswith("arn:aws:states:::aws-sdk:"):
                service, action = res.split(":")[-2:]
                out.add(f"{service}:{action[:1].upper()}{action[1:]}")
            elif res == "arn:aws:states:::eks:call":
                out.add("eks:DescribeCluster")
            for branch in st.get("Branches", []):
                walk(branch)
            if "ItemProcessor" in st:
                walk(st["ItemProcessor"])

    walk(defn)
    return out


def disagreements(kind: StepKind, steps: Iterable[Step], local: Calls, asl: Calls) -> list[str]:
    problems: list[str] = []
    called: set[str] = set()
    granted: set[str] = set()
    for step in steps:
        iam = kind.iam_actions(step)
        granted |= iam
        for where, seen in (("local run", local.get(step.id, set())), ("ASL", asl.get(step.id, set()))):
            called |= seen
            problems += [
                f"{kind.name}: {step.id}'s {where} calls {a}, not in its IAM" for a in sorted(seen - iam)
            ]
    unused = granted - called - set(kind.conditional)
    problems += [f"{kind.name}: {a} granted, never called and no conditional path" for a in sorted(unused)]
    return problems


Runs = tuple[Env, list[Plan], Calls, Calls, Outputs]


@pytest.fixture
def runs(env: Env, monkeypatch: pytest.MonkeyPatch) -> Runs:
    """The restore and snapshot plans, the planned failover, then the failback, run step by step;
    every step of an exportable kind compiled alone."""
    est = env.estate
    for view in (est.primary, est.secondary):
        db_network(env.clients, est, view)  # where the failback's replica is placed
    outputs: Outputs = {}
    cli_local: Calls = {}

    def run_cli(plan: Plan) -> None:
        cli_local.update({f"{plan.name}/{k}": v for k, v in run_steps(env, plan, outputs).items()})

    cli = cli_plans(env, run_cli, monkeypatch)
    failover = env.plan("planned")
    local = run_steps(env, failover, outputs)
    from dr.procedures.failback import failback_plan, preflight

    pre = preflight(env.clients, est, to=None, max_lag=dt.timedelta(seconds=5))
    put_caught_up(env.clients, est.primary.region, pre.replica_id, env.now)
    failback = failback_plan(est, pre, timeout=20)
    back = run_steps(env, failback, outputs)
    plans = [*cli, failover, failback]
    # step ids repeat between the plans: one key per (plan, step)
    local_all = cli_local | {
        f"{p.name}/{k}": v for p, calls in ((failover, local), (failback, back)) for k, v in calls.items()
    }
    asl_all = {
        f"{p.name}/{s.id}": asl_actions(s, env)
        for p in plans
        for s in p.steps
        if s.kind is None or getattr(s.kind, "exportable", True)
    }
    return env, plans, local_all, asl_all, outputs


def _by_kind(plans: list[Plan]) -> dict[str, list[Step]]:
    out: dict[str, list[Step]] = defaultdict(list)
    for plan in plans:
        for s in plan.steps:
            assert s.kind is not None, f"{plan.name}: step {s.id} has no kind"
            out[s.kind.name].append(replace(s, id=f"{plan.name}/{s.id}"))
    return out


@pytest.mark.slow
def test_local_run_asl_and_iam_agree_for_every_kind(runs: Runs) -> None:
    _env, plans, local, asl, _outputs = runs
    by_kind = _by_kind(plans)
    # the ops kinds run in test_agreement_ops.py
    expected = [k.name for k in KINDS if not isinstance(k, OpsKind)]
    assert sorted(by_kind) == sorted(expected), "every kind runs in one of the plans"
    kinds = {k.name: k for k in KINDS}
    problems = [p for name, steps in by_kind.items() for p in disagreements(kinds[name], steps, local, asl)]
    assert problems == []
    # something ran: the promotion's calls were seen locally and in its ASL
    promote = next(k for k in local if k.endswith("/promote-db"))
    assert {"rds:PromoteReadReplica", "rds:ListTagsForResource"} <= local[promote]
    assert "rds:PromoteReadReplica" in asl[promote]


class _UnderDeclared(PromoteReplica):
    """The promotion's kind with one read left out of its IAM declaration."""

    name: ClassVar[str] = "promote-replica"
    reads: ClassVar[tuple[IamRead, ...]] = (IamRead("rds:DescribeDBInstances"),)


@pytest.mark.slow
def test_a_kind_that_under_declares_its_iam_is_caught(runs: Runs) -> None:
    _env, plans, local, asl, _outputs = runs
    steps = _by_kind(plans)[PROMOTE_REPLICA.name]
    assert disagreements(PROMOTE_REPLICA, steps, local, asl) == []
    problems = disagreements(_UnderDeclared(), steps, local, asl)
    assert problems and all("rds:ListTagsForResource" in p for p in problems)


@pytest.mark.slow
def test_every_output_a_step_records_is_declared_by_its_kind(runs: Runs) -> None:
    """Output keys are a journaled schema (``--resume`` reads them back): each key a step records is
    one of its kind's ``outputs`` (``restarted:`` + deployment, ``<command>_replica`` …)."""
    _env, plans, _local, _asl, outputs = runs
    undeclared = []
    for step in (s for steps in _by_kind(plans).values() for s in steps):
        assert step.kind is not None
        for key in outputs.get(step.id, set()):
            if not any(key == o or key.startswith(o) or key.endswith(o) for o in step.kind.outputs):
                undeclared.append(f"{step.id} ({step.kind.name}) records {key!r}")
    assert undeclared == []
    assert {"endpoint", "promoted_at", "caught_up_by", "verified"} <= {
        k for ks in outputs.values() for k in ks
    }


def test_every_kind_is_registered_and_every_step_has_one(env: Env) -> None:
    """KINDS lists each kind once; every step of the failover, failback and reprotect plans (built
    from the topology, both targets) was built by one of them."""
    assert len({k.name for k in KINDS}) == len(KINDS)
    assert {type(k) for k in KINDS} == {
        c for c in _subclasses(StepKind) if c.__module__.startswith("dr.steps") and not inspect.isabstract(c)
    }
    est = env.estate
    for procedure in ("failover", "failback", "reprotect"):
        for target in (est.primary, est.secondary):
            for plan in static_plans(est, procedure, target):
                assert all(s.kind in KINDS for s in plan.steps), [
                    s.id for s in plan.steps if s.kind not in KINDS
                ]


def _subclasses(cls: type) -> set[type]:
    out: set[type] = set()
    subs: list[type] = cls.__subclasses__()
    for sub in subs:
        out |= {sub} | _subclasses(sub)
    return out
