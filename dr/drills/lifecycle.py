"""Runs a drill: hypothesis → method → verification → rollbacks, measuring RTO and RPO meanwhile.

* Rollbacks are considered always (``finally``), after a failed hypothesis, a failed action, a
  failed verification, a stop condition, or Ctrl-C (a second Ctrl-C during rollbacks is journaled
  and the remaining rollbacks still run) — but a rollback only undoes what the method did: one
  whose ``undoes`` step never started (or, without ``undoes``, when no method step started) is
  recorded as skipped, saying so, and a provider raising ``NothingToUndo`` is a skipped no-op.
* After the rollbacks the post-drill invariants (:mod:`dr.drills.invariants`: single writer,
  DNS on the intended region, the replica replicating) are checked; a broken one fails the drill.
* Stop conditions are probed by a background thread during the method; a breach sets the drill's
  stop event, the method stops before its next activity (long actions see ``ctx.stopping``).
* The heartbeat writer and the endpoint prober run for the whole drill (see ``heartbeat.py`` and
  ``prober.py``); after the method the runner waits for sustained success (RTO) and reads the
  heartbeats back from the promoted database (RPO).
* ``journal.json`` is rewritten on every event, so it exists whatever happens.

Exit codes: 0 every objective met and every check passed; 1 a hypothesis, action, verification
or objective failed or a stop condition aborted the drill; 130 interrupted (rollbacks ran).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dr.drills import estate_info, invariants, registry
from dr.drills.drill_context import DrillContext, MeasurementHooks
from dr.drills.evidence import DrillJournal, iso
from dr.runbook.journal import scrub
from dr.drills.heartbeat import HeartbeatWriter
from dr.drills.metrics import RpoResult, RtoResult, compute_rto
from dr.drills.prober import EndpointCheck, EndpointProber, HttpCheck
from dr.drills.scenario import Activity, LoadedScenario, estate_budgets, with_budgets, within_tolerance
from dr.errors import EXIT_FAILED, EXIT_OK

EXIT_INTERRUPTED = 130


@dataclass
class StepRecord:
    name: str
    phase: str
    type: str
    provider: str
    status: str = "pending"  # ok | failed | error | skipped | interrupted
    started_at: float | None = None
    ended_at: float | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    value: Any = None
    tolerance: Any = None
    error: str = ""
    fault: bool = False
    recovery: bool = False

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["duration"] = self.duration
        d["started"] = iso(self.started_at)
        out: dict[str, Any] = scrub(d)
        return out


@dataclass
class ObjectiveResult:
    name: str  # rto | rpo
    objective: float | None
    measured: float | None
    met: bool | None  # None: not evaluated (measurement switched off / no fault)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class DrillResult:
    run_id: str
    scenario: str
    title: str
    target: str
    status: str
    exit_code: int
    reason: str
    started_at: float
    ended_at: float
    steps: list[StepRecord]
    objectives: list[ObjectiveResult]
    rto: RtoResult
    rpo: RpoResult
    fault_at: float | None
    recovery_done_at: float | None
    out_dir: Path | None = None

    @property
    def succeeded(self) -> bool:
        return self.exit_code == EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "scenario": self.scenario,
            "title": self.title,
            "target": self.target,
            "status": self.status,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "duration_seconds": round(self.ended_at - self.started_at, 3),
            "rto_seconds": self.rto.rto_seconds,
            "rpo_seconds": self.rpo.rpo_seconds,
            "objectives": [o.to_dict() for o in self.objectives],
            "steps": [s.to_dict() for s in self.steps],
            "out_dir": str(self.out_dir) if self.out_dir else None,
        }


def resolve_objectives(loaded: LoadedScenario, estate: Any | None) -> dict[str, Any]:
    """The scenario's objectives, defaulting to the estate's ``app.objectives``."""
    obj = loaded.scenario.objectives
    default_rto = estate.app.objectives.rto_seconds if estate is not None else None
    default_rpo = estate.app.objectives.rpo_seconds if estate is not None else None
    out: dict[str, Any] = {
        "rto_seconds": obj.rto_seconds if obj.rto_seconds is not None else default_rto,
        "rpo_seconds": obj.rpo_seconds if obj.rpo_seconds is not None else default_rpo,
        "source": {
            "rto_seconds": "scenario" if obj.rto_seconds is not None else "estate",
            "rpo_seconds": "scenario" if obj.rpo_seconds is not None else "estate",
        },
    }
    return out


def plan(loaded: LoadedScenario, ctx: DrillContext, hooks: MeasurementHooks | None = None) -> dict[str, Any]:
    """The resolved plan of a drill (what ``--dry-run`` prints): nothing is called."""
    loaded = with_budgets(loaded, estate_budgets(ctx.estate))
    sc = loaded.scenario
    phases: list[dict[str, Any]] = []
    for phase, _loc, acts in sc.phases():
        rows: list[dict[str, Any]] = []
        for act in acts:
            prov = registry.get(act.type, act.provider)
            available = prov.available(ctx.target) if prov else False
            rows.append(
                {
                    "name": act.name,
                    "type": act.type,
                    "provider": act.provider,
                    "arguments": prov.validate_args(act.arguments) if prov else act.arguments,
                    "tolerance": _tol(act.tolerance),
                    "fault": act.fault,
                    "recovery": act.recovery,
                    "undoes": act.undoes,
                    "line": loaded.line_of((*_loc, acts.index(act))),
                    "implemented": available,
                    "pending": "" if available or prov is None else prov.unavailable(ctx.target),
                }
            )
        phases.append({"phase": phase, "activities": rows})
    hooks = hooks or MeasurementHooks()
    return scrub(
        {
            "scenario": loaded.name,
            "title": sc.title,
            "source": loaded.source,
            "mode": sc.mode,
            "target": ctx.target,
            "supported_targets": list(sc.target),
            "objectives": resolve_objectives(loaded, ctx.estate),
            "measure": sc.measure.model_dump(),
            "measurement": {
                "heartbeat": sc.measure.heartbeat and hooks.heartbeat_target is not None,
                "prober": sc.measure.prober and hooks.resolver is not None,
                "notes": hooks.notes,
            },
            "phases": phases,
            "end_state": sc.end_state.model_dump(),
            "ready": all(a["implemented"] for p in phases for a in p["activities"]),
        }
    )


def _tol(tol: Any) -> Any:
    return tol.model_dump(exclude_none=True) if hasattr(tol, "model_dump") else tol


class _StopMonitor:
    """Probes the stop conditions every ``interval`` seconds while the method runs."""

    def __init__(self, runner: DrillRunner, probes: list[Activity], interval: float) -> None:
        self.runner = runner
        self.probes = probes
        self.interval = interval
        self.checks = 0
        self.breach: StepRecord | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dr-stop-conditions", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._done.is_set():
            for probe in self.probes:
                rec = self.runner.execute(probe, "stop-condition", record=False)
                self.checks += 1
                if rec.status == "failed" and rec.value is None:
                    continue  # the probe has nothing to measure yet (e.g. a replica being created)
                if not rec.ok:
                    self.breach = rec
                    self.runner.ctx.stop_event.set()
                    self.runner.journal.event(
                        "stop_condition_breached",
                        name=probe.name,
                        value=rec.value,
                        tolerance=_tol(probe.tolerance),
                        error=rec.error,
                    )
                    return
            self._done.wait(self.interval)


class DrillRunner:
    def __init__(
        self,
        loaded: LoadedScenario,
        ctx: DrillContext,
        *,
        out_dir: Path | None = None,
        hooks: MeasurementHooks | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        loaded = with_budgets(loaded, estate_budgets(ctx.estate))
        self.loaded = loaded
        self.sc = loaded.scenario
        self.ctx = ctx
        self.out_dir = out_dir
        self.hooks = hooks or MeasurementHooks()
        self.clock = clock
        self.objectives = resolve_objectives(loaded, ctx.estate)
        self.steps: list[StepRecord] = []
        self.journal = DrillJournal(
            out_dir / "journal.json" if out_dir else None,
            {
                "run_id": ctx.run_id,
                "scenario": {
                    "name": loaded.name,
                    "title": self.sc.title,
                    "description": self.sc.description,
                    "source": loaded.source,
                    "sha256": loaded.sha256,
                    "mode": self.sc.mode,
                },
                "target": ctx.target,
                "estate": estate_info.for_run(ctx.estate, ctx.target),
                "objectives": self.objectives,
                "plan": plan(loaded, ctx, self.hooks),
                "status": "running",
                "started_at": iso(clock()),
            },
        )
        ctx.journal = self.journal
        self.heartbeat: HeartbeatWriter | None = None
        self.prober: EndpointProber | None = None
        self.recovery_done_at: float | None = None
        self._method_started: set[str] = set()  # method steps whose provider was called
        self._before: invariants.EstateFacts | None = None

    # -- activities ------------------------------------------------------------------------------
    def execute(self, act: Activity, phase: str, *, record: bool = True) -> StepRecord:
        rec = StepRecord(
            act.name,
            phase,
            act.type,
            act.provider,
            arguments=dict(act.arguments),
            tolerance=_tol(act.tolerance),
            fault=act.fault,
            recovery=act.recovery,
        )
        if record:
            self.steps.append(rec)
            self.journal.event("step_started", name=act.name, phase=phase, provider=act.provider)
        try:
            prov = registry.get(act.type, act.provider)
            if prov is None:  # the loader refuses these; a provider may be unregistered since
                raise registry.ProviderUnavailable(f"{act.type} provider {act.provider!r} is not registered")
            fn = prov.resolve(self.ctx.target)
            args = prov.validate_args(act.arguments)
            rec.arguments = args
            if act.pauses.before:
                self.ctx.wait(act.pauses.before)
            rec.started_at = self.clock()
            if phase == "method":
                self._method_started.add(act.name)
            if act.fault:
                self.ctx.fault_at = rec.started_at
                self.journal.event("fault_injected", name=act.name, at=iso(rec.started_at))
            rec.value = self._call(fn, args, act.timeout)
            rec.ended_at = self.clock()
            cause = ""
            if isinstance(rec.value, registry.Observation):
                rec.value, cause = rec.value.value, rec.value.cause
            if act.type == "probe":
                rec.status = "ok" if within_tolerance(rec.value, act.tolerance) else "failed"
                if rec.status == "failed":
                    rec.error = f"value {rec.value!r} is outside the tolerance {_tol(act.tolerance)!r}"
                    if cause:
                        rec.error += f": {cause}"
            else:
                rec.status = "ok"
            if act.pauses.after:
                self.ctx.wait(act.pauses.after)
        except KeyboardInterrupt:
            rec.ended_at = self.clock()
            rec.status = "interrupted"
            rec.error = "interrupted (Ctrl-C)"
            if record:
                self._journal_step(rec)
            raise
        except registry.NothingToUndo as exc:
            rec.ended_at = self.clock()
            rec.started_at = rec.started_at or rec.ended_at
            # a rollback that finds nothing to undo is a no-op; anywhere else it is a refusal
            rec.status = "skipped" if phase == "rollback" else "error"
            rec.error = f"skipped: {exc.message}" if phase == "rollback" else _describe(exc)
        except Exception as exc:
            rec.ended_at = self.clock()
            rec.started_at = rec.started_at or rec.ended_at
            rec.status = "error"
            rec.error = _describe(exc)
        if record:
            self._journal_step(rec)
        return rec

    def _journal_step(self, rec: StepRecord) -> None:
        self.journal.event(
            "step_finished",
            name=rec.name,
            phase=rec.phase,
            status=rec.status,
            duration=rec.duration,
            value=_jsonable(rec.value),
            error=rec.error,
        )

    def _call(self, fn: Callable[..., Any], args: dict[str, Any], timeout: float | None) -> Any:
        ctx = self.ctx
        if timeout is None:
            return fn(ctx, **args)
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["value"] = fn(ctx, **args)
            except BaseException as exc:
                box["error"] = exc

        worker = threading.Thread(target=target, name="dr-drill-activity", daemon=True)
        worker.start()
        worker.join(timeout)
        if worker.is_alive():
            from dr.errors import TimeoutExpired

            raise TimeoutExpired(f"did not finish within {timeout:g}s (left running in the background)")
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def _skip(self, acts: list[Activity], phase: str, why: str) -> None:
        for act in acts:
            rec = StepRecord(act.name, phase, act.type, act.provider, status="skipped", error=why)
            rec.fault, rec.recovery = act.fault, act.recovery
            self.steps.append(rec)

    # -- measuring --------------------------------------------------------------------------------
    def _start_measuring(self) -> None:
        m = self.sc.measure
        notes = list(self.hooks.notes)
        if m.heartbeat and self.hooks.heartbeat_target is not None:
            self.heartbeat = HeartbeatWriter(
                self.hooks.heartbeat_target, self.hooks.heartbeat_store, interval=m.heartbeat_interval
            )
            self.heartbeat.start()
            self.ctx.services["heartbeat"] = self.heartbeat
        if m.prober and self.hooks.resolver is not None:
            self.prober = EndpointProber(self.hooks.resolver, self._check(), interval=m.probe_interval)
            self.prober.start()
        self.ctx.services.setdefault("resolver", self.hooks.resolver)
        self.ctx.services.setdefault("check", self._check())
        self.journal.event(
            "measuring_started",
            heartbeat=self.heartbeat is not None,
            prober=self.prober is not None,
            notes=notes,
        )

    def _check(self) -> EndpointCheck:
        """The hooks' endpoint check, else GET <app.healthPath> + POST /write."""
        if self.hooks.check is not None:
            return self.hooks.check
        estate = self.ctx.estate
        return HttpCheck(health_path=estate.app.health_path if estate is not None else "/health")

    def _wait_recovered(self) -> None:
        if self.prober is None or self.ctx.fault_at is None:
            return
        timeout = self.sc.measure.recovery_timeout or self.objectives["rto_seconds"] or 900.0
        deadline = time.monotonic() + timeout
        fault_at = self.ctx.fault_at
        while not self.prober.sustained_since(fault_at, self.sc.measure.sustained):
            if time.monotonic() >= deadline:
                self.journal.event("not_recovered", waited_seconds=timeout)
                return
            time.sleep(min(self.sc.measure.probe_interval, 0.25))

    def _read_rpo(self) -> set[int] | None:
        if self.heartbeat is None or self.ctx.fault_at is None:
            return None
        rpo_target = self.hooks.rpo_target or self.hooks.heartbeat_target
        try:
            target = rpo_target() if rpo_target else None
        except Exception as exc:
            self.heartbeat.notes.append(f"promoted database lookup failed: {_describe(exc)}")
            return None
        return self.heartbeat.collect(target)

    # -- the run ----------------------------------------------------------------------------------
    def run(self) -> DrillResult:
        started = self.clock()
        status, reason = "running", ""
        present: set[int] | None = None
        rollback_at: float | None = None
        monitor: _StopMonitor | None = None
        self.journal.event("drill_started", scenario=self.loaded.name, target=self.ctx.target)
        try:
            try:
                self._start_measuring()
                self._before = self._read_estate(None, "before")
                status, reason = self._hypothesis()
                if status == "running":
                    if self.sc.stop_conditions and self.sc.stop_conditions.probes:
                        monitor = _StopMonitor(
                            self, self.sc.stop_conditions.probes, self.sc.stop_conditions.interval
                        )
                        monitor.start()
                    status, reason = self._method(monitor)
                    if monitor is not None:
                        monitor.stop()
                if self.ctx.fault_at is not None and status == "running":
                    # only a completed method can have recovered; a failed one is not waited for
                    self._wait_recovered()
                    present = self._read_rpo()
                if status == "running":
                    status, reason = self._verification()
            except KeyboardInterrupt:
                status, reason = "interrupted", "interrupted by the operator (Ctrl-C); rollbacks ran"
                self.journal.event("interrupted")
            finally:
                if monitor is not None:
                    monitor.stop()
                rollback_at = self.clock()
                self._rollbacks()
        finally:
            if self.prober is not None:
                self.prober.stop()
            if self.heartbeat is not None:
                self.heartbeat.stop()
            broken = self._invariants()
            result = self._finish(started, status, reason, present, rollback_at, broken)
        return result

    def _hypothesis(self) -> tuple[str, str]:
        hyp = self.sc.steady_state_hypothesis
        if not hyp:
            return "running", ""
        for i, probe in enumerate(hyp.probes):
            rec = self.execute(probe, "hypothesis")
            if not rec.ok:
                self._skip(hyp.probes[i + 1 :], "hypothesis", "an earlier hypothesis probe failed")
                self._skip(self.sc.method, "method", "the steady-state hypothesis was not met")
                if self.sc.verification:
                    self._skip(self.sc.verification.probes, "verification", "the method did not run")
                return "failed", f"steady-state hypothesis not met: {probe.name} ({rec.error})"
        return "running", ""

    def _method(self, monitor: _StopMonitor | None) -> tuple[str, str]:
        for i, act in enumerate(self.sc.method):
            if self.ctx.stop_event.is_set():
                breach = monitor.breach if monitor else None
                why = f"stop condition {breach.name} breached" if breach else "stop requested"
                self._skip(self.sc.method[i:], "method", why)
                self._skip_verification("the drill was aborted")
                return "aborted", f"aborted: {why} ({breach.error if breach else ''})".rstrip(" ()")
            rec = self.execute(act, "method")
            if act.recovery and rec.ended_at is not None:
                self.recovery_done_at = rec.ended_at
            if not rec.ok:
                self._skip(self.sc.method[i + 1 :], "method", f"{act.name} failed")
                self._skip_verification(f"{act.name} failed")
                return "failed", f"{act.type} {act.name} failed: {rec.error}"
        if monitor is not None and monitor.breach is not None:
            monitor.stop()
            self._skip_verification("the drill was aborted")
            return "aborted", f"aborted: stop condition {monitor.breach.name} breached"
        return "running", ""

    def _skip_verification(self, why: str) -> None:
        if self.sc.verification:
            self._skip(self.sc.verification.probes, "verification", why)

    def _verification(self) -> tuple[str, str]:
        ver = self.sc.verification
        failed = []
        for probe in ver.probes if ver else []:
            rec = self.execute(probe, "verification")
            if not rec.ok:
                failed.append(f"{probe.name} ({rec.error})")
        if failed:
            return "failed", "verification failed: " + "; ".join(failed)
        return "running", ""

    def _rollbacks(self) -> None:
        if not self.sc.rollbacks:
            return
        self.ctx.stop_event.clear()  # rollbacks must not see the method's stop request
        self.journal.event("rollbacks_started")
        for act in self.sc.rollbacks:
            why = self._nothing_to_undo(act)
            if why:
                self._skip([act], "rollback", f"skipped: {why}")
                self.journal.event("rollback_skipped", name=act.name, why=why)
                continue
            try:
                self.execute(act, "rollback")
            except KeyboardInterrupt:
                self.journal.event("interrupt_ignored", during=act.name, why="rollbacks always complete")
        self.journal.event("rollbacks_finished")

    def _nothing_to_undo(self, act: Activity) -> str:
        """Why ``act`` (a rollback) has nothing to undo, or "" when what it undoes started."""
        if act.undoes is not None:
            if act.undoes in self._method_started:
                return ""
            rec = next((s for s in self.steps if s.phase == "method" and s.name == act.undoes), None)
            cause = rec.error if rec is not None and rec.error else "it was not reached"
            return f"the method did not run {act.undoes} ({cause}): nothing to undo"
        if self._method_started:
            return ""
        rec = next((s for s in self.steps if s.phase == "method"), None)
        cause = rec.error if rec is not None and rec.error else "it was not reached"
        return f"the method did not run ({cause}): nothing to undo"

    # -- post-drill invariants --------------------------------------------------------------------
    def _read_estate(self, intended: str | None, when: str) -> invariants.EstateFacts | None:
        check = invariants.estate_check(self.ctx)
        if check is None or self.ctx.dry_run:
            if when == "before":
                self.journal.event("invariants_not_checked", why="no estate to check")
            return None
        try:
            facts = check(self.ctx, intended)
        except Exception as exc:  # the check itself must not hide the drill's outcome
            facts = invariants.EstateFacts(
                None,
                [
                    invariants.Invariant(
                        invariants.UNREADABLE, False, f"could not read the estate: {_describe(exc)}"
                    )
                ],
            )
        self.journal.event(
            f"estate_{when}",
            serving=facts.serving,
            invariants=[{"name": i.name, "ok": i.ok, "detail": i.detail} for i in facts.invariants],
        )
        return facts

    def _method_completed(self) -> bool:
        method = [s for s in self.steps if s.phase == "method"]
        return bool(method) and all(s.ok for s in method)

    def _invariants(self) -> list[StepRecord]:
        """Check the estate after the drill; the broken invariants (as failed steps)."""
        if self._before is None:
            return []
        unread = next((i for i in self._before.invariants if i.name == invariants.UNREADABLE), None)
        if unread is not None:  # nothing to compare with: say so rather than guess
            rec = StepRecord(unread.name, invariants.PHASE, "probe", "invariant", status="skipped")
            rec.error = f"skipped: post-drill invariants not checked, {unread.detail} before the drill"
            self.steps.append(rec)
            self._journal_step(rec)
            return []
        completed = self._method_completed()
        declared: str | None = self.sc.end_state.serving if completed else None
        intended = declared or self._before.serving
        started = self.clock()
        try:
            after = self._read_estate(intended, "after")
        except KeyboardInterrupt:
            self.journal.event("invariants_interrupted", why="Ctrl-C during the post-drill invariant check")
            return []
        if after is None:
            return []
        judged = invariants.judge(after.invariants, self._before.invariants, method_completed=completed)
        broken = []
        for inv in judged:
            rec = StepRecord(inv.name, invariants.PHASE, "probe", "invariant", started_at=started)
            rec.ended_at = self.clock()
            rec.status = "ok" if inv.ok else "failed"
            rec.value = inv.value if inv.value is not None else inv.detail
            rec.error = "" if inv.ok else inv.detail
            self.steps.append(rec)
            self._journal_step(rec)
            if not inv.ok:
                broken.append(rec)
        return broken

    def _finish(
        self,
        started: float,
        status: str,
        reason: str,
        present: set[int] | None,
        rollback_at: float | None,
        broken: list[StepRecord] | None = None,
    ) -> DrillResult:
        fault_at = self.ctx.fault_at
        m = self.sc.measure
        if self.prober is not None:
            rto = compute_rto(self.prober.snapshot(), fault_at, m.sustained, until=rollback_at)
        else:
            rto = RtoResult(False, sustained=m.sustained, note="endpoint prober not running")
        if self.heartbeat is not None:
            until = self.ctx.corrupted_at if m.rpo_until == "corruption" else None
            rpo = self.heartbeat.result(fault_at, present, until)
            if present is None and not rpo.note:
                rpo.note = "heartbeats were not read back from the promoted database"
            if m.rpo_until == "corruption" and until is None and not rpo.note:
                rpo.note = "no corruption happened: the RPO counts every write up to the loss"
        else:
            rpo = RpoResult(False, note="heartbeat writer not running")
        objectives = [
            _objective("rto", self.objectives["rto_seconds"], rto.rto_seconds, m.prober, fault_at, rto.note),
            _objective(
                "rpo", self.objectives["rpo_seconds"], rpo.rpo_seconds, m.heartbeat, fault_at, rpo.note
            ),
        ]
        unmet = [o for o in objectives if o.met is False]
        if status == "running":
            if unmet:
                status = "failed"
                reason = "objective not met: " + "; ".join(f"{o.name.upper()} {o.note}" for o in unmet)
            else:
                status, reason = "succeeded", "every check passed and every objective was met"
        if broken:
            why = "post-drill invariant broken: " + "; ".join(f"{r.name} ({r.error})" for r in broken)
            reason = why if status == "succeeded" else f"{reason}; {why}"
            if status == "succeeded":
                status = "failed"
        exit_code = {"succeeded": EXIT_OK, "interrupted": EXIT_INTERRUPTED}.get(status, EXIT_FAILED)
        ended = self.clock()
        result = DrillResult(
            run_id=self.ctx.run_id,
            scenario=self.loaded.name,
            title=self.sc.title,
            target=self.ctx.target,
            status=status,
            exit_code=exit_code,
            reason=reason,
            started_at=started,
            ended_at=ended,
            steps=self.steps,
            objectives=objectives,
            rto=rto,
            rpo=rpo,
            fault_at=fault_at,
            recovery_done_at=self.recovery_done_at,
            out_dir=self.out_dir,
        )
        doc = self.journal.doc
        doc.update(
            scrub(
                {
                    "status": status,
                    "exit_code": exit_code,
                    "reason": reason,
                    "started_at": iso(started),
                    "ended_at": iso(ended),
                    "started_t": started,
                    "ended_t": ended,
                    "fault_at": fault_at,
                    "recovery_done_at": self.recovery_done_at,
                    "rollbacks_started_at": rollback_at,
                    "steps": [s.to_dict() for s in self.steps],
                    "objectives_result": [o.to_dict() for o in objectives],
                    "measurements": {"rto": rto.to_dict(), "rpo": rpo.to_dict()},
                    "heartbeat": self.heartbeat.log() if self.heartbeat else None,
                    "probes": self.prober.log() if self.prober else None,
                    "outputs": _jsonable(self.ctx.outputs),
                }
            )
        )
        self.journal.event("drill_finished", status=status, exit_code=exit_code, reason=reason)
        return result


def _objective(
    name: str,
    objective: float | None,
    measured: float | None,
    enabled: bool,
    fault_at: float | None,
    note: str,
) -> ObjectiveResult:
    if not enabled:
        return ObjectiveResult(name, objective, None, None, "not measured in this scenario")
    if fault_at is None:
        return ObjectiveResult(name, objective, None, None, "no fault was injected")
    if measured is None:
        return ObjectiveResult(name, objective, None, False, f"not measured: {note or 'no data'}")
    if objective is None:
        return ObjectiveResult(name, None, measured, None, "no objective set (scenario or estate)")
    met = measured <= objective
    note = f"{measured:.2f}s {'<=' if met else '>'} objective {objective:g}s"
    return ObjectiveResult(name, objective, measured, met, note)


def _describe(exc: BaseException) -> str:
    from dr.runbook.journal import scrub_text

    text = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    return scrub_text(f"{type(exc).__name__}: {text}")[:500]


def _jsonable(value: Any) -> Any:
    return scrub(value)
