"""Evidence that names its estate: reports, junit and metrics carry app, regions, stacks, latency
profile and time scale; `dr drill history` groups per estate and profile and charts the trend; a
failed run says why in the report; the timeline's labels are never cut."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from junitparser import JUnitXml
from prometheus_client.parser import text_string_to_metric_families

from dr.drills.drill_context import DrillContext, MeasurementHooks
from dr.drills.evidence import DrillJournal
from dr.drills.report import CHAR_W, history, render_html, render_markdown, render_svg, write_evidence
from dr.drills.lifecycle import DrillRunner
from dr.drills.scenario import parse_scenario
from dr.topology import load_estate
from tests.conftest import ROOT

from .fakes import FakeWorld
from .test_report import SCENARIO

CHESS = ROOT / "examples" / "chess-ai" / "stacks"


@pytest.fixture
def chess_run(fake_providers: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake drill on an estate that is not ours (chess-ai), on a sandbox started `fast ×0.05`."""
    sandbox = tmp_path / "sbx"
    sandbox.mkdir()
    (sandbox / "state.json").write_text(json.dumps({"latency": {"profile": "fast", "time_scale": 0.05}}))
    monkeypatch.setenv("DR_SANDBOX_DIR", str(sandbox))
    world = FakeWorld(replicate_lag_rows=3)
    hooks = MeasurementHooks(
        heartbeat_target=world.target, heartbeat_store=world, resolver=world.resolver, check=world.check
    )
    ctx = DrillContext(
        run_id="20261206T000000Z-chess0",
        target="sandbox",
        estate=load_estate(CHESS, "prod"),
        services={"world": world},
    )
    out = tmp_path / "drills" / "20261206T000000Z-evidence"
    DrillRunner(parse_scenario(SCENARIO, "evidence.yaml"), ctx, out_dir=out, hooks=hooks).run()
    write_evidence(out)
    return out


def test_reports_junit_and_metrics_name_the_estate(chess_run: Path) -> None:
    estate = load_estate(CHESS, "prod")
    p, s = estate.primary, estate.secondary
    assert (p.region, s.region) != ("us-east-1", "us-west-2")  # really another estate
    for name in ("report.md", "report.html"):
        text = (chess_run / name).read_text()
        for word in ("chess-ai", p.region, s.region, f"stack {p.stack}", f"stack {s.stack}", "fast", "0.05"):
            assert word in text, (name, word)
    labels = {
        "app": "chess-ai",
        "primary_region": p.region,
        "secondary_region": s.region,
        "primary_stack": p.stack,
        "secondary_stack": s.stack,
        "latency_profile": "fast",
        "time_scale": "0.05",
    }
    families = list(text_string_to_metric_families((chess_run / "metrics.prom").read_text()))
    samples = [x for f in families for x in f.samples]
    assert samples and all(x.labels.items() >= labels.items() for x in samples)
    suite = next(iter(JUnitXml.fromfile(str(chess_run / "junit.xml"))))
    props = {pr.name: pr.value for pr in suite.properties()}
    assert props.items() >= labels.items()


def _copy_run(src: Path, root: Path, name: str, **changes: Any) -> None:
    doc = json.loads((src / "journal.json").read_text())
    doc = copy.deepcopy(doc)
    rto, estate = changes.pop("rto"), changes.pop("estate", None)
    doc["measurements"]["rto"]["rto_seconds"] = rto
    if estate is not None:
        doc["estate"] = estate
    doc.update(changes)
    DrillJournal(root / name / "journal.json", doc)


def test_history_compares_runs_of_one_estate_and_profile_only(chess_run: Path, tmp_path: Path) -> None:
    """Three runs of one scenario: chess-ai fast (RTO 10), ours realistic (RTO 2), chess-ai fast
    (RTO 8). The third improves on the first (▼2.00s); compared with the run before it of another
    estate it would read ▲6.00s."""
    doc = json.loads((chess_run / "journal.json").read_text())
    ours = {
        "app": "claude",
        "primary": {"region": "us-east-1", "stack": "prod"},
        "secondary": {"region": "us-west-2", "stack": "dr"},
        "latency": {"profile": "realistic", "time_scale": 0.05},
    }
    root = tmp_path / "history"
    t0 = float(doc["started_t"])
    _copy_run(chess_run, root, "a-1", rto=10.0, started_t=t0)
    _copy_run(chess_run, root, "b-1", rto=2.0, started_t=t0 + 1, estate=ours)
    _copy_run(chess_run, root, "a-2", rto=8.0, started_t=t0 + 2)
    runs = history(root)
    assert [r["rto_seconds"] for r in runs] == [10.0, 2.0, 8.0]
    assert [r["rto_trend"] for r in runs] == ["", "", "▼2.00s"]
    assert runs[0]["group"] == runs[2]["group"] != runs[1]["group"]
    assert "chess-ai" in runs[0]["group"] and "fast ×0.05" in runs[0]["group"]

    # the CLI, as an operator runs it: JSON through a pipe, and the HTML page with its charts
    page = tmp_path / "history.html"
    proc = subprocess.run(
        [sys.executable, "-m", "dr", "-o", "json", "drill", "history", "--dir", str(root), "--html", str(page)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert {r["group"] for r in rows} == {runs[0]["group"], runs[1]["group"]}
    html = page.read_text()
    charts = re.findall(r"<svg[^>]*class=\"trend\".*?</svg>", html, re.S)
    assert len(charts) == 4  # RTO and RPO, per estate+profile (one scenario each)
    for chart in charts:
        ET.fromstring(chart)
    assert sum('data-series="RPO"' in c for c in charts) == 2
    chess_chart = next(c for c in charts if "RTO 10.00s" in c)
    # both chess-ai runs are points of one line; their objectives drawn beside them
    assert chess_chart.count('class="point" data-series="RTO"') == 2
    assert 'class="measured" data-series="RTO"' in chess_chart
    assert 'class="objective" data-series="RTO"' in chess_chart
    assert "RTO 2.00s" not in chess_chart
    # the table view groups too
    table = subprocess.run(
        [sys.executable, "-m", "dr", "drill", "history", "--dir", str(root)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "250"},
        cwd=tmp_path,
        timeout=120,
    )
    assert table.returncode == 0, table.stderr
    assert table.stdout.count("Drill history:") == 2 and "chess-ai" in table.stdout


def _failed_doc() -> dict[str, Any]:
    return {
        "format": "dr-drill-journal/1",
        "run_id": "r",
        "scenario": {"name": "s"},
        "status": "failed",
        "exit_code": 1,
        "reason": "objective not met: RTO not measured: never recovered",
        "started_t": 100.0,
        "ended_t": 110.0,
        "fault_at": 101.0,
        "steps": [
            {
                "phase": "method",
                "name": "failover",
                "provider": "failover",
                "status": "error",
                "started_at": 101.0,
                "ended_at": 103.0,
                "duration": 2.0,
                "error": "OperationFailed: plan failover (run x) failed: promote-db: InvalidDBInstanceState",
            }
        ],
        "probes": {
            "samples": [
                [100.5, True, "http://a", 200, 200, 0.01, ""],
                [101.5, False, "http://a", 404, None, 0.01, "HTTP 404 on /healthz"],
                [102.5, False, "http://a", 404, None, 0.01, "HTTP 404 on /healthz"],
                [103.5, False, "http://b", None, None, None, "ConnectionRefusedError: [Errno 111]"],
            ]
        },
    }


def test_a_failed_run_says_why_in_the_report() -> None:
    """The endpoint's real answers (HTTP 404, connection refused) were only sample rows of
    journal.json; the report now lists them with the failed step's exception."""
    doc = _failed_doc()
    for text in (render_markdown(doc), render_html(doc)):
        assert "Why it failed" in text
        assert "HTTP 404 on /healthz ×2" in text
        assert "ConnectionRefusedError: [Errno 111] ×1" in text
        assert "InvalidDBInstanceState" in text
    # a run that succeeded had an outage, not a failure: its failed probes are no "why it failed"
    ok = {**doc, "status": "succeeded", "exit_code": 0, "steps": []}
    for text in (render_markdown(ok), render_html(ok)):
        assert "Why it failed" not in text


def _texts(svg: str) -> list[tuple[float, str, str]]:
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    return [(float(t.get("x", 0)), t.get("class", ""), t.text or "") for t in root.iter(f"{ns}text")]


def test_timeline_labels_are_whole_and_inside_their_column_and_the_picture() -> None:
    """The old timeline cut labels to 5 + 28 characters ("hypot", "reco…") in a fixed 230 px column."""
    steps = []
    for i, (phase, name) in enumerate(
        [
            ("hypothesis", "replica-caught-up-within-the-rpo-budget"),
            ("method", "planned-failover"),
            ("verification", "dns-on-secondary"),
            ("rollback", "reprotect-dr-after-the-switchover-back"),
        ]
    ):
        steps.append(
            {
                "phase": phase,
                "name": name,
                "provider": "x",
                "status": "ok",
                "started_at": 100.0 + i,
                "ended_at": 100.5 + i,
                "recovery": name == "planned-failover",
            }
        )
    doc = {
        "steps": steps,
        "started_t": 100.0,
        "ended_t": 104.0,
        "fault_at": 103.99,
        "recovery_done_at": 104.0,
        "measurements": {"rto": {"recovered_at": 104.0, "rto_seconds": 0.01}},
    }
    svg = render_svg(doc)
    root = ET.fromstring(svg)
    width = float(root.get("width", 0))
    texts = _texts(svg)
    labels = [text for _x, cls, text in texts if cls == "label"]
    for s in steps:
        assert any(s["phase"] in t and s["name"] in t for t in labels), (s["name"], labels)
    assert any("(recovery)" in t for t in labels)
    first_bar = min(float(r.get("x", 0)) for r in root.iter("{http://www.w3.org/2000/svg}rect"))
    for x, cls, text in texts:
        right = x + CHAR_W * len(text)
        assert x >= 0 and right <= width, (text, x, right, width)
        if cls == "label":
            assert right <= first_bar, (text, right, first_bar)  # never under the bars
    # markers near the right edge stay inside the picture ("recovery done" at the very end)
    assert any(t == "recovery done" for _x, _c, t in texts)


def test_report_css_never_hides_overflowing_text(chess_run: Path) -> None:
    page = (chess_run / "report.html").read_text()
    style = page[page.index("<style>") : page.index("</style>")]
    assert "overflow: hidden" not in style and "text-overflow" not in style and "nowrap" not in style
    assert "overflow-wrap" in style  # a long cell wraps instead
