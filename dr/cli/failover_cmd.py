"""`dr failover --to secondary` — whole-region failover as one resumable, journaled plan.

Thin: options → the failover use case (dr.procedures.region_switch.FailoverRun: gates, exit 3 with
nothing changed → plan → lock in the target region → run_plan: dry run, confirm, journal, resume)
→ render, then the `dr reconcile` hint (or run it).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from dr.cli.app import AppContext, pass_app
from dr.cli.plan_command import RunOptions, plan_options

if TYPE_CHECKING:
    from rich.console import Console


def _human(report: dict[str, Any], out: Console) -> None:
    pre = report["preflight"]
    out.print(
        f"{pre['mode']} failover {pre['source_region']} -> {pre['target_region']}: "
        f"{report.get('active_region') or '?'} now serves the public name"
    )
    for warning in pre["warnings"]:
        out.print(f"[yellow]warning:[/yellow] {warning}")
    if report.get("reconcile"):
        out.print(f"stack files reconciled: {report['reconcile'].get('summary')}")
    else:
        out.print(f"next: keep Pulumi in step with the new primary:\n  {report['reconcile_command']}")
    if report.get("when_source_returns"):
        out.print(
            f"when {pre['source_region']} comes back, its old primary is writable and its writers may "
            "run against it (split brain; `dr readiness` checks it) — stop them, then re-protect:\n  "
            + "\n  ".join(report["when_source_returns"])
        )


@click.command()
@click.option(
    "--to",
    "to",
    default="secondary",
    show_default=True,
    help="The surviving site: secondary (or its region / stack name).",
)
@click.option(
    "--mode",
    type=click.Choice(["planned", "unplanned"]),
    default="planned",
    show_default=True,
    help="planned: stop writes, wait for lag 0 (RPO 0); unplanned: the source region is gone, no call goes there.",
)
@click.option(
    "--max-lag", default=None, help="Planned mode lag budget, e.g. 5s (default: the RPO objective)."
)
@click.option(
    "--max-snapshot-age",
    default="24h",
    show_default=True,
    help="Oldest acceptable Redis snapshot when the target's Redis must be restored.",
)
@click.option("--timeout", type=float, default=1800, show_default=True, help="Seconds each wait may take.")
@click.option(
    "--db",
    "db",
    default=None,
    help="DR database to fail over to instead of the stack files' replica: a read replica, or an "
    "instance `dr restore pitr` made (e.g. --from replicated-backups when the replica is corrupt).",
)
@click.option(
    "--kubeconfig", type=click.Path(dir_okay=False), default=None, help="Kubeconfig (default: see docs)."
)
@click.option(
    "--reconcile", "do_reconcile", is_flag=True, help="After success, rewrite the stack files (dr reconcile)."
)
@click.option(
    "--export",
    "export",
    type=click.Choice(["asl"]),
    default=None,
    help="Print the plan as Amazon States Language (Step Functions JSON) after the gates; change nothing.",
)
@click.option(
    "--via",
    type=click.Choice(["local", "stepfunctions"]),
    default="local",
    show_default=True,
    help="stepfunctions: start the state machine the DR stack deployed and follow it.",
)
@plan_options
@pass_app
def failover(
    app: AppContext,
    to: str,
    mode: str,
    max_lag: str | None,
    max_snapshot_age: str,
    timeout: float,
    db: str | None,
    kubeconfig: str | None,
    do_reconcile: bool,
    run: RunOptions,
    export: str | None = None,
    via: str = "local",
) -> None:
    """Fail the whole estate over to the DR region: DNS moves only once the DB is writable,
    pods are Ready and the DR health check is healthy (exit 3 when a gate refuses)."""

    from dr.cli.plan_command import finish
    from dr.errors import BadInput
    from dr.kube import KubeFactory
    from dr.procedures.region_switch import FailoverRequest, FailoverRun, RunSettings, failover_target
    from dr.procedures.support import lag_budget, parse_duration

    estate = app.estate
    target = failover_target(estate, to)
    budget = lag_budget(estate, max_lag)
    snap_age = parse_duration(max_snapshot_age, option="--max-snapshot-age")
    if export is not None or via == "stepfunctions":
        # The state machine fails over *unplanned* (no call to the source region). A planned
        # switchover stops writes in the source cluster and compares WAL positions over psycopg:
        # it runs here, not in Step Functions.
        explicit = click.get_current_context().get_parameter_source("mode") == ParameterSource.COMMANDLINE
        if explicit and mode == "planned":
            raise BadInput(
                "the Step Functions failover is unplanned only: --mode planned cannot be "
                f"{'exported' if export is not None else 'run there'}",
                resource="--mode",
                region=target.region,
                hint="use --mode unplanned with --export/--via, or run `dr failover --mode planned` "
                "from where the databases are reachable",
            )
        mode = "unplanned"
    if via == "stepfunctions" and export is None:
        from dr.cli.stepfunctions_cmd import follow_stepfunctions

        follow_stepfunctions(app, target, timeout=timeout, dry_run=run.dry_run, resume=run.resume is not None)
        return
    clients = app.clients(read_only=run.dry_run or export is not None)
    switch = FailoverRun(
        estate,
        clients,
        FailoverRequest(
            to=to,
            mode="unplanned" if mode == "unplanned" else "planned",
            max_lag=budget,
            max_snapshot_age=snap_age,
            timeout=timeout,
            db=db,
        ),
        RunSettings(**run.engine(), output=app.output),
    )
    pre, plan = switch.prepare()
    if export == "asl":
        from dr.cli.stepfunctions_cmd import print_asl

        print_asl(estate, pre, timeout=timeout)
        return
    kube = KubeFactory.for_target(
        app.target_name, kubeconfig=kubeconfig, clients=app.clients(read_only=True), read_only=run.dry_run
    )
    try:
        outcome = switch.execute(pre, plan, kube)
    finally:
        kube.close()
    result = outcome.result
    report: dict[str, Any] = {
        "preflight": pre.to_dict(),
        "reconcile_command": app.command("reconcile", "--primary", target.stack),
    }
    if pre.mode == "unplanned":
        # Nothing was sent to the source region: if it comes back, its old primary is writable and
        # its writers may run against it (split brain; `dr readiness` checks it: single-writer).
        src = pre.source.region
        report["when_source_returns"] = [
            app.command("ops", "stop-writes", "--region", src),
            app.command("reprotect", "--region", src),
        ]
    if outcome.serving_read:
        report["active_region"] = outcome.active_region
    if do_reconcile and result.ok and result.status != "dry-run":
        from dr.procedures.reconcile import reconcile_stacks

        change = reconcile_stacks(
            Path(estate.stack_dir), primary=target.stack, dry_run=False, assume_yes=run.yes, output=app.output
        )
        report["reconcile"] = change.to_dict()
    finish(app, result, report, _human)
