"""The executor: runs a :class:`~dr.runbook.plan.Plan` in parallel, event-driven, journaled.

* Independent steps run in a thread pool; a step starts the moment its last dependency finishes
  (the scheduler blocks on "first future completed", never on a timer).
* Concurrency is limited per ``Step.service`` (``limits={"rds": 2}``), per service and region
  (``{"rds:us-east-1": 1}``) and per region (``{"*:us-east-1": 4}``), on top of ``max_workers``.
  Among ready steps, the one with the longest estimated remaining chain starts first.
* Each step: ``check()`` (true → ``skipped``), else ``action()``, then ``wait()`` polled with
  :class:`PollPolicy` until ``Step.timeout`` (→ :class:`dr.errors.TimeoutExpired`).
* A failed step stops new steps from starting; running ones finish; the result says exactly
  which steps are done, failed and not started.
* Ctrl-C: polls stop at once, running steps end as ``interrupted``, the journal records it, and
  ``KeyboardInterrupt`` is re-raised.
* With a :class:`CallRecorder` (the one hooked into the run's ClientProvider), the mutating API
  calls made by each step's thread are attributed to that step and journaled with it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from dr.errors import BadInput, DrError
from dr.runbook.journal import Journal, scrub
from dr.runbook.plan import Plan, Step, StepContext
from dr.runbook.poll import Interrupted, PollPolicy, wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator

    from dr.aws.session import ApiCall, CallRecorder
    from dr.runbook.ratelimit import RateLimiter

__all__ = [
    "Executor",
    "PollPolicy",
    "ProgressSink",
    "RunResult",
    "StepResult",
    "current_step",
]

STATUSES = ("done", "skipped", "failed", "not_started", "interrupted")


class ProgressSink(Protocol):
    """Receives step state changes (for a live view). Must be cheap and thread-safe."""

    def step_changed(self, step_id: str, status: str) -> None: ...


@dataclass
class StepResult:
    id: str
    # "done" | "skipped" (check said already done) | "failed" | "not_started" | "interrupted"
    status: str
    started: float | None = None
    ended: float | None = None
    duration: float | None = None
    error: str | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)  # mutating ApiCall dicts
    # True when an earlier run of the same run id completed this step (``--resume``).
    resumed: bool = False
    # Wall-clock (epoch) start/end, to line up with external observations (benchmarks, probes).
    started_at: float | None = None
    ended_at: float | None = None
    # How many times wait() was called (API budget / polling-slack analysis).
    polls: int = 0
    # A failed step: the error's code (AWS error code, or botocore's exception name) and, when the
    # error is the operator's setup or IAM refusing a call, the exit code the command ends with
    # (2 credentials/region, 3 AccessDenied) — fix it, then ``--resume`` the run.
    error_code: str | None = None
    exit_code: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "started": self.started,
            "ended": self.ended,
            "duration": self.duration,
            "error": self.error,
            "calls": self.calls,
            "resumed": self.resumed,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "polls": self.polls,
            "error_code": self.error_code,
            "exit_code": self.exit_code,
        }


def _stop_exit(err: DrError) -> int | None:
    """The exit code of an error that stops a run for the operator to fix (None: a run failure)."""
    from dr.errors import AccessDenied, CredentialsError, RegionNotEnabled

    if isinstance(err, (AccessDenied, CredentialsError, RegionNotEnabled)):
        return err.exit_code
    return None


def _stop_record(step: StepResult | None) -> dict[str, Any] | None:
    """Where and why a run stopped for the operator to fix (the journal's ``run_finished``)."""
    if step is None:
        return None
    return {"step": step.id, "error_code": step.error_code, "exit_code": step.exit_code, "error": step.error}


def _as_dr_error(exc: Exception, ctx: StepContext) -> DrError | None:
    """botocore's exceptions as the CLI reports them (see dr.aws.session.aws_setup_error)."""
    if not type(exc).__module__.startswith(("botocore", "boto3")):
        return None
    from dr.aws.session import aws_setup_error

    return aws_setup_error(exc, profile=getattr(ctx.services.clients, "profile", None))


@dataclass
class RunResult:
    run_id: str
    plan: str
    status: str  # "succeeded" | "failed" | "dry-run"
    steps: list[StepResult]
    wall_seconds: float
    critical_path: list[str]
    critical_path_seconds: float
    ratio: float | None
    journal_path: str | None
    # Dry runs: the plan as data (steps, operations, params) — what would be done.
    planned: dict[str, Any] | None = None
    # The Plan object itself (not serialised), for rendering a dry run.
    plan_obj: Plan | None = field(default=None, repr=False, compare=False)

    def by_status(self, status: str) -> list[str]:
        return [s.id for s in self.steps if s.status == status]

    def step(self, step_id: str) -> StepResult:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    @property
    def ok(self) -> bool:
        return self.status in ("succeeded", "dry-run")

    def summary(self) -> dict[str, list[str]]:
        return {status: self.by_status(status) for status in STATUSES}

    def stopped_by(self) -> StepResult | None:
        """The failed step whose error the operator must fix before ``--resume`` (credentials,
        region, AccessDenied), if the run stopped on one."""
        return next((s for s in self.steps if s.status == "failed" and s.exit_code is not None), None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "plan": self.plan,
            "status": self.status,
            "wall_seconds": round(self.wall_seconds, 3),
            "critical_path": self.critical_path,
            "critical_path_seconds": round(self.critical_path_seconds, 3),
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "journal_path": self.journal_path,
            "summary": self.summary(),
            "steps": [s.to_dict() for s in self.steps],
        }
        if self.planned is not None:
            out["planned"] = self.planned
        return out


# -- attribution of API calls to steps ----------------------------------------------------------
_local = threading.local()


def current_step() -> str | None:
    """The id of the step the calling thread is executing, if any."""
    return getattr(_local, "step", None)


class _Attribution:
    """Files the calls one executor's recorder sees under the step whose thread made them."""

    def __init__(self, recorder: CallRecorder | None) -> None:
        self.recorder = recorder
        self._lock = threading.Lock()
        self.by_step: dict[str, list[ApiCall]] = {}

    def file(self, step_id: str, call: ApiCall) -> None:
        with self._lock:
            self.by_step.setdefault(step_id, []).append(call)

    def take(self, step_id: str) -> list[ApiCall]:
        with self._lock:
            return self.by_step.pop(step_id, [])

    @contextmanager
    def hooked(self) -> Iterator[None]:
        if self.recorder is None:
            yield
            return
        _install(self.recorder)
        try:
            yield
        finally:
            _uninstall(self.recorder)


# One wrapper per recorder, shared by every executor using it (e.g. a fleet running many plans at
# once): it files each call with the attribution of the executor whose step thread made it.
_hooks_lock = threading.Lock()
_hooks: dict[int, tuple[Callable[[ApiCall], None], int]] = {}


def _install(recorder: CallRecorder) -> None:
    with _hooks_lock:
        key = id(recorder)
        if key in _hooks:
            original, count = _hooks[key]
            _hooks[key] = (original, count + 1)
            return
        original = recorder.record

        def record(call: ApiCall) -> None:
            original(call)
            attr: _Attribution | None = getattr(_local, "attr", None)
            sid = current_step()
            if attr is not None and sid is not None and attr.recorder is recorder:
                attr.file(sid, call)

        recorder.record = record  # type: ignore[method-assign]
        _hooks[key] = (original, 1)


def _uninstall(recorder: CallRecorder) -> None:
    with _hooks_lock:
        key = id(recorder)
        original, count = _hooks[key]
        if count > 1:
            _hooks[key] = (original, count - 1)
            return
        recorder.record = original  # type: ignore[method-assign,assignment]
        del _hooks[key]


class _Stop(Exception):
    pass


class Executor:
    """Runs a plan; see the module docstring."""

    def __init__(
        self,
        plan: Plan,
        ctx: StepContext,
        *,
        journal: Journal | None = None,
        max_workers: int = 8,
        limits: Mapping[str, int] | None = None,
        poll: PollPolicy | None = None,
        recorder: CallRecorder | None = None,
        progress: ProgressSink | None = None,
        completed: set[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        abort: threading.Event | None = None,
        action_done: set[str] | None = None,
        rate_limiter: RateLimiter | None = None,
        step_polls: Mapping[str, PollPolicy] | None = None,
    ) -> None:
        self.plan = plan
        # API rate limits per service/region (dr.runbook.ratelimit): hooked into the run's clients.
        if rate_limiter is not None and ctx.services.clients is not None:
            rate_limiter.attach(ctx.services.clients)
        self.ctx = ctx
        self.journal = journal
        self.max_workers = max(1, int(max_workers))
        self.limits = dict(limits or {})
        for key, value in self.limits.items():
            if int(value) < 1:
                raise BadInput(f"concurrency limit {key}={value} must be at least 1")
        self.poll = poll or PollPolicy()
        # Per-step polling policies (step id -> policy) instead of ``poll`` for those steps' waits.
        self.step_polls = dict(step_polls or {})
        unknown_polls = sorted(set(self.step_polls) - set(plan.ids))
        if unknown_polls:
            raise BadInput(
                f"polling policy for unknown step(s) {', '.join(unknown_polls)} of plan {plan.name!r}"
            )
        self.recorder = recorder
        self.progress = progress
        unknown = sorted(set(completed or ()) - set(plan.ids))
        if unknown:
            raise BadInput(
                f"resume: the journal lists step(s) {', '.join(unknown)} that plan {plan.name!r} does not have",
                hint="the plan changed since that run; start a new run instead of --resume",
            )
        self.completed = set(completed or ())
        # Steps whose action returned in an earlier run but whose wait did not finish.
        self.action_done = set(action_done or ())
        self.clock = clock
        # Set by a lost lock (or a caller) to stop starting steps and interrupt polls.
        self.abort = abort or threading.Event()
        self._stop = threading.Event()
        self._attr = _Attribution(recorder)
        self._in_use: dict[str, int] = {}
        self._priority = self._remaining_chain()
        if journal is not None:
            ctx.add_set_listener(journal.output)

    # -- scheduling helpers -----------------------------------------------------------------------
    def _remaining_chain(self) -> dict[str, float]:
        dependants: dict[str, list[str]] = {s.id: [] for s in self.plan.steps}
        for s in self.plan.steps:
            for d in s.depends_on:
                dependants[d].append(s.id)
        out: dict[str, float] = {}
        for sid in reversed(self.plan.order()):
            out[sid] = self.plan.step(sid).estimate + max((out[d] for d in dependants[sid]), default=0.0)
        return out

    def _keys(self, step: Step) -> list[str]:
        keys = [step.service, f"{step.service}:{step.region}", f"*:{step.region}"]
        return [k for k in keys if k in self.limits]

    def _fits(self, step: Step) -> bool:
        return all(self._in_use.get(k, 0) < self.limits[k] for k in self._keys(step))

    def _take(self, step: Step, delta: int) -> None:
        for k in self._keys(step):
            self._in_use[k] = self._in_use.get(k, 0) + delta

    def _notify(self, step_id: str, status: str) -> None:
        if self.progress is not None:
            try:
                self.progress.step_changed(step_id, status)
            except Exception:  # a broken live view must not break a failover
                self.progress = None

    def _event(self, kind: str, **fields: Any) -> None:
        if self.journal is not None:
            self.journal.event(kind, **fields)

    # -- one step -------------------------------------------------------------------------------
    def _run_step(self, step: Step) -> StepResult:
        _local.step, _local.attr = step.id, self._attr
        started, started_at = self.clock(), time.time()
        status, error = "done", None
        error_code: str | None = None
        exit_code: int | None = None
        polls = 0
        self._event("step_started", step=step.id, title=step.title, region=step.region, service=step.service)
        self._notify(step.id, "running")
        try:
            if self._stop.is_set() or self.abort.is_set():
                raise _Stop
            resumed_action = step.id in self.action_done
            if step.check is not None and step.check(self.ctx):
                status = "skipped"
                if resumed_action and step.wait is not None:
                    # The earlier run issued the action; make sure it has completed.
                    polls = self._wait(step)
            else:
                if step.action is not None:
                    step.action(self.ctx)
                    self._event("step_action_done", step=step.id)
                if step.wait is not None:
                    polls = self._wait(step)
        except (_Stop, Interrupted):
            status = "interrupted"
        except KeyboardInterrupt:
            status, error = "interrupted", "KeyboardInterrupt"
            self._stop.set()
        except DrError as exc:
            status, error = "failed", exc.format_message()
            error_code, exit_code = exc.code, _stop_exit(exc)
        except Exception as exc:
            mapped = _as_dr_error(exc, self.ctx)
            if mapped is not None:
                status, error = "failed", mapped.format_message()
                error_code, exit_code = mapped.code, _stop_exit(mapped)
            else:
                status, error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            _local.step, _local.attr = None, None
        ended, ended_at = self.clock(), time.time()
        calls = [c.to_dict() for c in self._attr.take(step.id) if c.mutating]
        result = StepResult(
            id=step.id,
            status=status,
            started=started,
            ended=ended,
            duration=ended - started,
            error=None if error is None else str(scrub(error)),
            calls=calls,
            started_at=started_at,
            ended_at=ended_at,
            polls=polls,
            error_code=error_code,
            exit_code=exit_code,
        )
        kind = {
            "done": "step_done",
            "skipped": "step_skipped",
            "failed": "step_failed",
            "interrupted": "step_interrupted",
        }[status]
        extra = {"error_code": error_code} if error_code else {}
        self._event(
            kind,
            step=step.id,
            duration=round(result.duration or 0.0, 6),
            error=result.error,
            calls=calls,
            **extra,
        )
        self._notify(step.id, status)
        return result

    def _wait(self, step: Step) -> int:
        assert step.wait is not None
        stop = _AnyEvent(self._stop, self.abort)
        check = step.wait
        return wait_until(
            lambda: bool(check(self.ctx)),
            step.timeout,
            self.step_polls.get(step.id, self.poll),
            what=f"step {step.id} ({step.title})",
            stop=stop,
            clock=self.clock,
            region=step.region,
            resource=step.id,
        )

    # -- the run --------------------------------------------------------------------------------
    def run(self) -> RunResult:
        plan = self.plan
        wall_start = self.clock()
        results: dict[str, StepResult] = {
            sid: StepResult(sid, "done", resumed=True)
            if sid in self.completed
            else StepResult(sid, "not_started")
            for sid in plan.ids
        }
        waiting: dict[str, set[str]] = {
            s.id: {d for d in s.depends_on if d not in self.completed}
            for s in plan.steps
            if s.id not in self.completed
        }
        dependants: dict[str, list[str]] = {s.id: [] for s in plan.steps}
        for s in plan.steps:
            for d in s.depends_on:
                dependants[d].append(s.id)
        ready = [sid for sid, deps in waiting.items() if not deps]
        for sid in waiting:
            self._notify(sid, "waiting")
        for sid in self.completed:
            self._notify(sid, "done")
        running: dict[Future[StepResult], str] = {}
        failed = False
        interrupted = False

        def start_ready(pool: ThreadPoolExecutor) -> None:
            ready.sort(key=lambda x: (-self._priority[x], plan.ids.index(x)))
            for sid in list(ready):
                if len(running) >= self.max_workers:
                    break
                step = plan.step(sid)
                if not self._fits(step):
                    continue
                ready.remove(sid)
                self._take(step, +1)
                running[pool.submit(self._run_step, step)] = sid

        def collect(done: set[Future[StepResult]]) -> None:
            nonlocal failed, interrupted
            for fut in done:
                sid = running.pop(fut)
                self._take(plan.step(sid), -1)
                res = fut.result()
                results[sid] = res
                if res.status in ("done", "skipped"):
                    for dep in dependants[sid]:
                        waiting[dep].discard(sid)
                        if not waiting[dep] and results[dep].status == "not_started" and dep not in ready:
                            ready.append(dep)
                elif res.status == "failed":
                    failed = True
                elif res.status == "interrupted":
                    interrupted = True

        with self._attr.hooked():
            pool = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix=f"step-{plan.name}")
            try:
                while True:
                    if not (failed or interrupted or self._stop.is_set() or self.abort.is_set()):
                        start_ready(pool)
                    if not running:
                        break
                    done, _ = wait(set(running), return_when=FIRST_COMPLETED)
                    collect(done)
                if interrupted and self._stop.is_set():
                    raise KeyboardInterrupt
            except KeyboardInterrupt:
                self._stop.set()
                # Let running steps notice the stop (polls end at once), then record and re-raise.
                try:
                    if running:
                        done, _ = wait(set(running))
                        collect(done)
                finally:
                    pool.shutdown(wait=False, cancel_futures=True)
                    wall = self.clock() - wall_start
                    self._event(
                        "run_interrupted",
                        plan=plan.name,
                        wall_seconds=round(wall, 6),
                        summary=self._summary(results),
                        resume_hint=self._resume_hint(),
                    )
                raise
            except BaseException:
                # Not ours to handle (SystemExit, a simulated crash): stop polls, do not wait.
                self._stop.set()
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown(wait=True)

        wall = self.clock() - wall_start
        status = "succeeded"
        if (
            failed
            or interrupted
            or any(r.status != "done" and r.status != "skipped" for r in results.values())
        ):
            status = "failed"
        if self.abort.is_set() and status == "failed":
            for r in results.values():
                if r.status == "not_started" and r.error is None:
                    r.error = "run aborted (lock lost)"
        durations = {
            sid: (r.duration or 0.0) for sid, r in results.items() if r.duration is not None and not r.resumed
        }
        durations.update({sid: 0.0 for sid, r in results.items() if r.duration is None})
        path, cp = plan.critical_path(durations)
        result = RunResult(
            run_id=self.ctx.run_id,
            plan=plan.name,
            status=status,
            steps=[results[sid] for sid in plan.ids],
            wall_seconds=wall,
            critical_path=path,
            critical_path_seconds=cp,
            ratio=(wall / cp) if cp > 0 else None,
            journal_path=str(self.journal.path) if self.journal is not None else None,
        )
        self._event(
            "run_finished",
            plan=plan.name,
            status=status,
            wall_seconds=round(wall, 6),
            critical_path=path,
            critical_path_seconds=round(cp, 6),
            ratio=None if result.ratio is None else round(result.ratio, 4),
            summary=self._summary(results),
            stopped_by=_stop_record(result.stopped_by()),
        )
        return result

    def _summary(self, results: Mapping[str, StepResult]) -> dict[str, list[str]]:
        return {st: [sid for sid, r in results.items() if r.status == st] for st in STATUSES}

    def _resume_hint(self) -> str:
        return f"dr … --resume {self.ctx.run_id}"


class _AnyEvent(threading.Event):
    """An Event view that is set when either of two events is set (for interruptible polls)."""

    def __init__(self, a: threading.Event, b: threading.Event) -> None:
        super().__init__()
        self._a, self._b = a, b

    def is_set(self) -> bool:
        return self._a.is_set() or self._b.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        # Wake on the stop event promptly; the abort event is checked at the end of the pause.
        if self._b.is_set():
            return True
        return self._a.wait(timeout) or self._b.is_set()
