"""`dr ops flag …`, `circuit-breaker`, `maintenance`: the feature flags of the app ConfigMap."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from dr.cli.app import AppContext, pass_app
from dr.cli.ops_shared import factory, print_lines, run_ops_plan, site_option
from dr.cli.plan_command import plan_options

if TYPE_CHECKING:
    pass


def _set_flags(
    app: AppContext, values: dict[str, str], *, where: str, restart: bool, must_exist: bool, **opts: Any
) -> None:
    from dr.procedures import ops as procs

    estate = app.estate
    sites = procs.resolve_sites(estate, where)
    for name in values:
        procs.check_flag(estate, name, must_exist=must_exist)
    kube = factory(app, read_only=opts["run"].dry_run)
    plan = procs.flag_plan(estate, sites, values, restart=restart, timeout=opts.pop("timeout"))
    desc = ", ".join(f"{k}={v}" for k, v in values.items())
    run_ops_plan(
        app,
        plan,
        kube=kube,
        report={"flags": values, "config_map": estate.app.config_map, "regions": [s.region for s in sites]},
        human=print_lines([f"{estate.app.config_map}: {desc} in {', '.join(s.region for s in sites)}"]),
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
    f = site_option("both")(f)
    return plan_options(f)


@click.group()
def flag() -> None:
    """Feature flags in the app ConfigMap (patch + rolling restart)."""


@flag.command("list")
@site_option("primary")
@pass_app
def flag_list(app: AppContext, where: str) -> None:
    """Show the ConfigMap's flags per region."""
    from dr.cli.output import emit, simple_table
    from dr.procedures import ops as procs

    estate = app.estate
    kube = factory(app, read_only=True)
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


def _flag_to(command: str, value: str, doc: str) -> click.Command:
    """``dr ops flag COMMAND NAME``: the existing flag NAME to ``value``."""

    @flag.command(command, help=doc)
    @click.argument("name")
    @_flag_options
    @pass_app
    def set_existing(app: AppContext, name: str, **opts: Any) -> None:
        _set_flags(app, {name: value}, must_exist=True, **opts)

    return set_existing


flag_disable = _flag_to(
    "disable", "false", 'Set an existing flag to "false" (the runbook\'s emergency disable).'
)
flag_enable = _flag_to("enable", "true", 'Set an existing flag to "true".')


def _switch(name: str, flag: str, doc: str) -> click.Command:
    """``dr ops NAME on|off``: the flag whose name is ``dr.procedures.ops.<flag>`` to "true"/"false"."""

    @click.command(name, help=doc)
    @click.argument("state", type=click.Choice(["on", "off"]))
    @_flag_options
    @pass_app
    def switch(app: AppContext, state: str, **opts: Any) -> None:
        from dr.procedures import ops as procs

        _set_flags(
            app, {getattr(procs, flag): "true" if state == "on" else "false"}, must_exist=False, **opts
        )

    return switch


circuit_breaker = _switch(
    "circuit-breaker", "CIRCUIT_BREAKER_FLAG", "Circuit breaker on/off (flag circuit-breaker-enabled)."
)
maintenance = _switch("maintenance", "MAINTENANCE_FLAG", "Maintenance mode on/off (flag maintenance-mode).")
