"""Evidence of a drill run, rendered from its ``journal.json`` (so ``dr drill report`` re-renders).

Files: ``report.md`` (summary), ``report.html`` (self-contained, inline SVG timeline), ``junit.xml``
(junitparser: every hypothesis probe, objective and step is a test case) and ``metrics.prom``
(prometheus_client textfile: ``dr_drill_rto_seconds``, ``dr_drill_rpo_seconds``,
``dr_drill_success``, ``dr_drill_step_duration_seconds{step=…}``). The journal is scrubbed when
written and every renderer scrubs again, so no secret reaches the evidence.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dr.drills.journal import iso, read_journal, scrub

EVIDENCE_FILES = ("journal.json", "report.md", "report.html", "junit.xml", "metrics.prom")


def _f(value: Any, unit: str = "s") -> str:
    if value is None:
        return "—"
    if isinstance(value, (int, float)):
        return f"{value:.2f}{unit}"
    return str(value)


def _met(met: Any) -> str:
    return {True: "met", False: "NOT MET", None: "n/a"}.get(met, str(met))


def _status(doc: dict[str, Any]) -> str:
    status = str(doc.get("status", "unknown"))
    return "incomplete (the run did not finish)" if status == "running" else status


def _brief(value: Any, limit: int = 160) -> str:
    """A one-line summary of a step's value for tables (a runbook run becomes its id and status)."""
    if isinstance(value, dict) and value.get("run_id") and isinstance(value.get("steps"), list):
        return (
            f"run {value['run_id']} {value.get('status', '?')}, wall {_f(value.get('wall_seconds'))} "
            "(steps below)"
        )
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _steps(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(doc.get("steps") or [])


def _objectives(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(doc.get("objectives_result") or [])


def _measure(doc: dict[str, Any], which: str) -> dict[str, Any]:
    return dict((doc.get("measurements") or {}).get(which) or {})


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------


def render_markdown(doc: dict[str, Any]) -> str:
    doc = scrub(doc)
    sc = doc.get("scenario") or {}
    rto, rpo = _measure(doc, "rto"), _measure(doc, "rpo")
    out = [
        f"# Drill report: {sc.get('title', sc.get('name', '?'))}",
        "",
        f"- Scenario: `{sc.get('name')}` ({sc.get('source')}, sha256 {str(sc.get('sha256', ''))[:12]})",
        f"- Run: `{doc.get('run_id')}` on target `{doc.get('target')}`, mode {sc.get('mode')}",
        f"- Started {doc.get('started_at')}, ended {doc.get('ended_at', '—')}",
        f"- **Result: {_status(doc)}** (exit code {doc.get('exit_code', '—')}) — {doc.get('reason', '')}",
        "",
        "## Objectives",
        "",
        "| Objective | Target | Measured | Result | Note |",
        "|---|---|---|---|---|",
    ]
    for o in _objectives(doc):
        out.append(
            f"| {o['name'].upper()} | {_f(o.get('objective'))} | {_f(o.get('measured'))} "
            f"| {_met(o.get('met'))} | {o.get('note', '')} |"
        )
    out += [
        "",
        "## Measurements",
        "",
        f"- RTO: {_f(rto.get('rto_seconds'))} from fault injection to the first of "
        f"{rto.get('sustained', '?')} consecutive successful probes; downtime observed "
        f"{_f(rto.get('downtime_seconds'))}, failed probes {rto.get('failed_samples', 0)}. {rto.get('note', '')}",
        f"- RPO: {_f(rpo.get('rpo_seconds'))}; heartbeats acknowledged by the old primary "
        f"{rpo.get('writes_on_old_primary', 0)}, lost {rpo.get('rows_lost', '—')}. {rpo.get('note', '')}",
        "",
        "## Steps",
        "",
        "| Phase | Step | Provider | Status | Duration | Detail |",
        "|---|---|---|---|---|---|",
    ]
    for s in _steps(doc):
        mark = " (fault)" if s.get("fault") else (" (recovery)" if s.get("recovery") else "")
        detail = s.get("error") or ("" if s.get("value") is None else f"value {_brief(s.get('value'))}")
        out.append(
            f"| {s['phase']} | {s['name']}{mark} | {s['provider']} | {s['status']} "
            f"| {_f(s.get('duration'))} | {str(detail).replace('|', '/')} |"
        )
    for s in _steps(doc):
        run = s.get("value")
        if isinstance(run, dict) and isinstance(run.get("steps"), list) and run.get("run_id"):
            out += [
                "",
                f"### Runbook run `{run['run_id']}` ({run.get('plan', '?')}) of step {s['name']}: "
                f"{run.get('status', '?')}",
                "",
                f"Wall {_f(run.get('wall_seconds'))}, critical path {_f(run.get('critical_path_seconds'))} "
                f"({' → '.join(run.get('critical_path') or [])}), ratio {run.get('ratio', '—')}.",
                "",
                "| Step | Status | Duration |",
                "|---|---|---|",
            ]
            out += [
                f"| {r.get('id')} | {r.get('status')} | {_f(r.get('duration'))} |"
                for r in run["steps"]
                if isinstance(r, dict)
            ]
    hyp = [s for s in _steps(doc) if s["phase"] == "hypothesis"]
    if hyp:
        out += ["", "## Steady-state hypothesis", ""]
        for s in hyp:
            out.append(
                f"- {s['name']}: {s['status']} (value {json.dumps(s.get('value'))}, tolerance "
                f"{json.dumps(s.get('tolerance'))})"
            )
    notes = [e for e in doc.get("events", []) if e.get("kind") in ("note", "stop_condition_breached")]
    notes += [{"message": n} for n in ((doc.get("heartbeat") or {}).get("notes") or [])]
    if notes:
        out += ["", "## Notes", ""]
        out += [
            f"- {n.get('message') or json.dumps({k: v for k, v in n.items() if k != 't'})}" for n in notes
        ]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# HTML with an SVG timeline
# ---------------------------------------------------------------------------------------------

_COLORS = {
    "ok": "#2e7d32",
    "failed": "#c62828",
    "error": "#c62828",
    "interrupted": "#ef6c00",
    "skipped": "#9e9e9e",
    "pending": "#9e9e9e",
}


@dataclass
class _Scale:
    t0: float
    t1: float
    x0: float
    width: float

    def x(self, t: float) -> float:
        span = max(self.t1 - self.t0, 1e-6)
        return self.x0 + (min(max(t, self.t0), self.t1) - self.t0) / span * self.width


def render_svg(doc: dict[str, Any]) -> str:
    steps = [s for s in _steps(doc) if isinstance(s.get("started_at"), (int, float))]
    t0 = doc.get("started_t") or min((s["started_at"] for s in steps), default=0.0)
    t1 = doc.get("ended_t") or max((s.get("ended_at") or s["started_at"] for s in steps), default=t0 + 1)
    label_w, width, row_h = 230.0, 720.0, 22
    sc = _Scale(float(t0), float(max(t1, t0 + 1e-3)), label_w, width)
    probes = (doc.get("probes") or {}).get("samples") or []
    acks = (doc.get("heartbeat") or {}).get("acks") or []
    rows = len(steps) + 2
    height = 40 + rows * row_h + 40
    e = html.escape
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + width + 20:.0f}" height="{height}" '
        f'font-family="sans-serif" font-size="12" role="img" aria-label="drill timeline">'
    ]
    # time axis
    span = sc.t1 - sc.t0
    for i in range(6):
        t = sc.t0 + span * i / 5
        x = sc.x(t)
        parts.append(f'<line x1="{x:.1f}" y1="25" x2="{x:.1f}" y2="{height - 25}" stroke="#eee"/>')
        parts.append(f'<text x="{x:.1f}" y="18" text-anchor="middle" fill="#555">+{t - sc.t0:.1f}s</text>')
    y = 30
    for s in steps:
        start = float(s["started_at"])
        end = float(s.get("ended_at") or start)
        x1, x2 = sc.x(start), sc.x(end)
        color = _COLORS.get(s.get("status", ""), "#1565c0")
        title = f"{s['phase']} {s['name']}: {s.get('status')} {_f(s.get('duration'))}"
        parts.append(f'<text x="4" y="{y + 15}" fill="#222">{e(s["phase"][:5])} · {e(s["name"][:28])}</text>')
        parts.append(
            f'<rect class="step" x="{x1:.1f}" y="{y + 3}" width="{max(x2 - x1, 2):.1f}" height="{row_h - 6}" '
            f'fill="{color}"><title>{e(title)}</title></rect>'
        )
        y += row_h
    # probe strip
    parts.append(f'<text x="4" y="{y + 15}" fill="#222">endpoint probes</text>')
    for row in probes:
        x = sc.x(float(row[0]))
        parts.append(
            f'<rect x="{x:.1f}" y="{y + 4}" width="2" height="{row_h - 8}" '
            f'fill="{"#2e7d32" if row[1] else "#c62828"}"/>'
        )
    y += row_h
    parts.append(f'<text x="4" y="{y + 15}" fill="#222">heartbeat acks</text>')
    for row in acks[:: max(1, len(acks) // 600)]:
        x = sc.x(float(row[1]))
        parts.append(f'<rect x="{x:.1f}" y="{y + 4}" width="1" height="{row_h - 8}" fill="#1565c0"/>')
    y += row_h

    def marker(t: float | None, color: str, label: str, dy: int) -> None:
        if t is None:
            return
        x = sc.x(float(t))
        parts.append(
            f'<line class="marker" x1="{x:.1f}" y1="25" x2="{x:.1f}" y2="{y + 5}" stroke="{color}" '
            f'stroke-width="2" stroke-dasharray="4 3"/>'
        )
        parts.append(f'<text x="{x + 3:.1f}" y="{y + 18 + dy}" fill="{color}">{e(label)}</text>')

    rto, rpo = _measure(doc, "rto"), _measure(doc, "rpo")
    marker(doc.get("fault_at"), "#c62828", "fault", 0)
    marker(doc.get("recovery_done_at"), "#1565c0", "recovery done", 12)
    if rto.get("recovered_at") is not None:
        marker(rto["recovered_at"], "#2e7d32", f"RTO {rto['rto_seconds']:.2f}s", 24)
    if rpo.get("last_ack_at") is not None and rpo.get("rpo_seconds") is not None:
        x1 = sc.x(float(rpo.get("newest_present_at") or rpo["last_ack_at"]))
        x2 = sc.x(float(rpo["last_ack_at"]))
        parts.append(
            f'<rect class="rpo" x="{min(x1, x2):.1f}" y="{y - row_h + 2}" width="{max(abs(x2 - x1), 2):.1f}" '
            f'height="{row_h - 4}" fill="#ff9800" opacity="0.6"><title>RPO window</title></rect>'
        )
        parts.append(
            f'<text x="{x2 + 3:.1f}" y="{y - 6}" fill="#e65100">RPO {float(rpo["rpo_seconds"]):.2f}s</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def render_html(doc: dict[str, Any]) -> str:
    doc = scrub(doc)
    e = html.escape
    sc = doc.get("scenario") or {}
    ok = doc.get("exit_code") == 0
    obj_rows = "".join(
        f"<tr><td>{e(o['name'].upper())}</td><td>{e(_f(o.get('objective')))}</td>"
        f"<td>{e(_f(o.get('measured')))}</td><td class='{'ok' if o.get('met') else 'bad' if o.get('met') is False else ''}'>"
        f"{e(_met(o.get('met')))}</td><td>{e(str(o.get('note', '')))}</td></tr>"
        for o in _objectives(doc)
    )
    step_rows = "".join(
        f"<tr><td>{e(s['phase'])}</td><td>{e(s['name'])}{' (fault)' if s.get('fault') else ''}"
        f"{' (recovery)' if s.get('recovery') else ''}</td><td>{e(s['provider'])}</td>"
        f"<td class='{'ok' if s['status'] == 'ok' else 'bad' if s['status'] in ('failed', 'error') else ''}'>"
        f"{e(s['status'])}</td><td>{e(_f(s.get('duration')))}</td><td>{e(str(s.get('error') or ''))}</td></tr>"
        for s in _steps(doc)
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Drill {e(str(sc.get("name")))} — {e(str(doc.get("run_id")))}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; }}
.ok {{ color: #2e7d32; font-weight: bold; }} .bad {{ color: #c62828; font-weight: bold; }}
.banner {{ padding: .6em 1em; border-radius: 4px; background: {"#e8f5e9" if ok else "#ffebee"}; }}
</style></head><body>
<h1>{e(str(sc.get("title", sc.get("name"))))}</h1>
<p class="banner"><strong>{e(_status(doc))}</strong> (exit {e(str(doc.get("exit_code", "—")))}) —
{e(str(doc.get("reason", "")))}</p>
<p>Scenario <code>{e(str(sc.get("name")))}</code> · run <code>{e(str(doc.get("run_id")))}</code> ·
target <code>{e(str(doc.get("target")))}</code> · started {e(str(doc.get("started_at")))} ·
ended {e(str(doc.get("ended_at", "—")))}</p>
<h2>Objectives</h2>
<table><tr><th>Objective</th><th>Target</th><th>Measured</th><th>Result</th><th>Note</th></tr>{obj_rows}</table>
<h2>Timeline</h2>
{render_svg(doc)}
<h2>Steps</h2>
<table><tr><th>Phase</th><th>Step</th><th>Provider</th><th>Status</th><th>Duration</th><th>Detail</th></tr>
{step_rows}</table>
</body></html>
"""


# ---------------------------------------------------------------------------------------------
# JUnit and Prometheus
# ---------------------------------------------------------------------------------------------


def write_junit(doc: dict[str, Any], path: Path) -> None:
    from junitparser import Failure, JUnitXml, Skipped, TestCase, TestSuite

    doc = scrub(doc)
    name = (doc.get("scenario") or {}).get("name", "drill")
    suite = TestSuite(f"drill.{name}")
    if doc.get("started_at"):
        suite.timestamp = str(doc["started_at"])
    for s in _steps(doc):
        case = TestCase(
            s["name"], classname=f"drill.{name}.{s['phase']}", time=float(s.get("duration") or 0.0)
        )
        if s["status"] in ("failed", "error", "interrupted"):
            case.result = [Failure(str(s.get("error") or s["status"]), s["status"])]
        elif s["status"] == "skipped":
            case.result = [Skipped(str(s.get("error") or "skipped"))]
        suite.add_testcase(case)
    for o in _objectives(doc):
        title = f"{o['name'].upper()} <= {_f(o.get('objective'))}"
        case = TestCase(title, classname=f"drill.{name}.objectives", time=0.0)
        if o.get("met") is False:
            case.result = [Failure(str(o.get("note", "")), "objective-not-met")]
        elif o.get("met") is None:
            case.result = [Skipped(str(o.get("note", "")))]
        suite.add_testcase(case)
    if doc.get("status") in ("interrupted", "aborted", "running"):
        case = TestCase("drill completed", classname=f"drill.{name}.run", time=0.0)
        case.result = [Failure(str(doc.get("reason") or _status(doc)), str(doc.get("status")))]
        suite.add_testcase(case)
    suite.update_statistics()
    xml = JUnitXml(f"dr drill {name}")
    xml.add_testsuite(suite)
    xml.update_statistics()
    xml.write(str(path), pretty=True)


def write_metrics(doc: dict[str, Any], path: Path) -> None:
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    doc = scrub(doc)
    labels = {
        "scenario": str((doc.get("scenario") or {}).get("name", "")),
        "target": str(doc.get("target", "")),
    }
    reg = CollectorRegistry()
    names = list(labels)
    rto_g = Gauge(
        "dr_drill_rto_seconds", "Measured RTO of the drill (fault to sustained success)", names, registry=reg
    )
    rpo_g = Gauge(
        "dr_drill_rpo_seconds", "Measured RPO of the drill (acknowledged writes lost)", names, registry=reg
    )
    lost_g = Gauge(
        "dr_drill_rows_lost", "Acknowledged heartbeats missing on the promoted database", names, registry=reg
    )
    ok_g = Gauge(
        "dr_drill_success", "1 when every check passed and every objective was met", names, registry=reg
    )
    obj_g = Gauge("dr_drill_objective_seconds", "Objective of the drill", [*names, "objective"], registry=reg)
    ts_g = Gauge("dr_drill_last_run_timestamp_seconds", "When the drill started (epoch)", names, registry=reg)
    step_g = Gauge(
        "dr_drill_step_duration_seconds",
        "Duration of each drill step",
        [*names, "step", "phase"],
        registry=reg,
    )
    rto, rpo = _measure(doc, "rto"), _measure(doc, "rpo")
    if rto.get("rto_seconds") is not None:
        rto_g.labels(**labels).set(float(rto["rto_seconds"]))
    if rpo.get("rpo_seconds") is not None:
        rpo_g.labels(**labels).set(float(rpo["rpo_seconds"]))
    if rpo.get("rows_lost") is not None:
        lost_g.labels(**labels).set(float(rpo["rows_lost"]))
    ok_g.labels(**labels).set(1.0 if doc.get("exit_code") == 0 else 0.0)
    for o in _objectives(doc):
        if o.get("objective") is not None:
            obj_g.labels(**labels, objective=o["name"]).set(float(o["objective"]))
    if doc.get("started_t"):
        ts_g.labels(**labels).set(float(doc["started_t"]))
    for s in _steps(doc):
        if s.get("duration") is not None:
            step_g.labels(**labels, step=s["name"], phase=s["phase"]).set(float(s["duration"]))
    write_to_textfile(str(path), reg)


def write_evidence(out_dir: Path, doc: dict[str, Any] | None = None) -> dict[str, Path]:
    """(Re-)render every evidence file in ``out_dir`` from ``doc`` (default: its journal.json)."""
    doc = doc if doc is not None else read_journal(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {name: out_dir / name for name in EVIDENCE_FILES}
    files["report.md"].write_text(render_markdown(doc))
    files["report.html"].write_text(render_html(doc))
    write_junit(doc, files["junit.xml"])
    write_metrics(doc, files["metrics.prom"])
    return files


# ---------------------------------------------------------------------------------------------
# History
# ---------------------------------------------------------------------------------------------


def history(root: Path) -> list[dict[str, Any]]:
    """Past runs under ``root`` (oldest first) with the RTO/RPO trend per scenario."""
    runs: list[dict[str, Any]] = []
    for journal in sorted(root.glob("*/journal.json")):
        try:
            doc = read_journal(journal)
        except Exception:
            continue
        objectives = {o["name"]: o for o in _objectives(doc)}
        runs.append(
            {
                "run_dir": str(journal.parent),
                "run_id": doc.get("run_id"),
                "scenario": (doc.get("scenario") or {}).get("name"),
                "target": doc.get("target"),
                "started_at": doc.get("started_at"),
                "started_t": doc.get("started_t") or 0.0,
                "status": _status(doc),
                "exit_code": doc.get("exit_code"),
                "rto_seconds": _measure(doc, "rto").get("rto_seconds"),
                "rpo_seconds": _measure(doc, "rpo").get("rpo_seconds"),
                "rto_met": (objectives.get("rto") or {}).get("met"),
                "rpo_met": (objectives.get("rpo") or {}).get("met"),
            }
        )
    runs.sort(key=lambda r: (r["started_t"] or 0.0, r["run_dir"]))
    last: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        key = (str(run["scenario"]), str(run["target"]))
        prev = last.get(key)
        for m in ("rto_seconds", "rpo_seconds"):
            cur, before = run[m], (prev or {}).get(m)
            run[m.replace("_seconds", "_trend")] = _trend(cur, before)
        last[key] = run
    return runs


def _trend(cur: float | None, before: float | None) -> str:
    if cur is None or before is None:
        return ""
    delta = cur - before
    if abs(delta) < 0.005:
        return "="
    return f"{'▲' if delta > 0 else '▼'}{abs(delta):.2f}s"


def default_out_dir(root: Path, scenario: str, now: float | None = None) -> Path:
    stamp = dt.datetime.fromtimestamp(now, dt.UTC) if now else dt.datetime.now(dt.UTC)
    return root / f"{stamp:%Y%m%dT%H%M%SZ}-{scenario}"


__all__ = [
    "EVIDENCE_FILES",
    "default_out_dir",
    "history",
    "iso",
    "render_html",
    "render_markdown",
    "render_svg",
    "write_evidence",
    "write_junit",
    "write_metrics",
]
