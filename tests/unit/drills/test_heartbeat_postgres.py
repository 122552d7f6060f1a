"""The heartbeat writer against real PostgreSQL (the sandbox's primary + delayed streaming replica).

Losing the primary while the replication link holds WAL loses acknowledged heartbeats: the measured
RPO is > 0 and bounded by the injected lag. A caught-up promotion loses nothing (RPO 0).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dr.drills.heartbeat import HeartbeatTarget, HeartbeatWriter, PsycopgStore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[object]:
    try:
        from dr.sandbox.pg_server import find_pg_bin
        from dr.sandbox.postgres import PostgresEstate

        find_pg_bin()
    except Exception as exc:  # pragma: no cover - environment without the server binaries
        pytest.skip(f"PostgreSQL binaries unavailable: {exc}")
    from dr.sandbox.latency import LatencyProfile

    estate = PostgresEstate(
        tmp_path, LatencyProfile("none"), password=secrets.token_urlsafe(16), initial_backup=False
    )
    estate.start()
    try:
        yield estate
    finally:
        estate.cleanup()


def _target(pg: object, name: str) -> HeartbeatTarget:
    return HeartbeatTarget.from_conninfo(pg.dsn(name).url(), label=name)  # type: ignore[attr-defined]


def _wait_acks(writer: HeartbeatWriter, n: int) -> None:
    deadline = time.monotonic() + 20
    while len(writer.acks) < n:
        assert time.monotonic() < deadline, writer.notes or writer.disruptions
        time.sleep(0.02)


def test_region_loss_loses_the_lagging_heartbeats(pg) -> None:  # type: ignore[no-untyped-def]
    current = {"t": _target(pg, "primary")}
    writer = HeartbeatWriter(lambda: current["t"], PsycopgStore(), interval=0.05)
    writer.start()
    try:
        _wait_acks(writer, 5)
        pg.wait_replica_caught_up(timeout=20)
        lag = 1.0
        pg.set_replication_delay(lag)
        before = len(writer.acks)
        _wait_acks(writer, before + 10)  # ~0.5 s of heartbeats held in the delayed link
        fault_at = time.time()
        pg.kill_primary()
        time.sleep(0.2)
        pg.promote_replica()
        current["t"] = _target(pg, "replica")
        _wait_acks(writer, len(writer.acks) + 3)  # the app writes to the promoted DB
    finally:
        writer.stop()
    present = writer.collect(_target(pg, "replica"))
    res = writer.result(fault_at, present)
    assert res.measured, res.note
    assert res.rows_lost and res.rows_lost > 0
    assert res.rpo_seconds is not None and 0 < res.rpo_seconds <= lag + 0.5


def test_caught_up_promotion_loses_nothing(pg) -> None:  # type: ignore[no-untyped-def]
    current: dict[str, HeartbeatTarget | None] = {"t": _target(pg, "primary")}
    writer = HeartbeatWriter(lambda: current["t"], PsycopgStore(), interval=0.05)
    writer.start()
    try:
        _wait_acks(writer, 5)
        fault_at = time.time()
        current["t"] = None  # stop writes (planned switchover)
        time.sleep(0.1)
        pg.wait_replica_caught_up(timeout=20)
        pg.promote_replica()
        current["t"] = _target(pg, "replica")
        _wait_acks(writer, len(writer.acks) + 2)
    finally:
        writer.stop()
    res = writer.result(fault_at, writer.collect(_target(pg, "replica")))
    assert res.measured and res.rows_lost == 0 and res.rpo_seconds == 0.0
