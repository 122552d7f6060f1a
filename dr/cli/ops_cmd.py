"""`dr ops …` — the runbooks' incident operations as safe, topology-aware commands.

Thin: parse → validate (exit 2, nothing changed) → build a plan (dr.procedures.ops*) → run it with
the runbook engine (journal, --dry-run plan print, --resume, confirmation) → render.
Heavy imports (kubernetes, boto3) happen inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dr.cli.app import AppContext, pass_app
from dr.cli.runopts import RunOptions, plan_options

if TYPE_CHECKING:
    from rich.console import Console

    from dr.kube import KubeFactory
    from dr.runbook.plan import Plan


def _site_option(default: str) -> Any:
    return click.option(
        "--region",
        "where",
        default=default,
        show_default=True,
        help="primary, secondary" + (", both" if default == "both" else "") + " (or a region / stack name).",
    )


def _kubeconfig(app: AppContext) -> str | None:
    explicit = app.extra.get("kubeconfig")
    if explicit:
        return str(explicit)
    if app.target_name == "sandbox":
        return app.target.kubeconfig
    from dr.kube import default_kubeconfig

    return default_kubeconfig()


def _factory(app: AppContext, *, read_only: bool) -> KubeFactory:
    from dr.kube import KubeFactory

    return KubeFactory(kubeconfig=_kubeconfig(app), clients=app.clients(read_only=True), read_only=read_only)


def _run(
    app: AppContext,
    plan: Plan,
    *,
    kube: KubeFactory | None,
    run: RunOptions,
    report: dict[str, Any],
    human: Any = None,
    locked: bool = True,
) -> None:
    """Run an ops plan; ``locked``: under the estate's run lock (unless --dry-run or ``ops --no-lock``)."""
    from dr.cli.opsutil import estate_lock, finish
    from dr.procedures.support import services
    from dr.runbook.runner import run_plan

    clients = app.clients(read_only=run.dry_run)
    lock = estate_lock(app) if locked and not run.dry_run and not app.extra.get("no_lock") else None
    try:
        result = run_plan(
            plan,
            services(clients, app.estate, kube=kube),
            **run.engine(),
            lock=lock,
            output=app.output,
        )
    finally:
        if kube is not None:
            kube.close()
    finish(app, result, report, human)


def _print_lines(lines: list[str]) -> Any:
    def human(_report: dict[str, Any], out: Console) -> None:
        for line in lines:
            out.print(line)

    return human


@click.group()
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    default=None,
    help="Kubeconfig with a context named like each cluster (default: the sandbox's, $KUBECONFIG, "
    "~/.kube/config; without a matching context: EKS + your AWS identity).",
)
@click.option(
    "--no-lock",
    is_flag=True,
    help="Do not take the estate's run lock (its table lives in the DR region: use only when that "
    "region is unreachable and you know no failover runs).",
)
@pass_app
def ops(app: AppContext, kubeconfig: str | None, no_lock: bool) -> None:
    """Incident operations from the runbooks: triage, scale, rollback, flags, writes, security.

    Commands that change what a failover changes (scale, hpa, rollback, flags, circuit breaker,
    maintenance, stop/resume writes, rotate-db-secret) take the estate's run lock, so they never
    interleave with a failover, failback or another such command (a held lock exits 3 naming its
    holder). Security responses (waf, quarantine) never wait for it.
    """
    if kubeconfig:
        app.extra["kubeconfig"] = kubeconfig
    app.extra["no_lock"] = no_lock


# ----------------------------------------------------------------------------------------------
# triage
# ----------------------------------------------------------------------------------------------


@ops.command()
@_site_option("both")
@click.option(
    "--markdown",
    "markdown_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a Markdown report to paste into the incident channel.",
)
@pass_app
def triage(app: AppContext, where: str, markdown_file: Path | None) -> None:
    """Pods/restarts, warning events, node pressure, HPA, ALB targets, RDS, Redis, alarms, certificates.

    Exit 1 when the overall status is FAIL (0 when OK, WARN or a section could not be collected);
    exit 3 after the report when IAM refused a section's reads."""
    from dr.cli.output import emit, end_partial
    from dr.errors import EXIT_FAILED
    from dr.procedures.ops import resolve_sites
    from dr.procedures.ops_triage import FAIL
    from dr.procedures.ops_triage import triage as run_triage

    estate = app.estate
    sites = resolve_sites(estate, where)
    kube = _factory(app, read_only=True)
    try:
        report = run_triage(estate, sites, app.clients(read_only=True), kube)
    finally:
        kube.close()
    if markdown_file is not None:
        markdown_file.parent.mkdir(parents=True, exist_ok=True)
        markdown_file.write_text(report.markdown())

    def table(rep: Any, out: Console) -> None:
        from rich.table import Table

        style = {"ok": "green", "warn": "yellow", "fail": "bold red", "error": "magenta"}
        summary = Table(title=f"Triage — {rep.app} — overall {rep.status.upper()}", title_justify="left")
        for col in ("section", "region", "status", "summary"):
            summary.add_column(col, overflow="fold")
        for s in rep.sections:
            summary.add_row(s.name, s.region, f"[{style[s.status]}]{s.status}[/]", s.error or s.summary)
        out.print(summary)
        for s in rep.sections:
            if s.rows and s.status != "ok":
                t = Table(title=f"{s.name} ({s.region})", title_justify="left")
                for col in s.columns:
                    t.add_column(col, overflow="fold")
                for row in s.rows[:20]:
                    t.add_row(*("" if v is None else str(v) for v in row))
                out.print(t)
        if markdown_file is not None:
            out.print(f"Markdown report written to {markdown_file}")

    emit(app.output, report, table)
    end_partial(report.denied, profile=app.profile, command="ops triage")
    if report.status == FAIL:  # the report is out whole first; then a check failed: exit 1
        raise click.exceptions.Exit(EXIT_FAILED)


# ----------------------------------------------------------------------------------------------
# scale / history / rollback
# ----------------------------------------------------------------------------------------------


@ops.command()
@click.argument("target")
@click.option("--replicas", type=int, default=None, help="Deployment replicas (0 … 1000).")
@click.option("--adjust-hpa", is_flag=True, help="Widen the HPA bounds when --replicas is outside them.")
@click.option("--min", "min_size", type=int, default=None, help="nodegroup: minimum size.")
@click.option("--max", "max_size", type=int, default=None, help="nodegroup: maximum size.")
@click.option("--desired", type=int, default=None, help="nodegroup: desired size.")
@_site_option("primary")
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
    where: str,
    wait: bool,
    timeout: float,
    run: RunOptions,
) -> None:
    """Scale a deployment (`scale api --replicas 10`) or the nodegroup (`scale nodegroup --min 3 --max 20 --desired 6`)."""
    from dr.errors import BadInput
    from dr.procedures import ops as procs

    estate = app.estate
    sites = procs.resolve_sites(estate, where)
    if len(sites) != 1:
        raise BadInput("--region must name one site for scale", hint="use primary or secondary")
    view = sites[0]
    if target == "nodegroup":
        if replicas is not None or adjust_hpa:
            raise BadInput(
                "--replicas/--adjust-hpa are for deployments; a nodegroup takes --min/--max/--desired"
            )
        if min_size is None and max_size is None and desired is None:
            raise BadInput(
                f"nodegroup {view.cluster.name}/{view.cluster.nodegroup.name} in {view.region}: nothing to change",
                hint="pass --min, --max and/or --desired",
            )
        plan, report = procs.nodegroup_plan(
            app.clients(read_only=True),
            view,
            min_size=min_size,
            max_size=max_size,
            desired=desired,
            timeout=timeout,
        )
        _run(
            app,
            plan,
            kube=None,
            report={"nodegroup": report},
            human=_print_lines(
                [
                    f"nodegroup {report['cluster']}/{report['nodegroup']} ({report['region']}): {report['from']} -> {report['to']}"
                ]
            ),
            run=run,
        )
        return
    if min_size is not None or max_size is not None or desired is not None:
        raise BadInput("--min/--max/--desired are for `scale nodegroup`; a deployment takes --replicas")
    if replicas is None:
        raise BadInput(
            f"scale {target}: --replicas is required", hint=f"e.g. dr ops scale {target} --replicas 10"
        )
    dep = procs.resolve_deployment(estate, target, view)
    procs.check_replicas(replicas, dep.name, view.region)
    kube = _factory(app, read_only=run.dry_run)
    pre = procs.scale_preflight(kube(view), estate, view, dep.name, replicas, adjust_hpa=adjust_hpa)
    plan = procs.scale_plan(pre, view, wait=wait, timeout=timeout)
    lines = [f"{pre.deployment} ({pre.region}): {pre.current} -> {pre.replicas} replicas", *pre.warnings]
    _run(app, plan, kube=kube, report={"scale": pre.to_dict()}, human=_print_lines(lines), run=run)


@ops.command()
@click.argument("deployment")
@click.option("--min", "min_replicas", type=int, default=None, help="New minReplicas.")
@click.option("--max", "max_replicas", type=int, default=None, help="New maxReplicas.")
@_site_option("primary")
@plan_options
@pass_app
def hpa(
    app: AppContext,
    deployment: str,
    min_replicas: int | None,
    max_replicas: int | None,
    where: str,
    **opts: Any,
) -> None:
    """Show, or with --min/--max set, the HPA bounds of a deployment."""
    from dr.errors import BadInput
    from dr.procedures import ops as procs

    estate = app.estate
    sites = procs.resolve_sites(estate, where)
    if len(sites) != 1:
        raise BadInput("--region must name one site", hint="use primary or secondary")
    view = sites[0]
    kube = _factory(app, read_only=opts["run"].dry_run or (min_replicas is None and max_replicas is None))
    plan, report = procs.hpa_plan(
        kube(view), estate, view, deployment, min_replicas=min_replicas, max_replicas=max_replicas
    )
    if min_replicas is None and max_replicas is None:
        from dr.cli.output import dumps

        kube.close()
        h = report["hpa"]
        if app.json:
            click.echo(dumps(report))
        else:
            click.echo(
                f"{h['name']} ({view.region}): min {h['min']}, max {h['max']}, current {h['current']}, desired {h['desired']}"
            )
        return
    _run(
        app,
        plan,
        kube=kube,
        report=report,
        human=_print_lines(
            [f"HPA {report['hpa']['name']} ({view.region}): [{report['new_min']}, {report['new_max']}]"]
        ),
        **opts,
    )


@ops.command()
@click.argument("deployment")
@_site_option("primary")
@pass_app
def history(app: AppContext, deployment: str, where: str) -> None:
    """Rollout history (revisions) of a deployment, like `kubectl rollout history`."""
    from dr.cli.output import emit, simple_table
    from dr.errors import BadInput
    from dr.procedures import ops as procs

    estate = app.estate
    sites = procs.resolve_sites(estate, where)
    if len(sites) != 1:
        raise BadInput("--region must name one site", hint="use primary or secondary")
    dep = procs.resolve_deployment(estate, deployment, sites[0])
    kube = _factory(app, read_only=True)
    try:
        revs = kube(sites[0]).rollout_history(estate.app.namespace, dep.name)
    finally:
        kube.close()
    data = {"deployment": dep.name, "region": sites[0].region, "revisions": [r.to_dict() for r in revs]}
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


@ops.command()
@click.argument("deployment")
@click.option(
    "--to-revision", type=int, default=0, help="Revision to go back to (default: the previous one)."
)
@_site_option("primary")
@click.option(
    "--timeout", type=float, default=600, show_default=True, help="Seconds to wait for the rollout."
)
@plan_options
@pass_app
def rollback(
    app: AppContext,
    deployment: str,
    to_revision: int,
    where: str,
    timeout: float,
    run: RunOptions,
) -> None:
    """`kubectl rollout undo [--to-revision N]` through the API, then wait for the rollout."""
    from dr.errors import BadInput
    from dr.procedures import ops as procs

    estate = app.estate
    sites = procs.resolve_sites(estate, where)
    if len(sites) != 1:
        raise BadInput("--region must name one site for rollback", hint="use primary or secondary")
    view = sites[0]
    procs.resolve_deployment(estate, deployment, view)
    kube = _factory(app, read_only=run.dry_run)
    plan, report = procs.rollback_plan(kube(view), estate, view, deployment, to_revision, timeout=timeout)
    _run(
        app,
        plan,
        kube=kube,
        report={"rollback": report},
        human=_print_lines(
            [
                f"{report['deployment']} ({report['region']}): revision {report['from_revision']} -> template of revision {report['to_revision']}"
            ]
        ),
        run=run,
    )


# ----------------------------------------------------------------------------------------------
# feature flags, circuit breaker, maintenance
# ----------------------------------------------------------------------------------------------


def _set_flags(
    app: AppContext, values: dict[str, str], *, where: str, restart: bool, must_exist: bool, **opts: Any
) -> None:
    from dr.procedures import ops as procs

    estate = app.estate
    sites = procs.resolve_sites(estate, where)
    for name in values:
        procs.check_flag(estate, name, must_exist=must_exist)
    kube = _factory(app, read_only=opts["run"].dry_run)
    plan = procs.flag_plan(estate, sites, values, restart=restart, timeout=opts.pop("timeout"))
    desc = ", ".join(f"{k}={v}" for k, v in values.items())
    _run(
        app,
        plan,
        kube=kube,
        report={"flags": values, "config_map": estate.app.config_map, "regions": [s.region for s in sites]},
        human=_print_lines([f"{estate.app.config_map}: {desc} in {', '.join(s.region for s in sites)}"]),
        **opts,
    )


def _flag_options(f: Any) -> Any:
    f = click.option(
        "--timeout", type=float, default=600, show_default=True, help="Seconds to wait for rollouts."
    )(f)
    f = click.option(
        "--restart/--no-restart",
        default=True,
        show_default=True,
        help="Rolling-restart the deployments to pick up the change.",
    )(f)
    f = _site_option("both")(f)
    return plan_options(f)


@ops.group()
def flag() -> None:
    """Feature flags in the app ConfigMap (patch + rolling restart)."""


@flag.command("list")
@_site_option("primary")
@pass_app
def flag_list(app: AppContext, where: str) -> None:
    """Show the ConfigMap's flags per region."""
    from dr.cli.output import emit, simple_table
    from dr.procedures import ops as procs

    estate = app.estate
    kube = _factory(app, read_only=True)
    try:
        data = {
            s.region: kube(s).get_configmap(estate.app.namespace, estate.app.config_map)
            for s in procs.resolve_sites(estate, where)
        }
    finally:
        kube.close()
    emit(
        app.output,
        data,
        lambda d, out: out.print(
            simple_table(
                estate.app.config_map,
                ["region", "flag", "value"],
                [[r, k, v] for r, flags in d.items() for k, v in sorted(flags.items())],
            )
        ),
    )


@flag.command("set")
@click.argument("name")
@click.argument("value")
@_flag_options
@pass_app
def flag_set(app: AppContext, name: str, value: str, **opts: Any) -> None:
    """Set flag NAME to VALUE (creates it when missing)."""
    _set_flags(app, {name: value}, must_exist=False, **opts)


@flag.command("disable")
@click.argument("name")
@_flag_options
@pass_app
def flag_disable(app: AppContext, name: str, **opts: Any) -> None:
    """Set an existing flag to "false" (the runbook's emergency disable)."""
    _set_flags(app, {name: "false"}, must_exist=True, **opts)


@flag.command("enable")
@click.argument("name")
@_flag_options
@pass_app
def flag_enable(app: AppContext, name: str, **opts: Any) -> None:
    """Set an existing flag to "true"."""
    _set_flags(app, {name: "true"}, must_exist=True, **opts)


@ops.command("circuit-breaker")
@click.argument("state", type=click.Choice(["on", "off"]))
@_flag_options
@pass_app
def circuit_breaker(app: AppContext, state: str, **opts: Any) -> None:
    """Circuit breaker on/off (flag circuit-breaker-enabled)."""
    from dr.procedures.ops import CIRCUIT_BREAKER_FLAG

    _set_flags(app, {CIRCUIT_BREAKER_FLAG: "true" if state == "on" else "false"}, must_exist=False, **opts)


@ops.command()
@click.argument("state", type=click.Choice(["on", "off"]))
@_flag_options
@pass_app
def maintenance(app: AppContext, state: str, **opts: Any) -> None:
    """Maintenance mode on/off (flag maintenance-mode)."""
    from dr.procedures.ops import MAINTENANCE_FLAG

    _set_flags(app, {MAINTENANCE_FLAG: "true" if state == "on" else "false"}, must_exist=False, **opts)


# ----------------------------------------------------------------------------------------------
# stop / resume writes
# ----------------------------------------------------------------------------------------------


@ops.command("stop-writes")
@_site_option("primary")
@click.option(
    "--timeout", type=float, default=600, show_default=True, help="Seconds to wait for pods to stop."
)
@plan_options
@pass_app
def stop_writes(app: AppContext, where: str, timeout: float, **opts: Any) -> None:
    """Scale every writer to 0, recording its count in a deployment annotation (resume-writes restores it)."""
    from dr.errors import BadInput
    from dr.procedures import ops as procs

    estate = app.estate
    sites = procs.resolve_sites(estate, where)
    if len(sites) != 1:
        raise BadInput("--region must name one site", hint="use primary or secondary")
    kube = _factory(app, read_only=opts["run"].dry_run)
    for dep in estate.app.writers:
        kube(sites[0]).get_deployment(estate.app.namespace, dep.name)  # NotFound before any change
    plan = procs.stop_writes_plan(estate, sites[0], timeout=timeout)
    writers = [d.name for d in estate.app.writers]
    _run(
        app,
        plan,
        kube=kube,
        report={"region": sites[0].region, "writers": writers, "annotation": procs.STOPPED_ANNOTATION},
        human=_print_lines(
            [
                f"writes stopped in {sites[0].region}: {', '.join(writers)} at 0 (counts recorded in {procs.STOPPED_ANNOTATION})"
            ]
        ),
        **opts,
    )


@ops.command("resume-writes")
@_site_option("primary")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until the writers are Ready.")
@click.option("--timeout", type=float, default=600, show_default=True, help="Seconds to wait.")
@plan_options
@pass_app
def resume_writes(app: AppContext, where: str, wait: bool, timeout: float, **opts: Any) -> None:
    """Scale the writers back to exactly the counts recorded by stop-writes."""
    from dr.errors import BadInput
    from dr.procedures import ops as procs

    estate = app.estate
    sites = procs.resolve_sites(estate, where)
    if len(sites) != 1:
        raise BadInput("--region must name one site", hint="use primary or secondary")
    kube = _factory(app, read_only=opts["run"].dry_run)
    plan, recorded = procs.resume_writes_plan(kube(sites[0]), estate, sites[0], wait=wait, timeout=timeout)
    lines = [
        f"{name}: {'not stopped by dr (left as is)' if count is None else f'back to {count}'}"
        for name, count in recorded.items()
    ]
    _run(
        app,
        plan,
        kube=kube,
        report={"region": sites[0].region, "restored": recorded},
        human=_print_lines(lines),
        **opts,
    )


# ----------------------------------------------------------------------------------------------
# security
# ----------------------------------------------------------------------------------------------


@ops.group()
def waf() -> None:
    """Block / unblock addresses in the WAF IP set of each region."""


def _waf(app: AppContext, cidrs: tuple[str, ...], *, block: bool, where: str, **opts: Any) -> None:
    from dr.procedures.ops import resolve_sites
    from dr.procedures.ops_security import waf_plan

    estate = app.estate
    sites = resolve_sites(estate, where)
    plan, report = waf_plan(app.clients(read_only=True), estate, sites, list(cidrs), block=block)
    verb = "blocked" if block else "unblocked"
    _run(
        app,
        plan,
        kube=None,
        report={"waf": report},
        human=_print_lines([f"{verb} {', '.join(report['cidrs'])} in {', '.join(report['regions'])}"]),
        locked=False,  # blocking an attacker never waits for a failover (the IP set has its own lock token)
        **opts,
    )


@waf.command("block")
@click.argument("cidrs", nargs=-1, required=True)
@_site_option("both")
@plan_options
@pass_app
def waf_block(app: AppContext, cidrs: tuple[str, ...], where: str, **opts: Any) -> None:
    """Add addresses/CIDRs (e.g. 203.0.113.7 or 198.51.100.0/24) to the IP set; existing entries kept."""
    _waf(app, cidrs, block=True, where=where, **opts)


@waf.command("unblock")
@click.argument("cidrs", nargs=-1, required=True)
@_site_option("both")
@plan_options
@pass_app
def waf_unblock(app: AppContext, cidrs: tuple[str, ...], where: str, **opts: Any) -> None:
    """Remove addresses/CIDRs from the IP set."""
    _waf(app, cidrs, block=False, where=where, **opts)


@waf.command("list")
@_site_option("both")
@pass_app
def waf_list(app: AppContext, where: str) -> None:
    """Show each region's IP set entries."""
    from dr.cli.output import emit, simple_table
    from dr.procedures.ops import resolve_sites
    from dr.procedures.ops_security import waf_status

    data = waf_status(app.clients(read_only=True), resolve_sites(app.estate, where))
    emit(
        app.output,
        data,
        lambda d, out: out.print(
            simple_table(
                "WAF IP sets",
                ["region", "ip set", "version", "addresses"],
                [
                    [s["region"], s["name"], s["ip_address_version"], ", ".join(s["addresses"]) or "-"]
                    for s in d
                ],
            )
        ),
    )


@ops.command()
@click.argument("pod")
@_site_option("primary")
@plan_options
@pass_app
def quarantine(app: AppContext, pod: str, where: str, **opts: Any) -> None:
    """Isolate a pod: label security=quarantine + a deny-all NetworkPolicy (the pod is kept for forensics)."""
    from dr.errors import BadInput
    from dr.procedures.ops import resolve_sites
    from dr.procedures.ops_security import quarantine_plan

    estate = app.estate
    sites = resolve_sites(estate, where)
    if len(sites) != 1:
        raise BadInput("--region must name one site", hint="use primary or secondary")
    kube = _factory(app, read_only=opts["run"].dry_run)
    plan, report = quarantine_plan(kube(sites[0]), estate, sites[0], pod)
    _run(
        app,
        plan,
        kube=kube,
        report={"quarantine": report},
        human=_print_lines(
            [f"pod {pod} ({report['region']}) quarantined: label security=quarantine, deny-all NetworkPolicy"]
        ),
        locked=False,  # isolating a compromised pod never waits for a failover
        **opts,
    )


@ops.command("rotate-db-secret")
@_site_option("primary")
@click.option(
    "--restart/--no-restart",
    default=True,
    show_default=True,
    help="Rolling-restart the deployments afterwards.",
)
@click.option("--timeout", type=float, default=900, show_default=True, help="Seconds to wait per step.")
@plan_options
@pass_app
def rotate_db_secret(app: AppContext, where: str, restart: bool, timeout: float, **opts: Any) -> None:
    """New master password → Secrets Manager, RDS, Kubernetes Secret; rolling restart. Never printed."""
    from dr.procedures.ops_security import rotation_plan, writable_site

    estate = app.estate
    view = writable_site(estate, where)
    kube = _factory(app, read_only=opts["run"].dry_run)
    for site in (estate.primary, estate.secondary):  # NotFound (exit 2) before any change
        kube(site).read_secret_key(estate.app.namespace, estate.app.db_secret.name, estate.app.db_secret.key)
    plan, pre = rotation_plan(app.clients(read_only=True), estate, view, restart=restart, timeout=timeout)
    _run(
        app,
        plan,
        kube=kube,
        report={"rotation": pre.to_dict()},
        human=_print_lines(
            [
                f"master password of {pre.db} ({pre.db_region}) rotated; secret updated in {', '.join(pre.secret_regions)} and {', '.join(pre.clusters)} (value not shown)"
            ]
        ),
        **opts,
    )


@ops.group()
def cert() -> None:
    """ACM certificates of the public name."""


@cert.command("check")
@_site_option("both")
@click.option(
    "--warn-days", type=int, default=30, show_default=True, help="Warn when a certificate expires sooner."
)
@pass_app
def cert_check_cmd(app: AppContext, where: str, warn_days: int) -> None:
    """Status and days to expiry; warns under --warn-days, exit 1 when a certificate has expired."""
    from dr.cli.output import emit, simple_table
    from dr.procedures.ops import resolve_sites
    from dr.procedures.ops_security import cert_check

    result = cert_check(
        app.clients(read_only=True), app.estate, resolve_sites(app.estate, where), warn_days=warn_days
    )

    def table(r: Any, out: Console) -> None:
        out.print(
            simple_table(
                f"Certificates for {r.name}",
                ["region", "domain", "status", "expires", "days left", "verdict"],
                [
                    [c["region"], c["domain"], c["status"], c["not_after"], c["days_left"], c["verdict"]]
                    for c in r.certificates
                ],
            )
        )
        for w in r.warnings:
            out.print(f"[yellow]warning:[/yellow] {w}")

    emit(app.output, result, table)
    if result.exit_code:
        raise click.exceptions.Exit(result.exit_code)
