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

from dr.drills import estate_info
from dr.drills.evidence import iso, read_journal
from dr.runbook.journal import scrub

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


def failure_causes(doc: dict[str, Any]) -> list[str]:
    """Why the drill failed, in the operator's words: each failed step with its error (HTTP status,
    exception text), the failed steps of a runbook run a step reported, and the endpoint probes'
    failures counted by cause (what ``journal.json`` holds only sample by sample). Nothing for a
    run that succeeded: its failed probes are the outage it measured."""
    if doc.get("status") == "succeeded" or doc.get("exit_code") == 0:
        return []
    out: list[str] = []
    for s in _steps(doc):
        if s.get("status") in ("failed", "error", "interrupted"):
            out.append(f"{s['phase']} step {s['name']} {s['status']}: {s.get('error') or 'no detail'}")
        run = s.get("value")
        if isinstance(run, dict) and isinstance(run.get("steps"), list):
            for r in run["steps"]:
                if isinstance(r, dict) and r.get("status") == "failed":
                    out.append(
                        f"runbook step {r.get('id')} of {s['name']} failed: {r.get('error') or 'no detail'}"
                    )
    errors: dict[str, int] = {}
    for row in (doc.get("probes") or {}).get("samples") or []:
        if isinstance(row, list) and len(row) >= 7 and not row[1]:
            cause = str(row[6] or (f"HTTP {row[3]}" if row[3] else "no answer"))
            errors[cause] = errors.get(cause, 0) + 1
    if errors:
        causes = ", ".join(f"{c} ×{n}" for c, n in sorted(errors.items(), key=lambda kv: -kv[1]))
        out.append(f"endpoint probes failed {sum(errors.values())} times: {causes}")
    return out


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
        f"- Estate: {estate_info.summary(estate_info.of_journal(doc))}",
        f"- Started {doc.get('started_at')}, ended {doc.get('ended_at', '—')}",
        f"- **Result: {_status(doc)}** (exit code {doc.get('exit_code', '—')}) — {doc.get('reason', '')}",
        "",
    ]
    causes = failure_causes(doc)
    if causes:
        out += ["## Why it failed", "", *(f"- {c}" for c in causes), ""]
    out += [
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
                f"{json.dumps(s.get('tolerance'))})" + (f": {s['error']}" if s.get("error") else "")
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


# Width of a character of the 12 px sans-serif the SVGs use, rounded up (wide glyphs included): a
# label's box is laid out from it, so no text runs past its column or the picture's edge.
CHAR_W = 7.5
FONT = 'font-family="DejaVu Sans, Arial, sans-serif" font-size="12"'


def text_width(text: str) -> float:
    return CHAR_W * len(text)


def _label(phase: str, name: str, fault: bool = False, recovery: bool = False) -> str:
    return f"{phase} · {name}" + (" (fault)" if fault else " (recovery)" if recovery else "")


def render_svg(doc: dict[str, Any]) -> str:
    steps = [s for s in _steps(doc) if isinstance(s.get("started_at"), (int, float))]
    t0 = doc.get("started_t") or min((s["started_at"] for s in steps), default=0.0)
    t1 = doc.get("ended_t") or max((s.get("ended_at") or s["started_at"] for s in steps), default=t0 + 1)
    labels = [_label(s["phase"], s["name"], bool(s.get("fault")), bool(s.get("recovery"))) for s in steps]
    labels += ["endpoint probes", "heartbeat acks"]
    # the label column fits the longest label (never cut); the bars start after it
    label_w = max(160.0, 12 + max(text_width(t) for t in labels))
    width, row_h, pad = 720.0, 22, 8.0
    total_w = label_w + width + 20
    sc = _Scale(float(t0), float(max(t1, t0 + 1e-3)), label_w, width)
    probes = (doc.get("probes") or {}).get("samples") or []
    acks = (doc.get("heartbeat") or {}).get("acks") or []
    rows = len(steps) + 2
    height = 40 + rows * row_h + 50
    e = html.escape
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_w:.0f}" height="{height}" '
        f'viewBox="0 0 {total_w:.0f} {height}" {FONT} role="img" aria-label="drill timeline">'
    ]

    def text(x: float, y: float, label: str, color: str, cls: str = "label") -> None:
        """A text placed so that all of it is inside the picture (anchored at its end near the right)."""
        w = text_width(label)
        if x + w > total_w - pad:
            x = max(pad, total_w - pad - w)
        parts.append(f'<text class="{cls}" x="{x:.1f}" y="{y}" fill="{color}">{e(label)}</text>')

    # time axis
    span = sc.t1 - sc.t0
    for i in range(6):
        t = sc.t0 + span * i / 5
        x = sc.x(t)
        parts.append(f'<line x1="{x:.1f}" y1="25" x2="{x:.1f}" y2="{height - 35}" stroke="#eee"/>')
        tick = f"+{t - sc.t0:.1f}s"
        text(x - text_width(tick) / 2, 18, tick, "#555", "tick")
    y = 30
    for s, label in zip(steps, labels, strict=False):
        start = float(s["started_at"])
        end = float(s.get("ended_at") or start)
        x1, x2 = sc.x(start), sc.x(end)
        color = _COLORS.get(s.get("status", ""), "#1565c0")
        title = f"{s['phase']} {s['name']}: {s.get('status')} {_f(s.get('duration'))}"
        text(4, y + 15, label, "#222")
        parts.append(
            f'<rect class="step" x="{x1:.1f}" y="{y + 3}" width="{max(x2 - x1, 2):.1f}" height="{row_h - 6}" '
            f'fill="{color}"><title>{e(title)}</title></rect>'
        )
        y += row_h
    # probe strip
    text(4, y + 15, "endpoint probes", "#222")
    for row in probes:
        x = sc.x(float(row[0]))
        parts.append(
            f'<rect x="{x:.1f}" y="{y + 4}" width="2" height="{row_h - 8}" '
            f'fill="{"#2e7d32" if row[1] else "#c62828"}"/>'
        )
    y += row_h
    text(4, y + 15, "heartbeat acks", "#222")
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
        text(x + 3, y + 18 + dy, label, color, "marker-label")

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
        text(x2 + 3, y - 6, f"RPO {float(rpo['rpo_seconds']):.2f}s", "#e65100", "marker-label")
    parts.append("</svg>")
    return "\n".join(parts)


# No overflow: hidden, no nowrap with a fixed width anywhere: a long cell wraps between words (a
# word is broken only when it alone is wider than the page), a wide picture scrolls.
_CSS = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; max-width: 100%; }
td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top;
         overflow-wrap: break-word; }
.ok { color: #2e7d32; font-weight: bold; } .bad { color: #c62828; font-weight: bold; }
.figure { overflow-x: auto; max-width: 100%; }
.causes li { margin: .2em 0; }
"""


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
    causes = failure_causes(doc)
    why = (
        "<h2>Why it failed</h2>\n<ul class='causes'>" + "".join(f"<li>{e(c)}</li>" for c in causes) + "</ul>"
        if causes
        else ""
    )
    info = estate_info.of_journal(doc)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Drill {e(str(sc.get("name")))} — {e(str(info.get("app")))} — {e(str(doc.get("run_id")))}</title>
<style>{_CSS}
.banner {{ padding: .6em 1em; border-radius: 4px; background: {"#e8f5e9" if ok else "#ffebee"}; }}
</style></head><body>
<h1>{e(str(sc.get("title", sc.get("name"))))}</h1>
<p class="banner"><strong>{e(_status(doc))}</strong> (exit {e(str(doc.get("exit_code", "—")))}) —
{e(str(doc.get("reason", "")))}</p>
<p class="estate">Estate: {e(estate_info.summary(info))}</p>
<p>Scenario <code>{e(str(sc.get("name")))}</code> · run <code>{e(str(doc.get("run_id")))}</code> ·
target <code>{e(str(doc.get("target")))}</code> · started {e(str(doc.get("started_at")))} ·
ended {e(str(doc.get("ended_at", "—")))}</p>
{why}
<h2>Objectives</h2>
<table><tr><th>Objective</th><th>Target</th><th>Measured</th><th>Result</th><th>Note</th></tr>{obj_rows}</table>
<h2>Timeline</h2>
<div class="figure">
{render_svg(doc)}
</div>
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
    for key, value in estate_info.labels(estate_info.of_journal(doc)).items():
        suite.add_property(key, value)
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
        **estate_info.labels(estate_info.of_journal(doc)),
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
    """Past runs under ``root`` (oldest first) with the RTO/RPO trend against the previous run of
    the same scenario *on the same estate and latency profile* (``group``): runs of another app,
    region pair, stack pair or time scale are never compared."""
    runs: list[dict[str, Any]] = []
    for journal in sorted(root.glob("*/journal.json")):
        try:
            doc = read_journal(journal)
        except Exception:
            continue
        objectives = {o["name"]: o for o in _objectives(doc)}
        info = estate_info.of_journal(doc)
        estate, profile = estate_info.estate_key(info), estate_info.profile_key(info)
        runs.append(
            {
                "run_dir": str(journal.parent),
                "run_id": doc.get("run_id"),
                "scenario": (doc.get("scenario") or {}).get("name"),
                "target": doc.get("target"),
                "app": info.get("app"),
                "estate": estate,
                "latency_profile": profile,
                "group": f"{estate} · {profile}",
                "started_at": doc.get("started_at"),
                "started_t": doc.get("started_t") or 0.0,
                "status": _status(doc),
                "exit_code": doc.get("exit_code"),
                "rto_seconds": _measure(doc, "rto").get("rto_seconds"),
                "rpo_seconds": _measure(doc, "rpo").get("rpo_seconds"),
                "rto_objective": (objectives.get("rto") or {}).get("objective"),
                "rpo_objective": (objectives.get("rpo") or {}).get("objective"),
                "rto_met": (objectives.get("rto") or {}).get("met"),
                "rpo_met": (objectives.get("rpo") or {}).get("met"),
            }
        )
    runs.sort(key=lambda r: (r["started_t"] or 0.0, r["run_dir"]))
    last: dict[tuple[str, str, str], dict[str, Any]] = {}
    for run in runs:
        key = (str(run["group"]), str(run["scenario"]), str(run["target"]))
        prev = last.get(key)
        for m in ("rto_seconds", "rpo_seconds"):
            cur, before = run[m], (prev or {}).get(m)
            run[m.replace("_seconds", "_trend")] = _trend(cur, before)
        last[key] = run
    return runs


def history_groups(runs: list[dict[str, Any]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``{group: {scenario: runs oldest first}}`` (groups and scenarios in order of first run)."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for run in runs:
        out.setdefault(str(run["group"]), {}).setdefault(str(run["scenario"]), []).append(run)
    return out


def _nice_max(value: float) -> float:
    for step in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if value <= step * 5:
            return step * 5
    return value * 1.1


def render_trend_svg(runs: list[dict[str, Any]], title: str, which: tuple[str, ...] = ("RTO", "RPO")) -> str:
    """``which`` of RTO and RPO of successive runs (solid, dots; red when the objective was missed)
    against their objectives (dashed): whether recovery is getting faster, at a glance. Hand-built
    SVG, no script, no external file."""
    e = html.escape
    left, right, top, bottom, plot_w, plot_h = 70.0, 150.0, 34.0, 56.0, 620.0, 220.0
    width, height = left + plot_w + right, top + plot_h + bottom
    series = {
        name: spec
        for name, spec in {
            "RTO": ("rto_seconds", "rto_objective", "#1565c0"),
            "RPO": ("rpo_seconds", "rpo_objective", "#e65100"),
        }.items()
        if name in which
    }
    values = [float(r[k]) for r in runs for spec in series.values() for k in spec[:2] if r.get(k) is not None]
    y_max = _nice_max(max(values, default=1.0) or 1.0)
    n = len(runs)

    def x(i: int) -> float:
        return left + (plot_w / 2 if n == 1 else plot_w * i / (n - 1))

    def y(v: float) -> float:
        return top + plot_h - min(v, y_max) / y_max * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="trend" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" {FONT} role="img" aria-label="{e(title)}">',
        f'<text x="{left:.0f}" y="18" font-weight="bold">{e(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#888"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#888"/>',
    ]
    for k in range(6):
        v = y_max * k / 5
        parts.append(
            f'<line x1="{left}" y1="{y(v):.1f}" x2="{left + plot_w}" y2="{y(v):.1f}" stroke="#eee"/>'
        )
        tick = f"{v:g}s"
        parts.append(
            f'<text x="{left - 6 - text_width(tick):.1f}" y="{y(v) + 4:.1f}" fill="#555">{e(tick)}</text>'
        )
    step = max(1, n // 8)
    for i, r in enumerate(runs):
        if i % step == 0 or i == n - 1:
            label = str(r.get("started_at") or "")[:10] or f"#{i + 1}"
            parts.append(
                f'<text x="{x(i) - text_width(label) / 2:.1f}" y="{top + plot_h + 18}" fill="#555">{e(label)}</text>'
            )
    legend_y = top + 8
    for name, (measured, objective, color) in series.items():
        obj = [(i, float(r[objective])) for i, r in enumerate(runs) if r.get(objective) is not None]
        if obj:
            pts = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in obj)
            if len(obj) == 1:
                i, v = obj[0]
                pts = f"{left:.1f},{y(v):.1f} {left + plot_w:.1f},{y(v):.1f}"
            parts.append(
                f'<polyline class="objective" data-series="{name}" points="{pts}" fill="none" '
                f'stroke="{color}" stroke-width="1.5" stroke-dasharray="6 4"/>'
            )
        got = [(i, float(r[measured]), r) for i, r in enumerate(runs) if r.get(measured) is not None]
        if len(got) > 1:
            pts = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v, _r in got)
            parts.append(
                f'<polyline class="measured" data-series="{name}" points="{pts}" fill="none" '
                f'stroke="{color}" stroke-width="2"/>'
            )
        for i, v, r in got:
            met = r.get(f"{name.lower()}_met")
            parts.append(
                f'<circle class="point" data-series="{name}" cx="{x(i):.1f}" cy="{y(v):.1f}" r="4" '
                f'fill="{color if met is not False else "#c62828"}"><title>{e(name)} {v:.2f}s '
                f"({e(str(r.get('started_at')))}, {e(str(r.get('status')))})</title></circle>"
            )
        lx = left + plot_w + 16
        parts.append(
            f'<line x1="{lx}" y1="{legend_y}" x2="{lx + 22}" y2="{legend_y}" stroke="{color}" stroke-width="2"/>'
        )
        parts.append(f'<text x="{lx + 28}" y="{legend_y + 4}">{name} measured</text>')
        legend_y += 18
        parts.append(
            f'<line x1="{lx}" y1="{legend_y}" x2="{lx + 22}" y2="{legend_y}" stroke="{color}" '
            f'stroke-width="1.5" stroke-dasharray="6 4"/>'
        )
        parts.append(f'<text x="{lx + 28}" y="{legend_y + 4}">{name} objective</text>')
        legend_y += 22
    parts.append("</svg>")
    return "\n".join(parts)


def render_history_html(runs: list[dict[str, Any]], root: Path) -> str:
    """The history page: per estate and latency profile, per scenario, the RTO/RPO trend chart
    against the objectives and the table of runs."""
    e = html.escape
    body: list[str] = []
    for group, scenarios in history_groups(runs).items():
        body.append(f"<h2>{e(group)}</h2>")
        for scenario, rows in scenarios.items():
            body.append(f"<h3>{e(scenario)} ({len(rows)} run{'s' if len(rows) != 1 else ''})</h3>")
            body.append(
                '<div class="figure">'
                + "".join(render_trend_svg(rows, f"{scenario}: {m} per run", (m,)) for m in ("RTO", "RPO"))
                + "</div>"
            )
            cells = "".join(
                f"<tr><td>{e(str(r['started_at']))}</td><td>{e(str(r['target']))}</td><td>{e(str(r['status']))}</td>"
                f"<td>{e(_f(r['rto_seconds']))} {e(r['rto_trend'])}</td><td>{e(_f(r['rto_objective']))}</td>"
                f"<td>{e(_f(r['rpo_seconds']))} {e(r['rpo_trend'])}</td><td>{e(_f(r['rpo_objective']))}</td>"
                f"<td>{e(str(r['run_dir']))}</td></tr>"
                for r in rows
            )
            body.append(
                "<table><tr><th>started</th><th>target</th><th>status</th><th>RTO</th><th>RTO objective</th>"
                f"<th>RPO</th><th>RPO objective</th><th>run</th></tr>{cells}</table>"
            )
    if not runs:
        body.append(f"<p>No drill runs under {e(str(root))}.</p>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Drill history — {e(str(root))}</title>
<style>{_CSS}</style></head><body>
<h1>Drill history</h1>
<p>Runs under <code>{e(str(root))}</code>, grouped per estate (app, regions, stacks) and latency
profile; trends compare runs of the same group only.</p>
{"".join(body)}
</body></html>
"""


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
    "failure_causes",
    "history",
    "history_groups",
    "iso",
    "render_history_html",
    "render_html",
    "render_markdown",
    "render_svg",
    "render_trend_svg",
    "write_evidence",
    "write_junit",
    "write_metrics",
]
