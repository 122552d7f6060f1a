"""``run_plan``: what every mutating CLI command calls to execute a plan.

Order of business: load the journal when resuming → dry run (render, return, touch nothing) →
show the plan and ask (unless ``--yes``) → take the lock (``--break-lock`` only for an expired
lease, after its own confirmation) → journal + executor with a live view → release the lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dr.errors import BadInput, LockHeld
from dr.runbook.executor import Executor, ProgressSink, RunResult, StepResult
from dr.runbook.journal import Journal, JournalState, S3Mirror, new_run_id, scrub
from dr.runbook.plan import Plan, StepContext, StepServices
from dr.runbook.poll import PollPolicy

if TYPE_CHECKING:
    from dr.aws.session import CallRecorder
    from dr.runbook.lock import DynamoLock


def _ask(message: str) -> bool:
    import click

    return bool(click.confirm(message, default=False, err=True))


def dry_run_result(
    plan: Plan, run_id: str | None = None, services: StepServices | Mapping[str, Any] | None = None
) -> RunResult:
    """The result of a dry run: no action executed, the plan attached as data.

    With ``services``, each step's ``check()`` (read-only by contract; the dry-run
    ClientProvider refuses mutating calls anyway) tells which steps would be skipped as already
    done: those are reported ``skipped``, the others ``not_started``.
    """
    path, est = plan.critical_path()
    steps = [StepResult(sid, "not_started") for sid in plan.ids]
    clients: Any = StepServices.coerce(services).clients
    was_read_only = getattr(clients, "read_only", None)
    if was_read_only is False:
        clients.read_only = True  # belt and braces: checks only read
    try:
        if services is not None:
            _dry_checks(plan, steps, StepServices.coerce(services), run_id)
    finally:
        if was_read_only is False:
            clients.read_only = False
    return RunResult(
        run_id=run_id or new_run_id(),
        plan=plan.name,
        status="dry-run",
        steps=steps,
        wall_seconds=0.0,
        critical_path=path,
        critical_path_seconds=est,
        ratio=None,
        journal_path=None,
        planned=plan.to_dict(),
        plan_obj=plan,
    )


def _dry_checks(plan: Plan, steps: list[StepResult], services: StepServices, run_id: str | None) -> None:
    ctx = StepContext(run_id=run_id or "dry-run", services=services, dry_run=True)
    for res in steps:
        step = plan.step(res.id)
        if step.check is None:
            continue
        try:
            if step.check(ctx):
                res.status = "skipped"
        except Exception as exc:
            res.error = str(scrub(f"dry run: check could not tell ({type(exc).__name__}: {exc})"))


def load_resume(plan: Plan, runs_dir: Path, run_id: str) -> JournalState:
    state = Journal.load(runs_dir, run_id)
    if state.plan and state.plan != plan.name:
        raise BadInput(
            f"run {run_id} was plan {state.plan!r}, not {plan.name!r}",
            resource=run_id,
            hint=f"resume it with the command that started {state.plan!r}",
        )
    unknown = sorted((state.completed | set(state.interrupted)) - set(plan.ids))
    if unknown:
        raise BadInput(
            f"run {run_id} has step(s) {', '.join(unknown)} that plan {plan.name!r} no longer has",
            resource=run_id,
            hint="the plan changed since that run (different options or topology); start a new run",
        )
    return state


def _take_lock(
    lock: DynamoLock, run_id: str, *, break_lock: bool, assume_yes: bool, confirm: Callable[[str], bool]
) -> None:
    try:
        lock.acquire(run_id=run_id)
        return
    except LockHeld:
        if not break_lock:
            raise
    item = lock.peek()
    if item is not None and float(item.get("expires_at", 0)) >= lock.clock():
        lock.acquire(run_id=run_id)  # still live: raises LockHeld naming the holder
        return
    if item is not None and not assume_yes:
        who = f"{item.get('holder')} (run {item.get('run_id')})"
        if not confirm(f"Break the expired lock {lock.name} held by {who}?"):
            raise BadInput(f"lock {lock.name} not broken: aborted by the operator; nothing was changed")
    lock.acquire(run_id=run_id, break_lock=True)


def run_plan(
    plan: Plan,
    services: StepServices | Mapping[str, Any],
    *,
    dry_run: bool,
    assume_yes: bool,
    resume: str | None,
    runs_dir: Path,
    lock: DynamoLock | None,
    break_lock: bool,
    output: str,
    confirm: Callable[[str], bool] | None = None,
    recorder: CallRecorder | None = None,
    mirror: S3Mirror | None = None,
    limits: Mapping[str, int] | None = None,
    max_workers: int = 8,
    poll: PollPolicy | None = None,
    progress: ProgressSink | None = None,
    mirror_auto: bool = True,
    step_polls: Mapping[str, PollPolicy] | None = None,
) -> RunResult:
    """Execute ``plan`` (or describe it, for a dry run) and return the :class:`RunResult`.

    ``services`` becomes ``StepContext.services``; when it holds a ClientProvider
    (``clients``) and no ``recorder`` is given, one is attached for the run so the journal lists
    every mutating call per step. Give ``lock`` and ``mirror`` ClientProviders *without* that
    recorder so their own writes are not counted as the plan's calls. With a lock, an estate in
    ``services.estate`` and no ``mirror``, the journal is mirrored to the estate's journal
    bucket in the lock's (surviving) region through the lock's ClientProvider
    (``mirror_auto=False`` turns that off); a missing bucket only adds a ``mirror_failed`` event.
    Raises BadInput (exit 2) when the operator declines, LockHeld (exit 3) when another run holds
    the lock; a failed step does not raise — check ``result.status``.
    """
    from rich.console import Console

    from dr.runbook.plan_view import LiveProgress, print_plan

    services = StepServices.coerce(services)
    runs_dir = Path(runs_dir)
    confirm = confirm or _ask
    state = load_resume(plan, runs_dir, resume) if resume else None
    run_id = resume or new_run_id()
    if dry_run:
        return dry_run_result(plan, run_id, services)

    err = Console(stderr=True, highlight=False)
    if not assume_yes:
        print_plan(plan, err)
        if state is not None:
            err.print(
                f"resuming run {run_id}: done {', '.join(sorted(state.completed)) or '-'}; "
                f"re-checking {', '.join(state.interrupted) or '-'} before acting"
            )
        if not confirm(f"Run plan {plan.name} ({len(plan.steps)} steps)?"):
            raise BadInput(f"plan {plan.name} not run: aborted by the operator; nothing was changed")

    if lock is not None:
        _take_lock(lock, run_id, break_lock=break_lock, assume_yes=assume_yes, confirm=confirm)

    own_recorder = None
    clients = services.clients
    if recorder is None and clients is not None and hasattr(clients, "add_recorder"):
        from dr.aws.session import CallRecorder

        own_recorder = recorder = clients.add_recorder(CallRecorder())

    if mirror is None and mirror_auto and lock is not None and services.estate is not None:
        mirror = S3Mirror.for_estate(lock.clients, services.estate, lock.region)

    journal: Journal | None = None
    try:
        journal = Journal.create(runs_dir, plan.name, run_id, mirror=mirror)
        ctx = StepContext(run_id=run_id, services=services, outputs=dict(state.outputs) if state else {})
        if state is None:
            journal.event(
                "run_started",
                plan=plan.name,
                steps=[s.to_dict() for s in plan.steps],
                order=plan.order(),
                lock=None
                if lock is None
                else {"table": lock.table, "region": lock.region, "name": lock.name},
                started_epoch=time.time(),
            )
        else:
            journal.event(
                "run_resumed",
                plan=plan.name,
                completed=sorted(state.completed),
                interrupted=state.interrupted,
                failed=sorted(state.failed),
                restored_outputs=sorted(state.outputs),
            )
        live = LiveProgress(plan, err) if output != "json" and progress is None else None
        executor = Executor(
            plan,
            ctx,
            journal=journal,
            max_workers=max_workers,
            limits=limits,
            poll=poll or PollPolicy(),
            step_polls=step_polls,
            recorder=recorder,
            progress=progress or live,
            completed=set(state.completed) if state else None,
            action_done=(state.action_done & set(state.interrupted)) if state else None,
            abort=lock.lost if lock is not None else None,
        )
        if live is not None:
            with live:
                result = executor.run()
        else:
            result = executor.run()
        if lock is not None and lock.lost.is_set():
            journal.event("lock_lost", table=lock.table, region=lock.region, name=lock.name)
        return result
    finally:
        if journal is not None:
            journal.close()
        if lock is not None:
            lock.release()
        if own_recorder is not None and clients is not None:
            clients.recorders.remove(own_recorder)
