"""The kinds of ``dr ops`` agree with themselves as the failover's kinds do (test_agreement.py):
every ops command's plan runs step by step in moto (+ EKS and the fake Kubernetes APIs) with its
AWS calls recorded; for each kind, local calls ⊆ IAM actions and every IAM action is called or
one of the kind's conditional paths. Ops kinds are never exported to Step Functions: compiling
one raises, and the ASL part of the agreement is skipped for them."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from typing import ClassVar

import boto3
import pytest

from dr.errors import ConfigError
from dr.procedures import ops, ops_security
from dr.procedures.iam import ops_plans
from dr.runbook.plan import Plan, Step
from dr.steps import KINDS, WAF_IP_SET
from dr.steps.base import IamRead
from dr.steps.ops_security_steps import WafIpSet
from dr.steps.ops_workload_steps import OpsKind
from tests.unit.steps.test_agreement import Calls, Env, Outputs, asl_actions, disagreements, env, run_steps

__all__ = ["env"]

OPS_KINDS = [k for k in KINDS if isinstance(k, OpsKind)]
Runs = tuple[list[Plan], Calls, Outputs]


def _waf(env: Env) -> None:
    for view in (env.estate.primary, env.estate.secondary):
        boto3.client("wafv2", region_name=view.region).create_ip_set(
            Name=view.edge.ip_set_name, Scope="REGIONAL", IPAddressVersion="IPV4", Addresses=["192.0.2.1/32"]
        )


def _replicate_secret(env: Env) -> None:
    secret_id, p, s = env.estate.app.db_secret.secrets_manager_id, env.estate.primary, env.estate.secondary
    boto3.client("secretsmanager", region_name=s.region).delete_secret(
        SecretId=secret_id, ForceDeleteWithoutRecovery=True
    )
    boto3.client("secretsmanager", region_name=p.region).replicate_secret_to_regions(
        SecretId=secret_id, AddReplicaRegions=[{"Region": s.region}]
    )


@pytest.fixture
def ops_runs(env: Env) -> Runs:
    """Every ops command's plan, each built (pre-flight included) after the previous one ran."""
    est, ns = env.estate, env.estate.app.namespace
    p, s = est.primary, est.secondary
    _waf(env)
    local: Calls = {}
    outputs: Outputs = {}
    plans: list[Plan] = []

    def run(plan: Plan) -> None:
        plans.append(plan)
        calls = run_steps(env, plan, outputs)
        local.update({f"{plan.name}/{k}": v for k, v in calls.items()})

    api = est.app.api.name
    hpa = env.kube(p).hpa_for(ns, api)
    assert hpa is not None
    # beyond the HPA's max: adjust-hpa, then the scale and its rollout wait
    run(
        ops.scale_plan(
            ops.scale_preflight(env.kube(p), est, p, api, hpa.max_replicas + 1, adjust_hpa=True), p
        )
    )
    run(
        ops.hpa_plan(
            env.kube(p), est, p, api, min_replicas=hpa.min_replicas, max_replicas=hpa.max_replicas + 2
        )[0]
    )
    run(ops.flag_plan(est, [p], {ops.MAINTENANCE_FLAG: "true"}))  # restarts: a revision to roll back to
    run(ops.rollback_plan(env.kube(p), est, p, api)[0])
    run(ops.stop_writes_plan(est, p))
    run(ops.resume_writes_plan(env.kube(p), est, p)[0])
    run(
        ops.nodegroup_plan(
            env.clients, s, min_size=None, max_size=None, desired=s.cluster.nodegroup.max_size
        )[0]
    )
    run(ops_security.waf_plan(env.clients, est, [p, s], ["203.0.113.7"], block=True)[0])
    run(ops_security.waf_plan(env.clients, est, [p, s], ["203.0.113.7"], block=False)[0])
    pod = env.kube(p).list_pods(ns)[0].name
    run(ops_security.quarantine_plan(env.kube(p), est, p, pod)[0])
    run(ops_security.rotation_plan(env.clients, est, p, timeout=20)[0])
    # again, with the secondary's copy a replica of a multi-region secret (written by Secrets Manager)
    _replicate_secret(env)
    rotation = ops_security.rotation_plan(env.clients, est, p, timeout=20)[0]
    run(replace(rotation, name="ops-rotate-db-secret-replicated"))
    return plans, local, outputs


class _WafUnderDeclared(WafIpSet):
    name: ClassVar[str] = "waf-ip-set"
    reads: ClassVar[tuple[IamRead, ...]] = ()


def _by_kind(plans: list[Plan]) -> dict[str, list[Step]]:
    out: dict[str, list[Step]] = defaultdict(list)
    for plan in plans:
        for st in plan.steps:
            assert st.kind is not None, f"{plan.name}: step {st.id} has no kind"
            out[st.kind.name].append(replace(st, id=f"{plan.name}/{st.id}"))
    return out


@pytest.mark.slow
def test_local_run_and_iam_agree_for_every_ops_kind(ops_runs: Runs) -> None:
    plans, local, _outputs = ops_runs
    by_kind = _by_kind(plans)
    assert {k.name for k in OPS_KINDS} <= set(by_kind), "every ops kind runs in an ops command"
    kinds = {k.name: k for k in KINDS}
    no_asl: Calls = {st.id: set() for steps in by_kind.values() for st in steps}
    problems = [
        p for name, steps in by_kind.items() for p in disagreements(kinds[name], steps, local, no_asl)
    ]
    assert problems == []
    # something ran: the nodegroup update, the WAF update and the password change were seen
    seen = set().union(*local.values())
    assert {"eks:UpdateNodegroupConfig", "wafv2:UpdateIPSet", "rds:ModifyDBInstance"} <= seen
    # and an under-declared kind is caught: the IP set's id is looked up by name
    under = disagreements(_WafUnderDeclared(), by_kind[WAF_IP_SET.name], local, no_asl)
    assert under and all("wafv2:ListIPSets" in p for p in under)


@pytest.mark.slow
def test_every_output_an_ops_step_records_is_declared_by_its_kind(ops_runs: Runs) -> None:
    plans, _local, outputs = ops_runs
    undeclared = []
    for step in (st for steps in _by_kind(plans).values() for st in steps):
        assert step.kind is not None
        for key in outputs.get(step.id, set()):
            if not any(key == o or key.startswith(o) for o in step.kind.outputs):
                undeclared.append(f"{step.id} ({step.kind.name}) records {key!r}")
    assert undeclared == []
    keys = {k for ks in outputs.values() for k in ks}
    assert "rds-modified" in keys and any(k.startswith("flags-changed-") for k in keys)


def test_ops_kinds_are_not_exported_to_step_functions(env: Env) -> None:
    """Compiling an ops step raises a clear error naming the step and its kind."""
    for plan in ops_plans(env.estate):
        step = plan.steps[0]
        if not isinstance(step.kind, OpsKind):
            continue
        with pytest.raises(ConfigError, match=f"{step.id} .{step.kind.name}. has no Step Functions form"):
            asl_actions(step, env)
