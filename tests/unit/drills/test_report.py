"""Evidence: report.md/html, junit.xml (parsed back with junitparser), metrics.prom (parsed back)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from junitparser import Failure, JUnitXml
from prometheus_client.parser import text_string_to_metric_families

from dr.drills.drill_context import DrillContext, MeasurementHooks
from dr.drills.report import EVIDENCE_FILES, history, render_svg, write_evidence
from dr.drills.lifecycle import DrillRunner
from dr.drills.scenario import parse_scenario

from .fakes import FakeWorld

SCENARIO = """
title: Evidence drill
objectives: {rto_seconds: 30, rpo_seconds: 0}
measure: {heartbeat_interval: 0.01, probe_interval: 0.01, sustained: 3, recovery_timeout: 10}
steady-state-hypothesis:
  probes:
    - {name: up, type: probe, provider: t-world-ok, tolerance: true}
    - {name: value, type: probe, provider: t-value, arguments: {value: 3}, tolerance: {max: 5}}
method:
  - {name: warmup, type: action, provider: t-wait, arguments: {seconds: 0.1}}
  - {name: lose, type: action, provider: t-fault, fault: true}
  - {name: outage, type: action, provider: t-wait, arguments: {seconds: 0.05}}
  - {name: recover, type: action, provider: t-recover, recovery: true}
verification:
  probes:
    - {name: up-after, type: probe, provider: t-world-ok, tolerance: true}
    - {name: wrong, type: probe, provider: t-value, arguments: {value: 1}, tolerance: 2}
rollbacks:
  - {name: undo, type: action, provider: t-record, arguments: {tag: "postgresql://app:topsecret@db/x"}}
"""


@pytest.fixture
def run_dir(fake_providers, tmp_path: Path) -> Path:
    world = FakeWorld(replicate_lag_rows=3)
    hooks = MeasurementHooks(
        heartbeat_target=world.target, heartbeat_store=world, resolver=world.resolver, check=world.check
    )
    ctx = DrillContext(run_id="20261124T000000Z-abcdef", target="sandbox", services={"world": world})
    out = tmp_path / "drills" / "20261124T000000Z-evidence"
    res = DrillRunner(parse_scenario(SCENARIO, "evidence.yaml"), ctx, out_dir=out, hooks=hooks).run()
    assert res.exit_code == 1  # verification 'wrong' fails and RPO 0 is not met (3 rows lost)
    write_evidence(out)
    return out


def _doc(run_dir: Path) -> dict:
    return json.loads((run_dir / "journal.json").read_text())


def test_every_evidence_file_is_written_without_secrets(run_dir: Path) -> None:
    for name in EVIDENCE_FILES:
        text = (run_dir / name).read_text()
        assert text
        assert "topsecret" not in text and "s3cret" not in text, name


def test_junit_parses_back_with_matching_counts(run_dir: Path) -> None:
    doc = _doc(run_dir)
    xml = JUnitXml.fromfile(str(run_dir / "junit.xml"))
    suites = list(xml)
    assert len(suites) == 1
    cases = list(suites[0])
    # every step (2 hypothesis + 4 method + 2 verification + 1 rollback) + 2 objectives
    assert len(cases) == len(doc["steps"]) + 2 == 11
    failures = [c for c in cases if any(isinstance(r, Failure) for r in c.result)]
    names = sorted(c.name for c in failures)
    assert names == ["RPO <= 0.00s", "wrong"]
    assert suites[0].failures == 2 and suites[0].tests == 11
    hyp = [c for c in cases if c.classname.endswith(".hypothesis")]
    assert sorted(c.name for c in hyp) == ["up", "value"]
    rto_case = next(c for c in cases if c.name.startswith("RTO"))
    assert not rto_case.result  # met: passes


def test_markdown_and_html_show_the_measured_numbers(run_dir: Path) -> None:
    doc = _doc(run_dir)
    rto = doc["measurements"]["rto"]["rto_seconds"]
    rpo = doc["measurements"]["rpo"]["rpo_seconds"]
    md = (run_dir / "report.md").read_text()
    page = (run_dir / "report.html").read_text()
    for text in (md, page):
        assert f"{rto:.2f}s" in text and f"{rpo:.2f}s" in text
        assert "NOT MET" in text
    assert "| RPO | 0.00s |" in md
    assert "| verification | wrong |" in md
    assert "<svg" in page and "</svg>" in page
    svg = page[page.index("<svg") : page.index("</svg>")]
    ET.fromstring(svg + "</svg>")  # well-formed XML
    assert svg.count('class="step"') == len(doc["steps"])
    assert f"RTO {rto:.2f}s" in svg and f"RPO {rpo:.2f}s" in svg and ">fault<" in svg
    assert (
        "<script" not in page and "http://" not in page.split("<svg")[0].split("<body>")[0]
    )  # self-contained


def test_metrics_parse_back(run_dir: Path) -> None:
    doc = _doc(run_dir)
    families = {f.name: f for f in text_string_to_metric_families((run_dir / "metrics.prom").read_text())}
    sample = families["dr_drill_rto_seconds"].samples[0]
    # no estate and no sandbox state in this run: the estate labels say so (never left out)
    assert sample.labels == {
        "scenario": "evidence",
        "target": "sandbox",
        "app": "unknown",
        "primary_region": "unknown",
        "secondary_region": "unknown",
        "primary_stack": "unknown",
        "secondary_stack": "unknown",
        "latency_profile": "unknown",
        "time_scale": "unknown",
    }
    assert sample.value == pytest.approx(doc["measurements"]["rto"]["rto_seconds"])
    assert families["dr_drill_rpo_seconds"].samples[0].value == pytest.approx(
        doc["measurements"]["rpo"]["rpo_seconds"]
    )
    assert families["dr_drill_success"].samples[0].value == 0.0
    assert families["dr_drill_rows_lost"].samples[0].value == 3.0
    steps = {s.labels["step"]: s.value for s in families["dr_drill_step_duration_seconds"].samples}
    assert set(steps) == {s["name"] for s in doc["steps"]}
    assert steps["warmup"] >= 0.1


def test_report_rerenders_from_journal_only(run_dir: Path) -> None:
    original = (run_dir / "report.md").read_text()
    for name in EVIDENCE_FILES[1:]:
        (run_dir / name).unlink()
    write_evidence(run_dir)
    assert (run_dir / "report.md").read_text() == original
    assert all((run_dir / n).exists() for n in EVIDENCE_FILES)


def test_incomplete_journal_still_renders(tmp_path: Path) -> None:
    from dr.drills.evidence import DrillJournal

    out = tmp_path / "killed"
    DrillJournal(out / "journal.json", {"run_id": "x", "scenario": {"name": "s"}, "status": "running"})
    write_evidence(out)
    assert "incomplete" in (out / "report.md").read_text()
    xml = JUnitXml.fromfile(str(out / "junit.xml"))
    assert next(iter(xml)).failures == 1  # 'drill completed' fails


def test_svg_without_steps_is_still_valid() -> None:
    svg = render_svg({"steps": []})
    assert svg.startswith("<svg") and svg.endswith("</svg>")


def test_history_and_trend(tmp_path: Path) -> None:
    from dr.drills.evidence import DrillJournal

    root = tmp_path / "drills"
    for i, (rto, rpo) in enumerate([(10.0, 0.5), (8.0, 0.5), (12.5, None)]):
        DrillJournal(
            root / f"2026112{i}T000000Z-region-loss" / "journal.json",
            {
                "run_id": f"r{i}",
                "scenario": {"name": "region-loss"},
                "target": "sandbox",
                "status": "succeeded",
                "exit_code": 0,
                "started_t": 1000.0 + i,
                "measurements": {"rto": {"rto_seconds": rto}, "rpo": {"rpo_seconds": rpo}},
                "objectives_result": [{"name": "rto", "met": True}, {"name": "rpo", "met": rpo is not None}],
            },
        )
    (root / "not-a-run").mkdir()
    (root / "broken").mkdir()
    (root / "broken" / "journal.json").write_text("{")
    runs = history(root)
    assert [r["run_id"] for r in runs] == ["r0", "r1", "r2"]
    assert [r["rto_trend"] for r in runs] == ["", "▼2.00s", "▲4.50s"]
    assert [r["rpo_trend"] for r in runs] == ["", "=", ""]
    assert runs[2]["rpo_met"] is False


def test_no_secret_keys_survive_in_the_journal(fake_providers, tmp_path: Path) -> None:
    text = SCENARIO.replace('arguments: {tag: "postgresql://app:topsecret@db/x"}', "arguments: {tag: x}")
    ctx = DrillContext(run_id="x", target="sandbox", services={"world": FakeWorld()})
    runner = DrillRunner(parse_scenario(text, "e.yaml"), ctx, out_dir=tmp_path / "r")
    ctx.outputs["db_password"] = "hunter2"
    ctx.outputs["url"] = "postgresql://u:hunter2@h/db"
    runner.run()
    write_evidence(tmp_path / "r")
    for name in EVIDENCE_FILES:
        assert "hunter2" not in (tmp_path / "r" / name).read_text()
    assert re.search(r'"db_password": "<redacted>"', (tmp_path / "r" / "journal.json").read_text())


def test_a_recovery_runbook_run_is_summarised_with_its_own_step_table() -> None:
    from dr.drills.report import render_markdown

    run = {
        "run_id": "20261124T000001Z-aaaaaa",
        "plan": "failover",
        "status": "succeeded",
        "wall_seconds": 19.0,
        "critical_path": ["promote-db", "route-traffic"],
        "critical_path_seconds": 18.5,
        "ratio": 1.027,
        "steps": [
            {"id": "promote-db", "status": "done", "duration": 13.3},
            {"id": "route-traffic", "status": "done", "duration": 5.2},
        ],
    }
    doc = {
        "run_id": "r",
        "scenario": {"name": "s"},
        "status": "succeeded",
        "steps": [
            {
                "phase": "method",
                "name": "failover",
                "provider": "failover",
                "status": "ok",
                "duration": 20.0,
                "value": run,
            },
            {"phase": "method", "name": "big", "provider": "x", "status": "ok", "value": {"k": "v" * 500}},
        ],
    }
    md = render_markdown(doc)
    row = next(line for line in md.splitlines() if line.startswith("| method | failover"))
    assert "run 20261124T000001Z-aaaaaa succeeded" in row and "promote-db" not in row
    assert "| promote-db | done | 13.30s |" in md and "| route-traffic | done | 5.20s |" in md
    assert "promote-db → route-traffic" in md and "ratio 1.027" in md
    big = next(line for line in md.splitlines() if line.startswith("| method | big"))
    assert len(big) < 300 and big.rstrip(" |").endswith("…")
