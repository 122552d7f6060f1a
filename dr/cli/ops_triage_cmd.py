"""`dr ops triage`: one read-only report of the estate's health for the incident channel."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dr.cli.app import AppContext, pass_app
from dr.cli.ops_shared import factory, site_option

if TYPE_CHECKING:
    from rich.console import Console


@click.command()
@site_option("both")
@click.option(
    "--markdown",
    "markdown_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a Markdown report to paste into the incident channel.",
)
@pass_app
def triage(app: AppContext, where: str, markdown_file: Path | None) -> None:
    """Pods/restarts, warning events, node pressure, HPA, ALB targets, RDS, Redis, alarms, certificates.

    Exit 1 when the overall status is FAIL (0 when OK, WARN or a section could not be collected);
    exit 3 after the report when IAM refused a section's reads."""
    from dr.cli.output import emit, end_partial
    from dr.errors import EXIT_FAILED
    from dr.procedures.ops import resolve_sites
    from dr.procedures.ops_triage import FAIL
    from dr.procedures.ops_triage import triage as run_triage

    estate = app.estate
    sites = resolve_sites(estate, where)
    kube = factory(app, read_only=True)
    try:
        report = run_triage(estate, sites, app.clients(read_only=True), kube)
    finally:
        kube.close()
    if markdown_file is not None:
        markdown_file.parent.mkdir(parents=True, exist_ok=True)
        markdown_file.write_text(report.markdown())

    def table(rep: Any, out: Console) -> None:
        from rich.table import Table

        style = {"ok": "green", "warn": "yellow", "fail": "bold red", "error": "magenta"}
        summary = Table(title=f"Triage — {rep.app} — overall {rep.status.upper()}", title_justify="left")
        for col in ("section", "region", "status", "summary"):
            summary.add_column(col, overflow="fold")
        for s in rep.sections:
            summary.add_row(s.name, s.region, f"[{style[s.status]}]{s.status}[/]", s.error or s.summary)
        out.print(summary)
        for s in rep.sections:
            if s.rows and s.status != "ok":
                t = Table(title=f"{s.name} ({s.region})", title_justify="left")
                for col in s.columns:
                    t.add_column(col, overflow="fold")
                for row in s.rows[:20]:
                    t.add_row(*("" if v is None else str(v) for v in row))
                out.print(t)
        if markdown_file is not None:
            out.print(f"Markdown report written to {markdown_file}")

    emit(app.output, report, table)
    end_partial(report.denied, profile=app.profile, command="ops triage")
    if report.status == FAIL:  # the report is out whole first; then a check failed: exit 1
        raise click.exceptions.Exit(EXIT_FAILED)
