"""`dr iam-policy`: the failover's policy covers every API call a real run makes — and no more.

The failover (unplanned and planned) runs end to end in moto with the run lock (DynamoDB) and the
journal mirror (S3), every call recorded by a CallRecorder. Each call is turned into (action, ARN)
here, independently of ``dr.procedures.iam``, and checked against the generated policy.
failback, snapshot, restore, ops and drill run end to end in test_iam_procedures.py; here every
procedure's policy is also checked for shape and scoping.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from dr.aws.iam_names import iam_action
from dr.aws.session import ApiCall, CallRecorder
from dr.drills import drill_iam
from dr.errors import BadInput
from dr.procedures.iam import CONDITIONAL, NO_RESOURCE_LEVEL, PROCEDURES, allows, kubernetes_verbs, policy
from dr.procedures.support import services
from dr.runbook.lock import DynamoLock, create_lock_table
from dr.runbook.runner import run_plan
from tests.unit.procedures import test_failover as _failover
from tests.unit.procedures.estate_seed import invoke
from tests.unit.procedures.test_failover import FAST, Env
from tests.unit.procedures.test_iam_procedures import implicit_kms

env = _failover.env  # the failover tests' estate fixture (moto + EKS + fake Kubernetes APIs)

ACCOUNT = "123456789012"  # moto's

drill_iam.install()  # the drill policy's needs come from the drills' registrations


def _arn(env: Env, call: ApiCall) -> str:
    """The resource ARN of a recorded call, from its parameters (or the topology when moto's
    recorder keeps no identifier, e.g. DescribeCluster's lowercase ``name``)."""
    p, r, a = call.params, call.region, ACCOUNT
    site = env.estate.primary if env.estate.primary.region == r else env.estate.secondary
    op = call.operation
    if call.service == "rds":
        if "ResourceName" in p:
            return str(p["ResourceName"])
        return f"arn:aws:rds:{r}:{a}:db:{p['DBInstanceIdentifier']}"
    if call.service == "eks":
        if op == "DescribeCluster":
            return f"arn:aws:eks:{r}:{a}:cluster/{site.cluster.name}"
        return f"arn:aws:eks:{r}:{a}:nodegroup/{p['clusterName']}/{p['nodegroupName']}/0ac1-uuid"
    if call.service == "elasticache":
        return f"arn:aws:elasticache:{r}:{a}:replicationgroup:{p['ReplicationGroupId']}"
    if call.service == "route53":
        if "HostedZoneId" in p:
            return f"arn:aws:route53:::hostedzone/{str(p['HostedZoneId']).split('/')[-1]}"
        if "HealthCheckId" in p:
            return f"arn:aws:route53:::healthcheck/{p['HealthCheckId']}"
        if op == "GetChange":
            return f"arn:aws:route53:::change/{str(p['Id']).split('/')[-1]}"
        if op == "ListTagsForResource":
            kind = "hostedzone" if p["ResourceType"] == "hostedzone" else "healthcheck"
            return f"arn:aws:route53:::{kind}/{p['ResourceId']}"
        return "arn:aws:route53:::*-no-resource-level"
    if call.service == "secretsmanager":
        return f"arn:aws:secretsmanager:{r}:{a}:secret:{env.estate.app.db_secret.secrets_manager_id}-Ab12Cd"
    if call.service == "dynamodb":
        return f"arn:aws:dynamodb:{r}:{a}:table/{p['TableName']}"
    if call.service == "s3":
        return f"arn:aws:s3:::{p['Bucket']}/{p['Key']}"
    return "*"


def _run(env: Env, mode: str, *, resuming: bool = False) -> list[ApiCall]:
    target = env.estate.secondary
    recorder = env.clients.add_recorder(CallRecorder())
    try:
        plan = env.plan(mode, resuming=resuming)
        lock = DynamoLock(env.clients, table=env.estate.lock_table, region=target.region, name="dr-test")
        result = run_plan(
            plan,
            services(env.clients, env.estate, kube=env.kube, pg_connect=env.pg.connect),
            dry_run=False,
            assume_yes=True,
            resume=None,
            runs_dir=env.runs,
            lock=lock,
            break_lock=False,
            output="json",
            poll=FAST,
        )
        assert result.status == "succeeded", [(s.id, s.error) for s in result.steps if s.error]
        return recorder.since(0)
    finally:
        env.clients.recorders.remove(recorder)


@pytest.fixture
def tooling(env: Env) -> Env:
    """The lock table and journal bucket in the target region (as the DR stack deploys them)."""
    region = env.estate.secondary.region
    try:
        create_lock_table(env.clients, env.estate.lock_table, region)
    except Exception as err:  # the seed may already have it there
        assert "ResourceInUse" in str(err)
    kw: dict[str, Any] = (
        {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    )
    env.clients.client("s3", region).create_bucket(Bucket=env.estate.journal_bucket(region), **kw)
    return env


def test_failover_policy_covers_every_call_and_grants_nothing_unused(tooling: Env) -> None:
    env = tooling
    calls = _run(env, "planned")
    # a fresh estate for the unplanned mode is not needed: with the gates of a resumed run the
    # promoted replica passes as "already promoted" (a fresh run refuses it) and the remaining
    # steps still make their reads; record both runs' calls
    calls += _run(env, "unplanned", resuming=True)
    doc = policy(env.estate, "failover", account_id=ACCOUNT, zone_id=env.s.zone_id)

    uncovered = sorted(
        {
            f"{c.service}:{c.operation} {_arn(env, c)}"
            for c in calls
            if not allows(doc, iam_action(c.service, c.operation), _arn(env, c))
        }
    )
    assert uncovered == []
    # the secret and the journal are encrypted with the site's data key: AWS decrypts / generates
    # data keys with it on the caller's behalf, through Secrets Manager / S3 only
    implied = [k for c in calls for k in implicit_kms(env.estate, c, env.s.kms)]
    assert {a for a, _, _ in implied} == {"kms:Decrypt", "kms:GenerateDataKey"}
    assert [f"{a} {key}" for a, key, ctx in implied if not allows(doc, a, key, ctx)] == []
    key = env.s.kms[env.estate.secondary.region]
    assert not allows(doc, "kms:Decrypt", key)  # not directly, only through the services
    assert not allows(doc, "kms:Decrypt", key, {**implied[0][2], "kms:ResourceAliases": ["alias/other"]})

    used = {iam_action(c.service, c.operation) for c in calls} | {a for a, _, _ in implied}
    granted = {a for st in doc["Statement"] for a in st["Action"]}
    assert granted - used - CONDITIONAL == set()
    assert {"rds:PromoteReadReplica", "dynamodb:PutItem", "s3:PutObject"} <= used

    # scoped: nothing on the primary's database, no deletes, no other zone
    primary_db = (
        f"arn:aws:rds:{env.estate.primary.region}:{ACCOUNT}:db:{env.estate.primary.database.identifier}"
    )
    assert not allows(doc, "rds:PromoteReadReplica", primary_db)
    assert not allows(
        doc,
        "rds:DeleteDBInstance",
        primary_db.replace(env.estate.primary.region, env.estate.secondary.region),
    )
    assert not allows(doc, "route53:ChangeResourceRecordSets", "arn:aws:route53:::hostedzone/ZOTHER")
    assert not allows(
        doc, "s3:PutObject", f"arn:aws:s3:::{env.estate.journal_bucket(env.estate.primary.region)}/x"
    )


def test_policies_are_scoped_to_the_topology_for_every_procedure(tooling: Env) -> None:
    est = tooling.estate
    for proc in PROCEDURES:
        doc = policy(est, proc, account_id=ACCOUNT)
        assert doc["Version"] == "2012-10-17"
        for st in doc["Statement"]:
            res = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            for r in res:
                assert r == "*" or ACCOUNT in r or r.startswith(("arn:aws:route53:::", "arn:aws:s3:::")), (
                    proc,
                    r,
                )
            if res == ["*"] or st["Resource"] == "*":
                # only actions AWS offers no resource-level permission for
                assert (
                    set(st["Action"])
                    <= NO_RESOURCE_LEVEL
                    <= {
                        "cloudwatch:GetMetricStatistics",
                        "route53:ListHostedZonesByName",
                        "route53:TestDNSAnswer",
                        "elasticloadbalancing:DescribeTargetGroups",
                        "elasticloadbalancing:DescribeTargetHealth",
                        "acm:ListCertificates",
                        "wafv2:ListIPSets",
                        "ec2:DescribeSecurityGroups",
                    }
                ), (proc, st)
    with pytest.raises(BadInput):
        policy(est, "failover", account_id="12")
    with pytest.raises(BadInput):
        policy(est, "teleport", account_id=ACCOUNT)
    assert {"PatchSecret", "PatchDeploymentScale"} <= {
        v["operation"] for v in kubernetes_verbs(est, "failover")
    }
    # reprotect restarts the standby's stale pods, in whichever region is the standby
    verbs = {v["operation"]: v["regions"] for v in kubernetes_verbs(est, "reprotect")}
    both = sorted({est.primary.region, est.secondary.region})
    assert verbs == {
        "GetDeployment": both,
        "GetSecret": both,
        "ListPods": both,
        "PatchDeployment": both,
    }


def test_ops_kubernetes_verbs_come_from_the_kinds_its_commands_run(tooling: Env) -> None:
    """`dr ops` changes workloads, flags, HPAs, pods, network policies and the DB secret in
    either cluster: RBAC must allow each (dr doctor asks the cluster about every one)."""
    from dr.procedures.iam import RBAC, rbac_rules
    from dr.procedures.ops import static_plans

    est = tooling.estate
    both = sorted({est.primary.region, est.secondary.region})
    verbs = {v["operation"]: v["regions"] for v in kubernetes_verbs(est, "ops")}
    declared = {op.action for plan in static_plans(est) for op in plan.operations() if op.service == "k8s"}
    assert set(verbs) == declared and all(regions == both for regions in verbs.values())
    assert {"PatchConfigMap", "CreateNetworkPolicy", "PatchPod", "PatchHorizontalPodAutoscaler"} <= set(verbs)
    for procedure in PROCEDURES:  # every operation a plan sends has its RBAC rules
        assert all(v["operation"] in RBAC for v in kubernetes_verbs(est, procedure)), procedure
    quarantine = ("create", "networking.k8s.io", "networkpolicies", "")
    assert rbac_rules(est)[est.secondary.region][quarantine] == ["ops"]


def test_cli_prints_the_policy_and_asks_sts_for_the_account(tooling: Env, tmp_path: Any) -> None:
    res = invoke(["iam-policy", "--procedure", "failover", "--account-id", ACCOUNT], tmp_path)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["policy"]["Version"] == "2012-10-17"
    res = invoke(["iam-policy", "--procedure", "snapshot"], tmp_path)  # account from STS (moto)
    assert res.exit_code == 0, res.output
    assert ACCOUNT in res.output
    bad = invoke(["iam-policy", "--procedure", "failover", "--account-id", "abc"], tmp_path)
    assert bad.exit_code == 2


def _iam_operations() -> dict[str, set[str]]:
    """IAM prefix -> operation names, read from botocore's service models (the SDK's own contract).

    The IAM prefix of a service is its signing name (``elbv2`` signs as ``elasticloadbalancing``),
    except CloudWatch, which signs as ``monitoring`` and is authorised as ``cloudwatch``.
    """
    import botocore.session

    session = botocore.session.get_session()
    loader = session.get_component("data_loader")
    out: dict[str, set[str]] = {}
    for service in loader.list_available_services("service-2"):
        model = session.get_service_model(service)
        prefix = model.metadata.get("signingName") or model.endpoint_prefix
        prefix = {"monitoring": "cloudwatch"}.get(prefix, prefix)
        out.setdefault(prefix, set()).update(model.operation_names)
    return out


def test_every_granted_action_is_a_real_iam_action_of_a_real_prefix(tooling: Env) -> None:
    """Each action of every procedure's policy names an IAM prefix AWS has and one of its operations.

    ``elbv2:DescribeTargetHealth`` grants nothing (the prefix is ``elasticloadbalancing``); IAM accepts
    such a policy silently, so only this check catches it.
    """
    ops = _iam_operations()
    wrong = []
    for proc in PROCEDURES:
        for st in policy(tooling.estate, proc, account_id=ACCOUNT)["Statement"]:
            for action in st["Action"]:
                prefix, _, name = action.partition(":")
                if name == "*" or "*" in name:
                    continue
                if name not in ops.get(prefix, set()):
                    wrong.append((proc, action))
    assert wrong == [], wrong


def test_drill_policy_derives_from_the_registrations(tooling: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The drill policy grants what its faults and probes declare where they register (the list
    it was kept by hand before); without them installed it is refused, never built short."""
    from dr.errors import ConfigError
    from dr.procedures import iam

    doc = policy(tooling.estate, "drill", account_id=ACCOUNT)
    assert sorted({a for st in doc["Statement"] for a in st["Action"]}) == [
        "cloudwatch:DescribeAlarms",
        "cloudwatch:GetMetricStatistics",
        "eks:DescribeCluster",
        "elasticache:DescribeReplicationGroups",
        "elasticache:TestFailover",
        "kms:Decrypt",
        "rds:DescribeDBInstances",
        "rds:RebootDBInstance",
        "route53:GetHealthCheck",
        "route53:GetHealthCheckStatus",
        "route53:ListHostedZonesByName",
        "route53:ListResourceRecordSets",
        "route53:ListTagsForResource",
        "secretsmanager:GetSecretValue",
    ]
    monkeypatch.setattr(iam, "_DECLARED", {})
    with pytest.raises(ConfigError, match="drill"):
        policy(tooling.estate, "drill", account_id=ACCOUNT)
