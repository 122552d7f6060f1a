"""R7: a drill whose verification (or method) fails still runs its rollbacks, writes its journal, exits 1.

``dr drill run`` (in-process CLI) on a scenario whose actions call a local HTTP "chaos API": the fault
and the rollbacks are POSTs the server records, the verification probe reads a URL the test makes
fail. The evidence directory must hold the journal with the rollbacks recorded as run.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner


class ChaosApi:
    """Records every request path; /verify answers ``verify_status``, /fail-action answers 500."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.verify_status = 200
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                api.calls.append(f"{self.command} {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                status = {"/verify": api.verify_status, "/fail-action": 500}.get(self.path, 200)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def chaos() -> Iterator[ChaosApi]:
    api = ChaosApi()
    yield api
    api.server.shutdown()
    api.server.server_close()


def _scenario(url: str, *, action: str = "/fault") -> str:
    return f"""
version: 1
title: R7 drill whose checks fail
target: [aws, sandbox]
measure: {{heartbeat: false, prober: false}}
method:
  - name: inject
    type: action
    provider: http-request
    fault: true
    arguments: {{url: "{url}{action}", method: POST}}
verification:
  probes:
    - {{name: verified, type: probe, provider: http, arguments: {{url: "{url}/verify"}}, tolerance: 200}}
rollbacks:
  - {{name: undo-one, type: action, provider: http-request, arguments: {{url: "{url}/rollback-1", method: POST}}}}
  - {{name: undo-two, type: action, provider: http-request, arguments: {{url: "{url}/rollback-2", method: POST}}}}
"""


def _run(tmp_path: Path, text: str) -> tuple[Any, Path]:
    from dr.cli.main import cli

    path = tmp_path / "r7.yaml"
    path.write_text(text)
    out = tmp_path / "evidence"
    res = CliRunner().invoke(
        cli, ["-o", "json", "drill", "run", str(path), "--out", str(out)], catch_exceptions=False
    )
    return res, out


def _journal(out: Path) -> dict[str, Any]:
    journal: dict[str, Any] = json.loads((out / "journal.json").read_text())
    return journal


def _rollbacks_ran(chaos: ChaosApi) -> None:
    assert chaos.calls[-2:] == ["POST /rollback-1", "POST /rollback-2"], chaos.calls


@pytest.mark.parametrize("failing", ["verification", "method"])
def test_failed_drill_runs_rollbacks_writes_journal_exits_1(
    chaos: ChaosApi, tmp_path: Path, failing: str
) -> None:
    if failing == "verification":
        chaos.verify_status = 503
        res, out = _run(tmp_path, _scenario(chaos.url))
        assert "GET /verify" in chaos.calls
    else:
        res, out = _run(tmp_path, _scenario(chaos.url, action="/fail-action"))
    assert res.exit_code == 1, res.output
    _rollbacks_ran(chaos)
    journal = _journal(out)
    steps = {(s["name"], s["phase"]): s["status"] for s in journal["steps"]}
    assert steps[("undo-one", "rollback")] == steps[("undo-two", "rollback")] == "ok"
    if failing == "verification":
        assert steps[("inject", "method")] == "ok" and steps[("verified", "verification")] == "failed"
    else:
        assert steps[("inject", "method")] == "error"  # the chaos API answered 500
    assert journal["exit_code"] == 1 and journal["rollbacks_started_at"] is not None
    assert (out / "report.md").exists()


def test_passing_drill_exits_0_and_still_rolls_back(chaos: ChaosApi, tmp_path: Path) -> None:
    """The control case: the same drill with a healthy verification exits 0 (so exit 1 above is earned)."""
    res, out = _run(tmp_path, _scenario(chaos.url))
    assert res.exit_code == 0, res.output
    _rollbacks_ran(chaos)
    assert (out / "journal.json").exists()
