"""`dr doctor`: the preflight before a game day or the first run with an account. Read-only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from dr.cli.app import AppContext, pass_app

if TYPE_CHECKING:
    from rich.console import Console

STYLE = {"pass": "green", "warn": "yellow", "fail": "red"}


def render(data: dict[str, Any], out: Console) -> None:
    from rich.markup import escape
    from rich.table import Table

    ident = data.get("identity") or {}
    who = f" as {ident['arn']}" if ident.get("arn") else ""
    table = Table(
        title=f"{data['app']} doctor — {data['primary_region']} (production) + {data['secondary_region']} "
        f"(DR){who}: {data['status'].upper()}",
        title_justify="left",
    )
    table.add_column("area", no_wrap=True)
    table.add_column("check", overflow="fold")
    table.add_column("region", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("detail", overflow="fold", min_width=30)
    fixes = any(c["fix"] for c in data["checks"])  # no empty column when there is nothing to do
    if fixes:
        table.add_column("what to do", overflow="fold", min_width=30)
    for c in data["checks"]:
        style = STYLE.get(c["status"], "white")
        cells = [
            c["area"],
            escape(c["name"]),
            c["region"] or "global",
            f"[{style}]{c['status']}[/{style}]",
            escape(c["detail"]),
        ]
        table.add_row(*cells, *([escape(c["fix"] or "")] if fixes else []))
    out.print(table)
    counts = data["counts"]
    out.print(f"{counts['pass']} pass, {counts['warn']} warn, {counts['fail']} fail")
    if data.get("iam_source"):
        out.print(f"IAM checked with {escape(data['iam_source'])}")


@click.command("doctor")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Connect timeout per AWS call in seconds (read timeout: twice that).",
)
@click.option(
    "--kubeconfig", default=None, help="Kubeconfig with one context per cluster (default: target's)."
)
@pass_app
def doctor(app: AppContext, timeout: float, kubeconfig: str | None) -> None:
    """Preflight of the estate: identity and enabled regions, every resource the stack files name,
    the IAM policy of each procedure (simulated for your role), Kubernetes access and RBAC of both
    clusters, the lock table and journal buckets, and drift from the stack files. Read-only.

    Exit 0 when every check passes (warnings allowed), 1 when one fails — each failure says what to
    do; exit 2 when no region accepts the credentials."""
    from dr.cli.output import emit
    from dr.cli.status_cmd import probe_clients
    from dr.drills import drill_iam
    from dr.kube import KubeFactory
    from dr.procedures.doctor import run_doctor

    drill_iam.install()  # the drill policy's needs, from the drills' registrations
    clients = probe_clients(app, timeout)
    clients.max_attempts = 4  # IAM's simulator throttles at a few calls a second
    kube = KubeFactory.for_target(app.target_name, kubeconfig=kubeconfig, clients=clients, read_only=True)
    try:
        report = run_doctor(app.estate, clients, kube, command=app.command)
    finally:
        kube.close()
    emit(app.output, report.to_dict(), render)
    if report.exit_code:
        raise click.exceptions.Exit(report.exit_code)
