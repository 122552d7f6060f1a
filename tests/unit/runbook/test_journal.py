from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from moto import mock_aws

from dr.aws.session import ClientProvider
from dr.errors import NotFound
from dr.runbook.executor import Executor
from dr.runbook.journal import REDACTED, Journal, S3Mirror, new_run_id, scrub
from dr.runbook.plan import Plan, Step, StepContext

PASSWORD = "Sup3r-S3cret-pa55w0rd-71x"  # a known secret: must never reach the file


def test_run_ids_are_sortable_and_unique() -> None:
    import datetime as dt

    a = new_run_id(dt.datetime(2026, 11, 24, 7, 15, tzinfo=dt.UTC))
    b = new_run_id(dt.datetime(2026, 11, 24, 7, 16, tzinfo=dt.UTC))
    assert re.fullmatch(r"20261124T071500Z-[0-9a-f]{6}", a)
    assert a < b
    assert len({new_run_id() for _ in range(50)}) == 50


def test_scrub_redacts_secret_keys_and_url_credentials() -> None:
    out = scrub(
        {
            "MasterUserPassword": PASSWORD,
            "nested": {"auth_token": PASSWORD, "db": "postgresql://app:" + PASSWORD + "@db.example:5432/app"},
            "DBInstanceIdentifier": "db1",
            "list": ["redis://:" + PASSWORD + "@cache:6379"],
        }
    )
    text = json.dumps(out)
    assert PASSWORD not in text
    assert out["MasterUserPassword"] == REDACTED
    assert out["nested"]["db"] == "postgresql://app:***@db.example:5432/app"
    assert out["DBInstanceIdentifier"] == "db1"


def test_journal_never_contains_a_secret_output(tmp_path: Path) -> None:
    def action(ctx: StepContext) -> None:
        ctx.set("db_password", PASSWORD)
        ctx.set("database_url", f"postgresql://app:{PASSWORD}@db.example/app")
        ctx.set("connection", {"host": "db.example", "password": PASSWORD})
        ctx.set("endpoint", "db.example")
        raise RuntimeError(f"connect failed for postgresql://app:{PASSWORD}@db.example/app")

    plan = Plan("p", [Step("a", "a", "us-east-1", "rds", action=action)])
    journal = Journal.create(tmp_path, "p")
    ctx = StepContext(run_id=journal.run_id)
    result = Executor(plan, ctx, journal=journal).run()
    journal.close()
    text = journal.path.read_text()
    assert PASSWORD not in text
    assert PASSWORD not in json.dumps(result.to_dict())
    assert ctx.get("db_password") == PASSWORD  # the run itself still has it in memory
    state = Journal.load(tmp_path, journal.run_id)
    # Redacted outputs are not restored on resume (a step must recompute them); plain ones are.
    assert state.outputs == {"endpoint": "db.example"}


def test_every_line_is_json_with_seq_ts_kind(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path, "plan-x", run_id="20261124T071500Z-abcdef")
    journal.event("run_started", plan="plan-x", steps=[])
    journal.event("step_started", step="a")
    journal.close()
    assert journal.path == tmp_path / "20261124T071500Z-abcdef" / "journal.jsonl"
    lines = [json.loads(x) for x in journal.path.read_text().splitlines()]
    assert [e["seq"] for e in lines] == [1, 2]
    assert all({"ts", "t", "run_id", "kind"} <= set(e) for e in lines)


def test_load_replays_completed_interrupted_and_survives_a_torn_line(tmp_path: Path) -> None:
    journal = Journal.create(tmp_path, "p")
    journal.event("run_started", plan="p")
    journal.event("step_started", step="a")
    journal.event("step_action_done", step="a")
    journal.event("step_done", step="a", duration=1.5, calls=[{"operation": "CreateDBSnapshot"}])
    journal.event("step_started", step="b")
    journal.event("step_action_done", step="b")
    journal.event("output_set", key="snap", value="s-1")
    journal.close()
    with journal.path.open("a") as fh:
        fh.write('{"seq": 8, "kind": "step_do')  # kill -9 mid-write
    state = Journal.load(tmp_path, journal.run_id)
    assert state.plan == "p"
    assert state.completed == {"a"}
    assert state.interrupted == ["b"]
    assert state.interrupted_step == "b"
    assert state.action_done == {"a", "b"}
    assert state.outputs == {"snap": "s-1"}
    assert state.durations == {"a": 1.5}
    assert state.calls["a"] == [{"operation": "CreateDBSnapshot"}]
    assert state.torn_lines == [8]
    # Appending after a torn line starts a fresh line: the next load still parses every event.
    again = Journal.create(tmp_path, "p", run_id=journal.run_id)
    again.event("step_done", step="b", duration=2.0)
    again.close()
    assert Journal.load(tmp_path, journal.run_id).completed == {"a", "b"}


def test_load_unknown_run_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as info:
        Journal.load(tmp_path, "20261124T071500Z-000000")
    assert str(tmp_path) in info.value.message
    assert info.value.exit_code == 2


@mock_aws
def test_mirror_uploads_the_journal_to_s3(tmp_path: Path) -> None:
    clients = ClientProvider()
    s3 = clients.client("s3", "us-east-1")
    s3.create_bucket(Bucket="app-dr-journal-us-east-1")
    mirror = S3Mirror(clients, bucket="app-dr-journal-us-east-1", region="us-east-1")
    journal = Journal.create(tmp_path, "p", mirror=mirror)
    journal.event("run_started", plan="p")
    journal.event("run_finished", status="succeeded")
    journal.close()
    body = s3.get_object(Bucket="app-dr-journal-us-east-1", Key=mirror.key(journal.run_id))["Body"].read()
    assert body == journal.path.read_bytes()
    assert b"mirror_failed" not in body


@mock_aws
def test_mirror_failure_is_noted_and_does_not_fail_the_run(tmp_path: Path, estate: object) -> None:
    clients = ClientProvider()
    mirror = S3Mirror.for_estate(clients, estate, "us-east-1")  # type: ignore[arg-type]
    journal = Journal.create(tmp_path, "p", mirror=mirror)
    plan = Plan("p", [Step("a", "a", "us-east-1", "local")])
    result = Executor(plan, StepContext(run_id=journal.run_id), journal=journal).run()
    journal.close()
    assert result.status == "succeeded"
    kinds = [json.loads(x)["kind"] for x in journal.path.read_text().splitlines()]
    assert kinds.count("mirror_failed") == 1
    failure = next(json.loads(x) for x in journal.path.read_text().splitlines() if "mirror_failed" in x)
    assert "NoSuchBucket" in failure["error"]
    assert mirror.bucket in failure["target"]


def test_one_scrubber_for_runbook_and_drill_journals() -> None:
    from dr.drills import evidence as drill_journal
    from dr.runbook.journal import scrub

    assert drill_journal.scrub is scrub
    out = scrub(
        {
            "conninfo": "host=db user=app password=hunter2",
            "note": "host=db user=app password='hunter 2' sslpassword=x&y",
            "url": "postgresql://app:hunter2@db:5432/app",
            "secret_arn": "arn:aws:secretsmanager:us-east-1:1:secret:x",
        }
    )
    text = repr(out)
    assert "hunter" not in text and "sslpassword=***" in text
    assert out["conninfo"] == "<redacted>"
    assert out["url"] == "postgresql://app:***@db:5432/app"
    assert out["secret_arn"].startswith("arn:aws:secretsmanager")
