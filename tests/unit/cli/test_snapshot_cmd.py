"""`dr snapshot create|list|copy|prune` end to end against moto."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

from dr.aws.session import CallRecorder
from tests.unit.procedures.estate_seed import Seeded, cli_calls, invoke, mutating, seeded

__all__ = ["cli_calls", "seeded"]


def _snap_ids(seeded: Seeded, region: str, kind: str = "manual") -> set[str]:
    snaps = seeded.rds(region).describe_db_snapshots()["DBSnapshots"]
    return {s["DBSnapshotIdentifier"] for s in snaps if s["SnapshotType"] == kind}


def test_create_rds_snapshot_sortable_name(seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path) -> None:
    res = invoke(["snapshot", "create", "--yes"], tmp_path)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    name = out["snapshot"]
    assert re.fullmatch(r"manual-snapshot-\d{8}-\d{6}", name)
    assert out["region"] == seeded.primary and out["source"] == seeded.estate.primary.database.identifier
    assert name in _snap_ids(seeded, seeded.primary)
    assert mutating(cli_calls) == ["rds:CreateDBSnapshot"]

    # same name again: already there and available → skipped, nothing sent
    before = len(cli_calls)
    res = invoke(["snapshot", "create", "--name", name, "--yes"], tmp_path)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["run"]["summary"]["skipped"] == ["create-snapshot"]
    assert not [c for c in cli_calls.since(before) if c.mutating]


def test_create_redis_snapshot(seeded: Seeded, tmp_path: Path) -> None:
    res = invoke(["snapshot", "create", "--kind", "redis", "--region", "secondary", "--yes"], tmp_path)
    assert res.exit_code == 0, res.output
    name = json.loads(res.stdout)["snapshot"]
    snaps = seeded.clients.client("elasticache", seeded.secondary).describe_snapshots()["Snapshots"]
    assert [(s["SnapshotName"], s["ReplicationGroupId"]) for s in snaps] == [
        (name, seeded.estate.secondary.cache.replication_group_id)
    ]


def test_create_dry_run_and_unknown_source(seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path) -> None:
    res = invoke(["snapshot", "create", "--dry-run"], tmp_path)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["run"]["status"] == "dry-run"
    assert cli_calls.mutating() == []
    assert _snap_ids(seeded, seeded.primary) == set()
    res = invoke(["snapshot", "create", "--source", "nope-db", "--yes"], tmp_path)
    assert res.exit_code == 1  # the step fails: run status failed, naming the instance
    assert "nope-db" in res.output and seeded.primary in res.output
    assert _snap_ids(seeded, seeded.primary) == set()


def test_list_both_regions_and_kinds(seeded: Seeded, tmp_path: Path) -> None:
    est = seeded.estate
    seeded.rds(seeded.primary).create_db_snapshot(
        DBInstanceIdentifier=est.primary.database.identifier,
        DBSnapshotIdentifier="manual-snapshot-20260101-000000",
    )
    seeded.clients.client("elasticache", seeded.secondary).create_snapshot(
        ReplicationGroupId=est.secondary.cache.replication_group_id, SnapshotName="redis-1"
    )
    res = invoke(["snapshot", "list"], tmp_path)
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    got = {(r["id"], r["kind"], r["region"], r["source"]) for r in rows}
    assert ("manual-snapshot-20260101-000000", "rds", seeded.primary, est.primary.database.identifier) in got
    assert ("redis-1", "redis", seeded.secondary, est.secondary.cache.replication_group_id) in got
    assert all({"age", "size_gb", "encrypted"} <= set(r) for r in rows)
    table = invoke(["snapshot", "list", "--kind", "rds"], tmp_path, json_out=False)
    assert "manual-snapshot-20260101-000000" in table.output and "redis-1" not in table.output


def test_copy_cross_region_with_destination_kms_key(
    seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path
) -> None:
    est = seeded.estate
    seeded.rds(seeded.primary).create_db_snapshot(
        DBInstanceIdentifier=est.primary.database.identifier,
        DBSnapshotIdentifier="manual-snapshot-20260101-000000",
    )
    res = invoke(["snapshot", "copy", "--snapshot", "manual-snapshot-20260101-000000", "--dry-run"], tmp_path)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["run"]["status"] == "dry-run"
    assert cli_calls.mutating() == [] and _snap_ids(seeded, seeded.secondary) == set()
    res = invoke(["snapshot", "copy", "--snapshot", "manual-snapshot-20260101-000000", "--yes"], tmp_path)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["region"] == seeded.secondary
    assert out["kms_key_id"] == seeded.kms[seeded.secondary]  # the DR region's key (by alias)
    copied = seeded.rds(seeded.secondary).describe_db_snapshots(
        DBSnapshotIdentifier="manual-snapshot-20260101-000000"
    )["DBSnapshots"][0]
    assert copied["KmsKeyId"] == seeded.kms[seeded.secondary]
    calls = [c for c in cli_calls.mutating() if c.operation == "CopyDBSnapshot"]
    assert len(calls) == 1 and calls[0].region == seeded.secondary
    assert calls[0].params["SourceDBSnapshotIdentifier"].startswith(f"arn:aws:rds:{seeded.primary}:")
    # idempotent
    before = len(cli_calls)
    res = invoke(["snapshot", "copy", "--snapshot", "manual-snapshot-20260101-000000", "--yes"], tmp_path)
    assert res.exit_code == 0
    assert not [c for c in cli_calls.since(before) if c.mutating and c.service == "rds"]


def test_copy_unknown_snapshot_exit_2(seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path) -> None:
    res = invoke(["snapshot", "copy", "--snapshot", "missing-snap", "--yes"], tmp_path)
    assert res.exit_code == 2
    assert "missing-snap" in res.output and seeded.primary in res.output
    assert cli_calls.mutating() == []


def test_copy_redis_refused_with_alternative(seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path) -> None:
    res = invoke(["snapshot", "copy", "--kind", "redis", "--snapshot", "x", "--yes"], tmp_path)
    assert res.exit_code == 2
    assert "only within a region" in res.output
    assert cli_calls.mutating() == []


def _aged(seeded: Seeded, names_days: dict[str, int]) -> None:
    from moto.backends import get_backend

    rds = seeded.rds(seeded.primary)
    for name in names_days:
        rds.create_db_snapshot(
            DBInstanceIdentifier=seeded.estate.primary.database.identifier, DBSnapshotIdentifier=name
        )
    backend = get_backend("rds")["123456789012"][seeded.primary]
    now = dt.datetime.now(dt.UTC)
    for name, days in names_days.items():
        snap = backend.database_snapshots[name]
        snap.created = snap.original_snapshot_create_time = now - dt.timedelta(days=days)


def test_prune_keep_last_never_newest_never_automated(
    seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path
) -> None:
    _aged(
        seeded,
        {
            "manual-snapshot-20260101-000000": 40,
            "manual-snapshot-20260110-000000": 30,
            "manual-snapshot-20260120-000000": 20,
            "manual-snapshot-20260130-000000": 10,
            "pre-upgrade-keep-me": 50,
        },
    )
    automated = _snap_ids(seeded, seeded.primary, "automated")
    assert automated  # moto takes one when the instance is created (retention 7 days)
    # dry run: shows what it would delete, deletes nothing
    res = invoke(["snapshot", "prune", "--keep-last", "2", "--dry-run"], tmp_path)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert {d["id"] for d in out["delete"]} == {
        "manual-snapshot-20260101-000000",
        "manual-snapshot-20260110-000000",
    }
    assert cli_calls.mutating() == []
    assert len(_snap_ids(seeded, seeded.primary)) == 5

    res = invoke(["snapshot", "prune", "--keep-last", "2", "--older-than", "35d", "--yes"], tmp_path)
    assert res.exit_code == 0, res.output
    assert _snap_ids(seeded, seeded.primary) == {
        "manual-snapshot-20260110-000000",
        "manual-snapshot-20260120-000000",
        "manual-snapshot-20260130-000000",
        "pre-upgrade-keep-me",
    }
    res = invoke(["snapshot", "prune", "--keep-last", "2", "--yes"], tmp_path)
    assert res.exit_code == 0, res.output
    assert _snap_ids(seeded, seeded.primary) == {
        "manual-snapshot-20260120-000000",
        "manual-snapshot-20260130-000000",
        "pre-upgrade-keep-me",
    }
    res = invoke(["snapshot", "prune", "--keep-last", "1", "--match", "", "--yes"], tmp_path)
    assert res.exit_code == 0, res.output
    assert _snap_ids(seeded, seeded.primary) == {"manual-snapshot-20260130-000000"}
    assert _snap_ids(seeded, seeded.primary, "automated") == automated  # never automated ones
    # nothing left to prune: idempotent
    before = len(cli_calls)
    res = invoke(["snapshot", "prune", "--keep-last", "1", "--match", "", "--yes"], tmp_path)
    assert res.exit_code == 0 and json.loads(res.stdout)["delete"] == []
    assert not [c for c in cli_calls.since(before) if c.mutating]


def test_prune_needs_a_rule(seeded: Seeded, tmp_path: Path) -> None:
    res = invoke(["snapshot", "prune", "--yes"], tmp_path)
    assert res.exit_code == 2 and "--keep-last" in res.output
    res = invoke(["snapshot", "prune", "--older-than", "soon", "--yes"], tmp_path)
    assert res.exit_code == 2 and "soon" in res.output


def test_copy_unknown_kms_key_exit_2_and_aws_managed_fallback(
    seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path
) -> None:
    est = seeded.estate
    seeded.rds(seeded.primary).create_db_snapshot(
        DBInstanceIdentifier=est.primary.database.identifier,
        DBSnapshotIdentifier="manual-snapshot-20260101-000000",
    )
    res = invoke(
        [
            "snapshot",
            "copy",
            "--snapshot",
            "manual-snapshot-20260101-000000",
            "--kms-key",
            "alias/nope",
            "--yes",
        ],
        tmp_path,
    )
    assert res.exit_code == 2 and "alias/nope" in res.output and seeded.secondary in res.output
    assert cli_calls.mutating() == []
    # no site alias in the DR region and the DR DB's key gone: the AWS-managed RDS key of that region
    kms = seeded.clients.client("kms", seeded.secondary)
    kms.delete_alias(AliasName=est.kms_alias(est.secondary))
    kms.schedule_key_deletion(KeyId=seeded.kms[seeded.secondary].split("/")[-1], PendingWindowInDays=7)
    managed = kms.describe_key(KeyId="alias/aws/rds")["KeyMetadata"]["Arn"]
    res = invoke(["snapshot", "copy", "--snapshot", "manual-snapshot-20260101-000000", "--yes"], tmp_path)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["kms_key_id"] == managed


def test_create_resume_keeps_the_generated_name(
    seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path
) -> None:
    first = json.loads(invoke(["snapshot", "create", "--yes"], tmp_path).stdout)
    res = invoke(["snapshot", "create", "--yes", "--resume", first["run"]["run_id"]], tmp_path)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["snapshot"] == first["snapshot"]
    assert mutating(cli_calls) == ["rds:CreateDBSnapshot"]  # once, by the first run
