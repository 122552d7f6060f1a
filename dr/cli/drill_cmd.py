"""`dr drill list|run|report|history`: game-day drills that measure RTO and RPO and leave evidence."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from dr.cli.app import AppContext, pass_app
from dr.cli.output import emit, simple_table

_scenario_dir = click.option(
    "--scenario-dir",
    "scenario_dirs",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Extra directory of scenario files (repeatable); same names override shipped ones.",
)


@click.group()
def drill() -> None:
    """Game-day drills: run a scenario, measure RTO/RPO, write evidence (md, html, junit, prom).

    Exit codes of `run`: 0 every objective met, 1 a hypothesis/step/verification/objective failed
    (rollbacks still ran), 2 bad input, 130 interrupted (rollbacks ran).
    """


def load_activities() -> None:
    """Register every drill provider: the drills' own (imported by the scenario loader) and the
    sandbox's faults and measurement hooks, on every target (a scenario naming a sandbox-only
    fault must validate, and say so, on AWS too)."""
    import dr.drills.scenario
    import dr.sandbox.drill_adapter  # noqa: F401


def _fmt(v: Any) -> str:
    return "—" if v is None else f"{v:.2f}s" if isinstance(v, float) else str(v)


@drill.command("list")
@_scenario_dir
@pass_app
def list_cmd(app_ctx: AppContext, scenario_dirs: tuple[Path, ...]) -> None:
    """Shipped scenarios and those in --scenario-dir (invalid files are listed with their error)."""
    from dr.drills import registry
    from dr.drills.scenario import ScenarioError, discover, parse_scenario

    load_activities()

    rows = []
    for name, (source, text) in sorted(discover(scenario_dirs).items()):
        try:
            loaded = parse_scenario(text, source, name=name)
        except ScenarioError as exc:
            rows.append(
                {"name": name, "source": source, "valid": False, "error": exc.issues[0].format(source)}
            )
            continue
        sc = loaded.scenario
        pending = sorted(
            {
                a.provider
                for _p, _l, acts in sc.phases()
                for a in acts
                if not (p := registry.get(a.type, a.provider)) or not p.available(app_ctx.target_name)
            }
        )
        rows.append(
            {
                "name": name,
                "title": sc.title,
                "mode": sc.mode,
                "targets": list(sc.target),
                "rto_seconds": sc.objectives.rto_seconds,
                "rpo_seconds": sc.objectives.rpo_seconds,
                "source": source,
                "valid": True,
                "pending_providers": pending,
            }
        )

    def table(data: list[dict[str, Any]], out: Console) -> None:
        from rich.table import Table

        t = Table(title=f"Drill scenarios (target {app_ctx.target_name})", title_justify="left")
        t.add_column("name", no_wrap=True)
        for col in ("mode", "RTO", "RPO", "not yet implemented on this target", "title"):
            t.add_column(col)
        for r in data:
            valid = bool(r.get("valid"))
            t.add_row(
                r["name"],
                r.get("mode", ""),
                _fmt(r.get("rto_seconds")) if valid else "",
                _fmt(r.get("rpo_seconds")) if valid else "",
                ", ".join(r.get("pending_providers", [])),
                r.get("title") or f"INVALID: {r.get('error')}",
            )
        out.print(t)
        out.print("RTO/RPO '—' = the estate's app.objectives.")

    emit(app_ctx.output, rows, table)


@drill.command("run")
@click.argument("scenario")
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), help="Evidence directory."
)
@click.option(
    "--runs-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("drills"),
    show_default=True,
    help="Where the default evidence directory <timestamp>-<scenario> is created.",
)
@click.option("--dry-run", is_flag=True, help="Print the resolved plan of the drill; change nothing.")
@click.option(
    "--target",
    "target_override",
    type=click.Choice(["aws", "sandbox"]),
    help="Same as the global --target (given here, it wins).",
)
@_scenario_dir
@pass_app
def run_cmd(
    app_ctx: AppContext,
    scenario: str,
    out_dir: Path | None,
    runs_dir: Path,
    dry_run: bool,
    target_override: str | None,
    scenario_dirs: tuple[Path, ...],
) -> None:
    """Run SCENARIO (a name from `dr drill list` or a .yaml path) on the --target."""
    if target_override:
        app_ctx.target_name = target_override
    from dr.drills.drill_context import DrillContext, measurement_hooks
    from dr.drills.lifecycle import DrillRunner, plan
    from dr.drills.report import default_out_dir, write_evidence
    from dr.drills.scenario import resolve
    from dr.errors import BadInput

    load_activities()

    loaded = resolve(scenario, scenario_dirs)
    target = app_ctx.target_name
    if target not in loaded.scenario.target:
        raise BadInput(
            f"scenario {loaded.name} does not support target {target!r} (it supports "
            f"{', '.join(loaded.scenario.target)})",
            resource=loaded.source,
            hint="choose another --target or add it to the scenario's `target:` list",
        )
    started = time.time()
    ctx = DrillContext(
        run_id=_run_id(started),
        target=target,
        estate=app_ctx.estate,
        dry_run=dry_run,
        clients_factory=lambda read_only: app_ctx.clients(read_only=read_only),
    )
    hooks = measurement_hooks(ctx)
    if dry_run:
        emit(app_ctx.output, plan(loaded, ctx, hooks), _render_plan)
        return
    out = out_dir or default_out_dir(runs_dir, loaded.name, started)
    if (out / "journal.json").exists():
        raise BadInput(f"{out} already holds a drill run", resource=str(out), hint="choose another --out")
    result = DrillRunner(loaded, ctx, out_dir=out, hooks=hooks).run()
    write_evidence(out)
    emit(app_ctx.output, result.to_dict(), _render_result)
    if result.exit_code:
        raise click.exceptions.Exit(result.exit_code)


def _run_id(t: float) -> str:
    import datetime as dt
    import secrets

    return f"{dt.datetime.fromtimestamp(t, dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def _render_plan(data: dict[str, Any], out: Console) -> None:
    obj = data["objectives"]
    out.print(
        f"[bold]Dry run[/bold] of drill {data['scenario']} — {data['title']} (mode {data['mode']}, "
        f"target {data['target']}): nothing is changed."
    )
    out.print(
        f"Objectives: RTO {_fmt(obj['rto_seconds'])} ({obj['source']['rto_seconds']}), "
        f"RPO {_fmt(obj['rpo_seconds'])} ({obj['source']['rpo_seconds']})"
    )
    rows = []
    for ph in data["phases"]:
        for a in ph["activities"]:
            # parentheses: rich would take "[fault]" for markup and drop it
            mark = " (fault)" if a["fault"] else " (recovery)" if a["recovery"] else ""
            mark += f" (undoes {a['undoes']})" if a.get("undoes") else ""
            args = ", ".join(f"{k}={v}" for k, v in a["arguments"].items() if v is not None)
            tol = "" if a["tolerance"] is None else f"tolerance {a['tolerance']}"
            rows.append(
                [
                    ph["phase"],
                    a["name"] + mark,
                    f"{a['type']}:{a['provider']}",
                    "; ".join(x for x in (args, tol) if x),
                    "ready" if a["implemented"] else f"PENDING ({a['pending']})",
                ]
            )
    out.print(simple_table("Plan", ["phase", "activity", "provider", "arguments", "implementation"], rows))
    m = data["measurement"]
    out.print(
        f"Heartbeat writer: {'on' if m['heartbeat'] else 'off'} · endpoint prober: {'on' if m['prober'] else 'off'}"
    )
    for note in m["notes"]:
        out.print(f"  note: {note}")
    if not data["ready"]:
        out.print(
            "[yellow]Some providers are not implemented for this target yet: the run would fail there.[/]"
        )


def _render_result(data: dict[str, Any], out: Console) -> None:
    rows = [
        [
            o["name"].upper(),
            _fmt(o["objective"]),
            _fmt(o["measured"]),
            {True: "met", False: "NOT MET"}.get(o["met"], "n/a"),
            o["note"],
        ]
        for o in data["objectives"]
    ]
    out.print(
        simple_table(
            f"Drill {data['scenario']}: {data['status']}",
            ["", "objective", "measured", "result", "note"],
            rows,
        )
    )
    steps = [[s["phase"], s["name"], s["status"], _fmt(s["duration"]), s["error"]] for s in data["steps"]]
    out.print(simple_table("Steps", ["phase", "step", "status", "duration", "detail"], steps))
    out.print(f"{data['reason']}")
    out.print(f"Evidence: {data['out_dir']}")


@drill.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@pass_app
def report_cmd(app_ctx: AppContext, run_dir: Path) -> None:
    """Re-render report.md, report.html, junit.xml and metrics.prom from RUN_DIR/journal.json."""
    from dr.drills.report import write_evidence

    files = write_evidence(run_dir)
    data = {"run_dir": str(run_dir), "files": {k: str(v) for k, v in files.items()}}
    emit(app_ctx.output, data, lambda d, out: out.print("\n".join(d["files"].values())))


@drill.command("history")
@click.option(
    "--dir",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("drills"),
    show_default=True,
    help="Directory holding drill run directories.",
)
@click.option("--scenario", help="Only this scenario.")
@click.option("--app", "app_name", help="Only runs of this app (the estate's app.name).")
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write an HTML page: per estate and latency profile, the RTO/RPO trend chart against "
    "the objectives.",
)
@pass_app
def history_cmd(
    app_ctx: AppContext, root: Path, scenario: str | None, app_name: str | None, html_path: Path | None
) -> None:
    """Past runs with measured RTO/RPO, grouped per estate (app, regions, stacks) and latency
    profile; the trend compares each run with the previous one of the same scenario in its group."""
    from dr.drills.report import history, history_groups, render_history_html

    runs = [
        r
        for r in history(root)
        if (scenario is None or r["scenario"] == scenario) and (app_name is None or r["app"] == app_name)
    ]
    if html_path is not None:
        html_path.parent.mkdir(parents=True, exist_ok=True)
        html_path.write_text(render_history_html(runs, root))

    def table(data: list[dict[str, Any]], out: Console) -> None:
        for group, scenarios in history_groups(data).items():
            rows = [
                [
                    r["started_at"],
                    r["scenario"],
                    r["target"],
                    r["status"],
                    f"{_fmt(r['rto_seconds'])} {r['rto_trend']}".strip(),
                    _fmt(r["rto_objective"]),
                    f"{_fmt(r['rpo_seconds'])} {r['rpo_trend']}".strip(),
                    _fmt(r["rpo_objective"]),
                    r["run_dir"],
                ]
                for runs_of in scenarios.values()
                for r in runs_of
            ]
            out.print(
                simple_table(
                    f"Drill history: {group}",
                    ["started", "scenario", "target", "status", "RTO", "RTO obj.", "RPO", "RPO obj.", "run"],
                    rows,
                )
            )
        if not data:
            out.print(f"No drill runs under {root}.")
        if html_path is not None:
            out.print(f"Trend charts: {html_path}")

    emit(app_ctx.output, runs, table)
