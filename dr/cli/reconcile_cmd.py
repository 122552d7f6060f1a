"""`dr reconcile` — after a failover, rewrite the stack files so Pulumi declares the new primary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from dr.cli.app import AppContext, pass_app


@click.command()
@click.option(
    "--primary",
    default=None,
    help="Stack (or region / site) to declare primary. Default: the region Route53 serves now, "
    "if its database is a standalone (promoted) instance.",
)
@click.option("--dry-run", is_flag=True, help="Show the diff and change nothing.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before writing.")
@pass_app
def reconcile(app: AppContext, primary: str | None, dry_run: bool, yes: bool) -> None:
    """Make the stack files declare the serving region primary (promoted DB kept, no replica source)."""
    from dr.cli.output import dumps
    from dr.procedures.reconcile import reconcile_stacks

    estate = app.estate
    if primary:
        stack = estate.site(primary).stack
    else:
        from dr.aws.rds import Rds
        from dr.errors import GateRefused
        from dr.steps.dns_records import read_state

        clients = app.clients(read_only=True)
        active = read_state(clients, estate, use_test_dns=False).active_region
        view = estate.site(active)
        inst = Rds(clients, view.region).describe_instance(view.database.identifier)
        if inst.is_replica:
            raise GateRefused(
                f"{estate.app.record} is served from {view.region} but its database "
                f"{view.database.identifier} is still a read replica: nothing to reconcile yet",
                resource=view.database.identifier,
                region=view.region,
                hint="finish the failover first (dr failover --resume RUN_ID), or pass --primary",
            )
        stack = view.stack
    change = reconcile_stacks(
        Path(estate.stack_dir), primary=stack, dry_run=dry_run, assume_yes=yes, output=app.output
    )
    data: dict[str, Any] = change.to_dict()
    if app.json:
        click.echo(dumps(data))
        return
    if dry_run and not change.noop:
        click.echo(change.diff())
    click.echo(change.summary + ("" if change.noop else (" (written)" if change.written else " (dry run)")))
    if not change.comments_kept:
        click.echo("note: the files' layout could not be edited in place; comments were not kept", err=True)
