"""The orchestrator component (Step Functions failover, its role and EKS access) under Pulumi mocks."""

from __future__ import annotations

import json
from typing import Any

from dr.infra.mockrun import ACCOUNT, MOCK_PASSWORD, SECRET_KEY, MockRun, secret_digest
from dr.infra.orchestrator import EKS_EDIT_POLICY, load_estate_for
from dr.infra.workload import database_url
from dr.procedures.iam import allows
from dr.runbook.asl_checks import validate_definition
from dr.topology import Estate, StackConfig, read_stack
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
    # for eks:call (the cluster's endpoint); the data key for putObject into the SSE-KMS journal
    assert granted - called <= {"eks:DescribeCluster", "kms:GenerateDataKey"}
    key = dr.outputs["kmsKeyArn"]
    via_s3 = {"kms:ViaService": f"s3.{target.region}.amazonaws.com"}
    assert allows(policy, "kms:GenerateDataKey", key, via_s3)
    assert not allows(policy, "kms:GenerateDataKey", key, {"kms:ViaService": "sqs.us-east-1.amazonaws.com"})
    assert not allows(policy, "kms:GenerateDataKey", key + "-other-key", via_s3)
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


ALL_STACKS = ("prod", "dr", "chess-prod", "chess-dr", "promoted-dr", "demoted-prod")


def _config_of(key: str) -> StackConfig:
    """The stack file each mock run was made from (its topology: cluster and namespace names)."""
    stack = key.rsplit("-", 1)[-1]
    return read_stack(CHESS if key.startswith("chess-") else STACKS, stack)


def test_the_machine_role_can_edit_the_app_namespace_of_its_own_cluster_and_nothing_more(
    runs: dict[str, MockRun],
) -> None:
    for key in ALL_STACKS:
        run, cfg = runs[key], _config_of(key)
        namespace, cluster = cfg.app.namespace, cfg.site.cluster.name
        role_arn = run.one("aws:sfn/stateMachine:StateMachine").inputs["roleArn"]
        # access entries need API or API_AND_CONFIG_MAP authentication on the cluster
        eks = run.one("aws:eks/cluster:Cluster").inputs
        assert eks["name"] == cluster == run.outputs["clusterName"], key
        assert eks["accessConfig"]["authenticationMode"] in ("API", "API_AND_CONFIG_MAP"), key

        entry = run.one("aws:eks/accessEntry:AccessEntry").inputs
        assert entry["clusterName"] == cluster and entry["principalArn"] == role_arn, key
        assert entry["type"] == "STANDARD", key
        # no Kubernetes group: a group bound elsewhere (e.g. system:masters) would bypass the scope
        assert not entry.get("kubernetesGroups"), key

        associations = run.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
        assert len(associations) == 1, key
        assoc = associations[0].inputs
        assert assoc["clusterName"] == cluster and assoc["principalArn"] == role_arn, key
        assert assoc["policyArn"] == EKS_EDIT_POLICY, key
        assert assoc["accessScope"] == {"type": "namespace", "namespaces": [namespace]}, key

        # ...and that scope covers every Kubernetes call the machine makes
        defn = json.loads(run.one("aws:sfn/stateMachine:StateMachine").inputs["definition"])
        calls = [t["Parameters"] for t in _tasks(defn) if t["Resource"] == "arn:aws:states:::eks:call"]
        assert calls, key
        for call in calls:
            assert call["ClusterName"] == cluster, key
            assert f"/namespaces/{namespace}/" in call["Path"], (key, call["Path"])


def test_the_dr_db_secret_already_names_the_endpoint_the_machine_promotes(
    runs: dict[str, MockRun], estate: Estate
) -> None:
    """RDS keeps a read replica's endpoint when it is promoted: the DR stack's secret, built from
    the replica's own address, already names the promoted instance (no rewrite by the machine)."""
    app = estate.app

    def secret_for(host: str) -> dict[str, str]:
        url = database_url("mockuser", MOCK_PASSWORD, host, app.database.port, app.database.db_name)
        return {SECRET_KEY: secret_digest({app.db_secret.key: url})}

    prod, dr, promoted = runs["prod"], runs["dr"], runs["promoted-dr"]
    for run, site in ((prod, estate.primary), (dr, estate.secondary), (promoted, estate.secondary)):
        db = run.one("aws:rds/instance:Instance")
        assert db.inputs["identifier"] == site.database.identifier == run.outputs["dbIdentifier"]
        address = run.outputs["dbAddress"]
        assert address.startswith(f"{site.database.identifier}.") and f".{site.region}." in address
        secret = run.one("kubernetes:core/v1:Secret").inputs["stringData"]
        assert secret == secret_for(address), run.stack
    # the standby's secret names its own replica, never the primary it replicates from
    assert "replicateSourceDb" in dr.one("aws:rds/instance:Instance").inputs
    assert dr.outputs["dbAddress"] != prod.outputs["dbAddress"]
    assert dr.one("kubernetes:core/v1:Secret").inputs["stringData"] != secret_for(prod.outputs["dbAddress"])
    # after promotion + role swap: same instance (URN), same address, same secret
    assert promoted.one("aws:rds/instance:Instance").urn == dr.one("aws:rds/instance:Instance").urn
    assert "replicateSourceDb" not in promoted.one("aws:rds/instance:Instance").inputs
    assert promoted.outputs["dbAddress"] == dr.outputs["dbAddress"]
    assert (
        promoted.one("kubernetes:core/v1:Secret").inputs["stringData"]
        == dr.one("kubernetes:core/v1:Secret").inputs["stringData"]
    )

    # the machine promotes that very instance and annotates the secret with its endpoint, read in
    # the DR region; it never writes the URL (no credential in the execution history)
    defn = json.loads(dr.one("aws:sfn/stateMachine:StateMachine").inputs["definition"])
    tasks = _tasks(defn)
    promote = next(t for t in tasks if t["Resource"].endswith("rds:promoteReadReplica"))
    assert promote["Parameters"]["DBInstanceIdentifier"] == estate.secondary.database.identifier
    patch = next(
        t
        for t in tasks
        if t["Resource"] == "arn:aws:states:::eks:call"
        and t["Parameters"]["Path"].endswith(f"/secrets/{app.db_secret.name}")
    )
    assert patch["Parameters"]["Method"] == "PATCH"
    assert patch["Parameters"]["RequestBody"] == {
        "metadata": {"annotations": {"dr-toolkit/db-endpoint.$": "$.endpoint.address"}}
    }
    assert "already names" in patch["Comment"]
    read = next(
        t
        for t in tasks
        if t["Resource"].endswith("rds:describeDBInstances") and t.get("ResultPath") == "$.endpoint"
    )
    assert read["Parameters"] == {"DBInstanceIdentifier": estate.secondary.database.identifier}
    assert "stringData" not in json.dumps(defn) and "password" not in json.dumps(defn).lower()
