"""`dr ops waf … | quarantine | rotate-db-secret | cert check`: the security responses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from dr.cli.app import AppContext, pass_app
from dr.cli.ops_shared import factory, one_site, print_lines, run_ops_plan, site_option
from dr.cli.plan_command import plan_options

if TYPE_CHECKING:
    from rich.console import Console

    from dr.topology import SiteView


@click.group()
def waf() -> None:
    """Block / unblock addresses in the WAF IP set of each region."""


def _waf_edit(name: str, *, block: bool, doc: str) -> click.Command:
    """``dr ops waf block|unblock CIDR…``: one change to each region's IP set."""

    @waf.command(name, help=doc)
    @click.argument("cidrs", nargs=-1, required=True)
    @site_option("both")
    @plan_options
    @pass_app
    def edit(app: AppContext, cidrs: tuple[str, ...], where: str, **opts: Any) -> None:
        from dr.procedures.ops import resolve_sites
        from dr.procedures.ops_security import waf_plan

        estate = app.estate
        sites = resolve_sites(estate, where)
        plan, report = waf_plan(app.clients(read_only=True), estate, sites, list(cidrs), block=block)
        verb = "blocked" if block else "unblocked"
        run_ops_plan(
            app,
            plan,
            kube=None,
            report={"waf": report},
            human=print_lines([f"{verb} {', '.join(report['cidrs'])} in {', '.join(report['regions'])}"]),
            locked=False,  # blocking an attacker never waits for a failover (the IP set has its own lock token)
            **opts,
        )

    return edit


waf_block = _waf_edit(
    "block",
    block=True,
    doc="Add addresses/CIDRs (e.g. 203.0.113.7 or 198.51.100.0/24) to the IP set; existing entries kept.",
)
waf_unblock = _waf_edit("unblock", block=False, doc="Remove addresses/CIDRs from the IP set.")


@waf.command("list")
@site_option("both")
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


@click.command()
@click.argument("pod")
@one_site()
@plan_options
@pass_app
def quarantine(app: AppContext, pod: str, site: SiteView, **opts: Any) -> None:
    """Isolate a pod: label security=quarantine + a deny-all NetworkPolicy (the pod is kept for forensics)."""
    from dr.procedures.ops_security import quarantine_plan

    estate = app.estate
    kube = factory(app, read_only=opts["run"].dry_run)
    plan, report = quarantine_plan(kube(site), estate, site, pod)
    run_ops_plan(
        app,
        plan,
        kube=kube,
        report={"quarantine": report},
        human=print_lines(
            [f"pod {pod} ({report['region']}) quarantined: label security=quarantine, deny-all NetworkPolicy"]
        ),
        locked=False,  # isolating a compromised pod never waits for a failover
        **opts,
    )


@click.command("rotate-db-secret")
@site_option("primary")
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
    kube = factory(app, read_only=opts["run"].dry_run)
    for site in (estate.primary, estate.secondary):  # NotFound (exit 2) before any change
        kube(site).read_secret_key(estate.app.namespace, estate.app.db_secret.name, estate.app.db_secret.key)
    plan, pre = rotation_plan(app.clients(read_only=True), estate, view, restart=restart, timeout=timeout)
    run_ops_plan(
        app,
        plan,
        kube=kube,
        report={"rotation": pre.to_dict()},
        human=print_lines(
            [
                f"master password of {pre.db} ({pre.db_region}) rotated; secret updated in {', '.join(pre.secret_regions)} and {', '.join(pre.clusters)} (value not shown)"
            ]
        ),
        **opts,
    )


@click.group()
def cert() -> None:
    """ACM certificates of the public name."""


@cert.command("check")
@site_option("both")
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
