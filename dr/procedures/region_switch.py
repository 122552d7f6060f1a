"""The whole-region switches as use cases: ``dr failover``, ``dr failback`` and ``dr reprotect``,
each in one place.

A use case is the flow from a request to a finished run: the target gate and the lag budget →
the pre-flight gates (read-only, exit 3 when refused) → the plan → the estate lock → the runbook
run (:func:`dr.runbook.runner.run_plan`: dry run, confirmation, journal, resume) → which region
serves the public name afterwards. The CLI commands (:mod:`dr.cli.failover_cmd`,
:mod:`dr.cli.failback_cmd`, :mod:`dr.cli.reprotect_cmd`) parse options and render the outcome; the drill actions
(:mod:`dr.drills.procedure_actions`) summarize it into the drill's journal. Both call::

    switch = FailoverRun(estate, clients, FailoverRequest(to="secondary", mode="unplanned"), settings)
    outcome = switch.run(kube)

``prepare()`` (gates and plan, nothing changed) and ``execute()`` are the two halves of ``run()``,
for a caller that shows the pre-flight before running (the drill notes its warnings) or stops
after it (``dr failover --export asl``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Generic, Literal, TypeVar

from dr.errors import BadInput, GateRefused
from dr.procedures.support import lag_budget

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.kube import KubeFactory
    from dr.procedures.failback import FailbackPreflight
    from dr.procedures.failover_gates import FailoverPreflight
    from dr.procedures.reprotect import ReprotectPreflight
    from dr.runbook.executor import RunResult
    from dr.runbook.lock import DynamoLock
    from dr.runbook.plan import Plan
    from dr.topology import Estate, SiteView

P = TypeVar("P")
# Reads which region Route53 serves the public name from now (None: unknown).
ServingReader = Callable[[], "str | None"]


@dataclass(frozen=True)
class RunSettings:
    """How the plan runs: what ``--dry-run``, ``--yes``, ``--resume``, ``--runs-dir``,
    ``--break-lock`` and ``--output`` set (a drill: ``--yes``, no resume, no live progress)."""

    dry_run: bool = False
    assume_yes: bool = False
    resume: str | None = None
    runs_dir: Path = Path(".dr-runs")
    break_lock: bool = False
    output: str = "json"


@dataclass(frozen=True)
class FailoverRequest:
    to: str = "secondary"
    mode: Literal["planned", "unplanned"] = "planned"
    # None: the estate's RPO objective (dr.procedures.support.lag_budget).
    max_lag: dt.timedelta | None = None
    # None: the procedures' default (DEFAULT_MAX_SNAPSHOT_AGE, 24 hours).
    max_snapshot_age: dt.timedelta | None = None
    timeout: float = 1800.0
    # The DR database to fail over to instead of the stack files' replica (--db).
    db: str | None = None


@dataclass(frozen=True)
class FailbackRequest:
    # None: the stack files' primary site.
    to: str | None = None
    max_lag: dt.timedelta | None = None
    max_snapshot_age: dt.timedelta | None = None
    timeout: float = 3600.0


@dataclass(frozen=True)
class ReprotectRequest:
    # The standby region to re-protect (None: the one Route53 does not serve now).
    region: str | None = None
    # The serving region's database to replicate from when it is not the stack files' one (--db).
    db: str | None = None
    max_lag: dt.timedelta | None = None
    max_snapshot_age: dt.timedelta | None = None
    timeout: float = 3600.0


@dataclass(frozen=True)
class Outcome(Generic[P]):
    """What a switch did: its pre-flight, its run and, when ``serving_read``, which region serves
    the name after it (read after a real run; after a failover only when no unresolved error
    stopped it)."""

    preflight: P
    result: RunResult
    serving_read: bool = False
    active_region: str | None = None


def failover_target(estate: Estate, to: str) -> SiteView:
    """The surviving site of a failover; the stack files' primary is refused (exit 2)."""
    target = estate.site(to)
    if target.region == estate.primary.region:
        raise BadInput(
            f"--to {to!r} is the site the stack files declare primary ({target.region}): nothing to fail over to",
            resource=to,
            region=target.region,
            hint="use --to secondary; to return after a failover use `dr failback`",
        )
    return target


class _Switch:
    def __init__(self, estate: Estate, clients: ClientProvider, settings: RunSettings) -> None:
        self.estate = estate
        self.clients = clients
        self.settings = settings

    def _budget(self, max_lag: dt.timedelta | None) -> dt.timedelta:
        return max_lag if max_lag is not None else lag_budget(self.estate, None)

    def _lock(self, region: str | None, *, unplanned: bool) -> DynamoLock | None:
        if self.settings.dry_run:
            return None
        from dr.runbook.lock import estate_lock

        return estate_lock(self.clients, self.estate, target_region=region, unplanned=unplanned)

    def _run_plan(self, plan: Plan, kube: KubeFactory, lock: DynamoLock | None) -> RunResult:
        from dr.procedures.support import services
        from dr.runbook.runner import run_plan

        s = self.settings
        return run_plan(
            plan,
            services(self.clients, self.estate, kube=kube),
            dry_run=s.dry_run,
            assume_yes=s.assume_yes,
            resume=s.resume,
            runs_dir=s.runs_dir,
            break_lock=s.break_lock,
            lock=lock,
            output=s.output,
        )

    def _serving(self, serving: ServingReader | None) -> str | None:
        if serving is not None:
            return serving()
        from dr.steps.dns_records import read_state

        return read_state(self.clients, self.estate, use_test_dns=False).active_region


class FailoverRun(_Switch):
    """``dr failover``: the surviving site serves the estate (DNS moves only once its database is
    writable, its pods are Ready and its health check is healthy)."""

    def __init__(
        self, estate: Estate, clients: ClientProvider, request: FailoverRequest, settings: RunSettings
    ) -> None:
        super().__init__(estate, clients, settings)
        self.request = request

    def prepare(self) -> tuple[FailoverPreflight, Plan]:
        """The gates (exit 2 / 3, nothing changed) and the plan."""
        from dr.procedures.failover import failover_plan
        from dr.procedures.failover_gates import DEFAULT_MAX_SNAPSHOT_AGE, preflight

        req = self.request
        target = failover_target(self.estate, req.to)
        pre = preflight(
            self.clients,
            self.estate,
            target=target,
            mode="unplanned" if req.mode == "unplanned" else "planned",
            max_lag=self._budget(req.max_lag),
            db=req.db,
            resuming=self.settings.resume is not None,
            max_snapshot_age=DEFAULT_MAX_SNAPSHOT_AGE
            if req.max_snapshot_age is None
            else req.max_snapshot_age,
        )
        return pre, failover_plan(self.estate, pre, timeout=req.timeout)

    def execute(
        self, pre: FailoverPreflight, plan: Plan, kube: KubeFactory, *, serving: ServingReader | None = None
    ) -> Outcome[FailoverPreflight]:
        """Run the plan under the estate lock (in the target region's copy of the lock table)."""
        lock = self._lock(pre.target.region, unplanned=pre.mode == "unplanned")
        result = self._run_plan(plan, kube, lock)
        if result.status == "dry-run" or result.stopped_by() is not None:
            return Outcome(pre, result)
        return Outcome(pre, result, True, self._serving(serving))

    def run(self, kube: KubeFactory, *, serving: ServingReader | None = None) -> Outcome[FailoverPreflight]:
        pre, plan = self.prepare()
        return self.execute(pre, plan, kube, serving=serving)


class FailbackRun(_Switch):
    """``dr failback``: re-protect the original region, wait until caught up, fail back (planned,
    RPO 0), the DR side back to warm standby."""

    def __init__(
        self, estate: Estate, clients: ClientProvider, request: FailbackRequest, settings: RunSettings
    ) -> None:
        super().__init__(estate, clients, settings)
        self.request = request

    def prepare(self) -> tuple[FailbackPreflight, Plan]:
        """The gates (exit 2 / 3, nothing changed; a dry run says the real run would be refused)
        and the plan. A resumed run takes its target, replica and moved-aside instance from its
        journal: once DNS moved back, "the serving region" is no longer the source."""
        from dr.procedures.failback import failback_plan, preflight
        from dr.procedures.failover_gates import DEFAULT_MAX_SNAPSHOT_AGE, require_wal_positions
        from dr.steps.db_replica import replica_placement

        req, s = self.request, self.settings
        to, replica, moved_aside = req.to, None, None
        if s.resume:
            from dr.runbook.journal import Journal

            outputs = Journal.load(s.runs_dir, s.resume).outputs
            to = outputs.get("failback_target") or to
            replica = outputs.get("failback_replica")
            moved_aside = outputs.get("failback_aside")
        pre = preflight(
            self.clients,
            self.estate,
            to=self.estate.site(to) if to else None,
            max_lag=self._budget(req.max_lag),
            replica_id=replica,
            max_snapshot_age=DEFAULT_MAX_SNAPSHOT_AGE
            if req.max_snapshot_age is None
            else req.max_snapshot_age,
            moved_aside=moved_aside,
        )
        if not pre.replica_exists:
            replica_placement(
                self.clients, self.estate, pre.target
            )  # refused (exit 2) before anything changes
        if not s.resume:
            # RPO 0 must be provable by WAL position: else exit 3 now, before writes stop (a dry
            # run shows the plan and says the real run would be refused)
            try:
                require_wal_positions(
                    self.clients, self.estate, pre.failover, source_only=not pre.replica_exists
                )
            except GateRefused as err:
                if not s.dry_run:
                    raise
                pre.warnings.append(f"the real run is refused: {err.message}")
        return pre, failback_plan(self.estate, pre, timeout=req.timeout)

    def execute(
        self, pre: FailbackPreflight, plan: Plan, kube: KubeFactory, *, serving: ServingReader | None = None
    ) -> Outcome[FailbackPreflight]:
        result = self._run_plan(plan, kube, self._lock(pre.target.region, unplanned=False))
        if result.status == "dry-run":
            return Outcome(pre, result)
        return Outcome(pre, result, True, self._serving(serving))

    def run(self, kube: KubeFactory, *, serving: ServingReader | None = None) -> Outcome[FailbackPreflight]:
        pre, plan = self.prepare()
        return self.execute(pre, plan, kube, serving=serving)


class ReprotectRun(_Switch):
    """``dr reprotect``: the standby region's database a read replica of the serving one again
    (after a failback, or after a failover the estate stays on)."""

    def __init__(
        self, estate: Estate, clients: ClientProvider, request: ReprotectRequest, settings: RunSettings
    ) -> None:
        super().__init__(estate, clients, settings)
        self.request = request

    def prepare(self) -> tuple[ReprotectPreflight, Plan]:
        """The gates (exit 2 / 3, nothing changed) and the plan; a resumed run takes the instance
        it moved aside from its journal."""
        from dr.procedures.failover_gates import DEFAULT_MAX_SNAPSHOT_AGE
        from dr.procedures.reprotect import preflight, reprotect_plan
        from dr.steps.db_replica import replica_placement

        req, s = self.request, self.settings
        moved_aside: str | None = None
        if s.resume:
            from dr.runbook.journal import Journal

            moved_aside = Journal.load(s.runs_dir, s.resume).outputs.get("reprotect_aside")
        pre = preflight(
            self.clients,
            self.estate,
            region=req.region,
            max_lag=self._budget(req.max_lag),
            resuming=s.resume is not None,
            moved_aside=moved_aside,
            max_snapshot_age=DEFAULT_MAX_SNAPSHOT_AGE
            if req.max_snapshot_age is None
            else req.max_snapshot_age,
            source_db=req.db,
        )
        if pre.existing is None or pre.aside_id is not None:  # a replica is to be created
            replica_placement(
                self.clients, self.estate, pre.target
            )  # refused (exit 2) before anything changes
        return pre, reprotect_plan(self.estate, pre, timeout=req.timeout)

    def execute(self, pre: ReprotectPreflight, plan: Plan, kube: KubeFactory) -> Outcome[ReprotectPreflight]:
        """Run the plan under the estate lock (the DR region's copy, as every planned run)."""
        result = self._run_plan(plan, kube, self._lock(None, unplanned=False))
        return Outcome(pre, result)

    def run(self, kube: KubeFactory) -> Outcome[ReprotectPreflight]:
        pre, plan = self.prepare()
        return self.execute(pre, plan, kube)
