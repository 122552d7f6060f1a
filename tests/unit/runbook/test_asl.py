"""Plan -> Amazon States Language: structure, validation, and execution in moto's Step Functions.

moto's interpreter runs ``aws-sdk:*`` Tasks against moto's own backends (RDS, Route53, S3 here); it
cannot run ``arn:aws:states:::eks:call`` (an unsupported service), so the executed part is the
database + DNS part of the unplanned failover; the Kubernetes states are checked structurally.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from dr.aws.session import ClientProvider
from dr.procedures.failover import failover_plan
from dr.procedures.stepfunctions import asl_options, static_preflight
from dr.procedures.support import TAG_PROMOTED_FROM
from dr.runbook.asl import AslOptions, Node, compile_plan, sdk_resource, structure, structure_loss
from dr.runbook.asl_checks import validate_definition
from dr.runbook.plan import Operation, Plan, Step, subset
from dr.steps import PROMOTE_REPLICA, TARGET_HEALTHY
from tests.unit.procedures.estate_seed import (
    STACKS,
    Seeded,
    fix_moto_promote,
    fix_moto_route53_batch,
    seed,
)


def _precedes(node: Node, a: str, b: str) -> bool:
    """True when the structure finishes ``a`` before starting ``b``."""

    def contains(n: Node, sid: str) -> bool:
        kind, body = n
        return body == sid if kind == "step" else any(contains(c, sid) for c in body)

    kind, body = node
    if kind == "step":
        return False
    holders = (
        [i for i, c in enumerate(body) if contains(c, a)],
        [i for i, c in enumerate(body) if contains(c, b)],
    )
    ia, ib = holders[0][0], holders[1][0]
    if ia == ib:
        return _precedes(body[ia], a, b)
    return kind == "seq" and ia < ib


def _all_states(defn: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, st in defn["States"].items():
        yield name, st
        for br in st.get("Branches", []):
            yield from _all_states(br)


def _name_of(defn: dict[str, Any], state: dict[str, Any]) -> str:
    return next(name for name, st in _all_states(defn) if st is state)


def _step(sid: str, deps: tuple[str, ...] = (), estimate: float = 1.0) -> Step:
    return Step(sid, sid, "us-east-1", "rds", depends_on=deps, estimate=estimate)


@pytest.fixture
def sfn_estate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Seeded]:
    """The seeded two-region estate with moto's Step Functions interpreter switched on."""
    fix_moto_promote(monkeypatch)
    fix_moto_route53_batch(monkeypatch)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        from dr.topology import load_estate

        yield seed(ClientProvider(), load_estate(STACKS, "prod"))


def _unplanned(s: Seeded) -> Plan:
    target = s.estate.secondary
    pre = static_preflight(
        s.estate, target, zone_id=s.zone_id, health_check_id=s.health_checks[target.region]
    )
    return failover_plan(s.estate, pre)


# -- structure -------------------------------------------------------------------------------------


def test_failover_structure_honours_every_dependency_exactly(sfn_estate: Seeded) -> None:
    plan = _unplanned(sfn_estate)
    node = structure(plan)
    for step in plan.steps:
        for dep in step.depends_on:
            assert _precedes(node, dep, step.id), (dep, step.id)
    # independent steps really run in parallel (nodegroup scaling alongside the promotion)
    assert not _precedes(node, "scale-nodegroup", "promote-db")
    assert not _precedes(node, "promote-db", "scale-nodegroup")
    assert structure_loss(plan) == pytest.approx(1.0)  # the failover DAG is series-parallel


def test_non_series_parallel_dag_is_approximated_without_breaking_dependencies() -> None:
    # The "N" graph (a->c, b->c, b->d) is the smallest DAG that is not series-parallel.
    plan = Plan(
        "n",
        [_step("a", estimate=10), _step("b"), _step("c", ("a", "b")), _step("d", ("b",), estimate=10)],
    )
    node = structure(plan)
    for a, b in [("a", "c"), ("b", "c"), ("b", "d")]:
        assert _precedes(node, a, b)
    assert structure_loss(plan) > 1.0  # some parallelism is lost, and it is reported
    assert structure_loss(plan) <= 2.0


# -- the definition ----------------------------------------------------------------------------------


def test_unplanned_failover_definition_is_valid_and_needs_nothing_from_the_source_region(
    sfn_estate: Seeded,
) -> None:
    s = sfn_estate
    plan = _unplanned(s)
    defn = compile_plan(plan, asl_options(s.estate, s.estate.secondary))
    assert validate_definition(defn) == []
    text = json.dumps(defn)
    tasks = {name: st for name, st in _all_states(defn) if st["Type"] == "Task"}
    calls_text = json.dumps([[st["Resource"], st["Parameters"]] for st in tasks.values()])
    assert s.estate.primary.region not in calls_text
    assert s.estate.primary.database.identifier not in calls_text
    resources = {st["Resource"] for st in tasks.values()}
    assert sdk_resource("rds", "PromoteReadReplica") in resources
    assert "arn:aws:states:::aws-sdk:rds:promoteReadReplica" in resources
    assert sdk_resource("route53", "ChangeResourceRecordSets") in resources
    assert "arn:aws:states:::eks:call" in resources
    for name, st in tasks.items():
        assert st["Resource"].startswith(("arn:aws:states:::aws-sdk:", "arn:aws:states:::eks:call")), name
        assert st["Catch"] and st["Catch"][0]["ErrorEquals"] == ["States.ALL"], name
        throttles = st["Retry"][0]["ErrorEquals"]
        assert any(e.endswith("ThrottlingException") for e in throttles), name
    promote = next(st for st in tasks.values() if st["Resource"].endswith("promoteReadReplica"))
    assert "Rds.ThrottlingException" in promote["Retry"][0]["ErrorEquals"]
    # PromoteReadReplica's BackupRetentionPeriod defaults to 1 day: the stack's retention is sent
    assert promote["Parameters"] == {
        "DBInstanceIdentifier": s.estate.secondary.database.identifier,
        "BackupRetentionPeriod": s.estate.secondary.database.backup_retention_days,
    }
    # eks:call uses the endpoint/CA read from the target cluster at the start of the execution
    calls = [st for st in tasks.values() if st["Resource"] == "arn:aws:states:::eks:call"]
    assert calls and all(c["Parameters"]["ClusterName"] == s.estate.secondary.cluster.name for c in calls)
    assert all(c["Parameters"]["Endpoint.$"].startswith("$.clusters.") for c in calls)
    first = defn["States"][defn["StartAt"]]
    assert first["Resource"] == sdk_resource("eks", "DescribeCluster")
    assert first["Parameters"] == {"Name": s.estate.secondary.cluster.name}
    # one change batch for the zone
    r53 = [st for st in tasks.values() if st["Resource"].endswith("changeResourceRecordSets")]
    assert len(r53) == 1 and r53[0]["Parameters"]["HostedZoneId"] == s.zone_id
    # the secret is never assembled inside the state machine (execution history would keep it)
    assert "GetSecretValue".lower() not in text.lower()
    # poll loops: Wait states with back-off exist and the only cycles pass through them
    waits = [st for _, st in _all_states(defn) if st["Type"] == "Wait"]
    assert waits and all("SecondsPath" in w for w in waits)


def test_validator_reports_broken_definitions() -> None:
    ok = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Succeed"}}}
    assert validate_definition(ok) == []
    missing = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nope"}}}
    assert any("does not exist" in p for p in validate_definition(missing))
    orphan = {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}, "B": {"Type": "Succeed"}}}
    assert any("unreachable" in p for p in validate_definition(orphan))
    loop = {
        "StartAt": "A",
        "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "Next": "A"}},
    }
    assert any("cycle without a Wait" in p for p in validate_definition(loop))
    poll = {
        "StartAt": "A",
        "States": {
            "A": {"Type": "Pass", "Next": "C"},
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.x", "IsPresent": True, "Next": "D"}],
                "Default": "W",
            },
            "W": {"Type": "Wait", "Seconds": 1, "Next": "A"},
            "D": {"Type": "Succeed"},
        },
    }
    assert validate_definition(poll) == []
    both = {
        "StartAt": "A",
        "States": {"A": {"Type": "Pass", "Next": "B", "End": True}, "B": {"Type": "Succeed"}},
    }
    assert any("exactly one of Next / End" in p for p in validate_definition(both))


def test_kubernetes_steps_need_a_cluster_for_their_region() -> None:
    plan = Plan(
        "k",
        [
            Step(
                "s",
                "s",
                "eu-west-1",
                "k8s",
                operations=(
                    Operation("k8s", "PatchDeploymentScale", "eu-west-1", {"name": "api", "replicas": 2}),
                ),
            )
        ],
    )
    with pytest.raises(ValueError, match="eu-west-1"):
        compile_plan(plan, AslOptions())
    defn = compile_plan(plan, AslOptions(clusters={"eu-west-1": "c1"}, namespace="app"))
    assert validate_definition(defn) == []
    call = next(st for _, st in _all_states(defn) if st.get("Resource") == "arn:aws:states:::eks:call")
    assert call["Parameters"]["Path"] == "/apis/apps/v1/namespaces/app/deployments/api/scale"
    assert call["Parameters"]["RequestBody"] == {"spec": {"replicas": 2}}


# -- execution in moto -------------------------------------------------------------------------------


def _execute(
    s: Seeded, defn: dict[str, Any], region: str, payload: dict[str, Any] | None = None
) -> dict[str, Any]:
    iam = s.clients.client("iam", "us-east-1")
    role = iam.create_role(RoleName=f"sfn-{time.time_ns()}", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    sfn = s.clients.client("stepfunctions", region)
    arn = sfn.create_state_machine(name=f"dr-{time.time_ns()}", definition=json.dumps(defn), roleArn=role)[
        "stateMachineArn"
    ]
    ex = sfn.start_execution(
        stateMachineArn=arn, name=f"run-{time.time_ns()}", input=json.dumps(payload or {})
    )["executionArn"]
    deadline = time.monotonic() + 60
    while True:  # the interpreter runs in a thread: follow it like `dr failover --via stepfunctions`
        out: dict[str, Any] = sfn.describe_execution(executionArn=ex)
        if out["status"] != "RUNNING" or time.monotonic() > deadline:
            return out
        time.sleep(0.05)


def _journal_bucket(s: Seeded, region: str) -> str:
    bucket = s.estate.journal_bucket(region)
    kw: dict[str, Any] = (
        {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
    )
    s.clients.client("s3", region).create_bucket(Bucket=bucket, **kw)
    return bucket


def _served_roles(s: Seeded) -> dict[str, str]:
    r53 = s.clients.client("route53", "us-east-1")
    sets = r53.list_resource_record_sets(HostedZoneId=s.zone_id)["ResourceRecordSets"]
    return {r["SetIdentifier"]: r["Failover"] for r in sets if r.get("Failover")}


@pytest.mark.slow
def test_database_and_dns_part_executes_in_moto_and_promotes_the_replica(sfn_estate: Seeded) -> None:
    s = sfn_estate
    target = s.estate.secondary
    plan = _unplanned(s)
    part = subset(plan, [st.id for st in plan.steps if st.service in ("rds", "route53")])
    _journal_bucket(s, target.region)
    defn = compile_plan(part, asl_options(s.estate, target, first_wait=1))
    assert validate_definition(defn) == []
    db = target.database.identifier
    assert s.db(target.region, db).get("ReadReplicaSourceDBInstanceIdentifier")  # a replica before
    assert _served_roles(s)[target.site.name] == "SECONDARY"

    out = _execute(s, defn, target.region)

    assert out["status"] == "SUCCEEDED", out.get("cause")
    after = s.db(target.region, db)
    assert not after.get("ReadReplicaSourceDBInstanceIdentifier")  # promoted: standalone
    assert after["BackupRetentionPeriod"] == target.database.backup_retention_days > 1
    tags = s.rds(target.region).list_tags_for_resource(ResourceName=after["DBInstanceArn"])["TagList"]
    assert TAG_PROMOTED_FROM in {t["Key"] for t in tags}
    roles = _served_roles(s)
    assert roles[target.site.name] == "PRIMARY"
    assert roles[s.estate.primary.site.name] == "SECONDARY"
    change = next(
        st for _, st in _all_states(defn) if st.get("Resource", "").endswith("changeResourceRecordSets")
    )
    build = next(st for _, st in _all_states(defn) if st.get("Next") == _name_of(defn, change))
    assert sorted(v["Action"] for v in build["Parameters"].values()) == [
        "CREATE",
        "CREATE",
        "DELETE",
        "DELETE",
    ]
    # A second execution resuming the failover is a no-op (the promote guard waits for the
    # promotion it resumes; DELETE + CREATE of the same roles). Any other execution is refused: the DB may
    # be stale since a failback, and DNS must not move to it.
    again = _execute(s, defn, target.region, {"resume": True})
    assert again["status"] == "SUCCEEDED", again.get("cause")
    fresh = _execute(s, defn, target.region)
    assert fresh["status"] == "FAILED"
    failed = [
        e
        for e in s.clients.client("stepfunctions", target.region).get_execution_history(
            executionArn=fresh["executionArn"]
        )["events"]
        if "DrNotAReadReplica" in json.dumps(e, default=str)
    ]
    assert failed, "the refusal names DrNotAReadReplica"


@pytest.mark.slow
def test_a_failing_step_is_caught_and_recorded_in_the_journal_bucket(sfn_estate: Seeded) -> None:
    s = sfn_estate
    target = s.estate.secondary
    plan = Plan(
        "broken",
        [
            PROMOTE_REPLICA.build(
                "no-such-db",
                target.region,
                source=None,
                lag_seconds=None,
                timeout=60,
                backup_retention_days=None,
            )
        ],
    )
    bucket = _journal_bucket(s, target.region)
    defn = compile_plan(plan, AslOptions(journal_bucket=bucket, first_wait=1))
    # moto reports the missing instance as States.TaskFailed, which the read retry policy retries
    # (2 s, 4 s, 8 s); what this test checks is the Catch, so retry once, after 1 s
    for _name, state in _all_states(defn):
        for rule in state.get("Retry", []):
            rule.update(IntervalSeconds=1, BackoffRate=1.0, MaxAttempts=min(rule["MaxAttempts"], 1))
    out = _execute(s, defn, target.region)
    assert out["status"] == "FAILED"
    assert out["error"] == "DrPlanFailed"
    objs = s.clients.client("s3", target.region).list_objects_v2(Bucket=bucket).get("Contents", [])
    assert [o["Key"] for o in objs if o["Key"].startswith("stepfunctions/broken/")]
    body = s.clients.client("s3", target.region).get_object(Bucket=bucket, Key=objs[0]["Key"])["Body"].read()
    assert "NotFound" in json.loads(body)["Error"]


def _lock_table(s: Seeded, region: str) -> str:
    from dr.runbook.lock import create_lock_table

    try:
        create_lock_table(s.clients, s.estate.lock_table, region)
    except Exception as err:  # already there
        assert "ResourceInUse" in str(err)
    return s.estate.lock_table


@pytest.mark.slow
def test_the_state_machine_takes_and_releases_the_run_lock(sfn_estate: Seeded) -> None:
    s = sfn_estate
    target = s.estate.secondary
    table = _lock_table(s, target.region)
    plan = _unplanned(s)
    part = subset(plan, ["promote-db"])
    defn = compile_plan(
        part, asl_options(s.estate, target, journal_bucket="", lock_table=table, lock_name="dr-run")
    )
    assert validate_definition(defn) == []
    ddb = s.clients.client("dynamodb", target.region)
    # held by someone else: refused before any change
    ddb.put_item(
        TableName=table, Item={"name": {"S": "dr-run"}, "holder": {"S": "laptop"}, "expires_at": {"N": "9e9"}}
    )
    out = _execute(s, defn, target.region, {"lockExpiresAt": 4102444800})
    assert out["status"] == "FAILED" and out["error"] == "DrLockHeld"
    assert s.db(target.region, target.database.identifier).get("ReadReplicaSourceDBInstanceIdentifier")
    # no lease in the input: refused
    ddb.delete_item(TableName=table, Key={"name": {"S": "dr-run"}})
    assert _execute(s, defn, target.region)["error"] == "DrBadInput"
    # free: taken, the plan runs, released
    out = _execute(s, defn, target.region, {"lockExpiresAt": 4102444800})
    assert out["status"] == "SUCCEEDED", out.get("cause")
    assert not s.db(target.region, target.database.identifier).get("ReadReplicaSourceDBInstanceIdentifier")
    assert "Item" not in ddb.get_item(TableName=table, Key={"name": {"S": "dr-run"}})


def test_planned_failover_compiles_with_stop_writes_on_the_source_cluster(sfn_estate: Seeded) -> None:
    from dataclasses import replace

    from dr.procedures.stepfunctions import failover_definition

    s = sfn_estate
    target, source = s.estate.secondary, s.estate.primary
    pre = static_preflight(
        s.estate, target, zone_id=s.zone_id, health_check_id=s.health_checks[target.region]
    )
    plan, defn = failover_definition(s.estate, replace(pre, mode="planned"))
    assert validate_definition(defn) == []
    node = structure(plan)
    stops = [st.id for st in plan.steps if st.tags.get("phase") == "stop-writes"]
    assert stops and all(_precedes(node, sid, "promote-db") for sid in stops)
    calls = [st for _, st in _all_states(defn) if st.get("Resource") == "arn:aws:states:::eks:call"]
    assert {c["Parameters"]["ClusterName"] for c in calls} == {source.cluster.name, target.cluster.name}


@pytest.mark.parametrize("restart_pods", ["on-change", "always"])
def test_the_machine_restarts_every_deployment_whatever_restart_pods_says(
    sfn_estate: Seeded, restart_pods: str
) -> None:
    """``dr failover`` skips a restart the pods do not need (``restartPods: on-change``: the secret
    unchanged and no pod older than the instance); the machine cannot compare pod ages, so it always
    restarts — the conservative choice — and its extra read operations compile to nothing."""
    s = sfn_estate
    app = s.estate.app
    secret = app.db_secret.model_copy(update={"restart_pods": restart_pods})
    estate = s.estate.model_copy(update={"app": app.model_copy(update={"db_secret": secret})})
    target = estate.secondary
    pre = static_preflight(estate, target, zone_id=s.zone_id, health_check_id=s.health_checks[target.region])
    defn = compile_plan(failover_plan(estate, pre), asl_options(estate, target))
    assert validate_definition(defn) == []
    restarted = {
        st["Parameters"]["Path"].rsplit("/", 1)[-1]
        for _, st in _all_states(defn)
        if st.get("Resource") == "arn:aws:states:::eks:call"
        and "restartedAt" in json.dumps(st["Parameters"].get("RequestBody", {}))
    }
    assert restarted == {d.name for d in app.deployments}


def _observations(monkeypatch: pytest.MonkeyPatch, successes: list[bool]) -> None:
    """moto's GetHealthCheckStatus reports one healthy checker; report these checkers instead."""
    from moto.core.responses import ActionResult
    from moto.route53.responses import Route53 as Route53Response

    def status(self: Any) -> Any:
        self.backend.get_health_check(self._get_param("HealthCheckId"))
        return ActionResult(
            {
                "HealthCheckObservations": [
                    {
                        "Region": "us-east-1",
                        "IPAddress": f"192.0.2.{i}",
                        "StatusReport": {
                            "Status": "Success: HTTP Status Code 200, OK"
                            if ok
                            else "Failure: HTTP Status Code 503, Service Unavailable",
                        },
                    }
                    for i, ok in enumerate(successes)
                ]
            }
        )

    monkeypatch.setattr(Route53Response, "get_health_check_status", status)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("successes", "healthy"),
    [
        ([True, True] + [False] * 14, False),  # 12.5 %, the first checker lucky: still unhealthy
        ([False] * 13 + [True] * 3, True),  # 18.75 %, the first checker failing: healthy
    ],
)
def test_health_wait_counts_every_checker_with_route53s_18_percent_rule(
    sfn_estate: Seeded, monkeypatch: pytest.MonkeyPatch, successes: list[bool], healthy: bool
) -> None:
    s = sfn_estate
    target = s.estate.secondary
    hc = s.health_checks[target.region]
    _observations(monkeypatch, successes)
    plan = Plan(
        "health",
        [TARGET_HEALTHY.build(target.region, hc, timeout=60)],
    )
    defn = compile_plan(plan, AslOptions(first_wait=1, max_wait=1, max_polls=1))
    assert validate_definition(defn) == []
    out = _execute(s, defn, target.region)
    assert out["status"] == ("SUCCEEDED" if healthy else "FAILED"), out.get("cause")


def _deployment(
    generation: int, observed: int, replicas: int, updated: int, total: int, ready: int
) -> dict[str, Any]:
    return {
        "meta": {"generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
        },
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    ("deployment", "rolled_out"),
    [
        # right after the restartedAt PATCH: the controller has not seen generation 5, the old
        # pods (old DB connections) are all ready
        (_deployment(5, 4, 2, 2, 2, 2), False),
        # new generation observed, one pod on the new template, old ones still running
        (_deployment(5, 5, 2, 1, 3, 2), False),
        # every pod updated but one old pod still terminating
        (_deployment(5, 5, 2, 2, 3, 2), False),
        (_deployment(5, 5, 2, 2, 2, 2), True),
    ],
)
def test_pods_ready_waits_for_the_rollout_of_the_restart(
    sfn_estate: Seeded, deployment: dict[str, Any], rolled_out: bool
) -> None:
    """The machine's pods-ready Choice, evaluated by moto's Step Functions interpreter on a
    Deployment as the API reports it during a restart."""
    s = sfn_estate
    target = s.estate.secondary
    pre = static_preflight(
        s.estate, target, zone_id=s.zone_id, health_check_id=s.health_checks[target.region]
    )
    defn = compile_plan(failover_plan(s.estate, pre), asl_options(s.estate, target))
    name = s.estate.app.deployments[0].name
    choice = next(
        st
        for n, st in _all_states(defn)
        if st["Type"] == "Choice" and n.endswith(f": {name} done?") and "pods" in n
    )
    rule = {k: v for k, v in choice["Choices"][0].items() if k != "Next"}
    key = rule["And"][0]["Variable"].split(".")[2]
    machine = {
        "StartAt": "rolled out?",
        "States": {
            "rolled out?": {"Type": "Choice", "Choices": [{**rule, "Next": "yes"}], "Default": "no"},
            "yes": {"Type": "Succeed"},
            "no": {"Type": "Fail", "Error": "NotRolledOut"},
        },
    }
    out = _execute(s, machine, target.region, {"seen": {key: deployment}})
    assert out["status"] == ("SUCCEEDED" if rolled_out else "FAILED"), out.get("cause")


def test_record_picks_match_the_record_name_only(sfn_estate: Seeded) -> None:
    """ListResourceRecordSets runs on past the record into the names after it: the records the
    batch rewrites are picked by name too, never another name's failover record."""
    from jsonpath_ng.ext import parse

    s = sfn_estate
    target = s.estate.secondary
    defn = compile_plan(_unplanned(s), asl_options(s.estate, target))
    fqdn = s.estate.app.record.rstrip(".").lower() + "."
    pick = next(st for n, st in _all_states(defn) if n.endswith("build change batch"))
    key = pick["ResultPath"].rsplit(".", 1)[-1]

    def rec(name: str, ident: str, role: str) -> dict[str, Any]:
        return {"Name": name, "Type": "A", "SetIdentifier": ident, "Failover": role}

    # the other site's record of the name is gone; another name's failover records follow
    listing = [
        rec(fqdn, target.site.name, "SECONDARY"),
        rec("zz-" + fqdn, "someone-else", "PRIMARY"),
        rec("zz-" + fqdn, target.site.name, "SECONDARY"),
    ]
    data = {"r53": {key: {"sets": listing}}}
    picked = {
        field: [m.value["Name"] for m in parse(path).find(data)]
        for field, path in pick["Parameters"].items()
        if field.endswith(".$")
    }
    assert picked and all(names in ([], [fqdn]) for names in picked.values()), picked


def test_aws_rules_catch_what_validate_state_machine_definition_rejects() -> None:
    from dr.runbook.asl_checks import aws_rule_problems

    def task(resource: str, params: dict[str, Any], errors: list[str] | None = None) -> dict[str, Any]:
        return {
            "Type": "Task",
            "Resource": resource,
            "Parameters": params,
            "Retry": [{"ErrorEquals": errors or ["Rds.ThrottlingException"], "MaxAttempts": 2}],
            "End": True,
        }

    ok = task(
        "arn:aws:states:::aws-sdk:rds:promoteReadReplica",
        {"DBInstanceIdentifier": "db", "BackupRetentionPeriod": 7},
    )
    assert aws_rule_problems({"StartAt": "a", "States": {"a": ok}}) == []
    eks = task(
        "arn:aws:states:::aws-sdk:eks:describeNodegroup", {"ClusterName": "c", "NodegroupName.$": "$.ng"}
    )
    assert aws_rule_problems({"StartAt": "a", "States": {"a": eks}}) == []
    bad = {
        "StartAt": "x" * 81,
        "States": {
            "x" * 81: task("arn:aws:states:::aws-sdk:rds:PromoteReadReplica", {}),  # action not camelCase
            "no such op": task("arn:aws:states:::aws-sdk:rds:promoteReplica", {}),
            "no such service": task("arn:aws:states:::aws-sdk:relational:promoteReadReplica", {}),
            "camel param": task(
                "arn:aws:states:::aws-sdk:rds:describeDBInstances", {"dbInstanceIdentifier": "d"}
            ),
            "unknown param": task("arn:aws:states:::aws-sdk:rds:describeDBInstances", {"Identifier": "d"}),
            "bad path": task(
                "arn:aws:states:::aws-sdk:rds:describeDBInstances", {"DBInstanceIdentifier.$": "db.id"}
            ),
            "bad intrinsic": task(
                "arn:aws:states:::aws-sdk:rds:describeDBInstances",
                {"DBInstanceIdentifier.$": "States.Concat($.a)"},
            ),
            "never matches": task(
                "arn:aws:states:::aws-sdk:s3:getObject", {"Bucket": "b", "Key": "k"}, ["S3.Throttling"]
            ),
            "p": {
                "Type": "Parallel",
                "Branches": [{"StartAt": "camel param", "States": {"camel param": {"Type": "Succeed"}}}],
                "Next": "missing",
            },
        },
    }
    text = "\n".join(aws_rule_problems(bad))
    for expected in (
        "over 80 characters",
        "not arn:aws:states:::aws-sdk",
        "has no operation PromoteReplica",
        "'relational' is not an AWS SDK service",
        "'dbInstanceIdentifier' must be PascalCase",
        "'Identifier' is not a member",
        "'DBInstanceIdentifier.$' is not a valid path",
        "States.Concat",
        "'S3.Throttling' can never match",
        "'camel param' also used",
        "'missing', which is not a state",
    ):
        assert expected in text, expected


@pytest.mark.parametrize("stacks", ["stacks", "examples/chess-ai/stacks"])
def test_every_export_passes_the_aws_validator_rules(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, stacks: str
) -> None:
    """`dr failover --export asl` (the only procedure that exports; unplanned, to the DR site), on
    this estate and on another one: nothing AWS's validator would reject."""
    from click.testing import CliRunner

    from dr.cli.main import cli
    from dr.runbook.asl_checks import aws_rule_problems
    from dr.topology import load_estate
    from tests.unit.procedures.test_failover import create_clusters

    stack_dir = STACKS if stacks == "stacks" else Path(__file__).resolve().parents[3] / stacks
    fix_moto_promote(monkeypatch)
    with mock_aws():
        create_clusters(seed(ClientProvider(), load_estate(stack_dir, "prod")))
        res = CliRunner().invoke(
            cli,
            ["--stack-dir", str(stack_dir), "failover", "--export", "asl"],
            env={"DR_RUNS_DIR": str(tmp_path / "runs")},
            catch_exceptions=False,
        )
    assert res.exit_code == 0, res.output
    defn = json.loads(res.output)
    assert validate_definition(defn) == []
    assert aws_rule_problems(defn) == []
