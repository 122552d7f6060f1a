"""The orchestrator component (Step Functions failover) as the DR stack declares it under Pulumi mocks."""

from __future__ import annotations

import json
from typing import Any

from dr.infra.mockrun import ACCOUNT, MockRun
from dr.infra.orchestrator import load_estate_for
from dr.procedures.iam import allows
from dr.runbook.asl import validate_definition
from dr.topology import Estate, read_stack
from tests.unit.infra.conftest import CHESS, STACKS


def _tasks(defn: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for st in defn["States"].values():
        if st["Type"] == "Task":
            out.append(st)
        for br in st.get("Branches", []):
            out += _tasks(br)
    return out


def test_dr_stack_deploys_the_failover_state_machine_with_a_least_privilege_role(
    runs: dict[str, MockRun], estate: Estate
) -> None:
    dr = runs["dr"]
    target = estate.secondary
    sm = dr.one("aws:sfn/stateMachine:StateMachine").inputs
    assert sm["name"] == f"{estate.app.name}-dr-failover"
    assert sm["type"] == "STANDARD"
    role = dr.one("aws:iam/role:Role", "failover")
    assert ":role/failover-" in sm["roleArn"]  # the mocks' ARN of the role declared above
    assert role.inputs["name"] == f"{estate.app.name}-dr-failover-{target.region}"
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "states.amazonaws.com"}

    defn = json.loads(sm["definition"])
    assert validate_definition(defn) == []
    tasks = _tasks(defn)
    text = json.dumps([[t["Resource"], t["Parameters"]] for t in tasks])
    assert estate.primary.region not in text and estate.primary.database.identifier not in text
    assert "arn:aws:states:::aws-sdk:rds:promoteReadReplica" in text
    # the zone and health check the stack itself declares/references, the DR region's journal, the lock
    assert dr.outputs["zoneId"] in text
    assert dr.outputs["healthCheckId"] in text
    assert dr.outputs["journalBucket"] == estate.journal_bucket(target.region)
    record = next(t for t in tasks if t["Resource"].endswith("s3:putObject"))
    assert record["Parameters"]["Bucket"] == dr.outputs["journalBucket"]
    take = next(t for t in tasks if t["Resource"] == "arn:aws:states:::dynamodb:putItem")
    assert take["Parameters"]["TableName"] == estate.lock_table

    policy = json.loads(dr.one("aws:iam/rolePolicy:RolePolicy", "failover").inputs["policy"])
    granted = {a for st in policy["Statement"] for a in st["Action"]}
    called = set()
    for t in tasks:
        res = t["Resource"]
        if res.startswith("arn:aws:states:::aws-sdk:"):
            svc, act = res.split(":")[-2:]
            called.add(f"{svc}:{act[0].upper()}{act[1:]}")
        elif res.startswith("arn:aws:states:::dynamodb:"):
            act = res.split(":")[-1]
            called.add(f"dynamodb:{act[0].upper()}{act[1:]}")
    assert called <= granted
    assert granted - called <= {"eks:DescribeCluster"}  # for eks:call (the cluster's endpoint)
    db = f"arn:aws:rds:{target.region}:{ACCOUNT}:db:{target.database.identifier}"
    assert allows(policy, "rds:PromoteReadReplica", db)
    assert not allows(policy, "rds:PromoteReadReplica", db.replace(target.region, estate.primary.region))
    assert not allows(policy, "rds:DeleteDBInstance", db)
    assert allows(
        policy, "route53:ChangeResourceRecordSets", f"arn:aws:route53:::hostedzone/{dr.outputs['zoneId']}"
    )
    assert not allows(policy, "route53:ChangeResourceRecordSets", "arn:aws:route53:::hostedzone/ZSOMEOTHER")
    assert dr.outputs["failoverStateMachineArn"]


def test_every_stack_deploys_its_own_so_a_role_swap_changes_no_urn(runs: dict[str, MockRun]) -> None:
    for key in ("prod", "dr", "chess-prod", "chess-dr", "promoted-dr", "demoted-prod"):
        run = runs[key]
        assert len(run.of_type("dr:infra:Orchestrator")) == 1, key
        sm = run.one("aws:sfn/stateMachine:StateMachine")
        defn = json.loads(sm.inputs["definition"])
        assert validate_definition(defn) == [], key
        # the machine fails over TO its own stack's region
        promote = next(t for t in _tasks(defn) if t["Resource"].endswith("rds:promoteReadReplica"))
        assert promote["Parameters"]["DBInstanceIdentifier"] == run.outputs["dbIdentifier"], key
    # chess stacks are not next to the program in the mock runs: built from their own config,
    # nothing of another app mixed in
    assert (
        "claude" not in json.dumps(runs["chess-dr"].one("aws:sfn/stateMachine:StateMachine").inputs).lower()
    )


def test_the_program_reads_both_stack_files_only_when_they_are_the_config_in_use() -> None:
    chess_dr = read_stack(CHESS, "dr")
    estate = load_estate_for(chess_dr, str(CHESS))
    assert estate is not None and estate.site("dr").region == chess_dr.region
    # files that are not the config in use (another app's) are never mixed in
    assert load_estate_for(chess_dr, str(STACKS)) is None
    assert load_estate_for(read_stack(STACKS, "dr"), str(STACKS)) is not None
