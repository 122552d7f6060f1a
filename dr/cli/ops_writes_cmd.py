"""`dr ops stop-writes | resume-writes`: scale the writers to 0 and back to their recorded counts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from dr.cli.app import AppContext, pass_app
from dr.cli.ops_shared import factory, one_site, print_lines, run_ops_plan
from dr.cli.plan_command import plan_options

if TYPE_CHECKING:
    from dr.topology import SiteView


@click.command("stop-writes")
@one_site()
@click.option(
    "--timeout", type=float, default=600, show_default=True, help="Seconds to wait for pods to stop."
)
@plan_options
@pass_app
def stop_writes(app: AppContext, site: SiteView, timeout: float, **opts: Any) -> None:
    """Scale every writer to 0, recording its count in a deployment annotation (resume-writes restores it)."""
    from dr.procedures import ops as procs

    estate = app.estate
    kube = factory(app, read_only=opts["run"].dry_run)
    for dep in estate.app.writers:
        kube(site).get_deployment(estate.app.namespace, dep.name)  # NotFound before any change
    plan = procs.stop_writes_plan(estate, site, timeout=timeout)
    writers = [d.name for d in estate.app.writers]
    run_ops_plan(
        app,
        plan,
        kube=kube,
        report={"region": site.region, "writers": writers, "annotation": procs.STOPPED_ANNOTATION},
        human=print_lines(
            [
                f"writes stopped in {site.region}: {', '.join(writers)} at 0 (counts recorded in {procs.STOPPED_ANNOTATION})"
            ]
        ),
        **opts,
    )


@click.command("resume-writes")
@one_site()
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until the writers are Ready.")
@click.option("--timeout", type=float, default=600, show_default=True, help="Seconds to wait.")
@plan_options
@pass_app
def resume_writes(app: AppContext, site: SiteView, wait: bool, timeout: float, **opts: Any) -> None:
    """Scale the writers back to exactly the counts recorded by stop-writes."""
    from dr.procedures import ops as procs

    estate = app.estate
    kube = factory(app, read_only=opts["run"].dry_run)
    plan, recorded = procs.resume_writes_plan(kube(site), estate, site, wait=wait, timeout=timeout)
    lines = [
        f"{name}: {'not stopped by dr (left as is)' if count is None else f'back to {count}'}"
        for name, count in recorded.items()
    ]
    run_ops_plan(
        app,
        plan,
        kube=kube,
        report={"region": site.region, "restored": recorded},
        human=print_lines(lines),
        **opts,
    )
