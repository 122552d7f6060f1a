"""The primary's automated backups replicated to the DR region, with real PostgreSQL: shipping,
the replicated window, and a PITR from the DR copy alone after the primary is lost."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import psycopg
import pytest

from dr.errors import BadInput
from dr.sandbox.latency import LatencyProfile
from dr.sandbox.postgres import PostgresEstate

PASSWORD = "Repl1cated-pw"


def _exec(pg: PostgresEstate, instance: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(**pg.dsn(instance).connect_kwargs(), autocommit=True, connect_timeout=5) as conn:
        cur = conn.execute(sql)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def test_pitr_from_the_replicated_copy_after_the_primary_is_lost(tmp_path: Path) -> None:
    with PostgresEstate(tmp_path, LatencyProfile(), password=PASSWORD) as pg:
        assert pg.replicated_window() is None  # nothing shipped yet: no recovery point in DR
        _exec(pg, "primary", "CREATE TABLE t (id int PRIMARY KEY)")
        _exec(pg, "primary", "INSERT INTO t SELECT generate_series(1, 5)")
        time.sleep(0.2)
        target = dt.datetime.now(dt.UTC)
        time.sleep(0.2)
        _exec(pg, "primary", "INSERT INTO t SELECT generate_series(6, 10)")  # after the target
        shipped = pg.ship_backups()
        assert shipped is not None and shipped > target
        window = pg.replicated_window()
        assert window is not None and window[0] < target < window[1] == shipped

        # Written after the last shipping round, then the region is lost: never in the DR copy.
        _exec(pg, "primary", "INSERT INTO t VALUES (11)")
        pg.kill_primary()
        # The estate's own archive is not used: empty it, as a lost region's would be unreachable.
        for f in pg.archive_dir.iterdir():
            f.unlink()
        assert pg.ship_backups() is None  # nothing ships from a lost region
        assert pg.replicated_window() == window  # the DR copy keeps its window

        restored = pg.restore_pitr(target, "dr-pitr", replicated=True)
        assert restored.is_running()
        rows = _exec(pg, "dr-pitr", "SELECT min(id), max(id), count(*) FROM t")
        assert rows == [(1, 5, 5)]  # the rows up to the target and none after

        whole = pg.restore_pitr(window[1], "dr-latest", replicated=True)
        assert whole.is_running()
        assert _exec(pg, "dr-latest", "SELECT max(id) FROM t") == [(10,)]  # 11 was never shipped

        with pytest.raises(BadInput) as err:
            pg.restore_pitr(window[1] + dt.timedelta(seconds=30), "too-late", replicated=True)
        assert err.value.code == "InvalidRestoreTime"
