"""`dr ops scale | hpa | history | rollback`: the app's deployments and the nodegroup."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from dr.cli.app import AppContext, pass_app
from dr.cli.ops_shared import factory, one_site, print_lines, run_ops_plan
from dr.cli.plan_command import RunOptions, plan_options

if TYPE_CHECKING:
    from dr.topology import SiteView


@click.command()
@click.argument("target")
@click.option("--replicas", type=int, default=None, help="Deployment replicas (0 … 1000).")
@click.option("--adjust-hpa", is_flag=True, help="Widen the HPA bounds when --replicas is outside them.")
@click.option("--min", "min_size", type=int, default=None, help="nodegroup: minimum size.")
@click.option("--max", "max_size", type=int, default=None, help="nodegroup: maximum size.")
@click.option("--desired", type=int, default=None, help="nodegroup: desired size.")
@one_site("scale")
@click.option(
    "--wait/--no-wait", default=True, show_default=True, help="Wait for the rollout (all pods Ready)."
)
@click.option("--timeout", type=float, default=600, show_default=True, help="Seconds to wait.")
@plan_options
@pass_app
def scale(
    app: AppContext,
    target: str,
    replicas: int | None,
    adjust_hpa: bool,
    min_size: int | None,
    max_size: int | None,
    desired: int | None,
    site: SiteView,
    wait: bool,
    timeout: float,
    run: RunOptions,
) -> None:
    """Scale a deployment (`scale api --replicas 10`) or the nodegroup (`scale nodegroup --min 3 --max 20 --desired 6`)."""
    from dr.errors import BadInput
    from dr.procedures import ops as procs

    estate = app.estate
    if target == "nodegroup":
        if replicas is not None or adjust_hpa:
            raise BadInput(
                "--replicas/--adjust-hpa are for deployments; a nodegroup takes --min/--max/--desired"
            )
        if min_size is None and max_size is None and desired is None:
            raise BadInput(
                f"nodegroup {site.cluster.name}/{site.cluster.nodegroup.name} in {site.region}: nothing to change",
                hint="pass --min, --max and/or --desired",
            )
        plan, report = procs.nodegroup_plan(
            app.clients(read_only=True),
            site,
            min_size=min_size,
            max_size=max_size,
            desired=desired,
            timeout=timeout,
        )
        line = f"nodegroup {report['cluster']}/{report['nodegroup']} ({report['region']}): {report['from']} -> {report['to']}"
        run_ops_plan(app, plan, kube=None, report={"nodegroup": report}, human=print_lines([line]), run=run)
        return
    if min_size is not None or max_size is not None or desired is not None:
        raise BadInput("--min/--max/--desired are for `scale nodegroup`; a deployment takes --replicas")
    if replicas is None:
        raise BadInput(
            f"scale {target}: --replicas is required", hint=f"e.g. dr ops scale {target} --replicas 10"
        )
    dep = procs.resolve_deployment(estate, target, site)
    procs.check_replicas(replicas, dep.name, site.region)
    kube = factory(app, read_only=run.dry_run)
    pre = procs.scale_preflight(kube(site), estate, site, dep.name, replicas, adjust_hpa=adjust_hpa)
    plan = procs.scale_plan(pre, site, wait=wait, timeout=timeout)
    lines = [f"{pre.deployment} ({pre.region}): {pre.current} -> {pre.replicas} replicas", *pre.warnings]
    run_ops_plan(app, plan, kube=kube, report={"scale": pre.to_dict()}, human=print_lines(lines), run=run)


@click.command()
@click.argument("deployment")
@click.option("--min", "min_replicas", type=int, default=None, help="New minReplicas.")
@click.option("--max", "max_replicas", type=int, default=None, help="New maxReplicas.")
@one_site()
@plan_options
@pass_app
def hpa(
    app: AppContext,
    deployment: str,
    min_replicas: int | None,
    max_replicas: int | None,
    site: SiteView,
    **opts: Any,
) -> None:
    """Show, or with --min/--max set, the HPA bounds of a deployment."""
    from dr.procedures import ops as procs

    estate = app.estate
    kube = factory(app, read_only=opts["run"].dry_run or (min_replicas is None and max_replicas is None))
    plan, report = procs.hpa_plan(
        kube(site), estate, site, deployment, min_replicas=min_replicas, max_replicas=max_replicas
    )
    if min_replicas is None and max_replicas is None:
        from dr.cli.output import dumps

        kube.close()
        h = report["hpa"]
        if app.json:
            click.echo(dumps(report))
        else:
            click.echo(
                f"{h['name']} ({site.region}): min {h['min']}, max {h['max']}, current {h['current']}, desired {h['desired']}"
            )
        return
    run_ops_plan(
        app,
        plan,
        kube=kube,
        report=report,
        human=print_lines(
            [f"HPA {report['hpa']['name']} ({site.region}): [{report['new_min']}, {report['new_max']}]"]
        ),
        **opts,
    )


@click.command()
@click.argument("deployment")
@one_site()
@pass_app
def history(app: AppContext, deployment: str, site: SiteView) -> None:
    """Rollout history (revisions) of a deployment, like `kubectl rollout history`."""
    from dr.cli.output import emit, simple_table
    from dr.procedures import ops as procs

    estate = app.estate
    dep = procs.resolve_deployment(estate, deployment, site)
    kube = factory(app, read_only=True)
    try:
        revs = kube(site).rollout_history(estate.app.namespace, dep.name)
    finally:
        kube.close()
    data = {"deployment": dep.name, "region": site.region, "revisions": [r.to_dict() for r in revs]}
    emit(
        app.output,
        data,
        lambda d, out: out.print(
            simple_table(
                f"{d['deployment']} ({d['region']})",
                ["revision", "replica set", "images", "restarted at", "pods", "current"],
                [
                    [
                        r["revision"],
                        r["replica_set"],
                        ", ".join(r["images"]),
                        r["restarted_at"],
                        r["replicas"],
                        "*" if r["current"] else "",
                    ]
                    for r in d["revisions"]
                ],
            )
        ),
    )


@click.command()
@click.argument("deployment")
@click.option(
    "--to-revision", type=int, default=0, help="Revision to go back to (default: the previous one)."
)
@one_site("rollback")
@click.option(
    "--timeout", type=float, default=600, show_default=True, help="Seconds to wait for the rollout."
)
@plan_options
@pass_app
def rollback(
    app: AppContext,
    deployment: str,
    to_revision: int,
    site: SiteView,
    timeout: float,
    run: RunOptions,
) -> None:
    """`kubectl rollout undo [--to-revision N]` through the API, then wait for the rollout."""
    from dr.procedures import ops as procs

    estate = app.estate
    procs.resolve_deployment(estate, deployment, site)
    kube = factory(app, read_only=run.dry_run)
    plan, report = procs.rollback_plan(kube(site), estate, site, deployment, to_revision, timeout=timeout)
    line = f"{report['deployment']} ({report['region']}): revision {report['from_revision']} -> template of revision {report['to_revision']}"
    run_ops_plan(app, plan, kube=kube, report={"rollback": report}, human=print_lines([line]), run=run)
