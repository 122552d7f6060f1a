"""The heartbeat target follows the application: serving site's DB secret, nothing while writers are at 0.

The sandbox hooks are exercised with the real kubernetes client against the sandbox's fake
Kubernetes API (``serve_estate``) and a stand-in for the sandbox resolver.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dr.drills.appdb import AppDatabase
from dr.drills.drill_context import DrillContext, measurement_hooks

PRIMARY_URL = "postgresql://app_admin:pw-primary@127.0.0.1:5001/claude_deployment"
STANDBY_URL = "postgresql://app_admin:pw-standby@127.0.0.1:5002/claude_deployment"


class FakeKube:
    def __init__(self, url: str, replicas: int = 2) -> None:
        self.url = url
        self.replicas = replicas
        self.calls = 0

    def get_deployment(self, namespace: str, name: str) -> Any:
        self.calls += 1
        return SimpleNamespace(replicas=self.replicas)

    def read_secret_key(self, namespace: str, name: str, key: str) -> Any:
        return SimpleNamespace(reveal=lambda: self.url)


def test_app_database_follows_site_and_writers(estate) -> None:  # type: ignore[no-untyped-def]
    kubes = {estate.primary.region: FakeKube(PRIMARY_URL), estate.secondary.region: FakeKube(STANDBY_URL, 1)}
    site = {"region": estate.primary.region}
    now = {"t": 0.0}
    db = AppDatabase(estate, lambda: site["region"], lambda v: kubes[v.region], clock=lambda: now["t"])
    target = db()
    assert target is not None and target.label == "postgresql://127.0.0.1:5001/claude_deployment"
    assert "pw-primary" not in repr(target) and "pw-primary" in target.conninfo
    kubes[estate.primary.region].replicas = 0  # stop-writes
    assert db() is target  # cached for cache_seconds
    now["t"] = 1.0
    assert db() is None
    assert db.without_writer_check()() is not None  # reading back ignores the writers
    site["region"] = estate.secondary.region  # DNS flipped
    now["t"] = 2.0
    moved = db()
    assert moved is not None and moved.label.endswith(":5002/claude_deployment")


def test_lookup_errors_propagate_to_the_writer(estate) -> None:  # type: ignore[no-untyped-def]
    def broken(view):  # type: ignore[no-untyped-def]
        raise ConnectionError("cluster API unreachable")

    db = AppDatabase(estate, lambda: "primary", broken)
    with pytest.raises(ConnectionError):
        db()


@pytest.fixture
def resolver_server(estate) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    answer: dict[str, Any] = {"region": estate.primary.region, "health_url": "http://127.0.0.1:7001/health"}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            assert self.path == f"/resolve?name={estate.app.record}", self.path
            body = json.dumps({"name": estate.app.record, **answer}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    answer["_url"] = f"http://127.0.0.1:{srv.server_address[1]}"
    yield answer
    srv.shutdown()
    srv.server_close()


@pytest.mark.slow  # importing the kubernetes client models dominates (~5 s cold)
def test_sandbox_hooks_from_state_json(estate, resolver_server, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from dr.sandbox.fakekube import serve_estate

    kubeconfig = str(tmp_path / "kubeconfig")
    with serve_estate(
        estate, kubeconfig, database_urls={"primary": PRIMARY_URL, "standby": STANDBY_URL}
    ) as apis:
        (tmp_path / "state.json").write_text(
            json.dumps(
                {
                    "aws_endpoint": "http://127.0.0.1:1",
                    "kubeconfig": kubeconfig,
                    "resolver": {"url": resolver_server["_url"]},
                }
            )
        )
        monkeypatch.setenv("DR_SANDBOX_DIR", str(tmp_path))
        hooks = measurement_hooks(DrillContext(run_id="t", target="sandbox", estate=estate))
        assert (
            hooks.resolver is not None and hooks.heartbeat_target is not None and hooks.rpo_target is not None
        )
        assert hooks.resolver() == "http://127.0.0.1:7001"
        first = hooks.heartbeat_target()
        assert first is not None and first.label == "postgresql://127.0.0.1:5001/claude_deployment"

        api = apis[estate.primary.cluster.name]
        for dep in estate.app.writers:
            api.patch(
                "deployments",
                estate.app.namespace,
                dep.name,
                {"spec": {"replicas": 0}},
                "application/merge-patch+json",
            )
        hooks.heartbeat_target.cache_seconds = 0.0  # type: ignore[attr-defined]
        assert hooks.heartbeat_target() is None  # the app stopped writing
        resolver_server["region"] = estate.secondary.region
        resolver_server["health_url"] = "http://127.0.0.1:7002/health"
        assert hooks.resolver() == "http://127.0.0.1:7002"
        after = hooks.rpo_target()
        assert after is not None and after.label.endswith(":5002/claude_deployment")


def test_sandbox_hooks_without_a_running_sandbox(estate, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DR_SANDBOX_DIR", str(tmp_path / "none"))
    hooks = measurement_hooks(DrillContext(run_id="t", target="sandbox", estate=estate))
    assert hooks.resolver is None and hooks.heartbeat_target is None
    assert any("sandbox not running" in n for n in hooks.notes)
