"""Region loss for real: WAL in flight on the delayed link is lost; a graceful stop loses nothing;
PITR and snapshot restores produce real databases; pg_rewind turns the old primary into a replica.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import psycopg
import pytest

from dr.errors import BadInput
from dr.sandbox.latency import LatencyProfile
from dr.sandbox.postgres import PostgresEstate

PASSWORD = "failover-pw-123"


def _exec(
    pg: PostgresEstate, instance: str, sql: str, params: tuple[object, ...] = ()
) -> list[tuple[object, ...]]:
    with psycopg.connect(**pg.dsn(instance).connect_kwargs(), autocommit=True, connect_timeout=5) as conn:
        cur = conn.execute(sql, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def _estate(tmp_path: Path, **kw: object) -> PostgresEstate:
    pg = PostgresEstate(tmp_path, LatencyProfile(), password=PASSWORD, **kw)  # type: ignore[arg-type]
    pg.start()
    _exec(
        pg,
        "primary",
        "CREATE TABLE beats (id serial PRIMARY KEY, ts timestamptz NOT NULL DEFAULT clock_timestamp())",
    )
    pg.wait_replica_caught_up(timeout=20)
    return pg


def test_kill_primary_loses_unshipped_wal_but_not_older_rows(tmp_path: Path) -> None:
    pg = _estate(tmp_path, initial_backup=False)
    try:
        _exec(pg, "primary", "INSERT INTO beats DEFAULT VALUES")  # id 1, shipped at once
        pg.wait_replica_caught_up(timeout=20)
        delay = 1.0
        pg.set_replication_delay(delay)
        # Heartbeat-style writes for ~2.5 delays, each acknowledged by the primary.
        with psycopg.connect(**pg.dsn("primary").connect_kwargs(), autocommit=True) as conn:
            end = time.monotonic() + 2.5 * delay
            while time.monotonic() < end:
                conn.execute("INSERT INTO beats DEFAULT VALUES")
                time.sleep(0.05)
            last_acked = conn.execute("SELECT max(id), max(ts) FROM beats").fetchone()
        assert last_acked is not None
        lost_bytes = pg.kill_primary()
        assert lost_bytes > 0
        assert not pg.primary.is_running()
        pg.promote_replica()

        ids = [r[0] for r in _exec(pg, "replica", "SELECT id FROM beats ORDER BY id")]
        newest = _exec(pg, "replica", "SELECT max(ts) FROM beats")[0][0]
        assert 1 in ids  # old rows survived
        assert last_acked[0] not in ids  # acknowledged writes of the last delay window are gone
        assert isinstance(newest, dt.datetime)
        gap = (last_acked[1] - newest).total_seconds()
        assert gap >= 0.3 * delay  # real data loss of the order of the link delay (the RPO)
        # The promoted replica takes writes.
        _exec(pg, "replica", "INSERT INTO beats DEFAULT VALUES")
    finally:
        pg.cleanup()


def test_graceful_stop_ships_everything_before_exit(tmp_path: Path) -> None:
    pg = _estate(tmp_path, initial_backup=False)
    try:
        pg.set_replication_delay(0.5)
        _exec(pg, "primary", "INSERT INTO beats DEFAULT VALUES")
        pg.stop_primary()
        pg.promote_replica()
        assert _exec(pg, "replica", "SELECT count(*) FROM beats") == [(1,)]
    finally:
        pg.cleanup()


def test_pitr_restores_to_a_time_between_two_writes(tmp_path: Path) -> None:
    pg = _estate(tmp_path)
    try:
        _exec(pg, "primary", "INSERT INTO beats DEFAULT VALUES")
        time.sleep(0.2)
        middle = _exec(pg, "primary", "SELECT clock_timestamp()")[0][0]
        assert isinstance(middle, dt.datetime)
        time.sleep(0.2)
        _exec(pg, "primary", "INSERT INTO beats DEFAULT VALUES")

        restored = pg.restore_pitr(middle, "pitr-mid")
        assert restored.port not in (pg.primary.port, pg.replica.port)
        assert _exec(pg, "pitr-mid", "SELECT id FROM beats ORDER BY id") == [(1,)]
        assert pg.in_recovery("pitr-mid") is False  # a standalone, writable database
        assert "pitr-mid" in pg.pids()

        # Outside the restorable window: refused like RDS (InvalidRestoreTime), nothing started.
        before = pg.earliest_restorable_time()
        assert before is not None
        for bad in (before - dt.timedelta(hours=1), dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)):
            with pytest.raises(BadInput) as err:
                pg.restore_pitr(bad, "pitr-bad")
            assert err.value.code == "InvalidRestoreTime"
        with pytest.raises(BadInput):
            pg.restore_pitr(middle.replace(tzinfo=None), "pitr-naive")
        assert "pitr-bad" not in pg.instances
    finally:
        pg.cleanup()


def test_snapshot_restore_contains_data_as_of_the_snapshot(tmp_path: Path) -> None:
    pg = _estate(tmp_path, initial_backup=False)
    try:
        _exec(pg, "primary", "INSERT INTO beats DEFAULT VALUES")
        snap = pg.snapshot("before-incident")
        with pytest.raises(BadInput):
            pg.snapshot("before-incident")
        _exec(pg, "primary", "INSERT INTO beats DEFAULT VALUES")
        pg.restore_snapshot(snap, "from-snap")
        assert _exec(pg, "from-snap", "SELECT count(*) FROM beats") == [(1,)]
        assert _exec(pg, "primary", "SELECT count(*) FROM beats") == [(2,)]
        with pytest.raises(BadInput):
            pg.restore_snapshot("no-such-snapshot", "x")
    finally:
        pg.cleanup()


@pytest.mark.slow
def test_rewind_old_primary_into_replica_for_failback(tmp_path: Path) -> None:
    pg = _estate(tmp_path)
    try:
        _exec(pg, "primary", "INSERT INTO beats DEFAULT VALUES")
        pg.wait_replica_caught_up(timeout=20)
        pg.set_replication_delay(2.0)
        _exec(pg, "primary", "INSERT INTO beats DEFAULT VALUES")  # will be lost
        pg.kill_primary()
        pg.promote_replica()
        _exec(pg, "replica", "INSERT INTO beats DEFAULT VALUES")
        pg.set_replication_delay(0.0)
        pg.snapshot("after-failover")

        old = pg.rewind_old_primary_as_replica()
        assert old.name == "primary" and old.is_running()
        assert pg.in_recovery("primary") is True
        pg.wait_replica_caught_up(timeout=30, replica="primary")
        # The old primary now holds exactly the new primary's history: its lost write is discarded.
        assert _exec(pg, "primary", "SELECT count(*) FROM beats") == [(2,)]
        assert pg.lag_seconds("primary") == 0.0
    finally:
        pg.cleanup()
