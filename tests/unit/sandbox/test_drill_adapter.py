"""The sandbox's drill adapter: its measurement hooks (dr.sandbox.drill_adapter.sandbox_hooks), exercised
with the real kubernetes client against the sandbox's fake Kubernetes API (``serve_estate``) and a
stand-in for the sandbox resolver. Its fault actions are tested in tests/unit/drills/test_procedure_actions.py.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dr.sandbox.drill_adapter  # noqa: F401  (registers the sandbox's measurement hooks)
from dr.drills.drill_context import DrillContext, measurement_hooks

PRIMARY_URL = "postgresql://app_admin:pw-primary@127.0.0.1:5001/claude_deployment"
STANDBY_URL = "postgresql://app_admin:pw-standby@127.0.0.1:5002/claude_deployment"


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
