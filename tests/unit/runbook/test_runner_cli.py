"""run_plan + plan_options + render_run through a tiny click command (CliRunner, moto)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from moto import mock_aws

from dr.aws.session import CallRecorder, ClientProvider
from dr.cli.plan_command import RunOptions, exit_for, plan_options, render_plan, render_run
from dr.runbook.lock import DynamoLock, create_lock_table
from dr.runbook.plan import Plan, Step
from dr.runbook.runner import run_plan
from tests.unit.runbook.snapplan import REGION, create_db, snapshot_exists, snapshot_plan

TABLE = "app-dr-lock"


class World:
    def __init__(self) -> None:
        self.recorder = CallRecorder()
        self.locks: list[DynamoLock] = []
        self.fail_step: str | None = None


def make_cli(world: World) -> click.Command:
    @click.command()
    @plan_options
    @click.option("-o", "--output", default="table")
    @click.option("--plan-only", is_flag=True)
    def snap(run: RunOptions, output: str, plan_only: bool) -> None:
        clients = ClientProvider(read_only=run.dry_run)
        clients.add_recorder(world.recorder)
        plan = snapshot_plan(clients)
        if world.fail_step:
            step = plan.step(world.fail_step)

            def boom(_ctx: Any) -> None:
                raise RuntimeError("CreateDBSnapshot refused: InvalidDBInstanceState")

            step.action = boom
        if plan_only:
            render_plan(output, plan)
            return
        # The lock gets its own provider: its writes are not the plan's calls.
        lock = DynamoLock(ClientProvider(), table=TABLE, region=REGION, name="snapshots", holder="tester@ci")
        world.locks.append(lock)
        result = run_plan(plan, {"clients": clients}, **run.engine(), lock=lock, output=output)
        render_run(output, result)
        exit_for(result)

    return snap


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        clients = ClientProvider()
        create_db(clients)
        create_lock_table(clients, TABLE, REGION)
        yield World()


def invoke(world: World, *args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(make_cli(world), list(args), input=input)


def test_dry_run_makes_zero_mutating_calls_and_prints_every_operation(world: World, tmp_path: Path) -> None:
    res = invoke(world, "--dry-run", "--runs-dir", str(tmp_path), "-o", "json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["status"] == "dry-run"
    ops = [op for s in out["planned"]["steps"] for op in s["operations"]]
    assert {(o["service"], o["action"], o["params"]["DBSnapshotIdentifier"]) for o in ops} == {
        ("rds", "CreateDBSnapshot", f"manual-snapshot-{i}") for i in ("s1", "s2", "s3")
    }
    assert all(s["region"] == REGION for s in out["planned"]["steps"])
    # The checks ran (read calls were made) but nothing mutating was even attempted.
    assert any(c.operation == "DescribeDBSnapshots" for c in world.recorder.calls)
    assert world.recorder.mutating() == []
    assert not snapshot_exists(ClientProvider(), "manual-snapshot-s1")
    assert not list(tmp_path.iterdir())  # no journal for a dry run


def test_dry_run_table_output_lists_steps_regions_and_params(world: World, tmp_path: Path) -> None:
    res = invoke(world, "--dry-run", "--runs-dir", str(tmp_path))
    assert res.exit_code == 0, res.output
    assert "rds:CreateDBSnapshot" in res.stdout
    assert "manual-snapshot-s2" in res.stdout and REGION in res.stdout
    assert "no change was made" in res.stdout
    assert world.recorder.mutating() == []


def test_render_plan_json(world: World) -> None:
    res = invoke(world, "--plan-only", "-o", "json")
    plan = json.loads(res.stdout)
    assert plan["order"] == ["s1", "s2", "s3"]
    assert plan["steps"][1]["depends_on"] == ["s1"]


def test_declining_the_confirmation_exits_2_with_nothing_changed(world: World, tmp_path: Path) -> None:
    res = invoke(world, "--runs-dir", str(tmp_path), input="n\n")
    assert res.exit_code == 2
    assert "nothing was changed" in res.output
    assert "rds:CreateDBSnapshot" in res.stderr  # the plan was shown before asking
    assert world.recorder.mutating() == []
    assert world.locks[0].peek() is None  # the lock was never taken


def test_confirmed_run_succeeds_and_json_is_the_only_stdout(world: World, tmp_path: Path) -> None:
    res = invoke(world, "--runs-dir", str(tmp_path), "-o", "json", input="y\n")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)  # stdout is exactly one JSON document
    assert out["status"] == "succeeded"
    assert out["summary"]["done"] == ["s1", "s2", "s3"]
    assert Path(out["journal_path"]).exists()
    assert out["ratio"] is not None and out["critical_path"] == ["s1", "s2", "s3"]
    assert len(world.recorder.mutating()) == 3
    assert world.locks[0].peek() is None  # released


def test_table_output_shows_the_live_view_on_stderr(world: World, tmp_path: Path) -> None:
    res = invoke(world, "--runs-dir", str(tmp_path), "--yes")
    assert res.exit_code == 0, res.output
    assert "plan snapshots" in res.stderr
    assert "Run " in res.stdout and "succeeded" in res.stdout and "journal:" in res.stdout


def test_failed_step_exits_1_and_reports_done_failed_not_started(world: World, tmp_path: Path) -> None:
    world.fail_step = "s2"
    res = invoke(world, "--runs-dir", str(tmp_path), "-y", "-o", "json")
    assert res.exit_code == 1
    out = json.loads(res.stdout)
    assert out["status"] == "failed"
    assert out["summary"]["done"] == ["s1"]
    assert out["summary"]["failed"] == ["s2"]
    assert out["summary"]["not_started"] == ["s3"]
    assert "InvalidDBInstanceState" in out["steps"][1]["error"]
    # Fix the cause and resume: s1 is not repeated, s2 and s3 run.
    world.fail_step = None
    res2 = invoke(world, "--runs-dir", str(tmp_path), "-y", "-o", "json", "--resume", out["run_id"])
    assert res2.exit_code == 0, res2.output
    assert json.loads(res2.stdout)["summary"]["done"] == ["s1", "s2", "s3"]
    creates = [c.params["DBSnapshotIdentifier"] for c in world.recorder.mutating()]
    assert sorted(creates) == ["manual-snapshot-s1", "manual-snapshot-s2", "manual-snapshot-s3"]


def test_lock_held_exits_3_naming_the_holder_and_changes_nothing(world: World, tmp_path: Path) -> None:
    other = DynamoLock(ClientProvider(), table=TABLE, region=REGION, name="snapshots", holder="alice@ops-1")
    other.acquire(run_id="20261124T070000Z-aaaaaa")
    try:
        res = invoke(world, "--runs-dir", str(tmp_path), "-y", "--break-lock")
        assert res.exit_code == 3
        assert "alice@ops-1" in res.output and "20261124T070000Z-aaaaaa" in res.output
        assert world.recorder.mutating() == []
    finally:
        other.release()


def test_break_lock_asks_and_takes_over_an_expired_lease(world: World, tmp_path: Path) -> None:
    clock = [1_000.0]
    stale = DynamoLock(
        ClientProvider(),
        table=TABLE,
        region=REGION,
        name="snapshots",
        holder="ghost@gone",
        clock=lambda: clock[0],
    )
    stale.acquire(run_id="20200101T000000Z-000000")
    stale._stop_renew.set()  # its process "died" long ago (lease expired in 1970)
    refused = invoke(world, "--runs-dir", str(tmp_path), "-y")
    assert refused.exit_code == 3 and "expired" in refused.output
    declined = invoke(world, "--runs-dir", str(tmp_path), "--break-lock", input="y\nn\n")
    assert declined.exit_code == 2 and "ghost@gone" in declined.output
    assert world.recorder.mutating() == []
    taken = invoke(world, "--runs-dir", str(tmp_path), "--break-lock", input="y\ny\n")
    assert taken.exit_code == 0, taken.output
    assert len(world.recorder.mutating()) == 3


def test_run_plan_json_output_has_no_live_view(tmp_path: Path) -> None:
    plan = Plan("tiny", [Step("a", "a", None, "local")])
    result = run_plan(
        plan,
        {},
        dry_run=False,
        assume_yes=True,
        resume=None,
        runs_dir=tmp_path,
        lock=None,
        break_lock=False,
        output="json",
    )
    assert result.status == "succeeded"
    assert result.journal_path and Path(result.journal_path).parent.parent == tmp_path


def test_journal_is_mirrored_to_the_estate_bucket_in_the_lock_region(
    world: World, tmp_path: Path, estate: Any
) -> None:
    s3 = ClientProvider().client("s3", REGION)
    bucket = estate.journal_bucket(REGION)
    s3.create_bucket(Bucket=bucket)
    lock = DynamoLock(ClientProvider(), table=TABLE, region=REGION, name="mirror", holder="tester@ci")
    plan = Plan("tiny", [Step("a", "a", None, "local")])
    result = run_plan(
        plan,
        {"estate": estate},
        dry_run=False,
        assume_yes=True,
        resume=None,
        runs_dir=tmp_path,
        lock=lock,
        break_lock=False,
        output="json",
    )
    key = f"runs/{result.run_id}/journal.jsonl"
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert body == Path(result.journal_path or "").read_bytes()
    assert b'"kind":"run_finished"' in body


def test_dry_run_forces_read_only_even_if_a_check_misbehaves(world: World, tmp_path: Path) -> None:
    clients = ClientProvider()  # writable on purpose: run_plan must still refuse writes in a dry run

    def bad_check(_ctx: Any) -> bool:
        clients.client("rds", REGION).create_db_snapshot(
            DBInstanceIdentifier="db1", DBSnapshotIdentifier="oops"
        )
        return False

    plan = Plan("p", [Step("a", "a", REGION, "rds", check=bad_check)])
    result = run_plan(
        plan,
        {"clients": clients},
        dry_run=True,
        assume_yes=True,
        resume=None,
        runs_dir=tmp_path,
        lock=None,
        break_lock=False,
        output="json",
    )
    assert result.status == "dry-run"
    assert "refused to send rds:CreateDBSnapshot" in (result.step("a").error or "")
    assert not snapshot_exists(clients, "oops")
    assert clients.read_only is False  # restored for the caller


def _locked_run(plan: Plan, lock: DynamoLock, tmp_path: Path) -> Any:
    return run_plan(
        plan,
        {},
        dry_run=False,
        assume_yes=True,
        resume=None,
        runs_dir=tmp_path,
        lock=lock,
        break_lock=False,
        output="json",
    )


def test_ctrl_c_releases_the_lock_and_journals_the_interruption(world: World, tmp_path: Path) -> None:
    lock = DynamoLock(ClientProvider(), table=TABLE, region=REGION, name="ctrl-c", holder="tester@ci")

    def ctrl_c(_ctx: Any) -> None:
        raise KeyboardInterrupt

    plan = Plan(
        "p", [Step("a", "a", None, "local", action=ctrl_c), Step("b", "b", None, "local", depends_on=("a",))]
    )
    with pytest.raises(KeyboardInterrupt):
        _locked_run(plan, lock, tmp_path)
    assert lock.peek() is None
    (journal,) = tmp_path.glob("*/journal.jsonl")
    kinds = [json.loads(x)["kind"] for x in journal.read_text().splitlines()]
    assert kinds[-1] == "run_interrupted" and "step_interrupted" in kinds


def test_a_lost_lock_stops_the_run_before_the_next_step(world: World, tmp_path: Path) -> None:
    lock = DynamoLock(ClientProvider(), table=TABLE, region=REGION, name="stolen", holder="tester@ci")
    ran: list[str] = []

    def stolen(_ctx: Any) -> None:
        # Someone broke our lock: overwrite the item, then our next renewal notices.
        ClientProvider().client("dynamodb", REGION).put_item(
            TableName=TABLE,
            Item={"name": {"S": "stolen"}, "holder": {"S": "mallory@elsewhere"}, "run_id": {"S": "x"}},
        )
        lock.renew()

    plan = Plan(
        "p",
        [
            Step("a", "a", None, "local", action=stolen),
            Step("b", "b", None, "local", depends_on=("a",), action=lambda _c: ran.append("b")),
        ],
    )
    result = _locked_run(plan, lock, tmp_path)
    assert result.status == "failed"
    assert result.step("b").status == "not_started" and "lock lost" in (result.step("b").error or "")
    assert ran == []
    kinds = [json.loads(x)["kind"] for x in Path(result.journal_path).read_text().splitlines()]
    assert "lock_lost" in kinds
    item = lock.peek()
    assert item is not None and item["holder"] == "mallory@elsewhere"  # we did not delete theirs
