"""The post-drill invariant check: a drill never leaves the estate worse than it found it.

After every drill (rollbacks included) the runner asks the target's estate check for:

* ``single-writer`` — at most one writable database (``dr readiness``'s check of that name);
* ``dns-on-intended-region`` — Route53 serves the region the drill meant to serve at the end:
  the scenario's ``end-state.serving`` once its method completed, else the region it served when
  the drill started (a drill that did not complete its method must leave traffic where it was);
* ``replica-replicating`` — the other region's database is an available read replica of the
  serving one (the next failover has something to promote).

The same check runs before the hypothesis; an invariant that did not hold then either and whose
drill did not complete its method is not held against the drill ("not worse than it found it"),
the step says so. Any other broken invariant fails the drill (exit 1), as steps of phase
``invariant`` in the journal, the reports and JUnit.

The check is pluggable: ``ctx.services["estate_check"]`` (tests), else the one registered with
:func:`register` (:mod:`dr.drills.procedure_probes`, any target), used when the drill has an estate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dr.drills.drill_context import DrillContext

PHASE = "invariant"
# The invariant standing for "the estate could not be read": when it is so before the drill, the
# invariants are not checked after it (the step says so) — there is nothing to compare with.
UNREADABLE = "estate-readable"


@dataclass(frozen=True)
class Invariant:
    name: str
    ok: bool
    detail: str
    value: Any = None


@dataclass
class EstateFacts:
    """What the estate check read: the region Route53 serves (None: unreadable) and the invariants
    judged against ``intended`` (None: the serving region itself)."""

    serving: str | None
    invariants: list[Invariant] = field(default_factory=list)


EstateCheck = Callable[[DrillContext, str | None], EstateFacts]
_registered: EstateCheck | None = None


def register(fn: EstateCheck) -> EstateCheck:
    """Decorator: the estate check used by drills that have an estate."""
    global _registered
    _registered = fn
    return fn


def estate_check(ctx: DrillContext) -> EstateCheck | None:
    """The check for this drill: a service override, else the registered one (needs an estate)."""
    override: EstateCheck | None = ctx.services.get("estate_check")
    if override is not None:
        return override
    if ctx.estate is None:
        return None
    return _registered


def judge(after: list[Invariant], before: list[Invariant], *, method_completed: bool) -> list[Invariant]:
    """``after`` with the broken invariants a drill is not to blame for forgiven: those that were
    already broken before it and whose method did not complete (it changed nothing they need)."""
    broken_before = {i.name for i in before if not i.ok}
    out = []
    for inv in after:
        if not inv.ok and not method_completed and inv.name in broken_before:
            inv = Invariant(
                inv.name, True, f"{inv.detail} — as before the drill (it did not hold then either)", inv.value
            )
        out.append(inv)
    return out
