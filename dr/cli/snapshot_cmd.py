"""`dr snapshot create|list|copy|prune` — RDS and ElastiCache (Redis) snapshots of the estate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console

from dr.cli.context import AppContext, pass_app
from dr.cli.opsutil import execute, finish
from dr.cli.runopts import plan_options

KIND = click.Choice(["rds", "redis"])


@click.group()
def snapshot() -> None:
    """Create, list, copy (cross-region) and prune snapshots of the estate's DBs and caches."""


@snapshot.command("create")
@click.option(
    "--kind", type=KIND, default="rds", show_default=True, help="RDS DB or Redis replication group."
)
@click.option("--region", default=None, help="Region/stack/site to snapshot (default: the primary).")
@click.option("--source", default=None, help="DB instance / replication group id (default: the site's).")
@click.option("--name", default=None, help="Snapshot name (default: manual-snapshot-YYYYMMDD-HHMMSS, UTC).")
@click.option(
    "--timeout", type=float, default=3600, show_default=True, help="Seconds to wait for 'available'."
)
@plan_options
@pass_app
def create(
    app: AppContext,
    kind: str,
    region: str | None,
    source: str | None,
    name: str | None,
    timeout: float,
    dry_run: bool,
    yes: bool,
    resume: str | None,
    break_lock: bool,
    runs_dir: Path,
) -> None:
    """Take a manual snapshot and wait until it is available."""
    from dr.procedures.common import pick_site
    from dr.procedures.snapshot import create_plan

    estate = app.estate
    view = pick_site(estate, region, estate.primary)
    plan = create_plan(estate, view, kind=kind, source=source, name=name, timeout=timeout)  # type: ignore[arg-type]
    clients = app.clients(read_only=dry_run)
    result = execute(
        app,
        plan,
        clients,
        dry_run=dry_run,
        yes=yes,
        resume=resume,
        break_lock=break_lock,
        runs_dir=runs_dir,
        locked=False,
    )
    snap = plan.steps[0].tags["snapshot"]
    report: dict[str, Any] = {
        "snapshot": snap,
        "kind": kind,
        "region": view.region,
        "source": plan.steps[0].tags["source"],
    }
    finish(
        app,
        result,
        report,
        lambda r, out: out.print(f"snapshot {r['snapshot']} ({r['kind']}, {r['region']}) is available"),
    )


def _render_list(rows: list[dict[str, Any]], out: Console) -> None:
    from dr.cli.render import simple_table

    out.print(
        simple_table(
            "Snapshots",
            ["id", "kind", "region", "age", "size (GiB)", "encrypted", "source", "type", "status"],
            [
                [
                    r["id"],
                    r["kind"],
                    r["region"],
                    r["age"],
                    r["size_gb"],
                    "yes" if r["encrypted"] else "no",
                    r["source"] + (f" (copy of {r['copied_from']})" if r.get("copied_from") else ""),
                    r["type"],
                    r["status"],
                ]
                for r in rows
            ],
        )
    )
    if not rows:
        out.print("no snapshots of the estate's databases or caches")


@snapshot.command("list")
@click.option("--kind", type=click.Choice(["rds", "redis", "all"]), default="all", show_default=True)
@click.option("--region", default=None, help="Only this region/stack/site (default: both regions).")
@pass_app
def list_(app: AppContext, kind: str, region: str | None) -> None:
    """List manual and automated snapshots in both regions (newest first)."""
    from dr.cli.render import emit, to_jsonable
    from dr.procedures.snapshot import list_snapshots

    estate = app.estate
    regions = [estate.site(region).region] if region else list(estate.regions)
    kinds: list[Any] = ["rds", "redis"] if kind == "all" else [kind]
    rows = list_snapshots(app.clients(read_only=True), estate, regions=regions, kinds=kinds)
    emit(app.output, to_jsonable(rows), _render_list)


@snapshot.command("copy")
@click.option("--snapshot", "snapshot_id", required=True, help="Snapshot id in the source region.")
@click.option(
    "--region", "--from", "from_region", default=None, help="Source region/stack (default: primary)."
)
@click.option("--to", "to_region", default=None, help="Destination region/stack (default: the other one).")
@click.option("--target-name", default=None, help="Name of the copy (default: the same id).")
@click.option(
    "--kms-key",
    default=None,
    help="KMS key in the destination (default: the site's data-key alias, else the DR database's key).",
)
@click.option("--kind", type=KIND, default="rds", show_default=True)
@click.option("--timeout", type=float, default=7200, show_default=True)
@plan_options
@pass_app
def copy(
    app: AppContext,
    snapshot_id: str,
    from_region: str | None,
    to_region: str | None,
    target_name: str | None,
    kms_key: str | None,
    kind: str,
    timeout: float,
    dry_run: bool,
    yes: bool,
    resume: str | None,
    break_lock: bool,
    runs_dir: Path,
) -> None:
    """Copy a snapshot to the other region, re-encrypted with that region's KMS key."""
    from dr.procedures.common import pick_site
    from dr.procedures.snapshot import copy_plan, resolve_copy

    estate = app.estate
    src = pick_site(estate, from_region, estate.primary)
    dst = pick_site(estate, to_region, estate.other(src))
    clients = app.clients(read_only=dry_run)
    request = resolve_copy(
        clients,
        estate,
        snapshot=snapshot_id,
        source_view=src,
        dest_view=dst,
        target=target_name,
        kms_key=kms_key,
        kind=kind,  # type: ignore[arg-type]
    )
    plan = copy_plan(request, timeout=timeout)
    result = execute(
        app,
        plan,
        clients,
        dry_run=dry_run,
        yes=yes,
        resume=resume,
        break_lock=break_lock,
        runs_dir=runs_dir,
        locked=False,
    )
    report = {
        "snapshot": request.target,
        "source": request.source.identifier,
        "source_region": request.source.region,
        "region": request.destination_region,
        "kms_key_id": request.kms_key_id,
    }
    finish(
        app,
        result,
        report,
        lambda r, out: out.print(
            f"{r['source']} ({r['source_region']}) copied to {r['region']} as {r['snapshot']}"
            + (f", encrypted with {r['kms_key_id']}" if r["kms_key_id"] else "")
        ),
    )


@snapshot.command("prune")
@click.option("--keep-last", type=int, default=None, help="Never delete the newest N per source and region.")
@click.option("--older-than", default=None, help="Only delete snapshots older than this (e.g. 30d, 12h).")
@click.option("--kind", type=click.Choice(["rds", "redis", "all"]), default="all", show_default=True)
@click.option("--region", default=None, help="Only this region/stack (default: both regions).")
@click.option(
    "--match",
    "prefix",
    default="manual-snapshot-",
    show_default=True,
    help="Only snapshots whose id starts with this ('' = every manual snapshot).",
)
@plan_options
@pass_app
def prune(
    app: AppContext,
    keep_last: int | None,
    older_than: str | None,
    kind: str,
    region: str | None,
    prefix: str,
    dry_run: bool,
    yes: bool,
    resume: str | None,
    break_lock: bool,
    runs_dir: Path,
) -> None:
    """Delete old manual snapshots (never automated ones, never the newest --keep-last).

    Shows what it would delete and asks first (unless --yes); --dry-run only shows it.
    """
    from dr.procedures.common import parse_duration
    from dr.procedures.snapshot import prune_candidates, prune_plan

    estate = app.estate
    regions = [estate.site(region).region] if region else list(estate.regions)
    kinds: list[Any] = ["rds", "redis"] if kind == "all" else [kind]
    age = parse_duration(older_than, option="--older-than") if older_than else None
    clients = app.clients(read_only=dry_run)
    candidates = prune_candidates(
        clients,
        estate,
        regions=regions,
        kinds=kinds,
        keep_last=keep_last,
        older_than=age,
        prefix=prefix or None,
    )
    plan = prune_plan(candidates)
    report = {"delete": [{"id": s.identifier, "kind": s.kind, "region": s.region} for s in candidates]}
    if not candidates:
        if app.json:
            from dr.cli.render import dumps

            click.echo(dumps({**report, "run": None}))
        else:
            click.echo("nothing to prune")
        return
    result = execute(
        app,
        plan,
        clients,
        dry_run=dry_run,
        yes=yes,
        resume=resume,
        break_lock=break_lock,
        runs_dir=runs_dir,
        locked=False,
    )
    finish(app, result, report, lambda r, out: out.print(f"deleted {len(r['delete'])} snapshot(s)"))
