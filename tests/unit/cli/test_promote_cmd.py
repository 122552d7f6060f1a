"""`dr promote` end to end against moto (seeded two-region estate)."""

from __future__ import annotations

import json
from pathlib import Path

from dr.aws.session import CallRecorder
from tests.unit.procedures.estate_seed import Seeded, cli_calls, invoke, mutating, seeded

__all__ = ["cli_calls", "seeded"]


def _replica(seeded: Seeded) -> dict:
    return seeded.db(seeded.secondary, seeded.estate.secondary.database.identifier)


def test_promote_happy_path_then_idempotent(seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path) -> None:
    seeded.put_lag(1.5)
    res = invoke(["promote", "--yes"], tmp_path)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["run"]["status"] == "succeeded"
    assert out["promote"]["lag_seconds"] == 1.5
    assert out["promote"]["rpo_estimate_seconds"] == 1.5
    assert out["standalone"] is True
    assert "ReadReplicaSourceDBInstanceIdentifier" not in _replica(seeded)
    # the stack's PITR window, not PromoteReadReplica's 1-day default
    retention = seeded.estate.secondary.database.backup_retention_days
    assert _replica(seeded)["BackupRetentionPeriod"] == retention > 1
    assert "rds:PromoteReadReplica" in mutating(cli_calls)
    tags = seeded.rds(seeded.secondary).list_tags_for_resource(ResourceName=_replica(seeded)["DBInstanceArn"])
    assert any(t["Key"] == "dr:promoted-from" for t in tags["TagList"])

    # re-run: already standalone → step skipped, no PromoteReadReplica sent, exit 0
    before = len(cli_calls)
    res = invoke(["promote", "--yes"], tmp_path)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["promote"]["already_promoted"] is True
    assert out["run"]["summary"]["skipped"] == ["promote-replica"]
    assert not [c for c in cli_calls.since(before) if c.mutating and c.service == "rds"]


def test_promote_dry_run_changes_nothing(seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path) -> None:
    seeded.put_lag(0.5)
    res = invoke(["promote", "--dry-run"], tmp_path)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["run"]["status"] == "dry-run"
    ops = [op["action"] for s in out["run"]["planned"]["steps"] for op in s["operations"]]
    assert "PromoteReadReplica" in ops
    assert mutating(cli_calls) == []
    assert [c for c in cli_calls.mutating()] == []  # not even the lock
    assert _replica(seeded)["ReadReplicaSourceDBInstanceIdentifier"]


def test_promote_non_replica_exit_2(seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path) -> None:
    primary = seeded.estate.primary
    res = invoke(
        ["promote", "--db", primary.database.identifier, "--region", primary.region, "--yes"], tmp_path
    )
    assert res.exit_code == 2
    assert primary.database.identifier in res.output and primary.region in res.output
    assert "not a read replica" in res.output
    assert cli_calls.mutating() == []


def test_promote_unknown_db_exit_2(seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path) -> None:
    res = invoke(["promote", "--db", "no-such-db", "--yes"], tmp_path)
    assert res.exit_code == 2
    assert "no-such-db" in res.output and seeded.secondary in res.output
    assert cli_calls.mutating() == []


def test_promote_lag_over_budget_exit_3_and_force(
    seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path
) -> None:
    seeded.put_lag(42)
    res = invoke(["promote", "--max-lag", "5s", "--yes"], tmp_path)
    assert res.exit_code == 3
    assert "42s" in res.output and seeded.estate.secondary.database.identifier in res.output
    assert seeded.secondary in res.output
    assert cli_calls.mutating() == []
    assert _replica(seeded)["ReadReplicaSourceDBInstanceIdentifier"]

    res = invoke(["promote", "--max-lag", "60s", "--yes"], tmp_path)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["promote"]["rpo_estimate_seconds"] == 42


def test_promote_missing_lag_refused_unless_force(
    seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path
) -> None:
    res = invoke(["promote", "--yes"], tmp_path)
    assert res.exit_code == 3
    assert "no ReplicaLag datapoint" in res.output
    assert cli_calls.mutating() == []
    res = invoke(["promote", "--yes", "--force"], tmp_path)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["promote"]["rpo_estimate_seconds"] is None
    assert out["promote"]["warnings"]
    assert "ReadReplicaSourceDBInstanceIdentifier" not in _replica(seeded)


def test_promote_lock_held_exit_3(seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path) -> None:
    from tests.unit.procedures.estate_seed import lock_held_by

    with lock_held_by(seeded.clients, seeded.estate, "alice@ops", "20261124T000000Z-abcdef"):
        seeded.put_lag(0.1)
        res = invoke(["promote", "--yes"], tmp_path)
        assert res.exit_code == 3
        assert "alice@ops" in res.output
        assert mutating(cli_calls) == []
        assert _replica(seeded)["ReadReplicaSourceDBInstanceIdentifier"]
