"""`dr failover --export asl` and `dr failover --via stepfunctions` (called by dr/cli/failover_cmd.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from dr.cli.app import AppContext
    from dr.procedures.failover_gates import FailoverPreflight
    from dr.topology import Estate, SiteView


def print_asl(estate: Estate, pre: FailoverPreflight, *, timeout: float) -> None:
    """Print the failover's state machine definition (JSON) after the gates passed."""
    from dr.cli.output import dumps
    from dr.errors import OperationFailed
    from dr.procedures.stepfunctions import failover_definition
    from dr.runbook.asl_checks import validate_definition

    _plan, defn = failover_definition(estate, pre, timeout=timeout)
    problems = validate_definition(defn)
    if problems:  # a compiler bug: never print a definition Step Functions would reject
        raise OperationFailed("the compiled state machine is invalid: " + "; ".join(problems[:5]))
    click.echo(dumps(defn))


def follow_stepfunctions(
    app: AppContext, target: SiteView, *, timeout: float, dry_run: bool, resume: bool = False
) -> None:
    """Start the deployed failover state machine in ``target``'s region and follow it (exit 1 on failure)."""
    from dr.cli.output import console, emit
    from dr.errors import OperationFailed
    from dr.procedures.stepfunctions import run_via_stepfunctions, state_machine_arn

    estate = app.estate
    if dry_run:
        arn = state_machine_arn(app.clients(read_only=True), estate, target)
        emit(
            app.output,
            {"status": "dry-run", "state_machine": arn},
            lambda d, out: out.print(f"would start {arn}"),
        )
        return
    err = console(stderr=True)

    def progress(state: str, status: str) -> None:
        if not app.json:
            err.print(f"[{'green' if status == 'done' else 'cyan'}]{status:>7}[/] {state}")

    report = run_via_stepfunctions(
        app.clients(), estate, target, timeout=timeout, on_state=progress, resume=resume
    )
    emit(
        app.output,
        report,
        lambda d, out: out.print(
            f"execution {d['execution']}: {d['status']}" + (f" ({d['error']})" if d["error"] else "")
        ),
    )
    if report["status"] != "SUCCEEDED":
        raise OperationFailed(
            f"Step Functions failover {report['execution']} ended {report['status']}: {report.get('error')}",
            region=target.region,
            hint="see the execution history in the Step Functions console; the failure is recorded in the journal bucket",
        )
