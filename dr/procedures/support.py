"""Helpers shared by the snapshot, restore, promote and DNS procedures.

Steps receive a :class:`dr.runbook.plan.StepContext` whose ``services`` carry ``clients``
(a :class:`dr.aws.session.ClientProvider`) and ``estate`` (:class:`dr.topology.Estate`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dr.errors import BadInput

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.runbook.plan import StepContext
    from dr.topology import Estate, SiteView

SNAPSHOT_PREFIX = "manual-snapshot-"
# Tag keys the toolkit sets on what it creates or changes.
TAG_CREATED_BY = "dr:created-by"
TAG_RUN_ID = "dr:run-id"
TAG_PROMOTED_FROM = "dr:promoted-from"
TAG_PROMOTED_AT = "dr:promoted-at"
TAG_RESTORED_FROM = "dr:restored-from"
# A failback (or a reprotect moving it aside) left this instance behind: stale from then on.
TAG_SUPERSEDED_BY = "dr:superseded-by"

_RDS_ID = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,62}$")
_CACHE_ID = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$", re.IGNORECASE)
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

# Injectable clock (tests freeze it).
_now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)  # noqa: E731


def utcnow() -> dt.datetime:
    return _now()


def set_clock(fn: Callable[[], dt.datetime] | None) -> None:
    """Tests: freeze or restore the clock procedures use."""
    global _now
    _now = fn or (lambda: dt.datetime.now(dt.UTC))


def lag_budget(estate: Estate, max_lag: str | None, *, option: str = "--max-lag") -> dt.timedelta:
    """``--max-lag`` parsed, or the estate's RPO objective when it is not given."""
    if max_lag:
        return parse_duration(max_lag, option=option)
    return dt.timedelta(seconds=estate.app.objectives.rpo_seconds)


def parse_duration(text: str, *, option: str = "duration") -> dt.timedelta:
    """``5s``, ``90m``, ``12h``, ``7d``, ``2w`` or plain seconds → timedelta (bad input: exit 2)."""
    match = _DURATION.match(str(text))
    if not match:
        raise BadInput(
            f"{option} {text!r} is not a duration",
            resource=option,
            hint="use a number with a unit: 500ms, 5s, 30m, 12h, 7d or 2w",
        )
    value, unit = float(match.group(1)), (match.group(2) or "s").lower()
    return dt.timedelta(seconds=value * _UNITS[unit])


def parse_time(text: str, *, option: str = "--time") -> dt.datetime:
    """ISO-8601 time (``Z`` or offset; naive means UTC) → aware UTC datetime."""
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise BadInput(
            f"{option} {text!r} is not an ISO-8601 time",
            resource=option,
            hint="use e.g. 2026-11-24T06:30:00Z (UTC) or 2026-11-24T07:30:00+01:00",
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def iso(value: dt.datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def snapshot_name(now: dt.datetime | None = None, prefix: str = SNAPSHOT_PREFIX) -> str:
    """Sortable snapshot name, e.g. ``manual-snapshot-20261124-071500`` (the runbook's format)."""
    return f"{prefix}{(now or utcnow()).astimezone(dt.UTC):%Y%m%d-%H%M%S}"


def check_rds_identifier(name: str, *, region: str, what: str = "target") -> str:
    """RDS identifier rules: 1-63 letters/digits/hyphens, letter first, no '--', no trailing '-'."""
    if not _RDS_ID.match(name) or "--" in name or name.endswith("-"):
        raise BadInput(
            f"{what} name {name!r} is not a valid RDS identifier (region {region})",
            resource=name,
            region=region,
            hint="1-63 letters, digits or hyphens, starting with a letter, no '--', not ending in '-'",
        )
    return name


def check_cache_identifier(name: str, *, region: str, what: str = "target") -> str:
    """ElastiCache ids: 1-40 lowercase letters/digits/hyphens, letter first, no '--' or trailing '-'."""
    if not _CACHE_ID.match(name) or "--" in name or name.endswith("-"):
        raise BadInput(
            f"{what} name {name!r} is not a valid ElastiCache identifier (region {region})",
            resource=name,
            region=region,
            hint="1-40 lowercase letters, digits or hyphens, starting with a letter, no '--', not ending in '-'",
        )
    return name


def pick_site(estate: Estate, region: str | None, default: SiteView) -> SiteView:
    """The site for ``--region`` (a region, stack, site name or primary/secondary), else ``default``."""
    return estate.site(region) if region else default


def human_age(delta: dt.timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m" if minutes else f"{seconds}s"


def services(clients: ClientProvider, estate: Estate, **extra: Any) -> dict[str, Any]:
    """The ``services`` mapping every procedure's steps expect."""
    return {"clients": clients, "estate": estate, **extra}


def clients_of(ctx: StepContext) -> ClientProvider:
    provider: ClientProvider = ctx["clients"]
    return provider


class Settled:
    """Completion predicate state: trust a final state only after a change was observed.

    ``observe(done, transitional)`` returns True when ``done`` holds and either a transitional
    state was seen since the action, or ``done`` held on ``confirmations`` consecutive polls (the
    change had already completed before the first poll — e.g. moto, or a fast sandbox).
    """

    def __init__(self, confirmations: int = 2) -> None:
        self.confirmations = confirmations
        self.seen_transition = False
        self.streak = 0
        self.history: list[str] = []

    def observe(self, *, done: bool, transitional: bool, label: str = "") -> bool:
        if label and (not self.history or self.history[-1] != label):
            self.history.append(label)
        if transitional:
            self.seen_transition = True
            self.streak = 0
            return False
        if not done:
            self.streak = 0
            return False
        self.streak += 1
        return self.seen_transition or self.streak >= self.confirmations
