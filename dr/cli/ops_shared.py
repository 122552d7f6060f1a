"""What the `dr ops …` command modules share: the --region option, the one-site decorator, the
Kubernetes client factory and running an ops plan (imports only click at load)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from dr.cli.app import AppContext

if TYPE_CHECKING:
    from rich.console import Console

    from dr.cli.plan_command import RunOptions
    from dr.kube import KubeFactory
    from dr.runbook.plan import Plan

F = TypeVar("F", bound=Callable[..., Any])


def site_option(default: str) -> Any:
    """``--region`` as the command's ``where`` argument (a site name, region or stack name)."""
    return click.option(
        "--region",
        "where",
        default=default,
        show_default=True,
        help="primary, secondary" + (", both" if default == "both" else "") + " (or a region / stack name).",
    )


def one_site(purpose: str = "") -> Callable[[F], F]:
    """``--region`` (default primary) naming exactly one site: the command gets it as
    ``site: SiteView`` and never sees ``--region both`` (exit 2 before anything is read).
    ``purpose`` ends the refusal ("… for scale")."""

    def decorate(f: F) -> F:
        @functools.wraps(f)
        def command(*args: Any, where: str, **kwargs: Any) -> Any:
            from dr.errors import BadInput
            from dr.procedures.ops import resolve_sites

            app = click.get_current_context().find_object(AppContext)
            assert app is not None, "dr ops runs under the dr group"
            sites = resolve_sites(app.estate, where)
            if len(sites) != 1:
                raise BadInput(
                    "--region must name one site" + (f" for {purpose}" if purpose else ""),
                    hint="use primary or secondary",
                )
            return f(*args, site=sites[0], **kwargs)

        decorated: F = site_option("primary")(command)
        return decorated

    return decorate


def factory(app: AppContext, *, read_only: bool) -> KubeFactory:
    """Kubernetes clients per cluster (``read_only``: changes refused, for dry runs and reads);
    the kubeconfig is ``ops --kubeconfig``, else the sandbox's, else the default."""
    from dr.kube import KubeFactory

    return KubeFactory.for_target(
        app.target_name,
        kubeconfig=app.extra.get("kubeconfig"),
        clients=app.clients(read_only=True),
        read_only=read_only,
    )


def run_ops_plan(
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
    from dr.cli.plan_command import execute, finish

    try:
        result = execute(
            app,
            plan,
            app.clients(read_only=run.dry_run),
            run=run,
            locked=locked and not app.extra.get("no_lock"),
            kube=kube,
        )
    finally:
        if kube is not None:
            kube.close()
    finish(app, result, report, human)


def print_lines(lines: list[str]) -> Any:
    """The table-output renderer of an ops result: these lines, as they are."""

    def human(_report: dict[str, Any], out: Console) -> None:
        for line in lines:
            out.print(line)

    return human
