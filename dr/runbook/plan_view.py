"""Human rendering of plans and run results (rich), and the live progress view.

JSON output is the result objects' ``to_dict()``; this module is only for people. Plans and the
live view go to stderr when stdout must stay machine-readable.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from dr.runbook.plan import Plan

if TYPE_CHECKING:
    from dr.runbook.executor import RunResult

_STYLE = {
    "waiting": "dim",
    "running": "bold cyan",
    "done": "green",
    "skipped": "blue",
    "failed": "bold red",
    "not_started": "yellow",
    "interrupted": "magenta",
}


def _params(params: Any, width: int | None = 90) -> str:
    text = json.dumps(params, default=str, separators=(", ", "="), sort_keys=True) if params else ""
    text = text.replace('"', "")
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def plan_table(plan: Plan, params_width: int | None = 90) -> Table:
    """Every step with its region, dependencies and each operation (service:action + params).

    ``params_width``: parameters longer than this are shortened ("…"); None keeps them whole."""
    path, est = plan.critical_path()
    t = Table(
        title=f"Plan {plan.name} — {len(plan.steps)} steps, critical path ≈ {est:g}s ({' → '.join(path)})",
        title_justify="left",
        show_lines=True,
    )
    for col in ("#", "step", "region", "after", "operations (service:action params)"):
        t.add_column(col, overflow="fold")
    for i, sid in enumerate(plan.order(), 1):
        step = plan.step(sid)
        ops = "\n".join(
            f"{'' if op.mutating else '(read) '}{op.service}:{op.action}"
            f"{' @' + op.region if op.region and op.region != step.region else ''} {_params(dict(op.params), params_width)}"
            for op in step.operations
        )
        title = step.title + (f"\n[dim]{step.changes}[/dim]" if step.changes else "")
        t.add_row(
            str(i),
            f"[bold]{sid}[/bold]\n{title}",
            step.region or "global",
            ", ".join(step.depends_on),
            ops or "-",
        )
    return t


def print_plan(plan: Plan, console: Console) -> None:
    if plan.description:
        console.print(plan.description)
    # a terminal gets a readable table; a pipe or a file (CI logs, `| grep`) every parameter whole
    console.print(plan_table(plan, params_width=90 if console.is_terminal else None))


def _fmt(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.1f}s"


def result_table(result: RunResult) -> Table:
    t = Table(
        title=f"Run {result.run_id} — plan {result.plan}: {result.status}",
        title_justify="left",
    )
    for col in ("step", "status", "duration", "mutating calls", "error"):
        t.add_column(col, overflow="fold")
    for s in result.steps:
        calls = ", ".join(f"{c.get('service')}:{c.get('operation')}" for c in s.calls)
        status = s.status + (" (earlier run)" if s.resumed else "")
        t.add_row(s.id, f"[{_STYLE.get(s.status, '')}]{status}[/]", _fmt(s.duration), calls, s.error or "")
    return t


def print_result(result: RunResult, console: Console) -> None:
    if result.status == "dry-run":
        console.print(f"[bold]Dry run[/bold] of plan {result.plan}: no change was made.")
        return
    console.print(result_table(result))
    ratio = "n/a" if result.ratio is None else f"{result.ratio:.2f}"
    console.print(
        f"wall {result.wall_seconds:.1f}s · critical path {result.critical_path_seconds:.1f}s "
        f"({' → '.join(result.critical_path)}) · ratio {ratio}"
    )
    if result.journal_path:
        console.print(f"journal: {result.journal_path}")
    if result.status != "succeeded":
        summary = result.summary()
        console.print(
            f"[bold red]failed[/]: {', '.join(summary['failed']) or '-'} · "
            f"done: {', '.join(summary['done'] + summary['skipped']) or '-'} · "
            f"not started: {', '.join(summary['not_started']) or '-'}"
        )
        console.print(f"fix the cause, then resume with: --resume {result.run_id}")


class LiveProgress:
    """A rich Live table of steps (waiting / running / done / skipped / failed, elapsed)."""

    def __init__(self, plan: Plan, console: Console, clock: Callable[[], float] = time.monotonic) -> None:
        self.plan = plan
        self.console = console
        self.clock = clock
        self._lock = threading.Lock()
        self._status: dict[str, str] = {sid: "waiting" for sid in plan.ids}
        self._since: dict[str, float] = {}
        self._took: dict[str, float] = {}
        self._t0 = clock()
        self._live: Live | None = None

    def step_changed(self, step_id: str, status: str) -> None:
        now = self.clock()
        with self._lock:
            self._status[step_id] = status
            if status == "running":
                self._since[step_id] = now
            elif step_id in self._since and status != "waiting":
                self._took[step_id] = now - self._since[step_id]
        if self._live is not None:
            self._live.refresh()

    def __rich__(self) -> Group:
        now = self.clock()
        t = Table(title_justify="left", box=None, padding=(0, 1))
        for col in ("step", "region", "status", "elapsed"):
            t.add_column(col)
        with self._lock:
            for sid in self.plan.ids:
                status = self._status[sid]
                if sid in self._took:
                    elapsed = self._took[sid]
                elif sid in self._since:
                    elapsed = now - self._since[sid]
                else:
                    elapsed = None
                t.add_row(
                    sid,
                    self.plan.step(sid).region or "global",
                    Text(status, style=_STYLE.get(status, "")),
                    _fmt(elapsed),
                )
        head = Text(f"plan {self.plan.name} · {now - self._t0:.1f}s", style="bold")
        return Group(head, t)

    def __enter__(self) -> LiveProgress:
        self._live = Live(self, console=self.console, refresh_per_second=4, transient=False)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None
