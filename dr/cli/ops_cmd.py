"""`dr ops …` — the runbooks' incident operations as safe, topology-aware commands.

Thin: parse → validate (exit 2, nothing changed) → build a plan (dr.procedures.ops*) → run it with
the runbook engine (journal, --dry-run plan print, --resume, confirmation) → render.
One module per operation group, each imported only when one of its commands runs (or for
``dr ops --help``); what they share is in :mod:`dr.cli.ops_shared`. Heavy imports (kubernetes,
boto3) happen inside the commands.
"""

from __future__ import annotations

import click

from dr.cli.app import AppContext, pass_app
from dr.cli.main import LazyGroup

# name -> "module:attribute", one operation group per module. One command per line.
# fmt: off
OPS_COMMANDS: dict[str, str] = {
    "triage": "dr.cli.ops_triage_cmd:triage",
    "scale": "dr.cli.ops_workload_cmd:scale",
    "hpa": "dr.cli.ops_workload_cmd:hpa",
    "history": "dr.cli.ops_workload_cmd:history",
    "rollback": "dr.cli.ops_workload_cmd:rollback",
    "flag": "dr.cli.ops_flags_cmd:flag",
    "circuit-breaker": "dr.cli.ops_flags_cmd:circuit_breaker",
    "maintenance": "dr.cli.ops_flags_cmd:maintenance",
    "stop-writes": "dr.cli.ops_writes_cmd:stop_writes",
    "resume-writes": "dr.cli.ops_writes_cmd:resume_writes",
    "waf": "dr.cli.ops_security_cmd:waf",
    "quarantine": "dr.cli.ops_security_cmd:quarantine",
    "rotate-db-secret": "dr.cli.ops_security_cmd:rotate_db_secret",
    "cert": "dr.cli.ops_security_cmd:cert",
}
# fmt: on


@click.group(cls=LazyGroup, lazy=OPS_COMMANDS)
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
