"""`dr fleet` — fail over a fleet (many read replicas, many DNS records) within API rate limits."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dr.cli.app import AppContext, pass_app
from dr.cli.plan_command import RunOptions, plan_options

if TYPE_CHECKING:
    from rich.console import Console

    from dr.procedures.fleet import Fleet

_FILE = click.option(
    "--file",
    "-f",
    "path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Fleet YAML: databases: [{identifier, region}], records: [{zoneId, name, db}].",
)


@click.group()
def fleet() -> None:
    """Fleets: promote many read replicas and repoint many DNS records within RDS/Route53 rate limits."""


def _summary(fl: Fleet) -> dict[str, Any]:
    return {
        "databases": len(fl.databases),
        "regions": fl.regions(),
        "records": len(fl.records),
        "zones": sorted(fl.zones()),
    }


@fleet.command("plan")
@_FILE
@click.option("--timeout", type=float, default=1800, show_default=True, help="Seconds per wait step.")
@pass_app
def plan_cmd(app: AppContext, path: Path, timeout: float) -> None:
    """Show the fleet failover plan (offline: reads the file only, calls no AWS API)."""
    from dr.cli.plan_command import render_plan
    from dr.procedures.fleet import fleet_plan, load_fleet

    fl = load_fleet(path)
    render_plan(app.output, fleet_plan(fl, timeout=timeout))


def _human(report: dict[str, Any], out: Console) -> None:
    fl, calls = report["fleet"], report.get("api") or {}
    out.print(
        f"promoted {len(fl['to_promote'])} replica(s) ({len(fl['already_standalone'])} already standalone) "
        f"in {', '.join(fl['regions'])}; repointed {fl['records']} record(s) in {len(fl['zones'])} zone(s) "
        f"with {calls.get('change_batches', 0)} change batch(es)"
    )
    out.print(
        f"{calls.get('api_calls', 0)} API calls ({calls.get('mutating_calls', 0)} mutating); "
        f"waited {calls.get('rate_limit_wait_seconds', 0):.1f}s in total for rate limits"
    )


@fleet.command("failover")
@_FILE
@click.option("--timeout", type=float, default=1800, show_default=True, help="Seconds per wait step.")
@plan_options
@pass_app
def failover(
    app: AppContext,
    path: Path,
    timeout: float,
    run: RunOptions,
) -> None:
    """Promote every replica of the fleet file and UPSERT its records (one change batch per zone).

    Checks first (read-only) that every database exists in its region (exit 2 otherwise, nothing
    changed). Calls stay under the RDS/Route53 rate limits; throttling is absorbed, never shown.
    Takes the estate's run lock (shared with promote, dns and failover).
    """
    from dr.aws.session import CallRecorder
    from dr.cli.plan_command import estate_lock, finish
    from dr.procedures.fleet import fleet_inventory, fleet_plan, frozen_heap, load_fleet
    from dr.procedures.support import services
    from dr.runbook.ratelimit import RateLimiter
    from dr.runbook.runner import run_plan

    fl = load_fleet(path)
    estate = app.estate  # stack files: the run lock and the journal mirror
    clients = app.clients(read_only=run.dry_run)
    report: dict[str, Any] = {"fleet": {"file": str(path), **_summary(fl), **fleet_inventory(clients, fl)}}
    limiter = RateLimiter()
    limiter.attach(clients)
    calls = clients.add_recorder(CallRecorder())
    plan = fleet_plan(fl, timeout=timeout)
    with frozen_heap():
        result = run_plan(
            plan,
            services(clients, estate),
            **run.engine(),
            lock=None if run.dry_run else estate_lock(app),
            output=app.output,
            max_workers=16,
        )
    if result.status != "dry-run":
        sent = calls.since(0)
        report["api"] = {
            "api_calls": len(sent),
            "mutating_calls": sum(1 for c in sent if c.mutating),
            "change_batches": sum(1 for c in sent if c.operation == "ChangeResourceRecordSets"),
            "rate_limit_wait_seconds": round(limiter.waited, 3),
        }
    finish(app, result, report, _human)
