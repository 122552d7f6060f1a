"""Region /health: 200 only with Ready pods AND a really writable database; /write probes; down."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dr.sandbox.health import RegionHealthServer
from dr.sandbox.latency import LatencyProfile
from dr.sandbox.postgres import PostgresEstate

PASSWORD = "health-S3cret-value"


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresEstate]:
    estate = PostgresEstate(
        tmp_path_factory.mktemp("pg-health"), LatencyProfile(), password=PASSWORD, initial_backup=False
    )
    estate.start()
    try:
        yield estate
    finally:
        estate.cleanup()


class Region:
    """Mutable stand-in for what the manager reads from the fake Kubernetes API."""

    def __init__(self, pods: int, url: str | None) -> None:
        self.pods = pods
        self.url = url

    def ready_pods(self) -> int:
        return self.pods

    def database_url(self) -> str | None:
        return self.url


def _request(url: str, method: str = "GET") -> tuple[int, dict[str, Any], str]:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read().decode()
            return resp.status, json.loads(raw) if raw else {}, raw
    except urllib.error.HTTPError as err:
        raw = err.read().decode()
        return err.code, json.loads(raw) if raw else {}, raw


@pytest.fixture
def region(pg: PostgresEstate) -> Iterator[tuple[Region, RegionHealthServer]]:
    state = Region(pods=2, url=pg.dsn("primary").url())
    server = RegionHealthServer(
        "us-west-2", ready_pods=state.ready_pods, database_url=state.database_url
    ).start()
    try:
        yield state, server
    finally:
        server.close()


def test_healthy_with_pods_and_writable_database(region: tuple[Region, RegionHealthServer]) -> None:
    _, server = region
    code, body, raw = _request(server.url + "/health")
    assert code == 200
    assert body["status"] == "healthy" and body["region"] == "us-west-2"
    assert body["checks"]["pods"]["ready"] == 2
    assert body["checks"]["database"]["writable"] is True
    assert PASSWORD not in raw


def test_no_ready_pods_is_503(region: tuple[Region, RegionHealthServer]) -> None:
    state, server = region
    state.pods = 0
    code, body, _ = _request(server.url + "/health")
    assert code == 503 and body["status"] == "unhealthy"
    assert any("ready API pods" in r for r in body["reasons"])


def test_secret_pointing_at_replica_is_503_read_only(
    pg: PostgresEstate, region: tuple[Region, RegionHealthServer]
) -> None:
    state, server = region
    state.url = pg.dsn("replica").url()
    code, body, raw = _request(server.url + "/health")
    assert code == 503
    assert any("read-only" in r for r in body["reasons"])
    assert PASSWORD not in raw
    code, body, raw = _request(server.url + "/write", "POST")
    assert code == 503 and PASSWORD not in raw


def test_missing_secret_and_unreachable_database_are_503(
    pg: PostgresEstate, region: tuple[Region, RegionHealthServer]
) -> None:
    state, server = region
    state.url = None
    code, body, _ = _request(server.url + "/health")
    assert code == 503 and any("no database URL" in r for r in body["reasons"])
    dead = pg.dsn("primary")
    state.url = dead.url().replace(f":{dead.port}/", ":1/")
    code, body, raw = _request(server.url + "/health")
    assert code == 503 and any("unreachable" in r for r in body["reasons"])
    assert PASSWORD not in raw and state.url not in raw


def test_wrong_password_reason_never_echoes_the_secret(
    pg: PostgresEstate, region: tuple[Region, RegionHealthServer]
) -> None:
    state, server = region
    state.url = pg.dsn("primary").url().replace(PASSWORD, "wrong-" + PASSWORD)
    code, _body, raw = _request(server.url + "/health")
    assert code == 503
    assert PASSWORD not in raw and "wrong-" not in raw


def test_callable_failure_is_503_not_500(region: tuple[Region, RegionHealthServer]) -> None:
    _state, server = region

    def boom() -> int:
        raise RuntimeError("kube API down")

    server._ready_pods = boom
    code, body, _ = _request(server.url + "/health")
    assert code == 503 and any("could not count" in r for r in body["reasons"])


def test_write_probe_inserts_rows_with_increasing_ids(
    pg: PostgresEstate, region: tuple[Region, RegionHealthServer]
) -> None:
    _, server = region
    code1, first, raw = _request(server.url + "/write", "POST")
    code2, second, _ = _request(server.url + "/write", "POST")
    assert code1 == code2 == 200
    assert second["id"] > first["id"] and first["ts"] and first["region"] == "us-west-2"
    assert PASSWORD not in raw
    import psycopg

    with psycopg.connect(**pg.dsn("primary").connect_kwargs()) as conn:
        row = conn.execute("SELECT region FROM dr_write_probe WHERE id = %s", (second["id"],)).fetchone()
    assert row == ("us-west-2",)


def test_head_and_unknown_route(region: tuple[Region, RegionHealthServer]) -> None:
    _, server = region
    assert _request(server.url + "/health", "HEAD")[0] == 200
    assert _request(server.url + "/nope")[0] == 404


def test_take_down_refuses_and_bring_up_reuses_the_port(region: tuple[Region, RegionHealthServer]) -> None:
    _, server = region
    port = server.port
    server.take_down()
    assert server.is_down
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(server.url + "/health", timeout=3)
    server.bring_up()
    assert server.port == port and not server.is_down
    assert _request(server.url + "/health")[0] == 200


def test_health_follows_promotion(tmp_path: Path) -> None:
    """503 while the secret points at the replica, 200 once that replica is promoted."""
    estate = PostgresEstate(tmp_path, LatencyProfile(), password=PASSWORD, initial_backup=False)
    with estate:
        state = Region(pods=1, url=estate.dsn("replica").url())
        with RegionHealthServer("dr", ready_pods=state.ready_pods, database_url=state.database_url) as server:
            assert _request(server.url + "/health")[0] == 503
            estate.kill_primary()
            estate.promote_replica()
            code, body, _ = _request(server.url + "/health")
            assert code == 200, body
            assert _request(server.url + "/write", "POST")[0] == 200
    estate.cleanup()
