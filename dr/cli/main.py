"""Entry point of `dr`. Subcommands load lazily so `dr --help` imports no boto3/pulumi/kubernetes."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from dr import __version__
from dr.cli.app import AppContext
from dr.errors import EXIT_USAGE, DrError, name_procedure

# name -> "module:attribute". Each module is imported only when its command runs (or for its help).
# One command per line: a table people add to, not code to reflow.
# fmt: off
COMMANDS: dict[str, tuple[str, str]] = {
    "topology": ("dr.cli.topology_cmd:topology", "Show the two-region estate from the stack files."),
    "ops": ("dr.cli.ops_cmd:ops", "Runbook ops: triage, scale, rollback, flags, writes, WAF, secrets."),
    "incident": ("dr.cli.incident_cmd:incident", "Incident comms: start, update, resolve (runbook templates)."),
    "drill": ("dr.cli.drill_cmd:drill", "Game-day drills: run a scenario, measure RTO/RPO, write evidence."),
    "snapshot": ("dr.cli.snapshot_cmd:snapshot", "Create, list, copy and prune DB/Redis snapshots."),
    "restore": ("dr.cli.restore_cmd:restore", "Restore a DB (PITR/snapshot) or Redis into a new resource."),
    "promote": ("dr.cli.promote_cmd:promote", "Promote the DR read replica (gated on replication lag)."),
    "dns": ("dr.cli.dns_cmd:dns", "Route53 failover of the public name: status, failover, failback."),
    "failover": ("dr.cli.failover_cmd:failover", "Whole-region failover: promote, scale, then DNS (resumable)."),
    "fleet": ("dr.cli.fleet_cmd:fleet", "Fleet failover: many replicas and DNS records within API rate limits."),
    "failback": ("dr.cli.failback_cmd:failback", "Re-protect, then fail back to the original region."),
    "reconcile": ("dr.cli.reconcile_cmd:reconcile", "After a failover: stack files declare the new primary."),
    "reprotect": ("dr.cli.reprotect_cmd:reprotect", "Rebuild the standby DB as a replica of the serving one."),
    "status": ("dr.cli.status_cmd:status", "Which region is active; health of each region (read-only)."),
    "readiness": ("dr.cli.readiness_cmd:readiness", "Is DR ready? prod vs DR checks (exit 1 on a fail)."),
    "doctor": ("dr.cli.doctor_cmd:doctor", "Preflight: identity, regions, resources, IAM, RBAC, drift (exit 1 on a fail)."),
    "sandbox": ("dr.cli.sandbox_cmd:sandbox", "Run the two-region estate locally: sandbox up, status, down."),
    "iam-policy": ("dr.cli.iam_cmd:iam_policy", "Least-privilege IAM policy JSON a procedure needs."),
}
# fmt: on


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when one runs or its help is shown.

    ``lazy`` maps a subcommand's name to ``"module:attribute"``; subcommands added the usual way
    (``@group.command()``) sit beside them."""

    def __init__(self, *args: Any, lazy: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy:
            return super().get_command(ctx, cmd_name)
        module, attr = self.lazy[cmd_name].split(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command


class _Dr(LazyGroup):
    """`dr` itself: its command list comes from :data:`COMMANDS`, so ``dr --help`` imports none."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(
    cls=_Dr,
    lazy={name: target for name, (target, _) in COMMANDS.items()},
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
@click.version_option(__version__, prog_name="dr")
@click.option(
    "--stack-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=lambda: os.environ.get("DR_STACK_DIR", "stacks"),
    show_default="stacks (env DR_STACK_DIR)",
    help="Directory holding Pulumi.<stack>.yaml files.",
)
@click.option(
    "--stack",
    default=lambda: os.environ.get("DR_STACK") or None,
    show_default="the one primary stack in --stack-dir (env DR_STACK, PULUMI_STACK)",
    help="A stack of the estate; its peerStack is loaded with it.",
)
@click.option(
    "--output",
    "-o",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Rich tables for people, JSON for programs.",
)
@click.option(
    "--profile", default=lambda: os.environ.get("AWS_PROFILE"), help="AWS profile (env AWS_PROFILE)."
)
@click.option(
    "--target",
    type=click.Choice(["aws", "sandbox"]),
    default=lambda: os.environ.get("DR_TARGET", "aws"),
    show_default="aws (env DR_TARGET)",
    help="Real AWS, or the embedded sandbox started by `dr sandbox up`.",
)
@click.pass_context
def cli(
    ctx: click.Context, stack_dir: Path, stack: str | None, output: str, profile: str | None, target: str
) -> None:
    """dr — disaster recovery for a two-region AWS estate (EKS, RDS PostgreSQL, Redis, ALB/WAF, Route53).

    Exit codes: 0 ok, 1 a drill or verification failed, 2 bad input, 3 refused by a safety gate.
    """
    ctx.obj = AppContext(stack_dir=stack_dir, stack=stack, output=output, profile=profile, target_name=target)


def _wants_json(argv: list[str]) -> bool:
    for i, arg in enumerate(argv):
        if arg in ("-o", "--output") and i + 1 < len(argv):
            return argv[i + 1] == "json"
        if arg in ("--output=json", "-ojson"):
            return True
    return False


def _option(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _command_of(argv: list[str]) -> str | None:
    return next((a for a in argv if a in COMMANDS), None)


def _report(err: DrError, args: list[str]) -> None:
    err = name_procedure(err, _command_of(args))
    if _wants_json(args):
        from dr.cli.output import write_json

        write_json(err.to_dict())
    click.echo(f"Error: {err.format_message()}", err=True)
    sys.exit(err.exit_code)


def main(argv: list[str] | None = None) -> Any:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        return cli.main(args=args, prog_name="dr", standalone_mode=False)
    except DrError as err:
        _report(err, args)
    except click.exceptions.Exit as ex:
        sys.exit(ex.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(EXIT_USAGE)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as exc:
        # botocore's own exceptions (no credentials, unknown profile, SSO expired, endpoint down…)
        # become one message with exit 2/3; anything else is a bug and keeps its traceback.
        if not type(exc).__module__.startswith(("botocore", "boto3")):
            raise
        from dr.aws.session import aws_setup_error

        mapped = aws_setup_error(exc, profile=_option(args, "--profile") or os.environ.get("AWS_PROFILE"))
        if mapped is None:
            raise
        _report(mapped, args)
