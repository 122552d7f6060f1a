"""Region loss for real: WAL in flight on the delayed link is lost; a graceful stop loses nothing;
PITR and snapshot restores produce real databases; pg_rewind turns the old primary into a replica.
"""

from __future__ import annotations

import datetime as dt
import os
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


@pytest.mark.slow
def test_kill_primary_loses_unshipped_wal_then_rewind_for_failback(tmp_path: Path) -> None:
    pg = _estate(tmp_path, initial_backup=False)
    try:
        _exec(pg, "primary", "INSERT INTO beats DEFAULT VALUES")  # id 1, shipped at once
        pg.wait_replica_caught_up(timeout=20)
        delay = 2.0
        pg.set_replication_delay(delay)
        # Heartbeat-style writes for ~1.5 delays, each acknowledged by the primary.
        with psycopg.connect(**pg.dsn("primary").connect_kwargs(), autocommit=True) as conn:
            end = time.monotonic() + 1.5 * delay
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
        assert 1 in ids  # written before the delay: survived
        assert 2 in ids  # first delayed heartbeat, written ~1.5 delays before the loss: shipped
        assert last_acked[0] not in ids  # acknowledged writes of the last delay window are gone
        assert isinstance(newest, dt.datetime)
        gap = (last_acked[1] - newest).total_seconds()
        assert gap >= 0.3 * delay  # real data loss of the order of the link delay (the RPO)
        # The promoted replica takes writes.
        _exec(pg, "replica", "INSERT INTO beats DEFAULT VALUES")
        expected = _exec(pg, "replica", "SELECT count(*) FROM beats")

        # Failback preparation: pg_rewind turns the old primary into a replica of the new one.
        pg.set_replication_delay(0.0)
        old = pg.rewind_old_primary_as_replica()
        assert old.name == "primary" and old.is_running()
        assert pg.in_recovery("primary") is True
        pg.wait_replica_caught_up(timeout=30, replica="primary")
        # It now holds exactly the new primary's history: its own lost writes are discarded.
        assert _exec(pg, "primary", "SELECT count(*) FROM beats") == expected
        assert last_acked[0] not in [r[0] for r in _exec(pg, "primary", "SELECT id FROM beats")]
        # It streams from the new primary and reads as caught up (not an exact 0: a reading can
        # catch the new primary's own checkpoint WAL in flight, as the reprotect half below found)
        _wait_streaming(pg, "primary")
        lag = pg.lag_seconds("primary")
        assert lag is not None and lag < 1.0, lag

        # Failback (the rewound old primary promoted), then `dr reprotect`: the DR server, a stale
        # writer now, is rewound in its turn and streams from the primary again.
        pg.promote_replica("primary")
        _exec(pg, "primary", "INSERT INTO beats DEFAULT VALUES")
        again = pg.rewind_as_replica("replica")
        assert again.name == "replica" and pg.in_recovery("replica") is True
        pg.wait_replica_caught_up(timeout=30, replica="replica")
        assert _exec(pg, "replica", "SELECT count(*) FROM beats") == _exec(
            pg, "primary", "SELECT count(*) FROM beats"
        )
        # ... and it streams from the primary (after catching up from the archive, the WAL receiver
        # connects; a lag reading now may catch the primary's own background WAL in flight)
        _wait_streaming(pg, "replica")
    finally:
        pg.cleanup()


def _wait_streaming(pg: PostgresEstate, name: str, timeout: float = 15.0) -> None:
    """After catching up from the archive, the WAL receiver connects: wait for it to stream."""
    deadline = time.monotonic() + timeout
    while not pg.replication_connected(name) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pg.replication_connected(name), f"{name} does not stream from its upstream"


def test_graceful_stop_loses_nothing_and_stop_all_leaves_no_process(tmp_path: Path) -> None:
    pg = _estate(tmp_path, initial_backup=False)
    try:
        pg.set_replication_delay(0.5)
        _exec(pg, "primary", "INSERT INTO beats DEFAULT VALUES")
        pg.stop_primary()  # the walsender ships everything through the delay before exiting
        assert pg.promote_replica() > 0.0  # a real promotion takes time; a repeat is a no-op
        assert pg.in_recovery("replica") is False
        assert _exec(pg, "replica", "SELECT count(*) FROM beats") == [(1,)]
        _exec(pg, "replica", "INSERT INTO beats DEFAULT VALUES")
        assert pg.promote_replica() == 0.0  # idempotent
        assert pg.writer() is pg.replica
        pids = list(pg.pids().values())
        assert len(pids) == 1
        pg.stop_all()
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        pg.cleanup()
    assert not (tmp_path / "postgres").exists()


@pytest.mark.slow
def test_pitr_and_snapshot_restores_are_real_databases(tmp_path: Path) -> None:
    pg = _estate(tmp_path)
    try:
        _exec(pg, "primary", "INSERT INTO beats DEFAULT VALUES")
        snap = pg.snapshot("after-first")
        with pytest.raises(BadInput):
            pg.snapshot("after-first")
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

        # The snapshot restores the data as of the snapshot, as a new instance.
        pg.restore_snapshot(snap, "from-snap")
        assert _exec(pg, "from-snap", "SELECT count(*) FROM beats") == [(1,)]
        assert _exec(pg, "primary", "SELECT count(*) FROM beats") == [(2,)]
        with pytest.raises(BadInput):
            pg.restore_snapshot("no-such-snapshot", "x")
        with pytest.raises(BadInput):
            pg.restore_snapshot(snap, "from-snap")  # name taken

        # Region lost: the window ends at the newest archived segment; restoring to its end works
        # even though no commit follows the target (recovery then replays the whole archive).
        pg.kill_primary()
        latest = pg.latest_restorable_time()
        assert latest is not None and latest >= middle
        pg.restore_pitr(latest, "pitr-after-loss")
        assert _exec(pg, "pitr-after-loss", "SELECT count(*) FROM beats") == [(2,)]
    finally:
        pg.cleanup()
