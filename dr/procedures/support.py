"""Helpers shared by the snapshot, restore, promote and DNS procedures.

Steps receive a :class:`dr.runbook.plan.StepContext` whose ``services`` carry ``clients``
(a :class:`dr.aws.session.ClientProvider`) and ``estate`` (:class:`dr.topology.Estate`).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

from dr.errors import BadInput

# Shared with the step catalogue (defined there: steps sit below procedures).
from dr.steps.base import (
    TAG_CREATED_BY as TAG_CREATED_BY,
)
from dr.steps.base import (
    TAG_PROMOTED_AT as TAG_PROMOTED_AT,
)
from dr.steps.base import (
    TAG_PROMOTED_FROM as TAG_PROMOTED_FROM,
)
from dr.steps.base import (
    TAG_RUN_ID as TAG_RUN_ID,
)
from dr.steps.base import (
    TAG_SUPERSEDED_BY as TAG_SUPERSEDED_BY,
)
from dr.steps.base import (
    Settled as Settled,
)
from dr.steps.base import (
    clients_of as clients_of,
)
from dr.steps.base import (
    iso as iso,
)
from dr.steps.base import (
    set_clock as set_clock,
)
from dr.steps.base import (
    utcnow as utcnow,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from dr.aws.session import ClientProvider
    from dr.kube import Kube
    from dr.runbook.plan import StepServices
    from dr.topology import Estate, SiteView

SNAPSHOT_PREFIX = "manual-snapshot-"
TAG_RESTORED_FROM = "dr:restored-from"

_RDS_ID = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,62}$")
_CACHE_ID = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$", re.IGNORECASE)
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


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


def services(
    clients: ClientProvider,
    estate: Estate,
    *,
    kube: Callable[[SiteView], Kube] | None = None,
    pg_connect: Callable[..., Any] | None = None,
) -> StepServices:
    """The services every procedure's steps receive (typed: :class:`dr.runbook.plan.StepServices`)."""
    from dr.runbook.plan import StepServices

    return StepServices(clients=clients, estate=estate, kube=kube, pg_connect=pg_connect)
