"""Restore window validation (pure), SQL checks, and verification with an injected connection."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from dr.aws.rds import DbInstance
from dr.errors import BadInput
from dr.procedures.pg_session import Check, run_checks
from dr.procedures.restore import check_restore_time, restorable_window
from dr.procedures.support import parse_time

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)
BASE = DbInstance(
    identifier="src",
    region="us-west-2",
    arn="arn",
    status="available",
    engine="postgres",
    engine_version="15",
    instance_class="db.r6g.large",
    multi_az=True,
    encrypted=True,
    kms_key_id=None,
    endpoint=None,
    port=None,
    replica_source=None,
    replicas=(),
    latest_restorable_time=NOW - dt.timedelta(minutes=5),
    backup_retention_days=7,
    created=NOW - dt.timedelta(days=30),
    subnet_group=None,
    security_groups=(),
    parameter_group=None,
    deletion_protection=False,
)


def test_window_is_retention_bounded() -> None:
    w = restorable_window(BASE, NOW)
    assert w.earliest == NOW - dt.timedelta(days=7)
    assert w.latest == NOW - dt.timedelta(minutes=5)


def test_window_starts_at_creation_for_young_instances() -> None:
    w = restorable_window(replace(BASE, created=NOW - dt.timedelta(hours=3)), NOW)
    assert w.earliest == NOW - dt.timedelta(hours=3)


@pytest.mark.parametrize(
    ("when", "ok"),
    [
        (NOW - dt.timedelta(days=7), True),
        (NOW - dt.timedelta(minutes=5), True),
        (NOW - dt.timedelta(days=7, seconds=1), False),
        (NOW - dt.timedelta(minutes=4), False),  # newer than LatestRestorableTime
        (NOW + dt.timedelta(hours=1), False),
    ],
)
def test_check_restore_time_bounds(when: dt.datetime, ok: bool) -> None:
    w = restorable_window(BASE, NOW)
    if ok:
        check_restore_time(w, when)
    else:
        with pytest.raises(BadInput) as err:
            check_restore_time(w, when)
        assert err.value.region == "us-west-2" and "src" in err.value.message


def test_no_pitr_without_backups_or_restorable_time() -> None:
    with pytest.raises(BadInput, match="BackupRetentionPeriod 0"):
        restorable_window(replace(BASE, backup_retention_days=0), NOW)
    with pytest.raises(BadInput, match="no LatestRestorableTime"):
        restorable_window(replace(BASE, latest_restorable_time=None), NOW)


def test_parse_time_forms() -> None:
    assert parse_time("2026-11-24T06:30:00Z") == dt.datetime(2026, 11, 24, 6, 30, tzinfo=dt.UTC)
    assert parse_time("2026-11-24T07:30:00+01:00") == dt.datetime(2026, 11, 24, 6, 30, tzinfo=dt.UTC)
    assert parse_time("2026-11-24T06:30:00") == dt.datetime(2026, 11, 24, 6, 30, tzinfo=dt.UTC)
    with pytest.raises(BadInput, match="ISO-8601"):
        parse_time("yesterday")


class _Cursor:
    def __init__(self, conn: _Conn) -> None:
        self.conn = conn
        self.row: Any = None

    def __enter__(self) -> _Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def execute(self, query: Any) -> None:
        text = query if isinstance(query, str) else query.as_string(None)
        self.conn.queries.append(text)
        if text in self.conn.answers:
            answer = self.conn.answers[text]
            if isinstance(answer, Exception):
                raise answer
            self.row = answer
        else:
            raise RuntimeError(f"relation does not exist: {text}")

    def fetchone(self) -> Any:
        return self.row


class _Conn:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.queries: list[str] = []
        self.rolled_back = 0
        self.closed = False

    def cursor(self) -> _Cursor:
        return _Cursor(self)

    def rollback(self) -> None:
        self.rolled_back += 1

    def close(self) -> None:
        self.closed = True


def test_run_checks_quotes_identifiers_and_reports_each() -> None:
    conn = _Conn(
        {
            'SELECT count(*) FROM "public"."orders"': (12,),
            'SELECT count(*) FROM "users"': (0,),
            "SELECT max(ts) > now() - interval '1 day' FROM heartbeat": (True,),
        }
    )
    checks = [
        Check.parse_table("public.orders:10"),
        Check.parse_table("users"),
        Check(name="fresh", sql="SELECT max(ts) > now() - interval '1 day' FROM heartbeat"),
        Check.parse_table("missing"),
    ]
    out = run_checks(conn, checks)
    assert [(r.ok, r.detail) for r in out[:3]] == [
        (True, "12 rows"),
        (False, "0 rows"),
        (True, "returned True"),
    ]
    assert out[3].ok is False and "RuntimeError" in out[3].detail
    assert conn.rolled_back == 1  # a failed statement does not poison the next ones
    with pytest.raises(BadInput, match="row count"):
        Check.parse_table("orders:many")


def test_verify_with_injected_connection_and_cleanup(seeded: Any, tmp_path: Path) -> None:
    """--verify reads the Secrets Manager credentials, connects, runs the checks; cleanup deletes."""
    from moto.backends import get_backend

    from dr.procedures.restore import prepare_pitr, restore_plan
    from dr.runbook.runner import run_plan
    from tests.unit.procedures.estate_seed import PASSWORD

    est = seeded.estate
    db = get_backend("rds")["123456789012"][est.primary.region].databases[est.primary.database.identifier]
    db.created = db.instance_create_time = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    seen: dict[str, Any] = {}

    def connect(**kwargs: Any) -> _Conn:
        seen.update(kwargs)
        return _Conn({'SELECT count(*) FROM "orders"': (5,)})

    req = prepare_pitr(
        seeded.clients,
        est,
        est.primary,
        source=None,
        target="verify-me",
        when=None,
        minutes_ago=10,
        checks=[Check.parse_table("orders:5")],
        verify=True,
        cleanup=True,
    )
    plan = restore_plan(req, connect=connect)
    assert plan.order() == ["restore", "verify", "cleanup", "verdict"]
    result = run_plan(
        plan,
        {"clients": seeded.clients, "estate": est},
        dry_run=False,
        assume_yes=True,
        resume=None,
        runs_dir=tmp_path,
        lock=None,
        break_lock=False,
        output="json",
    )
    assert result.status == "succeeded", [s.error for s in result.steps]
    assert seen["user"] == est.app.database.username and seen["password"] == PASSWORD
    assert seen["dbname"] == est.app.database.db_name and seen["host"].startswith("verify-me")
    names = {
        d["DBInstanceIdentifier"]
        for d in seeded.rds(est.primary.region).describe_db_instances()["DBInstances"]
    }
    assert "verify-me" not in names
    journal = next(tmp_path.rglob("journal.jsonl")).read_text()
    assert PASSWORD not in journal and "5 rows" in journal


def test_cleanup_only_deletes_what_the_toolkit_restored(seeded: Any) -> None:
    """A --cleanup resumed onto a same-named instance someone else made must not delete it."""
    from dr.runbook.plan import StepContext
    from dr.steps import CLEANUP_RESTORED_DB

    est = seeded.estate
    rds = seeded.rds(est.primary.region)
    rds.create_db_instance(
        DBInstanceIdentifier="not-ours",
        Engine="postgres",
        DBInstanceClass="db.t3.micro",
        MasterUsername="app_admin",
        MasterUserPassword="not-a-real-password",
        AllocatedStorage=20,
        DeletionProtection=True,
    )
    step = CLEANUP_RESTORED_DB.build(est.primary.region, "not-ours")
    ctx = StepContext(run_id="t", services={"clients": seeded.clients})
    assert step.action is not None
    with pytest.raises(BadInput, match="not created by dr-toolkit"):
        step.action(ctx)
    assert rds.describe_db_instances(DBInstanceIdentifier="not-ours")["DBInstances"][0]["DeletionProtection"]
    # ours (tagged) with inherited deletion protection: unprotected, then deleted
    arn = rds.describe_db_instances(DBInstanceIdentifier="not-ours")["DBInstances"][0]["DBInstanceArn"]
    rds.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "dr:created-by", "Value": "dr-toolkit"}])
    step.action(ctx)
    assert step.wait is not None and step.wait(ctx)


def _backups(**kw: Any) -> Any:
    from dr.aws.rds import ReplicatedBackups

    values: dict[str, Any] = {
        "instance": "src",
        "source_arn": "arn:aws:rds:us-west-2:123456789012:db:src",
        "status": "replicating",
        "earliest": NOW - dt.timedelta(hours=2),
        "latest": NOW - dt.timedelta(minutes=9),
        "arn": "arn:aws:rds:us-east-1:123456789012:auto-backup:ab-x",
        "region": "us-east-1",
        "source_region": "us-west-2",
    }
    return ReplicatedBackups(**(values | kw))


def test_window_is_the_automated_backups_restore_window_when_known() -> None:
    """A promoted instance's backups start at its promotion, not at its creation: the RestoreWindow
    of DescribeDBInstanceAutomatedBackups wins over now - retention."""
    own = _backups(region="us-west-2", earliest=NOW - dt.timedelta(hours=1))
    w = restorable_window(BASE, NOW, own)
    assert (w.earliest, w.latest) == (NOW - dt.timedelta(hours=1), NOW - dt.timedelta(minutes=9))
    with pytest.raises(BadInput, match="before the earliest"):
        check_restore_time(w, NOW - dt.timedelta(hours=2))  # inside now - retention: RDS refuses it


def test_replicated_window_names_the_backups_and_the_dr_region() -> None:
    from dr.procedures.restore import replicated_window

    w = replicated_window(_backups())
    assert w.region == "us-east-1" and "replicated from us-west-2" in w.source
    with pytest.raises(BadInput) as err:
        check_restore_time(w, NOW - dt.timedelta(minutes=5))  # past LatestTime: it lags
    assert err.value.region == "us-east-1" and "window" in err.value.message
    with pytest.raises(BadInput, match="no restorable time yet"):
        replicated_window(_backups(earliest=None, latest=None, status="pending"))


def test_replicated_restore_takes_the_dr_sites_network_not_the_sources() -> None:
    from dr.procedures.restore import site_settings
    from dr.topology import load_estate
    from tests.conftest import STACKS

    estate = load_estate(STACKS, "prod")
    dr = estate.secondary
    here = replace(
        BASE,
        subnet_group="dr-subnets",
        security_groups=("sg-dr",),
        parameter_group="dr-params",
        region=dr.region,
    )
    settings = site_settings(estate, dr, here)
    assert settings["DBSubnetGroupName"] == "dr-subnets"
    assert settings["VpcSecurityGroupIds"] == ["sg-dr"] and settings["DBParameterGroupName"] == "dr-params"
    assert (
        settings["DBInstanceClass"] == dr.database.instance_class and settings["DeletionProtection"] is False
    )
    # The DR instance gone too: the stack files' subnet group, no foreign security group.
    bare = site_settings(estate, dr, None)
    assert bare["DBSubnetGroupName"] == estate.db_subnet_group(dr) and "VpcSecurityGroupIds" not in bare


def test_a_time_just_past_the_window_is_shown_to_the_millisecond() -> None:
    w = restorable_window(BASE, NOW)
    with pytest.raises(BadInput) as err:
        check_restore_time(w, w.latest + dt.timedelta(milliseconds=250))
    assert ".250" in err.value.message and "after the latest" in err.value.message
