"""`dr restore pitr|snapshot` — restore into a NEW instance (never in place), optionally verify + clean up."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console

from dr.cli.app import AppContext, pass_app
from dr.cli.plan_command import RunOptions, execute, finish, plan_options

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.procedures.restore import RestoreRequest

F = TypeVar("F", bound=Callable[..., Any])


def _verify_options(f: F) -> F:
    options = [
        click.option(
            "--verify",
            is_flag=True,
            help="Connect with psycopg (credentials from Secrets Manager) and run the checks.",
        ),
        click.option(
            "--check-table",
            "check_tables",
            multiple=True,
            metavar="TABLE[:MIN]",
            help="Table that must hold at least MIN rows (default 1). Repeatable; implies --verify.",
        ),
        click.option(
            "--check-sql",
            "check_sqls",
            multiple=True,
            metavar="SQL",
            help="Query whose first column must be true. Repeatable; implies --verify.",
        ),
        click.option(
            "--cleanup", is_flag=True, help="Delete the restored instance afterwards (restore testing)."
        ),
        click.option(
            "--timeout", type=float, default=7200, show_default=True, help="Seconds to wait for the restore."
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _checks(tables: tuple[str, ...], sqls: tuple[str, ...]) -> list[Any]:
    from dr.procedures.pg_session import Check

    return [Check.parse_table(t) for t in tables] + [Check(name=s, sql=s) for s in sqls]


def _restore(
    app: AppContext,
    prepare: Callable[..., RestoreRequest],
    *,
    run: RunOptions,
    verify: bool,
    check_tables: tuple[str, ...],
    check_sqls: tuple[str, ...],
    cleanup: bool,
    timeout: float,
) -> None:
    """Prepare a restore from what :func:`_verify_options` gives every restore command, run it
    (never under the estate's run lock) and render it. ``prepare(clients, checks=…, verify=…,
    cleanup=…, resuming=…)`` adds what its kind of restore needs."""
    from dr.procedures.restore import restore_plan

    clients = app.clients(read_only=run.dry_run)
    checks = _checks(check_tables, check_sqls)
    req = prepare(
        clients, checks=checks, verify=verify or bool(checks), cleanup=cleanup, resuming=bool(run.resume)
    )
    plan = restore_plan(req, timeout=timeout)
    result = execute(app, plan, clients, run=run, locked=False)
    finish(app, result, {"restore": req.to_dict()}, _human)


def _human(report: dict[str, Any], out: Console) -> None:
    req = report["restore"]
    origin = " (automated backups replicated there)" if req.get("from") == "replicated-backups" else ""
    out.print(
        f"{req['target']} restored in {req['region']} from {req['source']}{origin}"
        + (f" at {req['restore_time']}" if req.get("restore_time") else "")
        + (f"; inherits settings of {req['inherits_from']}" if req.get("inherits_from") else "")
    )
    if req.get("cleanup"):
        out.print(f"{req['target']} deleted again (--cleanup)")


@click.group()
def restore() -> None:
    """Restore a database (point in time or snapshot) or a Redis group (snapshot) into a new resource."""


@restore.command("pitr")
@click.option(
    "--from",
    "from_",
    type=click.Choice(["instance", "replicated-backups"]),
    default="instance",
    show_default=True,
    help="instance: the source instance's own backups, in its region. replicated-backups: the other "
    "site's automated backups replicated to --region (default: the DR site) — works with the "
    "primary region lost; the new instance gets that site's subnet group, SGs and parameter group.",
)
@click.option(
    "--source",
    default=None,
    help="Source DB instance (default: the site's database; with --from replicated-backups, the "
    "other site's).",
)
@click.option(
    "--region",
    default=None,
    help="Region/stack to restore in (default: the primary; the DR site with --from replicated-backups).",
)
@click.option(
    "--time",
    "--to-time",
    "when",
    default=None,
    help="Restore time, ISO-8601 (e.g. 2026-11-24T06:30:00Z); must lie in the RestoreWindow.",
)
@click.option("--minutes-ago", type=float, default=None, help="Restore to N minutes before now.")
@click.option("--target", required=True, help="Name of the new DB instance (must not exist).")
@_verify_options
@plan_options
@pass_app
def pitr(
    app: AppContext,
    from_: str,
    source: str | None,
    region: str | None,
    when: str | None,
    minutes_ago: float | None,
    target: str,
    run: RunOptions,
    **verification: Any,
) -> None:
    """Point-in-time restore into a new instance, validated against the real RestoreWindow
    (DescribeDBInstanceAutomatedBackups) of the source's backups."""
    from dr.procedures.restore import prepare_pitr
    from dr.procedures.support import parse_time, pick_site

    estate = app.estate
    replicated = from_ == "replicated-backups"
    view = pick_site(estate, region, estate.secondary if replicated else estate.primary)

    def prepare(clients: ClientProvider, **common: Any) -> RestoreRequest:
        return prepare_pitr(
            clients,
            estate,
            view,
            source=source,
            target=target,
            when=parse_time(when) if when else None,
            minutes_ago=minutes_ago,
            from_="replicated-backups" if replicated else "instance",
            **common,
        )

    _restore(app, prepare, run=run, **verification)


@restore.command("snapshot")
@click.option("--snapshot", "snapshot_id", required=True, help="Snapshot id (in --region).")
@click.option("--region", default=None, help="Region/stack holding the snapshot (default: the primary).")
@click.option(
    "--target", required=True, help="Name of the new DB instance / replication group (must not exist)."
)
@click.option("--kind", type=click.Choice(["rds", "redis"]), default="rds", show_default=True)
@_verify_options
@plan_options
@pass_app
def from_snapshot(
    app: AppContext,
    snapshot_id: str,
    region: str | None,
    target: str,
    kind: str,
    run: RunOptions,
    **verification: Any,
) -> None:
    """Restore a DB snapshot into a new instance, or a Redis snapshot into a new replication group."""
    from dr.procedures.restore import prepare_snapshot
    from dr.procedures.support import pick_site

    estate = app.estate
    view = pick_site(estate, region, estate.primary)

    def prepare(clients: ClientProvider, **common: Any) -> RestoreRequest:
        return prepare_snapshot(
            clients,
            estate,
            view,
            snapshot=snapshot_id,
            target=target,
            kind=kind,  # type: ignore[arg-type]
            **common,
        )

    _restore(app, prepare, run=run, **verification)
