"""`dr failover --export asl` and `dr failover --via stepfunctions` (moto, Step Functions interpreter on)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto import mock_aws

from dr.aws.session import CallRecorder, ClientProvider
from dr.procedures.stepfunctions import asl_options
from dr.runbook.asl import compile_plan
from dr.runbook.asl_checks import validate_definition
from dr.runbook.plan import subset
from tests.unit.procedures.estate_seed import (
    STACKS,
    Seeded,
    fix_moto_promote,
    invoke,
    seed,
)
from tests.unit.procedures.test_failover import create_clusters
from tests.unit.runbook.test_asl import _journal_bucket, _lock_table, _unplanned


@pytest.fixture
def sfn_cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Seeded, CallRecorder]]:
    fix_moto_promote(monkeypatch)
    recorder = CallRecorder()
    from dr.cli.app import AppContext

    original = AppContext.clients

    def clients(self: AppContext, *, read_only: bool = False) -> ClientProvider:
        provider = original(self, read_only=read_only)
        provider.add_recorder(recorder)
        return provider

    monkeypatch.setattr(AppContext, "clients", clients)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        from dr.topology import load_estate

        s = seed(ClientProvider(), load_estate(STACKS, "prod"))
        create_clusters(s)
        yield s, recorder


def test_export_asl_prints_a_valid_definition_and_changes_nothing(
    sfn_cli: tuple[Seeded, CallRecorder], tmp_path: Path
) -> None:
    s, recorder = sfn_cli
    res = invoke(["failover", "--mode", "unplanned", "--export", "asl"], tmp_path, json_out=False)
    assert res.exit_code == 0, res.output
    defn = json.loads(res.output)
    assert validate_definition(defn) == []
    assert "arn:aws:states:::aws-sdk:rds:promoteReadReplica" in res.output
    assert not [c for c in recorder.calls if c.mutating]
    assert {c.region for c in recorder.calls} <= {s.estate.secondary.region, "us-east-1"}
    # the replica is untouched
    db = s.db(s.estate.secondary.region, s.estate.secondary.database.identifier)
    assert db.get("ReadReplicaSourceDBInstanceIdentifier")
    # without --mode the export is the unplanned failover (the state machine's only mode) ...
    default = invoke(["failover", "--export", "asl"], tmp_path, json_out=False)
    assert default.exit_code == 0, default.output
    assert json.loads(default.output) == defn
    # ... and a planned export is refused: it would stop writes in the source region and wait on
    # WAL positions, which a state machine cannot do
    planned = invoke(["failover", "--mode", "planned", "--export", "asl"], tmp_path)
    assert planned.exit_code == 2 and "unplanned only" in planned.output + str(planned.stderr)
    assert not [c for c in recorder.calls if c.mutating]


@pytest.mark.slow
def test_via_stepfunctions_starts_the_deployed_machine_and_follows_it(
    sfn_cli: tuple[Seeded, CallRecorder], tmp_path: Path
) -> None:
    s, _ = sfn_cli
    target = s.estate.secondary
    missing = invoke(["failover", "--via", "stepfunctions"], tmp_path)
    assert missing.exit_code == 2 and "does not exist" in missing.output + str(missing.stderr)
    # what the orchestrator deploys, minus the Kubernetes states moto cannot execute
    plan = _unplanned(s)
    part = subset(plan, [st.id for st in plan.steps if st.service in ("rds", "route53")])
    defn = compile_plan(
        part,
        asl_options(
            s.estate,
            target,
            journal_bucket=_journal_bucket(s, target.region),
            lock_table=_lock_table(s, target.region),
            first_wait=1,
        ),
    )
    iam = s.clients.client("iam", "us-east-1")
    role = iam.create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    s.clients.client("stepfunctions", target.region).create_state_machine(
        name=f"{s.estate.app.name}-dr-failover", definition=json.dumps(defn), roleArn=role
    )
    res = invoke(["failover", "--via", "stepfunctions", "--timeout", "60"], tmp_path)
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["status"] == "SUCCEEDED"
    assert any(st["state"].startswith("promote-db") for st in report["states"])
    assert not s.db(target.region, target.database.identifier).get("ReadReplicaSourceDBInstanceIdentifier")
