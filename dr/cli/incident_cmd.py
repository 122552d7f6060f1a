"""`dr incident start|update|resolve|show` — the runbook's communication templates, filled in."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dr.cli.app import AppContext, pass_app

if TYPE_CHECKING:
    from rich.console import Console


def _dir_option(f: Any) -> Any:
    return click.option(
        "--dir",
        "base",
        type=click.Path(file_okay=False, path_type=Path),
        default=lambda: os.environ.get("DR_INCIDENTS_DIR", "incidents"),
        show_default="incidents (env DR_INCIDENTS_DIR)",
        help="Where incidents are kept: <dir>/<incident-id>/ holds the state and every message.",
    )(f)


def _post_option(f: Any) -> Any:
    return click.option(
        "--post/--no-post",
        default=True,
        show_default=True,
        help="POST the message to app.incidentWebhookUrl when the stack files set one.",
    )(f)


def _emit(app: AppContext, message: Any) -> None:
    from dr.cli.output import emit

    def human(m: Any, out: Console) -> None:
        out.print(m.text, markup=False, highlight=False)
        out.print(f"[dim]written to {m.path}[/dim]")
        if m.posted is True:
            out.print("[dim]posted to the incident webhook[/dim]")
        elif m.posted is False:
            out.print(
                f"[yellow]warning:[/yellow] webhook post failed ({m.post_error}); paste the message by hand"
            )

    emit(app.output, message, human)


@click.group()
def incident() -> None:
    """Declare, update and resolve an incident with the runbook's templates (UTC)."""


@incident.command()
@click.option("--sev", type=click.IntRange(1, 4), required=True, help="Severity 1 (critical) … 4 (low).")
@click.option("--summary", required=True, help="Brief description of the issue.")
@click.option("--impact", default="", help="Customer-facing impact.")
@click.option("--commander", default=None, help="Incident commander (default: $USER).")
@_dir_option
@_post_option
@pass_app
def start(
    app: AppContext, sev: int, summary: str, impact: str, commander: str | None, base: Path, post: bool
) -> None:
    """Declare an incident: channel #incident-YYYY-MM-DD-HHMMSS, cadence, escalation matrix."""
    from dr.procedures import incident as inc

    _emit(
        app,
        inc.start(app.estate, base, sev=sev, summary=summary, impact=impact, commander=commander, post=post),
    )


@incident.command()
@click.option("--summary", required=True, help="Current status and progress.")
@click.option("--actions", default="", help="Actions taken.")
@click.option("--next", "next_steps", default="", help="What we're doing next.")
@click.option("--eta", default="", help="Updated timeline.")
@click.option("--sev", type=click.IntRange(1, 4), default=None, help="Change the severity.")
@click.option("--id", "incident_id", default=None, help="Incident id when several are open.")
@_dir_option
@_post_option
@pass_app
def update(
    app: AppContext,
    summary: str,
    actions: str,
    next_steps: str,
    eta: str,
    sev: int | None,
    incident_id: str | None,
    base: Path,
    post: bool,
) -> None:
    """Post a status update (Last Updated / Next Update from the severity's cadence)."""
    from dr.procedures import incident as inc

    _emit(
        app,
        inc.update(
            app.estate,
            base,
            summary=summary,
            actions=actions,
            next_steps=next_steps,
            eta=eta,
            sev=sev,
            incident_id=incident_id,
            post=post,
        ),
    )


@incident.command()
@click.option("--summary", required=True, help="Final resolution description.")
@click.option("--root-cause", default="", help="Brief explanation of the root cause.")
@click.option("--impact", default="", help="Final impact assessment.")
@click.option("--postmortem", default=None, help="Post-mortem date (default: in 3 days).")
@click.option("--id", "incident_id", default=None, help="Incident id when several are open.")
@_dir_option
@_post_option
@pass_app
def resolve(
    app: AppContext,
    summary: str,
    root_cause: str,
    impact: str,
    postmortem: str | None,
    incident_id: str | None,
    base: Path,
    post: bool,
) -> None:
    """Resolve the open incident (duration computed from its start)."""
    from dr.procedures import incident as inc

    _emit(
        app,
        inc.resolve(
            app.estate,
            base,
            summary=summary,
            root_cause=root_cause,
            impact=impact,
            postmortem=postmortem,
            incident_id=incident_id,
            post=post,
        ),
    )


@incident.command("list")
@_dir_option
@pass_app
def list_incidents(app: AppContext, base: Path) -> None:
    """Incidents under --dir, open first."""
    from dr.cli.output import emit, simple_table
    from dr.procedures import incident as inc

    items = sorted(inc.load_all(base), key=lambda i: (i.status != "open", i.started_at))
    emit(
        app.output,
        items,
        lambda d, out: out.print(
            simple_table(
                "Incidents",
                ["id", "sev", "status", "started", "summary"],
                [[i.id, i.sev, i.status, inc.stamp(i.started_at), i.summary] for i in d],
            )
        ),
    )
