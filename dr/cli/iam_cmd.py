"""`dr iam-policy` — the least-privilege IAM policy a procedure needs (dr.procedures.iam)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from dr.cli.app import AppContext, pass_app

if TYPE_CHECKING:
    from rich.console import Console

# The procedures dr.procedures.iam computes policies for (that module imports the runbook engine;
# this list keeps `dr --help` light). tests/unit/cli/test_iam_cmd.py checks the two agree.
PROCEDURES = ("failover", "failback", "reprotect", "drill", "snapshot", "restore", "ops")


def _human(data: dict[str, Any], out: Console) -> None:
    """stdout holds only the policy document (``> policy.json`` is valid JSON, written plain — never
    wrapped at the terminal width); the Kubernetes note goes to stderr."""
    from dr.cli.output import write_json

    write_json(data["policy"])
    if data["kubernetes"]:
        click.echo(
            "# Kubernetes operations (granted by the cluster's RBAC, not IAM): "
            + ", ".join(v["operation"] for v in data["kubernetes"]),
            err=True,
        )


@click.command("iam-policy")
@click.option(
    "--procedure",
    type=click.Choice(PROCEDURES),
    default="failover",
    show_default=True,
    help="Which procedure.",
)
@click.option(
    "--to",
    "to",
    default="secondary",
    show_default=True,
    help="The surviving site (failover target); for reprotect, the standby being rebuilt.",
)
@click.option("--account-id", default=None, help="AWS account id (default: STS GetCallerIdentity).")
@click.option("--zone-id", default=None, help="Hosted zone id to scope Route53 record changes to.")
@pass_app
def iam_policy(app: AppContext, procedure: str, to: str, account_id: str | None, zone_id: str | None) -> None:
    """Print the IAM policy JSON PROCEDURE needs: actions from its plan, ARNs from the topology."""
    from dr.cli.output import emit
    from dr.drills import drill_iam
    from dr.procedures.iam import kubernetes_verbs, policy

    drill_iam.install()

    estate = app.estate
    target = estate.site(to)
    if account_id is None:
        from dr.aws.calls import aws_errors

        with aws_errors(resource="caller identity", region=target.region, action="read"):
            ident = app.clients(read_only=True).client("sts", target.region).get_caller_identity()
        account_id = str(ident["Account"])
    doc = policy(estate, procedure, account_id=account_id, target=target, zone_id=zone_id)
    data = {
        "procedure": procedure,
        "account_id": account_id,
        "policy": doc,
        "kubernetes": kubernetes_verbs(estate, procedure),
    }
    emit(app.output, data, _human)
