"""Plans are data: a DAG of :class:`Step` s that can be printed (``--dry-run``), executed in
parallel by the executor, exported (Step Functions ASL) or turned into an IAM policy.

A step is four small functions over a :class:`StepContext`:

* ``check(ctx) -> bool`` — idempotency: reads real state; ``True`` means already done, skip.
* ``action(ctx) -> Any`` — makes the change (its API calls are recorded by the journal).
* ``wait(ctx) -> bool`` — completion condition, polled with adaptive back-off until ``timeout``.
* ``operations`` — the API calls the action will make, declared up front for dry runs and IAM.

Each step built by the step catalogue (:mod:`dr.steps`) carries its :class:`StepKind`: what
compiles it to States Language and which IAM actions it needs beyond its operations. The engine
only knows the protocol (it never imports the catalogue).
"""

from __future__ import annotations

import graphlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol

from dr.aws.iam_names import iam_action
from dr.errors import ConfigError

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.kube import Kube
    from dr.topology import Estate, SiteView


@dataclass(frozen=True)
class Operation:
    """One API call a step makes (e.g. rds:PromoteReadReplica in us-east-1)."""

    service: str
    action: str
    region: str | None
    params: Mapping[str, Any] = field(default_factory=dict)
    mutating: bool = True
    # IAM resource ARN(s) the call touches, when known from the topology.
    resources: tuple[str, ...] = ()

    @property
    def iam_action(self) -> str:
        return iam_action(self.service, self.action)

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "action": self.action,
            "region": self.region,
            "params": dict(self.params),
            "mutating": self.mutating,
        }


@dataclass(frozen=True)
class StepServices:
    """What a step's functions may use, typed (mypy sees every use): ``clients`` calls AWS,
    ``estate`` is the topology, ``kube`` connects to a site's cluster (a
    :class:`dr.kube.KubeFactory`, read-only in dry runs), ``pg_connect`` opens a PostgreSQL
    connection (tests and the sandbox inject theirs; None: psycopg). ``extra`` carries what a
    particular engine user adds by name (tests of the engine itself)."""

    clients: ClientProvider | None = None
    estate: Estate | None = None
    kube: Callable[[SiteView], Kube] | None = None
    pg_connect: Callable[..., Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def coerce(cls, services: StepServices | Mapping[str, Any] | None) -> StepServices:
        """``services`` as :class:`StepServices` (a mapping's known names become its fields)."""
        if isinstance(services, StepServices):
            return services
        given = dict(services or {})
        known = {f.name: given.pop(f.name) for f in fields(cls) if f.name != "extra" and f.name in given}
        return cls(**known, extra=given)

    @classmethod
    def of(cls, ctx: StepContext) -> StepServices:
        """The services of a step that calls AWS: ConfigError when the run carries no clients."""
        if ctx.services.clients is None:
            raise ConfigError("the run's services carry no AWS clients", resource="services")
        return ctx.services

    def aws(self) -> ClientProvider:
        """The AWS clients (ConfigError when the run carries none)."""
        if self.clients is None:
            raise ConfigError("the run's services carry no AWS clients", resource="services")
        return self.clients

    def kube_for(self, view: SiteView) -> Kube:
        if self.kube is None:
            raise ConfigError(
                f"the run's services carry no Kubernetes connection for {view.cluster.name}", resource="kube"
            )
        return self.kube(view)


class StepContext:
    """What a step's functions receive. The executor builds one per run.

    ``outputs`` holds values earlier steps recorded (``ctx.set(key, value)``) — they are journaled,
    so a resumed run sees them too (e.g. the promoted DB endpoint used by the secret patch).
    ``services`` (:class:`StepServices`) is what the steps may use: AWS clients, the estate, the
    Kubernetes factory, the PostgreSQL connector.
    """

    def __init__(
        self,
        *,
        run_id: str,
        services: StepServices | Mapping[str, Any] | None = None,
        outputs: dict[str, Any] | None = None,
        dry_run: bool = False,
        on_set: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.run_id = run_id
        self.services = StepServices.coerce(services)
        self.outputs: dict[str, Any] = outputs if outputs is not None else {}
        self.dry_run = dry_run
        self._on_set = on_set
        self._listeners: list[Callable[[str, Any], None]] = []

    def add_set_listener(self, fn: Callable[[str, Any], None]) -> None:
        """Also call ``fn(key, value)`` on every :meth:`set` (the executor journals outputs this way)."""
        self._listeners.append(fn)

    def get(self, key: str, default: Any = None) -> Any:
        return self.outputs.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.outputs[key] = value
        if self._on_set is not None:
            self._on_set(key, value)
        for fn in list(self._listeners):
            fn(key, value)


class StepKind(Protocol):
    """What the engine, the ASL compiler and ``dr iam-policy`` ask of a step's kind
    (implemented by :class:`dr.steps.base.StepKind`)."""

    @property
    def name(self) -> str:
        """The kind's catalogue name (``promote-replica``, ``move-records`` …)."""
        ...

    @property
    def outputs(self) -> tuple[str, ...]:
        """The output keys its steps record (``ctx.set``): journaled, read back on ``--resume``."""
        ...

    def iam_reads(self, step: Step) -> tuple[tuple[str, str | None], ...]:
        """(IAM action, region) its check/action/wait make beyond ``step.operations`` (region None: global)."""
        ...

    def lower(
        self, emitter: Any, states: dict[str, Any], step: Step, next_name: str | None, fail: str
    ) -> str:
        """Emit ``step``'s Step Functions states into ``states``; returns the first state's name."""
        ...


StepFn = Callable[[StepContext], Any]
CheckFn = Callable[[StepContext], bool]


@dataclass
class Step:
    id: str
    title: str
    # The region whose API the step calls; None for global services (Route53) or local work.
    region: str | None
    # Concurrency class for per-service/per-region limits: rds, eks, route53, k8s, elasticache, local…
    service: str
    # Human description of what it changes (shown in plans and journals).
    changes: str = ""
    depends_on: tuple[str, ...] = ()
    operations: tuple[Operation, ...] = ()
    check: CheckFn | None = None
    action: StepFn | None = None
    wait: CheckFn | None = None
    timeout: float = 900.0
    # Expected duration (seconds) for plan rendering / critical-path estimates before a run.
    estimate: float = 1.0
    # Free-form tags, e.g. {"phase": "dns"} for ordering assertions and reports.
    tags: Mapping[str, str] = field(default_factory=dict)
    # The catalogue kind that built it (None: a step of a procedure outside the catalogue).
    kind: StepKind | None = field(default=None, compare=False, repr=False)

    @property
    def mutating(self) -> bool:
        return any(op.mutating for op in self.operations)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "region": self.region,
            "service": self.service,
            "changes": self.changes,
            "depends_on": list(self.depends_on),
            "operations": [op.to_dict() for op in self.operations],
            "timeout": self.timeout,
            "estimate": self.estimate,
            "tags": dict(self.tags),
        }


class PlanError(ConfigError):
    """The plan itself is malformed (cycle, unknown dependency, duplicate id)."""


@dataclass
class Plan:
    name: str
    steps: list[Step]
    description: str = ""

    def __post_init__(self) -> None:
        self.validate()

    # -- structure -----------------------------------------------------------------------------
    def validate(self) -> None:
        seen: set[str] = set()
        for step in self.steps:
            if step.id in seen:
                raise PlanError(f"plan {self.name!r}: step id {step.id!r} appears twice")
            seen.add(step.id)
        for step in self.steps:
            unknown = [d for d in step.depends_on if d not in seen]
            if unknown:
                raise PlanError(
                    f"plan {self.name!r}: step {step.id!r} depends on unknown step(s) {', '.join(unknown)}"
                )
        try:
            tuple(self._sorter().static_order())
        except graphlib.CycleError as exc:
            cycle = " -> ".join(exc.args[1])
            raise PlanError(f"plan {self.name!r} has a dependency cycle: {cycle}") from None

    def _sorter(self) -> graphlib.TopologicalSorter[str]:
        return graphlib.TopologicalSorter({s.id: set(s.depends_on) for s in self.steps})

    def step(self, step_id: str) -> Step:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.steps]

    def order(self) -> list[str]:
        """A deterministic topological order (ties broken by declaration order)."""
        index = {s.id: i for i, s in enumerate(self.steps)}
        sorter = self._sorter()
        sorter.prepare()
        out: list[str] = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready(), key=index.__getitem__)
            out.extend(ready)
            sorter.done(*ready)
        return out

    def ancestors(self, step_id: str) -> set[str]:
        todo, out = list(self.step(step_id).depends_on), set()
        while todo:
            cur = todo.pop()
            if cur not in out:
                out.add(cur)
                todo.extend(self.step(cur).depends_on)
        return out

    def operations(self) -> list[Operation]:
        return [op for s in self.steps for op in s.operations]

    # -- timing ----------------------------------------------------------------------------------
    def critical_path(self, durations: Mapping[str, float] | None = None) -> tuple[list[str], float]:
        """Longest dependency chain, weighting each step by ``durations`` (default: estimates)."""
        weight = {s.id: (durations or {}).get(s.id, s.estimate) for s in self.steps}
        finish: dict[str, float] = {}
        via: dict[str, str | None] = {}
        for sid in self.order():
            deps = self.step(sid).depends_on
            best = max(deps, key=finish.__getitem__, default=None)
            finish[sid] = weight[sid] + (finish[best] if best is not None else 0.0)
            via[sid] = best
        if not finish:
            return [], 0.0
        last = max(finish, key=finish.__getitem__)
        total = finish[last]
        end: str | None = last
        path: list[str] = []
        while end is not None:
            path.append(end)
            end = via[end]
        return list(reversed(path)), total

    def to_dict(self) -> dict[str, Any]:
        path, total = self.critical_path()
        return {
            "name": self.name,
            "description": self.description,
            "steps": [s.to_dict() for s in self.steps],
            "order": self.order(),
            "critical_path": {"steps": path, "estimate_seconds": total},
        }


def subset(plan: Plan, keep: Iterable[str]) -> Plan:
    """A plan restricted to ``keep`` (dependencies on dropped steps are removed)."""
    wanted = set(keep)
    steps = [
        Step(**{**s.__dict__, "depends_on": tuple(d for d in s.depends_on if d in wanted)})
        for s in plan.steps
        if s.id in wanted
    ]
    return Plan(plan.name, steps, plan.description)
