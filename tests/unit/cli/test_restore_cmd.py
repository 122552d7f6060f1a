"""`dr restore pitr|snapshot` end to end against moto (which accepts any PITR time — we must not)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from dr.aws.session import CallRecorder
from tests.unit.procedures.estate_seed import (
    PASSWORD,
    Seeded,
    cli_calls,
    invoke,
    mutating,
    seeded,
    seeded_vpc,
)

__all__ = ["cli_calls", "seeded", "seeded_vpc"]


def _age_primary(seeded: Seeded, days: float) -> None:
    """Pretend the primary was created ``days`` ago (moto stamps it 'now')."""
    from moto.backends import get_backend

    backend = get_backend("rds")["123456789012"][seeded.primary]
    db = backend.databases[seeded.estate.primary.database.identifier]
    db.created = db.instance_create_time = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)


def _exists(seeded: Seeded, region: str, ident: str) -> bool:
    ids = {d["DBInstanceIdentifier"] for d in seeded.rds(region).describe_db_instances()["DBInstances"]}
    return ident in ids


def test_pitr_inherits_source_settings_and_resume_is_idempotent(
    seeded_vpc: Seeded, cli_calls: CallRecorder, tmp_path: Path
) -> None:
    seeded = seeded_vpc
    _age_primary(seeded, 2)
    res = invoke(["restore", "pitr", "--minutes-ago", "30", "--target", "restored-1", "--yes"], tmp_path)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    src = seeded.db(seeded.primary, seeded.estate.primary.database.identifier)
    new = seeded.db(seeded.primary, "restored-1")
    assert new["DBInstanceClass"] == src["DBInstanceClass"]
    assert new["MultiAZ"] == src["MultiAZ"]
    assert new["DBSubnetGroup"]["DBSubnetGroupName"] == seeded.estate.db_subnet_group(seeded.estate.primary)
    assert {g["VpcSecurityGroupId"] for g in new["VpcSecurityGroups"]} == {
        g["VpcSecurityGroupId"] for g in src["VpcSecurityGroups"]
    }
    assert (
        new["DBParameterGroups"][0]["DBParameterGroupName"]
        == src["DBParameterGroups"][0]["DBParameterGroupName"]
    )
    call = next(c for c in cli_calls.mutating() if c.operation == "RestoreDBInstanceToPointInTime")
    sent = dt.datetime.fromisoformat(str(call.params["RestoreTime"]).replace("Z", "+00:00"))
    assert abs((dt.datetime.now(dt.UTC) - sent) - dt.timedelta(minutes=30)) < dt.timedelta(minutes=2)
    assert (
        out["restore"]["window"]["earliest"]
        < out["restore"]["restore_time"]
        < out["restore"]["window"]["latest"]
    )

    # a plain re-run refuses (the target exists); --resume of the same run re-runs nothing
    again = invoke(["restore", "pitr", "--minutes-ago", "30", "--target", "restored-1", "--yes"], tmp_path)
    assert again.exit_code == 2 and "restored-1 already exists" in again.output
    before = len(cli_calls)
    run_id = out["run"]["run_id"]
    res = invoke(
        ["restore", "pitr", "--minutes-ago", "30", "--target", "restored-1", "--yes", "--resume", run_id],
        tmp_path,
    )
    assert res.exit_code == 0, res.output
    assert not [c for c in cli_calls.since(before) if c.mutating and c.service == "rds"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--minutes-ago", str(3 * 24 * 60)], "before the earliest"),
        (
            ["--time", (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")],
            "after the latest",
        ),
    ],
)
def test_pitr_outside_window_exit_2(
    seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path, args: list[str], words: str
) -> None:
    _age_primary(seeded, 2)
    res = invoke(["restore", "pitr", *args, "--target", "restored-x", "--yes"], tmp_path)
    assert res.exit_code == 2, res.output
    assert words in res.output
    assert seeded.estate.primary.database.identifier in res.output and seeded.primary in res.output
    assert "window" in res.output
    assert cli_calls.mutating() == []
    assert not _exists(seeded, seeded.primary, "restored-x")


def test_pitr_retention_zero_exit_2(seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path) -> None:
    seeded.rds(seeded.primary).modify_db_instance(
        DBInstanceIdentifier=seeded.estate.primary.database.identifier,
        BackupRetentionPeriod=0,
        ApplyImmediately=True,
    )
    before = len(cli_calls)
    res = invoke(["restore", "pitr", "--minutes-ago", "1", "--target", "restored-x", "--yes"], tmp_path)
    assert res.exit_code == 2
    assert "BackupRetentionPeriod 0" in res.output and seeded.primary in res.output
    assert not [c for c in cli_calls.since(before) if c.mutating]


def test_pitr_bad_target_and_unknown_source(seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path) -> None:
    _age_primary(seeded, 1)
    for target in ("Bad--name", "1starts-with-digit", "ends-with-"):
        res = invoke(["restore", "pitr", "--minutes-ago", "5", "--target", target, "--yes"], tmp_path)
        assert res.exit_code == 2 and target in res.output and seeded.primary in res.output
    res = invoke(
        ["restore", "pitr", "--source", "nope", "--minutes-ago", "5", "--target", "ok-name", "--yes"],
        tmp_path,
    )
    assert res.exit_code == 2 and "nope" in res.output
    res = invoke(["restore", "pitr", "--target", "ok-name", "--yes"], tmp_path)
    assert res.exit_code == 2 and "--minutes-ago" in res.output
    assert cli_calls.mutating() == []


def test_pitr_dry_run(seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path) -> None:
    _age_primary(seeded, 1)
    res = invoke(["restore", "pitr", "--minutes-ago", "5", "--target", "restored-d", "--dry-run"], tmp_path)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    ops = [op["action"] for s in out["run"]["planned"]["steps"] for op in s["operations"]]
    assert ops == ["RestoreDBInstanceToPointInTime"]
    assert cli_calls.mutating() == []
    assert not _exists(seeded, seeded.primary, "restored-d")


def test_snapshot_restore_and_unknown_snapshot(
    seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path
) -> None:
    est = seeded.estate
    seeded.rds(seeded.primary).create_db_snapshot(
        DBInstanceIdentifier=est.primary.database.identifier,
        DBSnapshotIdentifier="manual-snapshot-20260101-000000",
    )
    res = invoke(["restore", "snapshot", "--snapshot", "missing", "--target", "from-snap", "--yes"], tmp_path)
    assert res.exit_code == 2 and "missing" in res.output and seeded.primary in res.output
    assert cli_calls.mutating() == []

    res = invoke(
        [
            "restore",
            "snapshot",
            "--snapshot",
            "manual-snapshot-20260101-000000",
            "--target",
            "from-snap",
            "--yes",
        ],
        tmp_path,
    )
    assert res.exit_code == 0, res.output
    new = seeded.db(seeded.primary, "from-snap")
    assert new["DBInstanceClass"] == est.primary.database.instance_class
    assert json.loads(res.stdout)["restore"]["inherits_from"] == est.primary.database.identifier
    assert mutating(cli_calls) == ["rds:RestoreDBInstanceFromDBSnapshot"]


def test_redis_snapshot_restore(seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path) -> None:
    est = seeded.estate
    ec = seeded.clients.client("elasticache", seeded.primary)
    ec.create_snapshot(ReplicationGroupId=est.primary.cache.replication_group_id, SnapshotName="redis-snap")
    res = invoke(
        [
            "restore",
            "snapshot",
            "--kind",
            "redis",
            "--snapshot",
            "redis-snap",
            "--target",
            "redis-restored",
            "--yes",
        ],
        tmp_path,
    )
    assert res.exit_code == 0, res.output
    group = ec.describe_replication_groups(ReplicationGroupId="redis-restored")["ReplicationGroups"][0]
    assert group["CacheNodeType"] == est.primary.cache.node_type  # inherited from the source group
    assert "redis-snap" in group["Description"]
    sent = [c.params for c in cli_calls.mutating() if c.operation == "CreateReplicationGroup"]
    assert [(p["ReplicationGroupId"], p["SnapshotName"]) for p in sent] == [("redis-restored", "redis-snap")]
    res = invoke(
        [
            "restore",
            "snapshot",
            "--kind",
            "redis",
            "--snapshot",
            "nope",
            "--target",
            "redis-restored-2",
            "--yes",
        ],
        tmp_path,
    )
    assert res.exit_code == 2 and "nope" in res.output


def test_verify_failure_still_cleans_up_and_never_prints_password(
    seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path
) -> None:
    # moto's endpoint does not exist: the connection fails → exit 1, but --cleanup still deletes it
    _age_primary(seeded, 1)
    res = invoke(
        [
            "restore",
            "pitr",
            "--minutes-ago",
            "5",
            "--target",
            "restore-test",
            "--check-table",
            "orders:10",
            "--cleanup",
            "--yes",
        ],
        tmp_path,
    )
    assert res.exit_code == 1
    assert "cannot connect to restored DB instance restore-test" in res.output
    assert PASSWORD not in res.output
    assert not _exists(seeded, seeded.primary, "restore-test")
    assert "rds:DeleteDBInstance" in mutating(cli_calls)
    journals = list((tmp_path / "runs").rglob("*.jsonl"))
    assert journals and all(PASSWORD not in p.read_text() for p in journals)
