"""The runner with fake registered providers: phases, rollbacks, stop conditions, exit codes."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from dr.drills import registry
from dr.drills.drill_context import DrillContext, MeasurementHooks
from dr.drills.lifecycle import EXIT_INTERRUPTED, DrillRunner, plan
from dr.drills.scenario import parse_scenario

from .fakes import FakeWorld

BASE = """
title: test drill
measure: {heartbeat: false, prober: false}
objectives: {rto_seconds: 60, rpo_seconds: 1}
"""


def run(text: str, tmp_path: Path, world: FakeWorld | None = None, hooks: MeasurementHooks | None = None):
    loaded = parse_scenario(text, "t.yaml")
    ctx = DrillContext(run_id="r1", target="sandbox", services={"world": world or FakeWorld()})
    out = tmp_path / "run"
    runner = DrillRunner(loaded, ctx, out_dir=out, hooks=hooks)
    return runner.run(), json.loads((out / "journal.json").read_text())


def test_all_phases_pass_exit_0(fake_providers, tmp_path: Path) -> None:
    text = (
        BASE
        + """
steady-state-hypothesis:
  probes: [{name: h, type: probe, provider: t-value, arguments: {value: 3}, tolerance: {max: 5}}]
method:
  - {name: m1, type: action, provider: t-record, arguments: {tag: m1}}
  - {name: m2, type: action, provider: t-record, arguments: {tag: m2}}
verification:
  probes: [{name: v, type: probe, provider: t-value, arguments: {value: ok}, tolerance: ok}]
rollbacks:
  - {name: r, type: action, provider: t-record, arguments: {tag: rollback}}
"""
    )
    res, journal = run(text, tmp_path)
    assert res.exit_code == 0 and res.status == "succeeded"
    assert fake_providers == ["m1", "m2", "rollback"]
    assert [(s.phase, s.name, s.status) for s in res.steps] == [
        ("hypothesis", "h", "ok"),
        ("method", "m1", "ok"),
        ("method", "m2", "ok"),
        ("verification", "v", "ok"),
        ("rollback", "r", "ok"),
    ]
    # no fault: objectives are not evaluated, which is not a failure
    assert [o.met for o in res.objectives] == [None, None]
    assert journal["status"] == "succeeded" and journal["exit_code"] == 0
    assert [s["name"] for s in journal["steps"]] == ["h", "m1", "m2", "v", "r"]


def test_verification_failure_still_runs_rollbacks_exit_1(fake_providers, tmp_path: Path) -> None:
    text = (
        BASE
        + """
method: [{name: m, type: action, provider: t-record, arguments: {tag: m}}]
verification:
  probes:
    - {name: v1, type: probe, provider: t-value, arguments: {value: 500}, tolerance: 200}
    - {name: v2, type: probe, provider: t-value, arguments: {value: 200}, tolerance: 200}
rollbacks:
  - {name: r1, type: action, provider: t-record, arguments: {tag: r1}}
  - {name: r2, type: action, provider: t-fail}
  - {name: r3, type: action, provider: t-record, arguments: {tag: r3}}
"""
    )
    res, journal = run(text, tmp_path)
    assert res.exit_code == 1 and res.status == "failed"
    assert "verification failed: v1" in res.reason
    assert fake_providers == ["m", "r1", "r3"]  # a failing rollback does not stop the others
    statuses = {s.name: s.status for s in res.steps}
    assert statuses == {"m": "ok", "v1": "failed", "v2": "ok", "r1": "ok", "r2": "error", "r3": "ok"}
    assert journal["status"] == "failed"
    assert "pw123" not in json.dumps(journal)  # secrets in error messages are scrubbed


def test_keyboard_interrupt_during_method_runs_rollbacks(fake_providers, tmp_path: Path) -> None:
    text = (
        BASE
        + """
method:
  - {name: m1, type: action, provider: t-record, arguments: {tag: m1}}
  - {name: boom, type: action, provider: t-interrupt}
  - {name: m3, type: action, provider: t-record, arguments: {tag: m3}}
verification:
  probes: [{name: v, type: probe, provider: t-value}]
rollbacks:
  - {name: r, type: action, provider: t-record, arguments: {tag: rollback}}
"""
    )
    res, journal = run(text, tmp_path)
    assert res.exit_code == EXIT_INTERRUPTED and res.status == "interrupted"
    assert fake_providers == ["m1", "rollback"]
    assert {s.name: s.status for s in res.steps}["boom"] == "interrupted"
    assert journal["status"] == "interrupted"
    assert any(e["kind"] == "interrupted" for e in journal["events"])


def test_second_ctrl_c_during_rollbacks_does_not_skip_the_rest(fake_providers, tmp_path: Path) -> None:
    text = (
        BASE
        + """
method: [{name: boom, type: action, provider: t-interrupt}]
rollbacks:
  - {name: r1, type: action, provider: t-interrupt}
  - {name: r2, type: action, provider: t-record, arguments: {tag: r2}}
"""
    )
    res, journal = run(text, tmp_path)
    assert fake_providers == ["r2"]
    assert res.exit_code == EXIT_INTERRUPTED
    assert any(e["kind"] == "interrupt_ignored" for e in journal["events"])


def test_failed_hypothesis_skips_method_and_its_rollbacks(fake_providers, tmp_path: Path) -> None:
    text = (
        BASE
        + """
steady-state-hypothesis:
  probes: [{name: h, type: probe, provider: t-value, arguments: {value: false}, tolerance: true}]
method: [{name: m, type: action, provider: t-record, arguments: {tag: m}}]
rollbacks: [{name: r, type: action, provider: t-record, arguments: {tag: rollback}}]
"""
    )
    res, journal = run(text, tmp_path)
    assert res.exit_code == 1 and "steady-state hypothesis not met" in res.reason
    assert fake_providers == []  # the method changed nothing: its rollback has nothing to undo
    steps = {s.name: s for s in res.steps}
    assert steps["m"].status == "skipped" and steps["r"].status == "skipped"
    assert steps["r"].error.startswith("skipped: the method did not run")
    assert "steady-state hypothesis was not met" in steps["r"].error
    assert any(e["kind"] == "rollback_skipped" and e["name"] == "r" for e in journal["events"])


def test_failed_action_stops_the_method(fake_providers, tmp_path: Path) -> None:
    text = (
        BASE
        + """
method:
  - {name: bad, type: action, provider: t-fail}
  - {name: m, type: action, provider: t-record, arguments: {tag: m}}
rollbacks: [{name: r, type: action, provider: t-record, arguments: {tag: rollback}}]
"""
    )
    res, _ = run(text, tmp_path)
    assert res.exit_code == 1 and "action bad failed" in res.reason
    assert fake_providers == ["rollback"]


def test_pending_provider_fails_the_step_cleanly(fake_providers, tmp_path: Path) -> None:
    text = (
        BASE
        + """
method: [{name: fo, type: action, provider: t-pending}]
rollbacks: [{name: r, type: action, provider: t-record, arguments: {tag: rollback}}]
"""
    )
    registry.register_action("t-pending", target="elsewhere")(lambda ctx: None)
    try:
        res, _ = run(text, tmp_path)
    finally:
        registry.unregister("action", "t-pending")
    assert res.exit_code == 1 and "ProviderUnavailable" in res.reason and "only on elsewhere" in res.reason
    assert fake_providers == []  # the provider was never called: nothing to undo
    assert {s.name: s.status for s in res.steps}["r"] == "skipped"


def test_stop_condition_aborts_the_method(fake_providers, tmp_path: Path) -> None:
    text = (
        BASE
        + """
method:
  - {name: long, type: action, provider: t-wait, arguments: {seconds: 30}}
  - {name: after, type: action, provider: t-record, arguments: {tag: after}}
rollbacks: [{name: r, type: action, provider: t-record, arguments: {tag: rollback}}]
stop-conditions:
  interval: 0.01
  probes: [{name: lag-budget, type: probe, provider: t-flag, tolerance: {max: 5}}]
"""
    )
    loaded = parse_scenario(text, "t.yaml")
    # None first: the probe has nothing to measure yet (a replica being created) — no verdict,
    # checked again; then a value over budget aborts.
    ctx = DrillContext(run_id="r1", target="sandbox", services={"flag": None})
    runner = DrillRunner(loaded, ctx, out_dir=tmp_path / "run")
    threading.Timer(0.1, lambda: ctx.services.__setitem__("flag", 9)).start()
    res = runner.run()
    assert res.status == "aborted" and res.exit_code == 1
    assert "lag-budget" in res.reason
    assert fake_providers == ["wait", "rollback"]  # 'after' never ran; rollbacks did
    assert {s.name: s.status for s in res.steps}["after"] == "skipped"
    journal = json.loads((tmp_path / "run" / "journal.json").read_text())
    breach = next(e for e in journal["events"] if e["kind"] == "stop_condition_breached")
    assert breach["value"] == 9


def test_activity_timeout(fake_providers, tmp_path: Path) -> None:
    text = (
        BASE
        + """
method: [{name: slow, type: action, provider: t-wait, arguments: {seconds: 5}, timeout: 0.05}]
"""
    )
    res, _ = run(text, tmp_path)
    assert res.exit_code == 1 and "TimeoutExpired" in res.reason


def _measured_scenario(lag_rows: int, rpo_objective: float) -> str:
    return f"""
title: measured
objectives: {{rto_seconds: 30, rpo_seconds: {rpo_objective}}}
measure: {{heartbeat_interval: 0.01, probe_interval: 0.01, sustained: 3, recovery_timeout: 10}}
steady-state-hypothesis:
  probes: [{{name: up, type: probe, provider: t-world-ok, tolerance: true}}]
method:
  - {{name: warmup, type: action, provider: t-wait, arguments: {{seconds: 0.15}}}}
  - {{name: lose, type: action, provider: t-fault, fault: true}}
  - {{name: outage, type: action, provider: t-wait, arguments: {{seconds: 0.1}}}}
  - {{name: recover, type: action, provider: t-recover, recovery: true}}
verification:
  probes: [{{name: up-after, type: probe, provider: t-world-ok, tolerance: true}}]
"""


def _hooks(world: FakeWorld) -> MeasurementHooks:
    return MeasurementHooks(
        heartbeat_target=world.target, heartbeat_store=world, resolver=world.resolver, check=world.check
    )


def test_measured_rto_and_rpo_with_loss_fail_the_objective(fake_providers, tmp_path: Path) -> None:
    world = FakeWorld(replicate_lag_rows=4)
    res, journal = run(_measured_scenario(4, 0), tmp_path, world, _hooks(world))
    assert res.rpo.measured and res.rpo.rows_lost == 4
    assert res.rpo.rpo_seconds is not None and res.rpo.rpo_seconds > 0
    assert res.rto.measured and res.rto.rto_seconds is not None
    # RTO spans the outage action (0.1 s) at least
    assert res.rto.rto_seconds >= 0.1
    assert res.fault_at is not None and res.rto.recovered_at is not None
    assert res.rto.recovered_at >= res.recovery_done_at - 0.05  # type: ignore[operator]
    rpo = {o.name: o for o in res.objectives}["rpo"]
    assert rpo.met is False and res.exit_code == 1 and "objective not met" in res.reason
    assert journal["heartbeat"]["acks"] and journal["probes"]["samples"]
    assert "s3cret" not in json.dumps(journal)


def test_measured_no_loss_meets_objectives_exit_0(fake_providers, tmp_path: Path) -> None:
    world = FakeWorld(replicate_lag_rows=0)
    res, _ = run(_measured_scenario(0, 0), tmp_path, world, _hooks(world))
    assert res.rpo.rpo_seconds == 0.0 and res.rpo.rows_lost == 0
    assert all(o.met for o in res.objectives), res.objectives
    assert res.exit_code == 0


def test_measurement_missing_fails_the_objective(fake_providers, tmp_path: Path) -> None:
    text = _measured_scenario(0, 1).replace("heartbeat_interval", "prober: false, heartbeat_interval")
    world = FakeWorld()
    res, _ = run(text, tmp_path, world, MeasurementHooks(notes=["no hooks for this target"]))
    objectives = {o.name: o for o in res.objectives}
    assert objectives["rto"].met is None  # switched off in the scenario
    assert objectives["rpo"].met is False and "not measured" in objectives["rpo"].note
    assert res.exit_code == 1


def test_dry_run_plan_marks_pending_providers(fake_providers, estate) -> None:
    from dr.drills.scenario import resolve

    ctx = DrillContext(run_id="x", target="aws", estate=estate)
    p = plan(resolve("region-loss"), ctx)
    acts = {a["name"]: a for ph in p["phases"] for a in ph["activities"]}
    assert acts["api-healthy"]["implemented"] is True
    assert (
        acts["restore-primary-region"]["implemented"] is False
        and acts["restore-primary-region"]["pending"] == "only on sandbox"
    )
    assert acts["lose-primary-region"]["fault"] is True and acts["lose-primary-region"]["line"] > 1
    assert p["objectives"]["rto_seconds"] == estate.app.objectives.rto_seconds
    assert p["ready"] is False


def test_failed_recovery_is_not_waited_for(fake_providers, tmp_path: Path) -> None:
    text = _measured_scenario(0, 0).replace("recovery_timeout: 10", "recovery_timeout: 600")
    text = text.replace("provider: t-recover", "provider: t-fail")
    world = FakeWorld()
    res, _ = run(text, tmp_path, world, _hooks(world))
    # the endpoint never comes back; the runner must not sit out the 600 s recovery timeout
    assert res.exit_code == 1 and "action recover failed" in res.reason
    assert res.ended_at - res.started_at < 60
    assert not res.rto.measured
    assert {o.name: o.met for o in res.objectives} == {"rto": False, "rpo": False}
