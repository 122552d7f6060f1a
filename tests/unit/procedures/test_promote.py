"""Promote's completion condition: never trust the first "available" (statuses DO move in AWS)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from dr.aws.rds import DbInstance
from dr.errors import BadInput
from dr.procedures import promote as mod
from dr.procedures.promote import PromotePreflight, promote_plan
from dr.runbook.plan import StepContext
from dr.steps import db_promotion  # the promote step's kind


def _inst(status: str, source: str | None) -> DbInstance:
    return DbInstance(
        identifier="db-replica",
        region="us-east-1",
        arn="arn:aws:rds:us-east-1:1:db:db-replica",
        status=status,
        engine="postgres",
        engine_version="15",
        instance_class="db.r6g.large",
        multi_az=True,
        encrypted=True,
        kms_key_id=None,
        endpoint="db-replica.x.us-east-1.rds.amazonaws.com",
        port=5432,
        replica_source=source,
        replicas=(),
        latest_restorable_time=None,
        backup_retention_days=7,
        created=None,
        subnet_group=None,
        security_groups=(),
        parameter_group=None,
        deletion_protection=False,
    )


class _FakeRds:
    sequence: Iterator[DbInstance]

    def __init__(self, clients: Any, region: str) -> None:
        pass

    def describe_instance(self, identifier: str) -> DbInstance:
        return next(type(self).sequence)


def _wait_fn(monkeypatch: pytest.MonkeyPatch, states: list[DbInstance]) -> Any:
    _FakeRds.sequence = iter(states)
    monkeypatch.setattr(db_promotion, "Rds", _FakeRds)
    pre = PromotePreflight(
        "db-replica", "us-east-1", False, "arn:src", 1.0, dt.datetime.now(dt.UTC), "cw", 5, False
    )
    step = promote_plan(pre).steps[0]
    ctx = StepContext(run_id="t", services={"clients": object()})
    assert step.wait is not None
    return lambda: step.wait(ctx), ctx  # type: ignore[misc]


SRC = "arn:aws:rds:us-west-2:1:db:primary"


def test_stale_available_is_not_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    states = [
        _inst("available", SRC),  # right after the call: nothing moved yet
        _inst("modifying", SRC),
        _inst("modifying", None),
        _inst("available", None),
    ]
    wait, ctx = _wait_fn(monkeypatch, states)
    assert [wait() for _ in states] == [False, False, False, True]
    assert ctx.get("status_history") == [
        "available (replica)",
        "modifying (replica)",
        "modifying",
        "available",
    ]


def test_already_final_needs_two_confirmations(monkeypatch: pytest.MonkeyPatch) -> None:
    # moto / a fast sandbox: the change completed before the first poll — accepted on the 2nd read
    states = [_inst("available", None), _inst("available", None)]
    wait, _ = _wait_fn(monkeypatch, states)
    assert [wait() for _ in states] == [False, True]


def test_source_still_present_never_completes(monkeypatch: pytest.MonkeyPatch) -> None:
    states = [_inst("modifying", SRC)] + [_inst("available", SRC)] * 5
    wait, _ = _wait_fn(monkeypatch, states)
    assert not any(wait() for _ in states)


def test_broken_state_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    wait, _ = _wait_fn(monkeypatch, [_inst("incompatible-parameters", SRC)])
    with pytest.raises(BadInput, match="incompatible-parameters"):
        wait()


def test_preflight_refuses_broken_replica(seeded: Any) -> None:
    from moto.backends import get_backend

    est = seeded.estate
    db = get_backend("rds")["123456789012"][est.secondary.region].databases[est.secondary.database.identifier]
    db.status = "incompatible-parameters"
    seeded.put_lag(0.1)
    with pytest.raises(BadInput, match="incompatible-parameters") as err:
        mod.preflight(
            seeded.clients,
            db=est.secondary.database.identifier,
            region=est.secondary.region,
            max_lag=dt.timedelta(seconds=5),
            force=True,
        )
    assert err.value.region == est.secondary.region


def test_lag_datapoint_older_than_window_is_missing(seeded: Any) -> None:
    from dr.errors import GateRefused

    est = seeded.estate
    seeded.put_lag(0.1, at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
    with pytest.raises(GateRefused, match="no ReplicaLag datapoint"):
        mod.preflight(
            seeded.clients,
            db=est.secondary.database.identifier,
            region=est.secondary.region,
            max_lag=dt.timedelta(seconds=5),
            force=False,
        )
    seeded.put_lag(3.0)
    pre = mod.preflight(
        seeded.clients,
        db=est.secondary.database.identifier,
        region=est.secondary.region,
        max_lag=dt.timedelta(seconds=5),
        force=False,
    )
    assert pre.lag_seconds == 3.0 and pre.source and not pre.already_promoted


def test_preflight_dataclass_is_json_ready() -> None:
    pre = PromotePreflight("d", "r", False, "s", None, None, "none", 5.0, True, ["w"])
    assert replace(pre, lag_seconds=2.0).to_dict()["rpo_estimate_seconds"] == 2.0


class _LagConn:
    def __init__(self, value: float | None) -> None:
        self.value = value
        self.sql: list[str] = []

    def cursor(self) -> Any:
        conn = self

        class _Cur:
            def __enter__(self) -> Any:
                return self

            def __exit__(self, *exc: object) -> None:
                pass

            def execute(self, sql: str) -> None:
                conn.sql.append(sql)

            def fetchone(self) -> Any:
                return (conn.value,)

        return _Cur()

    def close(self) -> None:
        pass


def _pre(seeded: Any, probe: Any, force: bool = False) -> PromotePreflight:
    est = seeded.estate
    return mod.preflight(
        seeded.clients,
        db=est.secondary.database.identifier,
        region=est.secondary.region,
        max_lag=dt.timedelta(seconds=5),
        force=force,
        probe=probe,
    )


def test_db_probe_gates_on_the_larger_lag(seeded: Any) -> None:
    from dr.errors import GateRefused
    from tests.unit.procedures.estate_seed import PASSWORD

    est = seeded.estate
    seeded.put_lag(1.0)
    seen: dict[str, Any] = {}
    conn = _LagConn(9.5)

    def connect(**kwargs: Any) -> _LagConn:
        seen.update(kwargs)
        return conn

    probe = mod.pg_replay_lag_probe(
        seeded.clients,
        secret_id=est.app.db_secret.secrets_manager_id,
        db_name=est.app.database.db_name,
        connect=connect,
    )
    with pytest.raises(GateRefused, match=r"9\.5s"):
        _pre(seeded, probe)
    assert seen["password"] == PASSWORD and seen["host"].startswith(est.secondary.database.identifier)
    assert "pg_last_xact_replay_timestamp" in conn.sql[0]
    conn.value = 0.0  # caught up on the replica: CloudWatch's 1.0 s is the larger
    pre = _pre(seeded, probe)
    assert pre.lag_seconds == 1.0
    assert pre.lag_source == "cloudwatch:AWS/RDS/ReplicaLag+postgres:pg_last_xact_replay_timestamp"


def test_db_probe_unreachable_only_warns(seeded: Any) -> None:
    seeded.put_lag(2.0)

    def probe(inst: DbInstance) -> float | None:
        raise ConnectionRefusedError("nope")

    pre = _pre(seeded, probe)
    assert pre.lag_seconds == 2.0 and pre.lag_source == "cloudwatch:AWS/RDS/ReplicaLag"
    assert any("ConnectionRefusedError" in w for w in pre.warnings)


def test_db_probe_alone_is_enough_without_cloudwatch(seeded: Any) -> None:
    pre = _pre(seeded, lambda inst: 0.5)
    assert pre.lag_seconds == 0.5 and pre.lag_source == "postgres:pg_last_xact_replay_timestamp"
