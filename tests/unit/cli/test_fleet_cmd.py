"""`dr fleet plan|failover` end to end against moto (seeded estate + a small fleet)."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from dr.aws.session import CallRecorder
from dr.procedures.fleet import Fleet
from tests.unit.procedures.estate_seed import Seeded, cli_calls, invoke, mutating, seeded

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
from bench_fleet import build_fleet

__all__ = ["cli_calls", "seeded"]


def _fleet(seeded: Seeded, tmp_path: Path, *, dbs: int = 4, records: int = 6) -> tuple[Fleet, Path]:
    fl = build_fleet(
        seeded.clients, dbs=dbs, records=records, zones=2, source=seeded.primary, target=seeded.secondary
    )
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(fl.to_dict()))
    return fl, path


def _instances(seeded: Seeded, fl: Fleet) -> dict[str, dict[str, Any]]:
    return {d.identifier: seeded.db(d.region, d.identifier) for d in fl.databases}


def _cnames(seeded: Seeded, zone: str) -> dict[str, str]:
    r53 = seeded.clients.client("route53", "us-east-1")
    return {
        s["Name"].rstrip("."): s["ResourceRecords"][0]["Value"]
        for s in r53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]
        if s["Type"] == "CNAME"
    }


def test_fleet_failover_promotes_and_repoints_then_is_idempotent(
    seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path
) -> None:
    fl, path = _fleet(seeded, tmp_path)
    res = invoke(["fleet", "failover", "--file", str(path), "--yes"], tmp_path)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["run"]["status"] == "succeeded"
    assert sorted(out["fleet"]["to_promote"]) == sorted(d.identifier for d in fl.databases)
    assert out["api"]["change_batches"] == 2
    insts = _instances(seeded, fl)
    assert all("ReadReplicaSourceDBInstanceIdentifier" not in i for i in insts.values())
    for zone, records in fl.zones().items():
        cnames = _cnames(seeded, zone)
        for rec in records:
            assert cnames[rec.name] == insts[rec.db]["Endpoint"]["Address"]
    sent = Counter(mutating(cli_calls))
    assert sent["rds:PromoteReadReplica"] == 4
    assert sent["route53:ChangeResourceRecordSets"] == 2  # one batch per zone

    before = len(cli_calls)
    res = invoke(["fleet", "failover", "--file", str(path), "--yes"], tmp_path)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert sorted(out["fleet"]["already_standalone"]) == sorted(d.identifier for d in fl.databases)
    assert {f"promote-{d.identifier}" for d in fl.databases} <= set(out["run"]["summary"]["skipped"])
    assert "PromoteReadReplica" not in {c.operation for c in cli_calls.since(before)}


def test_fleet_failover_dry_run_makes_no_mutating_call(
    seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path
) -> None:
    fl, path = _fleet(seeded, tmp_path)
    res = invoke(["fleet", "failover", "--file", str(path), "--dry-run"], tmp_path)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["run"]["status"] == "dry-run"
    ops = Counter(op["action"] for s in out["run"]["planned"]["steps"] for op in s["operations"])
    assert ops["PromoteReadReplica"] == 4 and ops["ChangeResourceRecordSets"] == 2
    assert len(out["fleet"]["to_promote"]) == 4
    assert cli_calls.mutating() == []  # not even the lock
    assert any(c.operation == "DescribeDBInstances" for c in cli_calls.since(0))  # it did look
    assert all(i.get("ReadReplicaSourceDBInstanceIdentifier") for i in _instances(seeded, fl).values())


def test_fleet_failover_human_output(seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path) -> None:
    _, path = _fleet(seeded, tmp_path, dbs=2, records=2)
    res = invoke(["fleet", "failover", "--file", str(path), "--yes"], tmp_path, json_out=False)
    assert res.exit_code == 0, res.output
    assert "promoted 2 replica(s)" in res.stdout
    assert "2 change batch(es)" in res.stdout


def test_fleet_database_missing_in_aws_exit_2_nothing_changed(
    seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path
) -> None:
    fl, path = _fleet(seeded, tmp_path, dbs=2, records=2)
    data = fl.to_dict()
    data["databases"].append({"identifier": "no-such-replica", "region": seeded.secondary})
    path.write_text(yaml.safe_dump(data))
    res = invoke(["fleet", "failover", "--file", str(path), "--yes"], tmp_path)
    assert res.exit_code == 2
    assert "no-such-replica" in res.output and seeded.secondary in res.output
    assert cli_calls.mutating() == []
    assert all(i.get("ReadReplicaSourceDBInstanceIdentifier") for i in _instances(seeded, fl).values())


_DB = "databases:\n  - {identifier: a, region: us-east-1}\n"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, ["does not exist", "--file"]),
        ("databases: [ {identifier: a, region: us-east-1\n", ["not valid YAML", "line"]),
        ("- just a list\n", ["must be a mapping"]),
        ("databases:\n  - {identifier: a, region: us-east-9}\n", ["'us-east-9' is not an AWS region", " a:"]),
        ("databases:\n  - {identifier: a}\n", ["databases[0] has no `region`"]),
        (_DB + "  - {identifier: a, region: us-west-2}\n", ["twice", "a"]),
        (_DB + "records:\n  - {zoneId: Z1, name: x.example.com, db: b}\n", ["x.example.com", "database b"]),
        (_DB + "records:\n  - {zoneId: Z1, db: a}\n", ["records[0] has no `name`"]),
        (_DB + "record:\n  - {zoneId: Z1, name: x, db: a}\n", ["unknown key(s) record"]),
        ("databases: []\n", ["no databases"]),
    ],
    ids=[
        "missing-file",
        "malformed-yaml",
        "not-a-mapping",
        "unknown-region",
        "missing-key",
        "duplicate-id",
        "record-unknown-db",
        "record-no-name",
        "typo-key",
        "empty",
    ],
)
def test_fleet_bad_file_exit_2(
    content: str | None, expected: list[str], cli_calls: CallRecorder, tmp_path: Path
) -> None:
    path = tmp_path / "fleet.yaml"
    if content is not None:
        path.write_text(content)
    for command in ("failover", "plan"):
        res = invoke(
            ["fleet", command, "--file", str(path), "--yes"][: 5 if command == "failover" else 4], tmp_path
        )
        assert res.exit_code == 2, res.output
        assert str(path) in res.output
        for text in expected:
            assert text in res.output
    assert len(cli_calls) == 0  # rejected before any AWS call


def test_fleet_plan_is_offline_and_lists_the_steps(cli_calls: CallRecorder, tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        "databases:\n  - {identifier: a, region: us-east-1}\n  - {identifier: b, region: eu-west-1}\n"
        "records:\n  - {zoneId: Z1, name: a.example.com, db: a}\n  - {zoneId: Z1, name: b.example.com, db: b}\n"
    )
    res = invoke(["fleet", "plan", "--file", str(path)], tmp_path)
    assert res.exit_code == 0, res.output
    steps = {s["id"]: s for s in json.loads(res.stdout)["steps"]}
    assert set(steps["dns-Z1"]["depends_on"]) == {"promoted-us-east-1", "promoted-eu-west-1"}
    assert set(steps["promote-a"]["depends_on"]) == {"inventory-us-east-1", "inventory-eu-west-1"}
    assert len(cli_calls) == 0
