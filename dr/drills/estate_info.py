"""Which estate a drill ran against: app, both regions and stacks, latency profile and time scale.

Recorded once in the drill's journal (``estate``) so every piece of evidence rendered from it —
report.md/html, junit.xml, metrics.prom labels, ``dr drill history`` — names its estate, and runs of
different estates or latency profiles are never mixed in one trend. A journal written before this
existed has no ``estate``: :func:`of_journal` gives it an "unknown" one (grouped apart).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dr.topology import Estate

UNKNOWN = "unknown"


def describe(
    estate: Estate | None, target: str, sandbox_state: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The estate record of a run. ``sandbox_state``: the sandbox's state.json (latency profile and
    time scale); on AWS the profile is ``aws`` at scale 1 (real durations)."""
    latency: dict[str, Any] = {"profile": "aws", "time_scale": 1.0}
    if target == "sandbox":
        lat = (sandbox_state or {}).get("latency") or {}
        latency = {"profile": str(lat.get("profile") or UNKNOWN), "time_scale": lat.get("time_scale")}
    if estate is None:
        return {"app": UNKNOWN, "primary": None, "secondary": None, "stack_dir": None, "latency": latency}
    return {
        "app": estate.app.name,
        "primary": {"region": estate.primary.region, "stack": estate.primary.stack},
        "secondary": {"region": estate.secondary.region, "stack": estate.secondary.stack},
        "stack_dir": estate.stack_dir,
        "latency": latency,
    }


def for_run(estate: Estate | None, target: str) -> dict[str, Any]:
    """:func:`describe` for a run starting now (reads the sandbox's state.json on the sandbox)."""
    state: dict[str, Any] | None = None
    if target == "sandbox":
        try:
            from dr.target import read_sandbox_state

            state = read_sandbox_state()
        except Exception:
            state = None  # the run itself says why the sandbox is unusable
    return describe(estate, target, state)


def of_journal(doc: dict[str, Any]) -> dict[str, Any]:
    found = doc.get("estate")
    if isinstance(found, dict):
        return found
    return describe(None, str(doc.get("target") or ""), None) | {
        "latency": {"profile": UNKNOWN, "time_scale": None}
    }


def _site(info: dict[str, Any], side: str) -> dict[str, str]:
    site = info.get(side) or {}
    return {"region": str(site.get("region") or UNKNOWN), "stack": str(site.get("stack") or UNKNOWN)}


def scale_text(value: Any) -> str:
    return UNKNOWN if value is None else f"{float(value):g}"


def labels(info: dict[str, Any]) -> dict[str, str]:
    """Prometheus labels naming the estate (same keys for every run)."""
    p, s = _site(info, "primary"), _site(info, "secondary")
    lat = info.get("latency") or {}
    return {
        "app": str(info.get("app") or UNKNOWN),
        "primary_region": p["region"],
        "secondary_region": s["region"],
        "primary_stack": p["stack"],
        "secondary_stack": s["stack"],
        "latency_profile": str(lat.get("profile") or UNKNOWN),
        "time_scale": scale_text(lat.get("time_scale")),
    }


def estate_key(info: dict[str, Any]) -> str:
    """``app primary-region/stack → secondary-region/stack`` (one estate)."""
    p, s = _site(info, "primary"), _site(info, "secondary")
    return f"{info.get('app') or UNKNOWN} {p['region']}/{p['stack']} → {s['region']}/{s['stack']}"


def profile_key(info: dict[str, Any]) -> str:
    lat = info.get("latency") or {}
    return f"{lat.get('profile') or UNKNOWN} ×{scale_text(lat.get('time_scale'))}"


def summary(info: dict[str, Any]) -> str:
    """One line for reports: app, both regions with their stacks, latency profile and time scale."""
    p, s = _site(info, "primary"), _site(info, "secondary")
    lat = info.get("latency") or {}
    return (
        f"app {info.get('app') or UNKNOWN} · primary {p['region']} (stack {p['stack']}) · "
        f"DR {s['region']} (stack {s['stack']}) · latency profile {lat.get('profile') or UNKNOWN}, "
        f"time scale {scale_text(lat.get('time_scale'))}"
    )
