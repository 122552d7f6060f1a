"""`dr reprotect` — make the standby region's database a read replica of the serving one again
(after `dr failback`, or after a failover the estate stays on). One resumable, journaled plan
(dr.procedures.reprotect), run by the use case dr.procedures.region_switch.ReprotectRun."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from dr.cli.app import AppContext, pass_app
from dr.cli.plan_command import RunOptions, finish, plan_options

if TYPE_CHECKING:
    from rich.console import Console


def _human(report: dict[str, Any], out: Console) -> None:
    pre = report["preflight"]
    if pre["already_protected"]:
        out.print(
            f"{pre['replica']} in {pre['target_region']} already replicates {pre['source_db']} "
            f"({pre['source_region']}): nothing to do"
        )
    else:
        out.print(
            f"{pre['replica']} in {pre['target_region']} now replicates {pre['source_db']} ({pre['source_region']})"
        )
    for warning in pre["warnings"]:
        out.print(f"[yellow]warning:[/yellow] {warning}")


@click.command()
@click.option(
    "--region",
    default=None,
    help="The standby region to re-protect (default: the one Route53 does not serve now).",
)
@click.option(
    "--db",
    "db",
    default=None,
    help="The serving region's database to replicate from, when it is not the stack files' one: "
    "the instance `dr failover --db` (or a repoint) moved the application onto. Must be a "
    "standalone instance of the serving region.",
)
@click.option(
    "--max-lag", default=None, help="Lag the new replica must reach, e.g. 5s (default: the RPO objective)."
)
@click.option("--timeout", type=float, default=3600, show_default=True, help="Seconds each wait may take.")
@click.option(
    "--max-snapshot-age",
    default="24h",
    show_default=True,
    help="Oldest acceptable Redis snapshot when the standby's Redis group is gone and must be restored.",
)
@click.option(
    "--kubeconfig", type=click.Path(dir_okay=False), default=None, help="Kubeconfig (default: see docs)."
)
@plan_options
@pass_app
def reprotect(
    app: AppContext,
    region: str | None,
    db: str | None,
    max_lag: str | None,
    timeout: float,
    max_snapshot_age: str,
    kubeconfig: str | None,
    run: RunOptions,
) -> None:
    """Rebuild the standby's database as a read replica of the serving one.

    The instance holding the standby's identifier, when it is not such a replica already (the
    stale DR database after a failback, the diverged old primary after a failover), is renamed
    <identifier>-old-<created> and kept; the new replica takes the original identifier, so the
    standby's DB secret and the Pulumi state match again. Waits until its lag is within budget,
    then restarts the standby's pods that are older than the new replica (they may hold connections
    to the renamed instance), so the next failover has no restart to do. The standby's Redis group
    must be available, or is restored from the newest snapshot of the estate's groups there.

    After `dr failover --db <restored>` (or a repoint onto an in-region restore) the serving
    database is not the stack files' one: pass it with --db, e.g.
    `dr reprotect --db orders-pitr`.
    """
    from dr.kube import KubeFactory
    from dr.procedures.region_switch import ReprotectRequest, ReprotectRun, RunSettings
    from dr.procedures.support import lag_budget, parse_duration

    estate = app.estate
    budget = lag_budget(estate, max_lag)
    snap_age = parse_duration(max_snapshot_age, option="--max-snapshot-age")
    switch = ReprotectRun(
        estate,
        app.clients(read_only=run.dry_run),
        ReprotectRequest(region=region, db=db, max_lag=budget, max_snapshot_age=snap_age, timeout=timeout),
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
    finish(app, outcome.result, {"preflight": pre.to_dict()}, _human)
