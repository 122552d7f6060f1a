"""`dr readiness`: pass/warn/fail checks that the DR region can take production. Exit 1 on a fail."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from dr.cli.app import AppContext, pass_app

if TYPE_CHECKING:
    from rich.console import Console

STYLE = {"pass": "green", "warn": "yellow", "fail": "red"}


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return "\n".join(f"{k}: {', '.join(v) if isinstance(v, list) else v}" for k, v in value.items())
    return str(value)


def render(data: dict[str, Any], out: Console) -> None:
    from rich.table import Table

    table = Table(
        title=f"{data['app']} readiness — {data['primary_region']} (production) vs "
        f"{data['secondary_region']} (DR): {data['status'].upper()}",
        title_justify="left",
    )
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column(data["primary_region"], overflow="fold", max_width=40)
    table.add_column(data["secondary_region"], overflow="fold", max_width=40)
    table.add_column("reason", overflow="fold", min_width=30)
    for c in data["checks"]:
        style = STYLE.get(c["status"], "white")
        table.add_row(
            c["name"],
            f"[{style}]{c['status']}[/{style}]",
            _fmt(c["primary"]),
            _fmt(c["secondary"]),
            c["reason"],
        )
    out.print(table)
    counts = data["counts"]
    out.print(f"{counts['pass']} pass, {counts['warn']} warn, {counts['fail']} fail")
    pub = data.get("published")
    if pub:
        out.print(
            f"published {pub['metrics']} metrics to CloudWatch {pub['namespace']} in {pub['region']} "
            f"({pub['requests']} request(s))"
        )


@click.command("readiness")
@click.option(
    "--snapshot-warn", default="24h", show_default=True, help="Warn when the newest DR snapshot is older."
)
@click.option(
    "--snapshot-fail", default="7d", show_default=True, help="Fail when the newest DR snapshot is older."
)
@click.option("--cert-warn-days", type=int, default=30, show_default=True, help="Warn below this many days.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=3.0,
    show_default=True,
    help="Connect timeout per AWS call (s).",
)
@click.option(
    "--kubeconfig", default=None, help="Kubeconfig with one context per cluster (default: target's)."
)
@click.option(
    "--publish",
    is_flag=True,
    help="Also put each check (pass=1/fail=0), replica lag, recovery-point age and single-writer as "
    "CloudWatch metrics in the DR region (app.readiness.namespace), where the DR stack's alarms watch them.",
)
@pass_app
def readiness(
    app: AppContext,
    snapshot_warn: str,
    snapshot_fail: str,
    cert_warn_days: int,
    timeout: float,
    kubeconfig: str | None,
    publish: bool,
) -> None:
    """Diff production and DR: DB engine/class/Multi-AZ/encryption/parameters, node capacity, WAF
    entries, images, a single writable database (split brain), DB secret, replica lag vs RPO, DR
    snapshot age, certificates, Redis. Exit 1 on a fail; 3 after the report when IAM refused a read.
    --publish: also as CloudWatch metrics."""
    from dr.cli.output import emit, end_partial
    from dr.cli.status_cmd import probe_clients
    from dr.errors import BadInput
    from dr.kube import KubeFactory
    from dr.procedures.readiness import check_readiness
    from dr.procedures.support import parse_duration

    warn = parse_duration(snapshot_warn, option="--snapshot-warn")
    fail = parse_duration(snapshot_fail, option="--snapshot-fail")
    if fail < warn:
        raise BadInput(
            f"--snapshot-fail {snapshot_fail} is shorter than --snapshot-warn {snapshot_warn}",
            resource="--snapshot-fail",
            hint="the fail threshold must be at least the warn threshold",
        )
    if cert_warn_days < 0:
        raise BadInput(f"--cert-warn-days {cert_warn_days} is negative", resource="--cert-warn-days")
    clients = probe_clients(app, timeout)
    kube = KubeFactory.for_target(app.target_name, kubeconfig=kubeconfig, clients=clients, read_only=True)
    try:
        report = check_readiness(
            app.estate, clients, kube, snapshot_warn=warn, snapshot_fail=fail, cert_warn_days=cert_warn_days
        )
    finally:
        kube.close()
    data = report.to_dict()
    if publish:
        from dr.procedures.readiness_metrics import publish as put_metrics

        # The checks ran read-only; only this put may write (and only metrics, in the DR region).
        writer = app.clients()
        writer.connect_timeout, writer.max_attempts = clients.connect_timeout, clients.max_attempts
        data["published"] = put_metrics(report, app.estate, writer).to_dict()
    emit(app.output, data, render)
    end_partial(report.denied, profile=app.profile, command="readiness")
    if report.exit_code:
        raise click.exceptions.Exit(report.exit_code)
