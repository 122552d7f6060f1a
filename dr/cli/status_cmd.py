"""`dr status`: which region is active and the health of each region (table or JSON). Read-only."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from dr.cli.app import AppContext, pass_app

if TYPE_CHECKING:
    from rich.console import Console

    from dr.aws.session import ClientProvider

ROWS = [
    ("cluster", "EKS cluster"),
    ("nodegroup", "nodes min/desired/max"),
    ("api_pods", "API pods"),
    ("database", "database"),
    ("redis", "Redis"),
    ("alb_targets", "ALB targets"),
    ("health_check", "Route53 health check"),
    ("waf", "WAF"),
]
STYLE = {"ok": "green", "warn": "yellow", "fail": "red", "error": "magenta", "unreachable": "red"}


def probe_clients(app: AppContext, timeout: float) -> ClientProvider:
    """A read-only provider with short timeouts and few retries: a dead region answers fast."""
    clients = app.clients(read_only=True)
    clients.retry_mode = "standard"
    clients.max_attempts = 2
    clients.connect_timeout = timeout
    clients.read_timeout = max(timeout, 2 * timeout)
    return clients


def sandbox_resolver(app: AppContext, timeout: float) -> Any:
    """The sandbox's resolver for the public name (None on AWS: Route53 TestDNSAnswer is used)."""
    if app.target_name != "sandbox":
        return None
    url = ((app.target.state or {}).get("resolver") or {}).get("url")
    if not url:
        return None
    record = app.estate.app.record

    def resolve() -> tuple[list[str], str | None]:
        import json
        import urllib.parse
        import urllib.request

        query = urllib.parse.urlencode({"name": record})
        with urllib.request.urlopen(f"{url}/resolve?{query}", timeout=timeout) as resp:
            doc = json.loads(resp.read())
        return [str(doc.get("value"))], doc.get("region")

    return resolve


def _cell(probe: dict[str, Any]) -> str:
    state = probe.get("state", "error")
    text = str(probe.get("summary") or state)
    if probe.get("error"):
        err = str(probe["error"])
        text += ": " + err
    style = STYLE.get(state, "white")
    return f"[{style}]{text}[/{style}]"


def render(data: dict[str, Any], out: Console) -> None:
    from rich.markup import escape
    from rich.table import Table

    regions = list(data["regions"].values())
    active = data.get("active_region")
    table = Table(
        title=f"{data['app']} — {data['record']} served from {active or 'UNKNOWN'}", title_justify="left"
    )
    table.add_column("", no_wrap=True)
    for r in regions:
        tag = "ACTIVE" if r["serving"] else "passive"
        state = r["state"]
        table.add_column(
            f"{r['region']} ({r['role']}, {tag})\n[{STYLE.get(state, 'white')}]{state}[/]", overflow="fold"
        )
    for key, label in ROWS:
        table.add_row(label, *[_cell(r[key]) for r in regions])
    out.print(table)
    res = data["resolves_to"]
    answer = ", ".join(res.get("answer") or []) or "-"
    where = res.get("region") or "unknown region"
    extra = f" ({res['error']})" if res.get("error") else ""
    # plain text: the source tag ("[resolver]") and an error's brackets are not rich markup
    out.print(
        escape(f"{data['record']} resolves to {answer} → {where} [{res['source']}]{extra}"),
        soft_wrap=True,
    )
    for note in data.get("notes") or []:
        out.print(f"[yellow]note:[/yellow] {note}")
    _render_readiness(data.get("readiness"), out)


def _render_readiness(rd: dict[str, Any] | None, out: Console) -> None:
    """One line on the continuous-readiness alarms (DR region), naming the ones firing."""
    if not rd:
        return
    if rd.get("error"):
        out.print(f"readiness alarms ({rd['region']}): [yellow]unreadable[/yellow]: {rd['error']}")
        return
    if not rd["alarms"]:
        out.print(f"readiness alarms ({rd['region']}): none deployed (the DR stack deploys them)")
        return
    counts = ", ".join(f"{n} {state}" for state, n in sorted(rd["counts"].items()))
    line = f"readiness alarms ({rd['region']}): {counts}"
    if rd["firing"]:
        line += " — [red]firing: " + ", ".join(rd["firing"]) + "[/red]"
    out.print(line)


@click.command("status")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=3.0,
    show_default=True,
    help="Connect timeout per AWS call in seconds (read timeout: twice that); a dead region answers fast.",
)
@click.option(
    "--kubeconfig", default=None, help="Kubeconfig with one context per cluster (default: target's)."
)
@pass_app
def status(app: AppContext, timeout: float, kubeconfig: str | None) -> None:
    """Which region is active, and per region: cluster, nodes, API pods, database, Redis, ALB, health
    check, WAF — probed in parallel; an unreachable region is reported, not fatal. Read-only.

    Exit 2 when the credentials are missing, expired or unknown (nothing can be probed); exit 3
    after the report when IAM refused a probe (the report names the actions)."""
    from dr.cli.output import emit, end_partial
    from dr.kube import KubeFactory
    from dr.procedures.status import collect_status

    clients = probe_clients(app, timeout)
    kube = KubeFactory.for_target(app.target_name, kubeconfig=kubeconfig, clients=clients, read_only=True)
    try:
        report = collect_status(app.estate, clients, kube, resolver=sandbox_resolver(app, timeout))
    finally:
        kube.close()
    emit(app.output, report.to_dict(), render)
    end_partial(report.denied, profile=app.profile, command="status")
