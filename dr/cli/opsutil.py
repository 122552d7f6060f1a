"""Shared plumbing of the snapshot / restore / promote / dns commands (imports only click at load)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console

    from dr.aws.session import ClientProvider
    from dr.cli.app import AppContext
    from dr.cli.runopts import RunOptions
    from dr.runbook.executor import RunResult
    from dr.runbook.lock import DynamoLock
    from dr.runbook.plan import Plan


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
    **extra_services: Any,
) -> RunResult:
    from dr.procedures.support import services
    from dr.runbook.runner import run_plan

    return run_plan(
        plan,
        services(clients, app.estate, **extra_services),
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
    from dr.cli.runopts import exit_for, render_run

    report = report or {}
    if app.json:
        click.echo(dumps({**report, "run": result.to_dict()}))
    else:
        render_run(app.output, result)
        if human is not None and result.status != "dry-run":
            human(report, console())
    exit_for(result)
