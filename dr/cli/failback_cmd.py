"""`dr failback` — re-protect (replica back in the original region), then a planned failover back,
then the DR side to warm standby. One resumable, journaled plan (dr.procedures.failback)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from dr.cli.app import AppContext, pass_app
from dr.cli.opsutil import estate_lock
from dr.cli.runopts import RunOptions, plan_options

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

    from dr.cli.opsutil import finish
    from dr.errors import GateRefused
    from dr.kube import KubeFactory
    from dr.procedures.dns import read_state
    from dr.procedures.failback import failback_plan, preflight, replica_placement
    from dr.procedures.failover import require_wal_positions
    from dr.procedures.support import lag_budget, parse_duration, services
    from dr.runbook.runner import run_plan

    estate = app.estate
    budget = lag_budget(estate, max_lag)
    clients = app.clients(read_only=run.dry_run)
    replica: str | None = None
    moved_aside: str | None = None
    if run.resume:
        from dr.runbook.journal import Journal

        outputs = Journal.load(run.runs_dir, run.resume).outputs
        to = outputs.get("failback_target") or to
        replica = outputs.get("failback_replica")
        moved_aside = outputs.get("failback_aside")
    pre = preflight(
        clients,
        estate,
        to=estate.site(to) if to else None,
        max_lag=budget,
        max_snapshot_age=parse_duration(max_snapshot_age, option="--max-snapshot-age"),
        replica_id=replica,
        moved_aside=moved_aside,
    )
    if not pre.replica_exists:
        replica_placement(clients, estate, pre.target)  # refused (exit 2) before anything changes
    if not run.resume:
        # RPO 0 must be provable by WAL position: else exit 3 now, before writes stop (a dry run
        # shows the plan and says the real run would be refused)
        try:
            require_wal_positions(clients, estate, pre.failover, source_only=not pre.replica_exists)
        except GateRefused as err:
            if not run.dry_run:
                raise
            pre.warnings.append(f"the real run is refused: {err.message}")
    plan = failback_plan(estate, pre, timeout=timeout)
    kube = KubeFactory.for_target(
        app.target_name, kubeconfig=kubeconfig, clients=app.clients(read_only=True), read_only=run.dry_run
    )
    try:
        result = run_plan(
            plan,
            services(clients, estate, kube=kube),
            **run.engine(),
            lock=None if run.dry_run else estate_lock(app, target_region=pre.target.region),
            output=app.output,
        )
    finally:
        kube.close()
    report: dict[str, Any] = {
        "preflight": pre.to_dict(),
        "reconcile_command": app.command("reconcile", "--primary", pre.target.stack),
    }
    if result.status != "dry-run":
        report["active_region"] = read_state(clients, estate, use_test_dns=False).active_region
    finish(app, result, report, _human)
