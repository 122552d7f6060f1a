"""`dr failover` / `dr failback` / `dr reconcile` through the CLI (moto + fake Kubernetes API)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from dr.aws.session import CallRecorder
from tests.unit.procedures.estate_seed import (
    STACKS,
    cli_calls,
    create_restored,
    db_network,
    lock_held_by,
    mutating,
    put_caught_up,
    seeded,
)
from tests.unit.procedures.test_failover import Env, env

__all__ = ["cli_calls", "env", "seeded"]


@pytest.fixture(autouse=True)
def databases_reachable(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's psycopg connections reach the (moto) databases, caught up: a planned switchover
    can prove RPO 0 by WAL position (it is refused where it cannot)."""
    monkeypatch.setattr("dr.procedures.pg_session.default_connect", env.pg.connect)


def dr(
    args: list[str],
    tmp_path: Path,
    *,
    stack_dir: Path = STACKS,
    json_out: bool = True,
    input: str | None = None,
) -> Any:
    from dr.cli.main import cli

    base = ["--stack-dir", str(stack_dir)] + (["-o", "json"] if json_out else [])
    return CliRunner().invoke(
        cli,
        [*base, *args],
        env={"DR_RUNS_DIR": str(tmp_path / "cli-runs")},
        catch_exceptions=False,
        input=input,
    )


def test_failover_dry_run_prints_every_call_and_changes_nothing(
    env: Env, cli_calls: CallRecorder, tmp_path: Path
) -> None:
    res = dr(["failover", "--to", "secondary", "--dry-run", "--kubeconfig", env.kubeconfig], tmp_path)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["run"]["status"] == "dry-run"
    steps = {s["id"]: s for s in out["run"]["planned"]["steps"]}
    assert "route-traffic" in steps and "promote-db" in steps
    assert out["run"]["planned"]["critical_path"]["steps"]
    assert cli_calls.mutating() == []  # not even the lock
    assert out["reconcile_command"].endswith("reconcile --primary dr")
    assert "when_source_returns" not in out  # planned: the source's writers are stopped by the plan
    table = dr(["failover", "--dry-run", "--kubeconfig", env.kubeconfig], tmp_path, json_out=False)
    assert table.exit_code == 0, table.output
    assert "Dry run of plan failover: no change was made." in table.output
    assert cli_calls.mutating() == []


@pytest.mark.slow
def test_failover_unplanned_runs_and_reports_timings(
    env: Env, cli_calls: CallRecorder, tmp_path: Path
) -> None:
    res = dr(["failover", "--mode", "unplanned", "--yes", "--kubeconfig", env.kubeconfig], tmp_path)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    run = out["run"]
    assert run["status"] == "succeeded"
    assert run["critical_path"] and run["wall_seconds"] > 0 and run["ratio"] is not None
    assert all(s["duration"] is not None for s in run["steps"])
    assert out["active_region"] == env.estate.secondary.region
    assert "rds:PromoteReadReplica" in mutating(cli_calls)
    # nothing went to the source region: what to do when it returns (fence its writers, re-protect)
    src = env.estate.primary.region
    # the hints carry the options this run used: copied as is, they act on the same estate
    assert out["when_source_returns"] == [
        f"dr --stack-dir {STACKS} --stack prod ops stop-writes --region {src}",
        f"dr --stack-dir {STACKS} --stack prod reprotect --region {src}",
    ]
    assert out["reconcile_command"] == f"dr --stack-dir {STACKS} --stack prod reconcile --primary dr"
    # The lock was taken (and released) in the surviving region.
    locks = [c for c in cli_calls.mutating() if c.service == "dynamodb"]
    assert locks and {c.region for c in locks} == {env.estate.secondary.region}


def test_failover_gate_refusal_exits_3_and_changes_nothing(
    env: Env, cli_calls: CallRecorder, tmp_path: Path
) -> None:
    env.s.put_lag(60.0, at=env.now)
    env.s.put_lag(60.0)
    res = dr(["failover", "--yes", "--max-lag", "5s", "--kubeconfig", env.kubeconfig], tmp_path)
    assert res.exit_code == 3, res.output
    assert "over the 5s budget" in res.output
    assert cli_calls.mutating() == []


def test_failover_lock_held_exits_3(env: Env, cli_calls: CallRecorder, tmp_path: Path) -> None:
    with lock_held_by(env.clients, env.estate, "someone@else"):
        res = dr(["failover", "--mode", "unplanned", "--yes", "--kubeconfig", env.kubeconfig], tmp_path)
    assert res.exit_code == 3, res.output
    assert "someone@else" in res.output
    assert [m for m in mutating(cli_calls)] == []


def test_reconcile_cli_diff_then_write_then_noop(tmp_path: Path) -> None:
    stacks = tmp_path / "stacks"
    shutil.copytree(STACKS, stacks)
    res = dr(["reconcile", "--primary", "dr", "--dry-run"], tmp_path, stack_dir=stacks, json_out=False)
    assert res.exit_code == 0, res.output
    assert "+  dr-toolkit:role: primary" in res.output and "(dry run)" in res.output
    assert (stacks / "Pulumi.dr.yaml").read_text() == (STACKS / "Pulumi.dr.yaml").read_text()
    res = dr(["reconcile", "--primary", "dr"], tmp_path, stack_dir=stacks, json_out=False, input="n\n")
    assert res.exit_code == 2  # the operator declined: nothing written
    assert (stacks / "Pulumi.dr.yaml").read_text() == (STACKS / "Pulumi.dr.yaml").read_text()
    res = dr(["reconcile", "--primary", "dr", "--yes"], tmp_path, stack_dir=stacks)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["written"] and not out["noop"]
    assert yaml.safe_load((stacks / "Pulumi.dr.yaml").read_text())["config"]["dr-toolkit:role"] == "primary"
    res = dr(["reconcile", "--primary", "dr", "--yes"], tmp_path, stack_dir=stacks)
    assert json.loads(res.stdout)["noop"] is True


def test_reconcile_without_primary_refuses_before_the_failover(env: Env, tmp_path: Path) -> None:
    stacks = tmp_path / "stacks"
    shutil.copytree(STACKS, stacks)
    res = dr(["reconcile", "--yes"], tmp_path, stack_dir=stacks)
    # Route53 serves prod, whose DB is the primary: already reconciled.
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["noop"] is True


@pytest.mark.slow
def test_failover_then_reconcile_flag_rewrites_stacks(env: Env, tmp_path: Path) -> None:
    stacks = tmp_path / "stacks"
    shutil.copytree(STACKS, stacks)
    res = dr(
        ["failover", "--mode", "unplanned", "--yes", "--reconcile", "--kubeconfig", env.kubeconfig],
        tmp_path,
        stack_dir=stacks,
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["reconcile"]["written"] is True
    assert yaml.safe_load((stacks / "Pulumi.dr.yaml").read_text())["config"]["dr-toolkit:role"] == "primary"
    # Now Route53 serves DR and its DB is standalone: `dr reconcile` finds nothing left to do.
    res = dr(["reconcile", "--yes"], tmp_path, stack_dir=stacks)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["noop"] is True


@pytest.mark.slow
def test_failback_cli_dry_run_then_run(env: Env, cli_calls: CallRecorder, tmp_path: Path) -> None:
    from dr.runbook.lock import create_lock_table

    estate = env.estate
    first = env.run(env.plan("unplanned"))
    assert first.status == "succeeded", first.summary()
    # The lock table is a global table: it has a replica in the original region too (unused: a
    # failback locks in the DR region's copy, like every other planned run and `dr ops`).
    create_lock_table(env.clients, estate.lock_table, estate.primary.region)
    for view in (estate.primary, estate.secondary):
        db_network(env.clients, estate, view)  # where the new replica is placed
    before = len(cli_calls.mutating())
    res = dr(["failback", "--dry-run", "--kubeconfig", env.kubeconfig], tmp_path)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["run"]["status"] == "dry-run"
    assert out["preflight"]["target_region"] == estate.primary.region
    assert out["preflight"]["replica"] == estate.primary.database.identifier
    assert out["preflight"]["moved_aside_to"].startswith(f"{estate.primary.database.identifier}-old-")
    assert len(cli_calls.mutating()) == before

    # A run holding the estate's lock (e.g. `dr ops scale`, which locks in the DR copy) keeps the
    # failback out: both lock in the same copy of the global table.
    with lock_held_by(env.clients, estate, "oncall-b@laptop", "ops-run"):
        res = dr(["failback", "--yes", "--kubeconfig", env.kubeconfig, "--timeout", "30"], tmp_path)
    assert res.exit_code == 3, res.output
    assert "oncall-b@laptop" in res.output
    assert len(cli_calls.mutating()) == before + 1  # only the refused conditional lock write

    replica = out["preflight"]["replica"]
    put_caught_up(env.clients, estate.primary.region, replica, env.now)
    res = dr(["failback", "--yes", "--kubeconfig", env.kubeconfig, "--timeout", "30"], tmp_path)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["run"]["status"] == "succeeded"
    assert out["active_region"] == estate.primary.region
    locks = [c for c in cli_calls.mutating()[before:] if c.service == "dynamodb"]
    assert locks and {c.region for c in locks} == {estate.secondary.region}


@pytest.mark.slow
def test_reprotect_cli_after_a_failover(env: Env, cli_calls: CallRecorder, tmp_path: Path) -> None:
    """The estate stays on DR after an unplanned failover: `dr reprotect` shows (dry run), then
    rebuilds the original region's database as a replica of DR's, under the lock; a second run
    has nothing to do."""
    estate, prod = env.estate, env.estate.primary
    res = dr(["failover", "--mode", "unplanned", "--yes", "--kubeconfig", env.kubeconfig], tmp_path)
    assert res.exit_code == 0, res.output
    before = len(cli_calls.mutating())
    kc = ["--kubeconfig", env.kubeconfig]
    # No DB subnet group / database security group in the region: refused before anything changes
    # (RDS would otherwise put the replica in the default VPC with the default security group).
    res = dr(["reprotect", "--yes", *kc], tmp_path, json_out=False)
    assert res.exit_code == 2, res.output
    assert estate.db_subnet_group(prod) in res.output and prod.region in res.output
    assert len(cli_calls.mutating()) == before
    for view in (prod, estate.secondary):
        db_network(env.clients, estate, view)
    res = dr(["reprotect", "--dry-run", *kc], tmp_path)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["run"]["status"] == "dry-run" and len(cli_calls.mutating()) == before
    pre = out["preflight"]
    assert (pre["source_region"], pre["target_region"]) == (estate.secondary.region, prod.region)
    assert pre["moved_aside_to"].startswith(f"{prod.database.identifier}-old-")
    restarts = [f"restart-{d.name}" for d in estate.app.deployments]
    assert [s["id"] for s in out["run"]["planned"]["steps"]] == [
        "move-aside",
        "create-replica",
        "replica-in-sync",
        *restarts,
        "standby-pods-ready",
        "redis-standby",
    ]
    assert pre["redis"]["action"] == "none"  # the old primary region kept its cache

    put_caught_up(env.clients, prod.region, prod.database.identifier, env.now)
    res = dr(["reprotect", "--yes", "--timeout", "30", *kc], tmp_path, json_out=False)
    assert res.exit_code == 0, res.output
    assert f"{prod.database.identifier} in {prod.region} now replicates" in res.output
    assert pre["moved_aside_to"] in res.output  # the warning names the kept instance
    sent = [f"{c.service}:{c.operation}" for c in cli_calls.mutating()[before:] if c.service == "rds"]
    assert sorted(sent) == [
        "rds:AddTagsToResource",
        "rds:CreateDBInstanceReadReplica",
        "rds:ModifyDBInstance",
    ]
    locks = [c for c in cli_calls.mutating()[before:] if c.service == "dynamodb"]
    assert locks and {c.region for c in locks} == {estate.secondary.region}

    res = dr(["reprotect", "--yes", *kc], tmp_path, json_out=False)
    assert res.exit_code == 0, res.output
    assert "already replicates" in res.output


@pytest.mark.slow
def test_reprotect_db_after_a_failover_onto_a_restored_instance(
    env: Env, cli_calls: CallRecorder, tmp_path: Path
) -> None:
    """`dr failover --db <restored>` leaves DR's own database a replica: `dr reprotect` alone is
    refused and says to pass --db; a --db that is missing, a replica, or in the standby region is
    bad input (exit 2, nothing changed); with the restored instance the primary region's database
    becomes its replica (dry run first)."""
    estate, prod, drs = env.estate, env.estate.primary, env.estate.secondary
    restored = f"{drs.database.identifier}-pitr-120000"
    create_restored(env.clients, drs.region, restored)
    kc = ["--kubeconfig", env.kubeconfig]
    res = dr(["failover", "--mode", "unplanned", "--db", restored, "--yes", *kc], tmp_path)
    assert res.exit_code == 0, res.output
    db_network(env.clients, estate, prod)  # where the new replica is placed
    before = len(cli_calls.mutating())

    res = dr(["reprotect", "--dry-run", *kc], tmp_path)
    assert res.exit_code == 3 and "itself a read replica" in res.output and "--db" in res.output
    for bad, says in [
        ("no-such-db", f"no such DB instance in {drs.region}"),
        (drs.database.identifier, "is a read replica of"),
        (prod.database.identifier, f"it is in {prod.region}, the standby region"),
    ]:
        res = dr(["reprotect", "--db", bad, "--yes", *kc], tmp_path)
        assert res.exit_code == 2, res.output
        assert says in res.output and bad in res.output and drs.region in res.output, res.output
    assert len(cli_calls.mutating()) == before

    res = dr(["reprotect", "--db", restored, "--dry-run", *kc], tmp_path)
    assert res.exit_code == 0, res.output
    pre = json.loads(res.stdout)["preflight"]
    assert (pre["source_db"], pre["source_region"], pre["target_region"]) == (
        restored,
        drs.region,
        prod.region,
    )
    assert len(cli_calls.mutating()) == before

    put_caught_up(env.clients, prod.region, prod.database.identifier, env.now)
    env.api("primary").backdate_pods(estate.app.namespace, 60)
    res = dr(["reprotect", "--db", restored, "--yes", "--timeout", "30", *kc], tmp_path, json_out=False)
    assert res.exit_code == 0, res.output
    assert f"now replicates {restored} ({drs.region})" in res.output
    back = env.s.db(prod.region, prod.database.identifier)
    assert back["ReadReplicaSourceDBInstanceIdentifier"].endswith(f":db:{restored}")
