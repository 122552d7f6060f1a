"""The contract of a step kind, what steps receive, and the helpers every kind shares.

A :class:`StepKind` is one kind of recovery step (promote a replica, scale a nodegroup, move the
failover records …), defined once with everything known about it:

* :meth:`StepKind.build` — the :class:`~dr.runbook.plan.Step` (check / action / wait closures over
  :class:`dr.runbook.plan.StepServices`, its declared ``operations``), with ``Step.kind`` set to the kind;
* :meth:`StepKind.iam_reads` — the IAM actions its check, action and wait make beyond its
  declared operations (``dr iam-policy`` adds them);
* :attr:`StepKind.conditional` — which of its IAM actions only some runs make, and when;
* :meth:`StepKind.lower` — its Step Functions states (:mod:`dr.runbook.asl` asks the kind);
  a kind of a procedure that is never exported to Step Functions (restore, snapshot) sets
  :attr:`StepKind.exportable` False and its ``lower`` refuses;
* :attr:`StepKind.outputs` — the output keys its steps record (module constants: a journaled,
  resumable schema — the strings never change).

Procedures compose steps into plans and own the dependencies between them (``depends_on``).
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from dr.errors import ConfigError

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.kube import Kube
    from dr.runbook.asl import AslEmitter
    from dr.runbook.plan import Step, StepContext
    from dr.topology import SiteView

# Tag keys the toolkit sets on what it creates or changes.
TAG_CREATED_BY = "dr:created-by"
TAG_RUN_ID = "dr:run-id"
TAG_PROMOTED_FROM = "dr:promoted-from"
TAG_PROMOTED_AT = "dr:promoted-at"
# A failback (or a reprotect moving it aside) left this instance behind: stale from then on.
TAG_SUPERSEDED_BY = "dr:superseded-by"

# Injectable clock (tests freeze it).
_now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)  # noqa: E731


def utcnow() -> dt.datetime:
    return _now()


def set_clock(fn: Callable[[], dt.datetime] | None) -> None:
    """Tests: freeze or restore the clock steps and procedures use."""
    global _now
    _now = fn or (lambda: dt.datetime.now(dt.UTC))


def iso(value: dt.datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Settled:
    """Completion predicate state: trust a final state only after a change was observed.

    ``observe(done, transitional)`` returns True when ``done`` holds and either a transitional
    state was seen since the action, or ``done`` held on ``confirmations`` consecutive polls (the
    change had already completed before the first poll — e.g. moto, or a fast sandbox).
    """

    def __init__(self, confirmations: int = 2) -> None:
        self.confirmations = confirmations
        self.seen_transition = False
        self.streak = 0
        self.history: list[str] = []

    def observe(self, *, done: bool, transitional: bool, label: str = "") -> bool:
        if label and (not self.history or self.history[-1] != label):
            self.history.append(label)
        if transitional:
            self.seen_transition = True
            self.streak = 0
            return False
        if not done:
            self.streak = 0
            return False
        self.streak += 1
        return self.seen_transition or self.streak >= self.confirmations


def clients_of(ctx: StepContext) -> ClientProvider:
    return ctx.services.aws()


def kube_of(ctx: StepContext, view: SiteView) -> Kube:
    return ctx.services.kube_for(view)


Where = Literal["target", "global"]


@dataclass(frozen=True)
class IamRead:
    """An IAM action a kind's check/action/wait makes beyond its declared operations.
    ``where``: in the step's own region (``target``) or a global service (``global``)."""

    action: str
    where: Where = "target"


class StepKind(ABC):
    """One kind of step (see the module docstring). Subclasses are stateless singletons listed
    in :data:`dr.steps.KINDS`; ``build`` methods take values (identifiers, regions, sizes), not
    whole pre-flight objects, and leave ``depends_on`` to the procedure composing the plan."""

    name: ClassVar[str]
    outputs: ClassVar[tuple[str, ...]] = ()
    reads: ClassVar[tuple[IamRead, ...]] = ()
    # IAM actions (operations or reads) only some runs make: action -> when.
    conditional: ClassVar[Mapping[str, str]] = {}
    # False: its procedure runs only from the CLI (no Step Functions export); ``lower`` refuses.
    exportable: ClassVar[bool] = True

    def iam_reads(self, step: Step) -> tuple[tuple[str, str | None], ...]:
        return tuple((r.action, None if r.where == "global" else step.region) for r in self.reads)

    def iam_actions(self, step: Step) -> set[str]:
        """Every IAM action ``step`` needs: its non-Kubernetes operations and :meth:`iam_reads`."""
        ops = {op.iam_action for op in step.operations if op.service != "k8s"}
        return ops | {a for a, _ in self.iam_reads(step)}

    def lower(
        self, emitter: AslEmitter, states: dict[str, Any], step: Step, next_name: str | None, fail: str
    ) -> str:
        """Default: the emitter's generic lowering (each mutating operation one Task)."""
        if not self.exportable:
            raise ConfigError(
                f"step {step.id} ({self.name}) has no Step Functions form: its procedure runs only "
                "from the dr CLI",
                resource=step.id,
            )
        return str(emitter.generic(states, step, next_name, fail))

    def adopt(self, step: Step) -> Step:
        step.kind = self
        return step

    @abstractmethod
    def build(self, *args: Any, **kwargs: Any) -> Step:
        """The step (``kind`` set to this kind)."""

    def __repr__(self) -> str:
        return f"<step kind {self.name}>"
