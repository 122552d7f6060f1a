"""Incident communication: the runbook's three templates, state, cadence, escalation, webhook."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dr.errors import BadInput
from dr.procedures import incident as inc
from tests.unit.kube.estate_fixtures import utc

T0 = utc(2026, 3, 14, 9, 26, 53)


def test_start_update_resolve_flow(estate: Any, tmp_path: Path) -> None:
    started = inc.start(
        estate, tmp_path, sev=1, summary="API down", impact="All requests fail", commander="alice", now=T0
    )
    assert started.incident.id == "incident-2026-03-14-092653"
    text = started.text
    assert text.startswith("🚨 INCIDENT DECLARED - SEV1\n")
    assert "Summary: API down" in text and "Impact: All requests fail" in text
    assert "Status: INVESTIGATING" in text and "ETA: Investigating, updates every 15 minutes" in text
    assert "Incident Channel: #incident-2026-03-14-092653" in text and "Incident Commander: @alice" in text
    assert "Next Update: 09:41 UTC" in text
    assert "- Secondary On-Call: +1-555-0124 (Slack: @oncall-secondary) — after 15 min (09:41 UTC)" in text
    assert "Status Page: https://status.claude-deployment.com" in text
    assert started.posted is None  # no webhook in the shipped stacks
    assert (tmp_path / started.incident.id / "01-start.md").read_text() == text

    upd = inc.update(
        estate,
        tmp_path,
        summary="Rolled back",
        actions="dr ops rollback api",
        next_steps="watch",
        eta="10:00",
        now=utc(2026, 3, 14, 9, 40),
    )
    assert upd.text.startswith("📊 INCIDENT UPDATE - SEV1\n")
    assert "Actions Taken: dr ops rollback api" in upd.text and "Next Steps: watch" in upd.text
    assert "Last Updated: 09:40 UTC" in upd.text and "Next Update: 09:55 UTC" in upd.text
    downgraded = inc.update(estate, tmp_path, summary="Stable", sev=2, now=utc(2026, 3, 14, 9, 50))
    assert "SEV2" in downgraded.text and "Next Update: 10:20 UTC" in downgraded.text  # SEV2: 30 min

    done = inc.resolve(
        estate,
        tmp_path,
        summary="Fixed",
        root_cause="bad deploy",
        postmortem="2026-03-17",
        now=utc(2026, 3, 14, 11, 2, 53),
    )
    assert done.text.startswith("✅ INCIDENT RESOLVED - SEV2\n")
    assert "Root Cause: bad deploy" in done.text and "Duration: 1h 36m" in done.text
    assert "Follow-up: Post-mortem scheduled for 2026-03-17" in done.text
    assert "Impact: All requests fail" in done.text
    files = sorted(p.name for p in (tmp_path / started.incident.id).iterdir())
    assert files == ["01-start.md", "02-update.md", "03-update.md", "04-resolved.md", "incident.json"]
    state = json.loads((tmp_path / started.incident.id / "incident.json").read_text())
    assert state["status"] == "resolved" and state["updates"] == 2
    with pytest.raises(BadInput, match="no open incident"):
        inc.update(estate, tmp_path, summary="again")


def test_bad_input(estate: Any, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not a severity"):
        inc.start(estate, tmp_path, sev=5, summary="x", now=T0)
    with pytest.raises(BadInput, match="summary"):
        inc.start(estate, tmp_path, sev=2, summary="  ", now=T0)
    with pytest.raises(BadInput, match="no open incident"):
        inc.resolve(estate, tmp_path, summary="x")
    inc.start(estate, tmp_path, sev=3, summary="one", now=T0)
    inc.start(estate, tmp_path, sev=3, summary="two", now=utc(2026, 3, 14, 9, 30))
    with pytest.raises(BadInput, match="2 open incidents"):
        inc.update(estate, tmp_path, summary="which?")
    msg = inc.update(
        estate,
        tmp_path,
        summary="this one",
        incident_id="#incident-2026-03-14-093000",
        now=utc(2026, 3, 14, 9, 31),
    )
    assert msg.incident.summary == "two" and "Next Update: 11:31 UTC" in msg.text  # SEV3: 2 hours


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(type(self).status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, type[_Hook]]]:
    handler = type("Hook", (_Hook,), {"received": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_post_and_failure_is_not_fatal(estate: Any, tmp_path: Path, webhook: tuple[str, Any]) -> None:
    url, handler = webhook
    hooked = estate.model_copy(update={"app": estate.app.model_copy(update={"incident_webhook_url": url})})
    msg = inc.start(hooked, tmp_path, sev=2, summary="slow", now=T0)
    assert msg.posted is True and handler.received == [{"text": msg.text}]
    handler.status = 500
    upd = inc.update(hooked, tmp_path, summary="still slow", now=utc(2026, 3, 14, 9, 40))
    assert upd.posted is False and upd.post_error == "HTTP 500"
    assert (tmp_path / msg.incident.id / "02-update.md").exists()
    dead = estate.model_copy(
        update={"app": estate.app.model_copy(update={"incident_webhook_url": "http://127.0.0.1:9/x"})}
    )
    res = inc.resolve(dead, tmp_path, summary="ok", now=utc(2026, 3, 14, 10, 0))
    assert res.posted is False and res.post_error
