"""Generic HTTP providers (`http` probe, `http-request` action) against a local server."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import pytest

from dr.drills import registry
from dr.drills.drill_context import DrillContext
from dr.errors import OperationFailed


@pytest.fixture
def server() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    seen: list[tuple[str, str, bytes]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append((self.command, self.path, body))
            code = 500 if self.path == "/broken" else 200
            out = json.dumps({"ok": code == 200}).encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = _handle

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", seen
    srv.shutdown()
    srv.server_close()


def _call(kind: str, name: str, **arguments: object) -> object:
    prov = registry.get(kind, name)  # type: ignore[arg-type]
    assert prov is not None
    return prov.resolve("sandbox")(
        DrillContext(run_id="t", target="sandbox"), **prov.validate_args(arguments)
    )


def test_http_request_posts_json_and_checks_the_status(server) -> None:  # type: ignore[no-untyped-def]
    url, seen = server
    out = _call("action", "http-request", url=f"{url}/admin/kill", body={"name": "primary"})
    assert out == {"status": 200, "body": '{"ok": true}'}
    assert seen[-1] == ("POST", "/admin/kill", b'{"name": "primary"}')
    with pytest.raises(OperationFailed, match="answered 500"):
        _call("action", "http-request", url=f"{url}/broken")


def test_http_probe_returns_status_or_zero(server) -> None:  # type: ignore[no-untyped-def]
    url, _ = server
    assert _call("probe", "http", url=f"{url}/health") == 200
    assert _call("probe", "http", url=f"{url}/broken") == 500
    assert _call("probe", "http", url="http://127.0.0.1:9/unreachable", timeout=0.5) == 0


def test_runner_default_check_uses_the_estates_health_path(estate) -> None:  # type: ignore[no-untyped-def]
    from dr.drills.lifecycle import DrillRunner
    from dr.drills.scenario import parse_scenario

    loaded = parse_scenario(
        "title: t\nmethod: [{name: a, type: action, provider: pause, arguments: {seconds: 0}}]\n"
    )
    runner = DrillRunner(loaded, DrillContext(run_id="t", target="sandbox", estate=estate))
    assert runner._check().health_path == estate.app.health_path  # type: ignore[attr-defined]
