"""Plumbing of every command that runs a plan: its options, running it, rendering the outcome.

Usage in a command module (heavy imports inside the command body; this module imports only click
at import time, so ``dr --help`` stays fast)::

    @click.command()
    @plan_options
    @pass_app
    def promote(app: AppContext, run: RunOptions) -> None:
        plan = build_promote_plan(...)
        result = execute(app, plan, app.clients(read_only=run.dry_run), run=run, locked=True)
        finish(app, result, {"promote": report}, human)  # renders; exit 1 when a step failed

:func:`plan_options` adds ``--dry-run``, ``--yes``, ``--resume``, ``--break-lock`` and
``--runs-dir`` and hands the command one ``run`` keyword argument (:class:`RunOptions`);
:func:`execute` runs the plan with the runbook engine under the estate's run lock;
:func:`finish` renders the report (JSON or tables) and exits as :func:`exit_for` says.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from rich.console import Console

    from dr.aws.session import ClientProvider
    from dr.cli.app import AppContext
    from dr.kube import KubeFactory
    from dr.runbook.executor import RunResult
    from dr.runbook.lock import DynamoLock
    from dr.runbook.plan import Plan

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class RunOptions:
    """What every plan-running command takes from its command line (see :func:`plan_options`)."""

    dry_run: bool = False
    yes: bool = False
    resume: str | None = None
    break_lock: bool = False
    runs_dir: Path = Path(".dr-runs")

    def engine(self) -> dict[str, Any]:
        """The keyword arguments of :func:`dr.runbook.runner.run_plan` these options set."""
        return {
            "dry_run": self.dry_run,
            "assume_yes": self.yes,
            "resume": self.resume,
            "runs_dir": self.runs_dir,
            "break_lock": self.break_lock,
        }


def plan_options(f: F) -> F:
    """Add --dry-run, --yes/-y, --resume RUN_ID, --break-lock and --runs-dir to a command; the
    command gets them as one ``run: RunOptions`` keyword argument."""

    @functools.wraps(f)
    def command(
        *args: Any, dry_run: bool, yes: bool, resume: str | None, break_lock: bool, runs_dir: Path, **kw: Any
    ) -> Any:
        return f(*args, run=RunOptions(dry_run, yes, resume, break_lock, runs_dir), **kw)

    options = [
        click.option(
            "--dry-run",
            is_flag=True,
            help="Print the plan (every step's AWS operations and parameters) and change nothing.",
        ),
        click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation."),
        click.option(
            "--resume",
            metavar="RUN_ID",
            default=None,
            help="Continue an interrupted run from its journal: completed steps are not re-run.",
        ),
        click.option(
            "--break-lock",
            is_flag=True,
            help="Take over the run lock if its lease has expired (asks first unless --yes).",
        ),
        click.option(
            "--runs-dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=lambda: os.environ.get("DR_RUNS_DIR", ".dr-runs"),
            show_default=".dr-runs (env DR_RUNS_DIR)",
            help="Where run journals are written (<runs-dir>/<run-id>/journal.jsonl).",
        ),
    ]
    decorated: Any = command
    for option in reversed(options):
        decorated = option(decorated)
    return decorated


def estate_lock(app: AppContext, *, target_region: str | None = None, unplanned: bool = False) -> DynamoLock:
    """The estate's run lock, one name per app, in the copy of the lock table that
    :func:`dr.runbook.lock.lock_region` chooses (the DR region's, unless an unplanned run moves away
    from it). Promote, DNS moves, ops, fleets, failover and failback share it, so two of them never
    overlap."""
    from dr.runbook.lock import estate_lock as lock

    return lock(app.clients(), app.estate, target_region=target_region, unplanned=unplanned)


def execute(
    app: AppContext,
    plan: Plan,
    clients: ClientProvider,
    *,
    run: RunOptions,
    locked: bool,
    kube: KubeFactory | None = None,
) -> RunResult:
    """Run ``plan`` with the runbook engine; its steps' services are the clients, the estate and
    ``kube``. ``locked``: under the estate's run lock (never for a dry run)."""
    from dr.procedures.support import services
    from dr.runbook.runner import run_plan

    return run_plan(
        plan,
        services(clients, app.estate, kube=kube),
        **run.engine(),
        lock=estate_lock(app) if locked and not run.dry_run else None,
        output=app.output,
    )


def finish(
    app: AppContext,
    result: RunResult,
    report: dict[str, Any] | None = None,
    human: Callable[[dict[str, Any], Console], None] | None = None,
) -> None:
    """Render ``{"run": ..., **report}`` (JSON) or the run summary + ``human(report)``; exit 1 on failure."""
    from dr.cli.output import console, dumps

    report = report or {}
    if app.json:
        click.echo(dumps({**report, "run": result.to_dict()}))
    else:
        render_run(app.output, result)
        if human is not None and result.status != "dry-run":
            human(report, console())
    exit_for(result)


def _stdout_json(data: Any) -> None:
    from dr.cli.output import dumps

    click.echo(dumps(data))


def render_plan(output: str, plan: Plan) -> None:
    """The plan as JSON on stdout, or as a table (for people) on stdout."""
    if output == "json":
        _stdout_json(plan.to_dict())
        return
    from dr.cli.output import console
    from dr.runbook.plan_view import print_plan

    print_plan(plan, console())


def render_run(output: str, result: RunResult) -> None:
    """``-o json``: only the RunResult JSON on stdout. Table: a summary (dry run: the plan)."""
    if output == "json":
        _stdout_json(result.to_dict())
        return
    from dr.cli.output import console
    from dr.runbook.plan import Plan, Step
    from dr.runbook.plan_view import print_plan, print_result

    out = console()
    if result.status == "dry-run" and result.plan_obj is not None:
        print_plan(result.plan_obj, out)
    elif result.status == "dry-run" and result.planned is not None:
        planned = result.planned
        steps = [
            Step(
                id=s["id"],
                title=s["title"],
                region=s["region"],
                service=s["service"],
                changes=s.get("changes", ""),
                depends_on=tuple(s["depends_on"]),
                operations=tuple(_op(o) for o in s["operations"]),
                estimate=s.get("estimate", 1.0),
            )
            for s in planned["steps"]
        ]
        print_plan(Plan(planned["name"], steps, planned.get("description", "")), out)
    print_result(result, out)


def _op(d: dict[str, Any]) -> Any:
    from dr.runbook.plan import Operation

    return Operation(
        d["service"], d["action"], d.get("region"), d.get("params") or {}, d.get("mutating", True)
    )


def exit_for(result: RunResult) -> None:
    """Exit 1 when the run did not succeed (the journal says why); return when it did.

    A run stopped by the operator's setup or by IAM (no/expired credentials, opt-in region,
    AccessDenied on a step) ends with that error's exit code (2, 3) and one message on stderr naming
    the step, what to fix and the ``--resume`` that continues the run once it is fixed."""
    if result.ok:
        return
    stop = result.stopped_by()
    if stop is not None and stop.exit_code is not None:
        from dr.errors import COMMAND_PROCEDURE

        ctx = click.get_current_context(silent=True)
        words = ctx.command_path.split() if ctx is not None else []
        command = " ".join(["dr", *words[1:]]) if words else "dr …"
        procedure = COMMAND_PROCEDURE.get(words[1] if len(words) > 1 else "", "failover")
        message = (stop.error or "").replace("--procedure PROCEDURE", f"--procedure {procedure}")
        click.echo(
            f"Error: step {stop.id} stopped run {result.run_id}: {message}\n"
            f"→ once fixed, continue the run (completed steps are not repeated): "
            f"{command} --resume {result.run_id} (with the same options)",
            err=True,
        )
        raise click.exceptions.Exit(stop.exit_code)
    raise click.exceptions.Exit(1)
