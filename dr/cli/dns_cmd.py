"""`dr dns status|failover|failback` — which region serves the public name, and moving it."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console

from dr.cli.app import AppContext, pass_app
from dr.cli.plan_command import RunOptions, execute, finish, plan_options

METHOD = click.Choice(["auto", "healthcheck", "records"])


def _render_status(data: dict[str, Any], out: Console) -> None:
    from dr.cli.output import simple_table

    rows = []
    for r in data["records"]:
        hc = r["health_check"] or {}
        flags = ",".join(k for k in ("inverted", "disabled") if hc.get(k)) or "-"
        rows.append(
            [
                r["role"],
                r["region"],
                r["target"],
                hc.get("name") or hc.get("id") or "(none)",
                {True: "healthy", False: "UNHEALTHY", None: "-"}[hc.get("endpoint_healthy")],
                flags,
                "healthy" if r["healthy"] else "UNHEALTHY",
            ]
        )
    out.print(
        simple_table(
            f"{data['record']} (zone {data['zone']}) — served from {data['active_region']}",
            ["role", "region", "target", "health check", "endpoint", "flags", "route53 view"],
            rows,
        )
    )
    for note in data["notes"]:
        out.print(f"[yellow]note:[/yellow] {note}")


@click.group()
def dns() -> None:
    """Route53 failover of the public record: status, failover, failback."""


@dns.command("status")
@pass_app
def status(app: AppContext) -> None:
    """Which region serves app.record, each health check's state and the alias targets."""
    from dr.cli.output import emit
    from dr.steps.dns_records import read_state

    state = read_state(app.clients(read_only=True), app.estate)
    emit(app.output, state.to_dict(), _render_status)


def _move(app: AppContext, to: str, *, method: str, force: bool, timeout: float, run: RunOptions) -> None:
    from dr.procedures.dns import move_plan, prepare_move
    from dr.steps.dns_records import read_state

    estate = app.estate
    target = estate.site(to)
    clients = app.clients(read_only=run.dry_run)
    move = prepare_move(
        clients,
        estate,
        target,
        method=method,  # type: ignore[arg-type]
        force=force,
        pin_unhealthy_target=force,
    )
    plan = move_plan(estate, move, timeout=timeout)
    result = execute(app, plan, clients, run=run, locked=True)
    report: dict[str, Any] = {"move": move.to_dict()}
    if result.status != "dry-run":
        report["dns"] = read_state(clients, estate).to_dict()
        report["active_region"] = report["dns"]["active_region"]

    def human(r: dict[str, Any], out: Console) -> None:
        _render_status(r["dns"], out)
        for w in r["move"]["warnings"]:
            out.print(f"[yellow]warning:[/yellow] {w}")

    finish(app, result, report, human)


_common = [
    click.option(
        "--method",
        type=METHOD,
        default="auto",
        show_default=True,
        help="healthcheck: invert health checks (no record rewrite); records: one UPSERT batch "
        "swapping PRIMARY/SECONDARY; auto: healthcheck when valid, else records.",
    ),
    click.option(
        "--force",
        is_flag=True,
        help="Move even when the target region's health check is failing (the target becomes PRIMARY).",
    ),
    click.option(
        "--timeout",
        type=float,
        default=600,
        show_default=True,
        help="Seconds to wait for INSYNC and for the name to resolve to the target.",
    ),
]


def _with_common(f: Any) -> Any:
    for option in reversed(_common):
        f = option(f)
    return f


@dns.command("failover")
@click.option(
    "--to", "to", type=click.Choice(["secondary", "primary"]), default="secondary", show_default=True
)
@_with_common
@plan_options
@pass_app
def failover(app: AppContext, to: str, **move: Any) -> None:
    """Serve the public name from --to (refused, exit 3, when that region is unhealthy)."""
    _move(app, to, **move)


@dns.command("failback")
@_with_common
@plan_options
@pass_app
def failback(app: AppContext, **move: Any) -> None:
    """Serve the public name from the primary region again."""
    _move(app, "primary", **move)
