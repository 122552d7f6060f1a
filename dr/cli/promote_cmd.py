"""`dr promote` — promote the DR read replica, gated on its replication lag."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console

from dr.cli.app import AppContext, pass_app
from dr.cli.plan_command import RunOptions, execute, finish, plan_options


def _human(report: dict[str, Any], out: Console) -> None:
    pre = report["promote"]
    if pre["already_promoted"]:
        out.print(f"{pre['db']} ({pre['region']}) was already a standalone primary — nothing to do")
        return
    rpo = pre["rpo_estimate_seconds"]
    out.print(
        f"{pre['db']} ({pre['region']}) is now a writable standalone instance"
        + (f" at {report['endpoint']}" if report.get("endpoint") else "")
        + (
            f"; RPO estimate {rpo:g}s (ReplicaLag at promotion)"
            if rpo is not None
            else "; RPO unknown (no lag data)"
        )
    )
    for warning in pre["warnings"]:
        out.print(f"[yellow]warning:[/yellow] {warning}")


@click.command()
@click.option(
    "--db", default=None, help="DB instance to promote (default: the DR replica of the stack files)."
)
@click.option("--region", default=None, help="Region/stack of --db (default: the secondary).")
@click.option("--max-lag", default=None, help="Lag budget, e.g. 5s (default: the estate's RPO objective).")
@click.option("--force", is_flag=True, help="Promote even when the lag is over budget or unknown.")
@click.option(
    "--probe-db",
    is_flag=True,
    help="Also read pg_last_xact_replay_timestamp() on the replica (psycopg, credentials from Secrets "
    "Manager) and gate on the larger lag; an unreachable database only warns.",
)
@click.option(
    "--timeout", type=float, default=1800, show_default=True, help="Seconds to wait for the promotion."
)
@plan_options
@pass_app
def promote(
    app: AppContext,
    db: str | None,
    region: str | None,
    max_lag: str | None,
    force: bool,
    probe_db: bool,
    timeout: float,
    run: RunOptions,
) -> None:
    """Promote a cross-region read replica to a writable primary (refused, exit 3, when it lags)."""

    from dr.aws.rds import Rds
    from dr.procedures.promote import pg_replay_lag_probe, preflight, promote_plan
    from dr.procedures.support import lag_budget, pick_site

    estate = app.estate
    view = pick_site(estate, region, estate.secondary)
    ident = db or view.database.identifier
    budget = lag_budget(estate, max_lag)
    clients = app.clients(read_only=run.dry_run)
    probe = (
        pg_replay_lag_probe(
            clients, secret_id=estate.app.db_secret.secrets_manager_id, db_name=estate.app.database.db_name
        )
        if probe_db
        else None
    )
    pre = preflight(clients, db=ident, region=view.region, max_lag=budget, force=force, probe=probe)
    plan = promote_plan(pre, timeout=timeout, backup_retention_days=view.database.backup_retention_days)
    result = execute(app, plan, clients, run=run, locked=True)
    report: dict[str, Any] = {"promote": pre.to_dict()}
    if result.status != "dry-run":
        inst = Rds(clients, view.region).find_instance(ident)
        if inst is not None:
            report["endpoint"] = inst.endpoint
            report["status"] = inst.status
            report["standalone"] = not inst.is_replica
    finish(app, result, report, _human)
