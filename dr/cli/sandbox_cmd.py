"""`dr sandbox up|status|down`: the whole two-region estate on this machine, in the background."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console

from dr.cli.app import AppContext, pass_app
from dr.cli.output import console, emit, simple_table


def _directory() -> Path:
    from dr.target import sandbox_dir

    return sandbox_dir()


@click.group()
def sandbox() -> None:
    """The embedded sandbox: moto + realism layer, real PostgreSQL, fake Kubernetes APIs, resolver.

    State lives in $DR_SANDBOX_DIR (default .dr-sandbox/); use `--target sandbox` on other commands.
    """


def _render_up(data: dict[str, Any], out: Console) -> None:
    verb = "already running" if data["already_running"] else "started"
    out.print(f"sandbox {verb} in {data['directory']} (latency {data['latency']})")
    rows = [
        ["AWS endpoint", data["aws_endpoint"]],
        ["kubeconfig", data["kubeconfig"]],
        ["resolver", data["resolver"]],
        *[[f"health {region}", url] for region, url in (data["health_urls"] or {}).items()],
        *[[f"component {name}", status] for name, status in (data["components"] or {}).items()],
    ]
    out.print(simple_table("Sandbox", ["", ""], rows))
    out.print("use it with: dr --target sandbox <command>   (or export DR_TARGET=sandbox)")


@sandbox.command("up")
@click.option(
    "--latency",
    type=click.Choice(["none", "fast", "realistic"]),
    default="fast",
    show_default=True,
    help="How long AWS operations take: none (instant), fast (0.2 s), realistic (measured AWS figures).",
)
@click.option(
    "--time-scale",
    type=float,
    default=1.0,
    show_default=True,
    help="Multiply realistic durations (0.05 turns a 5-minute promotion into 15 s).",
)
@click.option("--seed", type=int, default=None, help="Seed for realistic durations and fault rates.")
@click.option("--no-postgres", is_flag=True, help="Skip the real PostgreSQL (RDS endpoints stay fake).")
@click.option(
    "--timeout", type=float, default=120.0, show_default=True, help="Seconds to wait for readiness."
)
@pass_app
def up(
    app_ctx: AppContext,
    latency: str,
    time_scale: float,
    seed: int | None,
    no_postgres: bool,
    timeout: float,
) -> None:
    """Start the sandbox in the background and wait until it is ready (idempotent)."""
    from dr.sandbox.daemon import start_background
    from dr.sandbox.latency import profile

    profile(latency, time_scale)  # bad input -> exit 2 before anything starts
    app_ctx.estate  # noqa: B018 — validate the stack files before spawning
    err = console(stderr=True)
    state, already = start_background(
        _directory(),
        stack_dir=app_ctx.stack_dir,
        stack=app_ctx.stack_name,
        latency=latency,
        time_scale=time_scale,
        seed=seed,
        postgres=not no_postgres,
        timeout=timeout,
        progress=lambda line: err.print(f"[dim]… {line}[/dim]"),
    )
    data = {
        "already_running": already,
        "directory": state.get("directory"),
        "aws_endpoint": state.get("aws_endpoint"),
        "aws_endpoints": state.get("aws_endpoints"),
        "kubeconfig": state.get("kubeconfig"),
        "resolver": (state.get("resolver") or {}).get("url"),
        "health_urls": state.get("health_urls"),
        "latency": f"{(state.get('latency') or {}).get('profile')} ×{(state.get('latency') or {}).get('time_scale')}",
        "components": state.get("components"),
        "pids": state.get("pids"),
    }
    emit(app_ctx.output, data, _render_up)


def _render_status(data: dict[str, Any], out: Console) -> None:
    if not data.get("processes"):
        what = "starting" if data.get("starting") else "not running"
        out.print(f"sandbox {what} ({data['directory']})")
        return
    out.print(f"sandbox {'running' if data['running'] else 'NOT healthy'} in {data['directory']}")
    out.print(
        simple_table(
            "Processes",
            ["name", "pid", "alive"],
            [[p["name"], p["pid"], "yes" if p["alive"] else "DEAD"] for p in data["processes"]],
        )
    )
    rows = [
        ["AWS endpoint", data.get("aws_endpoint")],
        ["kubeconfig", data.get("kubeconfig")],
        ["resolver", (data.get("resolver") or {}).get("url")],
        ["latency", data.get("latency")],
        *[[f"health {r}", u] for r, u in (data.get("health_urls") or {}).items()],
        *[[f"database {n}", d] for n, d in (data.get("postgres_dsns") or {}).items()],
        *[[f"component {n}", s] for n, s in (data.get("components") or {}).items()],
    ]
    out.print(simple_table("Endpoints", ["", ""], rows))


@sandbox.command("status")
@pass_app
def status(app_ctx: AppContext) -> None:
    """Show what the sandbox runs (processes alive or dead, endpoints)."""
    from dr.sandbox.daemon import sandbox_status

    emit(app_ctx.output, sandbox_status(_directory()), _render_status)


def _render_down(data: dict[str, Any], out: Console) -> None:
    if not data["stopped"] and not data["removed"]:
        out.print(f"no sandbox in {data['directory']}")
        return
    out.print(f"stopped pids {', '.join(map(str, data['stopped'])) or '-'}; state removed: {data['removed']}")
    if data["still_running"]:
        out.print(f"[red]still running: {data['still_running']}[/red]")


@sandbox.command("down")
@pass_app
def down(app_ctx: AppContext) -> None:
    """Stop exactly the processes the sandbox started (by pid) and remove its state."""
    from dr.errors import OperationFailed
    from dr.sandbox.daemon import stop_background

    result = stop_background(_directory())
    emit(app_ctx.output, result, _render_down)
    if result["still_running"]:
        raise OperationFailed(f"sandbox processes still running: {result['still_running']}")
