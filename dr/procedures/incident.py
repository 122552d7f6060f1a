"""Incident communication: the runbook's three templates (start, update, resolved), filled in.

State lives in ``<dir>/<incident-id>/incident.json`` (``dir`` defaults to ``incidents``): ``update``
and ``resolve`` find the open incident there and compute the duration. Every message is written
next to it (``01-start.md``, ``02-update.md`` …, ``NN-resolved.md``) and, when the estate has
``app.incidentWebhookUrl``, POSTed as ``{"text": ...}`` (Slack-compatible); a failed POST is
reported in the result, never fatal. Times are UTC.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dr.errors import BadInput

if TYPE_CHECKING:
    from dr.topology import Estate

# Minutes between status updates per severity (runbook: 15 min SEV1, 30 min SEV2; SEV3 responds
# within 2 hours, SEV4 next business day).
UPDATE_CADENCE = {1: 15, 2: 30, 3: 120, 4: 1440}
SEVERITY_NAMES = {1: "Critical", 2: "High", 3: "Medium", 4: "Low"}
STATE_FILE = "incident.json"
_ID = re.compile(r"^incident-\d{4}-\d{2}-\d{2}-\d{6}$")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def hhmm(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%H:%M UTC")


def stamp(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration_text(delta: dt.timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = ([f"{days}d"] if days else []) + ([f"{hours}h"] if hours or days else []) + [f"{minutes}m"]
    return " ".join(parts)


def check_sev(sev: int) -> int:
    if sev not in UPDATE_CADENCE:
        raise BadInput(
            f"--sev {sev} is not a severity: use 1 (critical) … 4 (low)", hint="pass --sev 1, 2, 3 or 4"
        )
    return sev


@dataclass
class Incident:
    id: str
    sev: int
    summary: str
    impact: str
    commander: str
    started_at: dt.datetime
    status: str = "open"
    updates: int = 0
    resolved_at: dt.datetime | None = None
    messages: list[str] = field(default_factory=list)

    @property
    def channel(self) -> str:
        return "#" + self.id

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "channel": self.channel,
            "sev": self.sev,
            "summary": self.summary,
            "impact": self.impact,
            "commander": self.commander,
            "started_at": self.started_at.isoformat(),
            "status": self.status,
            "updates": self.updates,
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "messages": list(self.messages),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Incident:
        return cls(
            id=d["id"],
            sev=int(d["sev"]),
            summary=d["summary"],
            impact=d.get("impact", ""),
            commander=d.get("commander", ""),
            started_at=dt.datetime.fromisoformat(d["started_at"]),
            status=d.get("status", "open"),
            updates=int(d.get("updates", 0)),
            resolved_at=dt.datetime.fromisoformat(d["resolved_at"]) if d.get("resolved_at") else None,
            messages=list(d.get("messages", [])),
        )


@dataclass
class Message:
    incident: Incident
    kind: str  # start | update | resolved
    text: str
    path: Path
    posted: bool | None = None  # None: no webhook configured
    post_error: str | None = None
    next_update: dt.datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "incident": self.incident.to_dict(),
            "kind": self.kind,
            "text": self.text,
            "path": str(self.path),
            "posted": self.posted,
            "post_error": self.post_error,
            "next_update": self.next_update.isoformat() if self.next_update else None,
        }


# ----------------------------------------------------------------------------------------------
# Templates (the runbook's "Communication Templates", verbatim structure)
# ----------------------------------------------------------------------------------------------


def escalation_lines(estate: Estate, started: dt.datetime) -> list[str]:
    lines = []
    for e in estate.app.escalation:
        when = (
            "now"
            if e.after_minutes == 0
            else f"after {e.after_minutes} min ({hhmm(started + dt.timedelta(minutes=e.after_minutes))})"
        )
        lines.append(f"- {e.level}: {e.contact} — {when}")
    return lines


def render_start(estate: Estate, inc: Incident) -> str:
    cadence = UPDATE_CADENCE[inc.sev]
    lines = [
        f"🚨 INCIDENT DECLARED - SEV{inc.sev}",
        "",
        f"Summary: {inc.summary}",
        f"Impact: {inc.impact or 'Under assessment'}",
        "Status: INVESTIGATING",
        f"ETA: Investigating, updates every {cadence} minutes",
        "",
        f"Incident Channel: {inc.channel}",
        f"Incident Commander: @{inc.commander.lstrip('@')}",
        f"Declared: {stamp(inc.started_at)}",
        f"Next Update: {hhmm(inc.started_at + dt.timedelta(minutes=cadence))}",
    ]
    if estate.app.status_page:
        lines.append(f"Status Page: {estate.app.status_page}")
    esc = escalation_lines(estate, inc.started_at)
    if esc:
        lines += ["", "Escalation:", *esc]
    return "\n".join(lines) + "\n"


def render_update(
    inc: Incident, *, summary: str, actions: str, next_steps: str, eta: str, now: dt.datetime
) -> tuple[str, dt.datetime]:
    nxt = now + dt.timedelta(minutes=UPDATE_CADENCE[inc.sev])
    text = "\n".join(
        [
            f"📊 INCIDENT UPDATE - SEV{inc.sev}",
            "",
            f"Summary: {summary}",
            f"Actions Taken: {actions or 'None yet'}",
            f"Next Steps: {next_steps or 'Continuing investigation'}",
            f"ETA: {eta or 'Unknown'}",
            "",
            f"Incident Channel: {inc.channel}",
            f"Elapsed: {duration_text(now - inc.started_at)}",
            f"Last Updated: {hhmm(now)}",
            f"Next Update: {hhmm(nxt)}",
        ]
    )
    return text + "\n", nxt


def render_resolved(
    inc: Incident, *, summary: str, root_cause: str, impact: str, postmortem: str, now: dt.datetime
) -> str:
    text = "\n".join(
        [
            f"✅ INCIDENT RESOLVED - SEV{inc.sev}",
            "",
            f"Summary: {summary}",
            f"Root Cause: {root_cause or 'Under investigation (see post-mortem)'}",
            f"Duration: {duration_text(now - inc.started_at)} ({stamp(inc.started_at)} → {stamp(now)})",
            f"Impact: {impact or inc.impact or 'Under assessment'}",
            "",
            f"Incident Channel: {inc.channel}",
            f"Follow-up: Post-mortem scheduled for {postmortem}",
        ]
    )
    return text + "\n"


# ----------------------------------------------------------------------------------------------
# State
# ----------------------------------------------------------------------------------------------


def _save(base: Path, inc: Incident) -> None:
    d = base / inc.id
    d.mkdir(parents=True, exist_ok=True)
    tmp = d / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(inc.to_dict(), indent=2) + "\n")
    os.replace(tmp, d / STATE_FILE)


def load_all(base: Path) -> list[Incident]:
    out = []
    for path in sorted(Path(base).glob(f"*/{STATE_FILE}")):
        try:
            out.append(Incident.from_dict(json.loads(path.read_text())))
        except (ValueError, KeyError) as exc:
            raise BadInput(f"incident state {path} is corrupt ({exc})", resource=str(path)) from None
    return out


def find_open(base: Path, incident_id: str | None = None) -> Incident:
    incidents = load_all(base)
    if incident_id:
        for inc in incidents:
            if inc.id == incident_id.lstrip("#"):
                if inc.status != "open":
                    raise BadInput(
                        f"incident {inc.id} is already resolved", resource=inc.id, hint="start a new one"
                    )
                return inc
        raise BadInput(
            f"no incident {incident_id!r} under {base}",
            resource=incident_id,
            hint="check --dir and the id (`#incident-YYYY-MM-DD-HHMMSS`)",
        )
    open_ = [i for i in incidents if i.status == "open"]
    if not open_:
        raise BadInput(
            f"no open incident under {base}",
            resource=str(base),
            hint="declare one with `dr incident start --sev N --summary ...` (or pass --dir)",
        )
    if len(open_) > 1:
        raise BadInput(
            f"{len(open_)} open incidents under {base}: {', '.join(i.id for i in open_)}",
            resource=str(base),
            hint="pass --id to choose one",
        )
    return open_[0]


def _write_message(base: Path, inc: Incident, kind: str, text: str) -> Path:
    n = len(inc.messages) + 1
    path = base / inc.id / f"{n:02d}-{kind}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    inc.messages.append(path.name)
    return path


def post_webhook(url: str | None, text: str, *, timeout: float = 5.0) -> tuple[bool | None, str | None]:
    """POST ``{"text": text}``; (None, None) without a URL, (False, reason) on failure."""
    if not url:
        return None, None
    if not url.startswith(("https://", "http://")):
        return False, f"webhook URL {url!r} is not http(s)"
    req = urllib.request.Request(
        url,
        data=json.dumps({"text": text}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            if 200 <= resp.status < 300:
                return True, None
            return False, f"HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"


# ----------------------------------------------------------------------------------------------
# Operations
# ----------------------------------------------------------------------------------------------


def start(
    estate: Estate,
    base: Path,
    *,
    sev: int,
    summary: str,
    impact: str = "",
    commander: str | None = None,
    now: dt.datetime | None = None,
    post: bool = True,
) -> Message:
    check_sev(sev)
    if not summary.strip():
        raise BadInput("--summary is empty", hint="describe the issue in one line")
    now = now or _now()
    inc_id = f"incident-{now.strftime('%Y-%m-%d-%H%M%S')}"
    if (Path(base) / inc_id / STATE_FILE).exists():
        raise BadInput(
            f"incident {inc_id} already exists under {base}", resource=inc_id, hint="wait a second and retry"
        )
    inc = Incident(
        id=inc_id,
        sev=sev,
        summary=summary.strip(),
        impact=impact.strip(),
        commander=(commander or os.environ.get("USER") or "oncall").lstrip("@"),
        started_at=now,
    )
    text = render_start(estate, inc)
    path = _write_message(Path(base), inc, "start", text)
    _save(Path(base), inc)
    posted, error = post_webhook(estate.app.incident_webhook_url if post else None, text)
    return Message(inc, "start", text, path, posted, error, now + dt.timedelta(minutes=UPDATE_CADENCE[sev]))


def update(
    estate: Estate,
    base: Path,
    *,
    summary: str,
    actions: str = "",
    next_steps: str = "",
    eta: str = "",
    sev: int | None = None,
    incident_id: str | None = None,
    now: dt.datetime | None = None,
    post: bool = True,
) -> Message:
    inc = find_open(Path(base), incident_id)
    if sev is not None:
        inc.sev = check_sev(sev)
    now = now or _now()
    text, nxt = render_update(inc, summary=summary, actions=actions, next_steps=next_steps, eta=eta, now=now)
    inc.updates += 1
    path = _write_message(Path(base), inc, "update", text)
    _save(Path(base), inc)
    posted, error = post_webhook(estate.app.incident_webhook_url if post else None, text)
    return Message(inc, "update", text, path, posted, error, nxt)


def resolve(
    estate: Estate,
    base: Path,
    *,
    summary: str,
    root_cause: str = "",
    impact: str = "",
    postmortem: str | None = None,
    incident_id: str | None = None,
    now: dt.datetime | None = None,
    post: bool = True,
) -> Message:
    inc = find_open(Path(base), incident_id)
    now = now or _now()
    when = postmortem or (now + dt.timedelta(days=3)).strftime("%Y-%m-%d")
    text = render_resolved(
        inc, summary=summary, root_cause=root_cause, impact=impact, postmortem=when, now=now
    )
    inc.status, inc.resolved_at = "resolved", now
    if impact:
        inc.impact = impact
    path = _write_message(Path(base), inc, "resolved", text)
    _save(Path(base), inc)
    posted, error = post_webhook(estate.app.incident_webhook_url if post else None, text)
    return Message(inc, "resolved", text, path, posted, error)
