"""`dr failback` — re-protect (replica back in the original region), then a planned failover back,
then the DR side to warm standby. One resumable, journaled plan (dr.procedures.failback), run by
the failback use case (dr.procedures.region_switch.FailbackRun); this module parses and renders."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from dr.cli.app import AppContext, pass_app
from dr.cli.plan_command import RunOptions, plan_options

if TYPE_CHECKING:
    from rich.console import Console


def _human(report: dict[str, Any], out: Console) -> None:
    pre = report["preflight"]
    out.print(
        f"failback {pre['source_region']} -> {pre['target_region']}: new primary {pre['replica']}; "
        f"{report.get('active_region') or '?'} serves the public name"
    )
    for warning in pre["warnings"]:
        out.print(f"[yellow]warning:[/yellow] {warning}")
    out.print(f"next: {report['reconcile_command']}")


@click.command()
@click.option(
    "--to",
    "to",
    default=None,
    help="The region to fail back to (default: the stack files' primary region). Refused (exit 3) "
    "when the estate is not failed over (Route53 serves the primary region, its database the writer).",
)
@click.option(
    "--max-lag", default=None, help="Lag budget of the new replica, e.g. 5s (default: the RPO objective)."
)
@click.option(
    "--max-snapshot-age", default="24h", show_default=True, help="Oldest Redis snapshot to re-seed from."
)
@click.option("--timeout", type=float, default=3600, show_default=True, help="Seconds each wait may take.")
@click.option(
    "--kubeconfig", type=click.Path(dir_okay=False), default=None, help="Kubeconfig (default: see docs)."
)
@plan_options
@pass_app
def failback(
    app: AppContext,
    to: str | None,
    max_lag: str | None,
    max_snapshot_age: str,
    timeout: float,
    kubeconfig: str | None,
    run: RunOptions,
) -> None:
    """Re-protect, wait until caught up, fail back (planned, RPO 0), DR side back to warm standby."""

    from dr.cli.plan_command import finish
    from dr.kube import KubeFactory
    from dr.procedures.region_switch import FailbackRequest, FailbackRun, RunSettings
    from dr.procedures.support import lag_budget, parse_duration

    estate = app.estate
    budget = lag_budget(estate, max_lag)
    snap_age = parse_duration(max_snapshot_age, option="--max-snapshot-age")
    switch = FailbackRun(
        estate,
        app.clients(read_only=run.dry_run),
        FailbackRequest(to=to, max_lag=budget, max_snapshot_age=snap_age, timeout=timeout),
        RunSettings(**run.engine(), output=app.output),
    )
    pre, plan = switch.prepare()
    kube = KubeFactory.for_target(
        app.target_name, kubeconfig=kubeconfig, clients=app.clients(read_only=True), read_only=run.dry_run
    )
    try:
        outcome = switch.execute(pre, plan, kube)
    finally:
        kube.close()
    report: dict[str, Any] = {
        "preflight": pre.to_dict(),
        "reconcile_command": app.command("reconcile", "--primary", pre.target.stack),
    }
    if outcome.serving_read:
        report["active_region"] = outcome.active_region
    finish(app, outcome.result, report, _human)
