"""The planned switch's caught-up wait: WAL positions when the databases answer, CloudWatch otherwise.

A fake ``connect`` stands in for psycopg (moto has no database); the endpoints and credentials are
moto's (DescribeDBInstances, the Secrets Manager secret), so the test also checks what is looked up.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from dr.procedures.walpos import CatchUp, DbRef, lsn_to_int
from tests.unit.procedures.estate_seed import PASSWORD
from tests.unit.procedures.test_failover import Env, env, journal_events

__all__ = ["env"]


def test_lsn_text_is_a_64_bit_position() -> None:
    assert lsn_to_int("0/3000060") == 0x3000060
    assert lsn_to_int("16/B374D848") == (0x16 << 32) + 0xB374D848
    assert lsn_to_int("1/0") > lsn_to_int("0/FFFFFFFF")
    with pytest.raises(ValueError):
        lsn_to_int("3000060")


@dataclass
class FakePg:
    """Hosts -> (in recovery, WAL position); the replica replays ``step`` bytes per query."""

    hosts: dict[str, list[Any]]
    replica_host: str
    source_host: str
    step: int = 0x100
    fail: Exception | None = None
    connects: list[dict[str, Any]] = field(default_factory=list)

    def connect(self, **kw: Any) -> Any:
        self.connects.append(kw)
        if self.fail is not None:
            raise self.fail
        return _Conn(self, kw["host"])

    def write(self, nbytes: int) -> None:
        self.hosts[self.source_host][1] += nbytes


class _Conn:
    def __init__(self, pg: FakePg, host: str) -> None:
        self.pg, self.host = pg, host
        self.row: tuple[Any, ...] | None = None

    def cursor(self) -> _Conn:
        return self

    def __enter__(self) -> _Conn:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def execute(self, sql: str) -> None:
        recovery, pos = self.pg.hosts[self.host]
        if self.host == self.pg.replica_host and "replay" in sql:
            source = self.pg.hosts[self.pg.source_host][1]
            pos = min(source, pos + self.pg.step)
            self.pg.hosts[self.host][1] = pos
        self.row = (recovery, f"{pos >> 32:X}/{pos & 0xFFFFFFFF:X}")

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.row

    def close(self) -> None:
        return None


def _fake(env: Env, *, behind: int) -> FakePg:
    src = env.s.db(env.estate.primary.region, env.estate.primary.database.identifier)
    rep = env.s.db(env.estate.secondary.region, env.estate.secondary.database.identifier)
    s_host, r_host = src["Endpoint"]["Address"], rep["Endpoint"]["Address"]
    assert s_host != r_host
    base = 0x5_0000_0000
    return FakePg({s_host: [False, base + behind], r_host: [True, base]}, r_host, s_host)


def _catch_up(env: Env, pg: FakePg, clock: list[float]) -> CatchUp:
    e = env.estate
    return CatchUp(
        env.clients,
        source=DbRef(e.primary.database.identifier, e.primary.region),
        replica=DbRef(e.secondary.database.identifier, e.secondary.region),
        secret_id=e.app.db_secret.secrets_manager_id,
        db_name=e.app.database.db_name,
        connect=pg.connect,
        quiet_seconds=2.0,
        clock=lambda: clock[0],
    )


def test_caught_up_only_when_replayed_and_the_source_stayed_quiet(env: Env) -> None:
    pg = _fake(env, behind=0x300)
    clock = [0.0]
    wal = _catch_up(env, pg, clock)
    assert wal.poll() is False and wal.poll() is False  # replaying 0x100 per poll
    assert wal.poll() is False  # caught up at this poll: the quiet window starts now
    assert wal.last is not None and wal.last.caught_up
    clock[0] = 1.0
    pg.write(0x10)  # a late write (a draining pod) moves the source: the window restarts
    assert wal.poll() is False
    clock[0] = 2.5
    assert wal.poll() is False  # 1.5 s quiet only
    clock[0] = 3.1
    assert wal.poll() is True
    # connected to each database with the secret's credentials, by its RDS endpoint
    assert {c["host"] for c in pg.connects} == set(pg.hosts)
    assert all(
        c["password"] == PASSWORD and c["dbname"] == env.estate.app.database.db_name for c in pg.connects
    )


def test_unreachable_or_wrong_roles_fall_back_without_leaking_the_password(env: Env) -> None:
    pg = _fake(env, behind=0)
    pg.fail = OSError(f"could not connect: password={PASSWORD}")
    wal = _catch_up(env, pg, [0.0])
    assert wal.poll() is None and wal.poll() is None
    assert len(pg.connects) == 1  # gave up on the first failure: no 3 s connect timeout per poll
    assert wal.unavailable is not None and PASSWORD not in wal.unavailable

    pg = _fake(env, behind=0)
    pg.hosts[pg.source_host][0] = True  # the "source" is itself replaying: nothing to compare with
    wal = _catch_up(env, pg, [0.0])
    assert wal.poll() is None and "recovery" in (wal.unavailable or "")


def _outputs(env: Env, run_id: str) -> dict[str, Any]:
    return {e["key"]: e["value"] for e in journal_events(env, run_id) if e["kind"] == "output_set"}


def test_planned_failover_promotes_after_the_replica_replayed_the_source_position(env: Env) -> None:
    pg = _fake(env, behind=0x2000)
    promoted_at: list[int] = []
    rds = env.clients.client("rds", env.estate.secondary.region)
    rds.meta.events.register(
        "before-call.rds.PromoteReadReplica",
        lambda **_: promoted_at.append(pg.hosts[pg.replica_host][1]),
    )
    result = env.run(env.plan("planned"), pg_connect=pg.connect)
    assert result.status == "succeeded", result.summary()
    source_pos = pg.hosts[pg.source_host][1]
    assert promoted_at == [source_pos]  # promoted once, with everything replayed
    out = _outputs(env, result.run_id)
    assert out["caught_up_by"] == "wal-lsn"
    assert lsn_to_int(out["cutover_lsn"]) == source_pos
    assert PASSWORD not in json.dumps(journal_events(env, result.run_id))


def test_the_wait_never_passes_on_cloudwatch_when_the_databases_stop_answering(env: Env) -> None:
    """The pre-flight read both positions; then the databases stop answering. A ReplicaLag of 0
    after the stop does not complete the wait (on RDS PostgreSQL the metric proves nothing once
    writes stop): the step keeps retrying the WAL comparison until its timeout, and the replica is
    never promoted on the metric's word."""
    from dr.procedures import support as common

    plan = env.plan("planned")
    now = env.now + dt.timedelta(minutes=5)
    common.set_clock(lambda: now)
    env.s.put_lag(0.0, at=now + dt.timedelta(minutes=1))
    plan.step("replica-caught-up").timeout = 0.5
    pg = _fake(env, behind=0)
    pg.fail = OSError("connection timed out")
    result = env.run(plan, pg_connect=pg.connect)
    assert result.status == "failed"
    steps = {s.id: s for s in result.steps}
    assert steps["replica-caught-up"].status == "failed"
    assert steps["promote-db"].status == "not_started"
    assert len(pg.connects) > 1  # retried, not given up after the first failure
    assert "caught_up_by" not in _outputs(env, result.run_id)
