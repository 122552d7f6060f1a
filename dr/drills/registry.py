"""Named providers that scenario activities refer to (``provider: failover``).

A provider is an action or a probe, implemented per target (``aws``, ``sandbox`` or ``*`` for
any) by a function registered where it is written, with the pydantic model of its arguments::

    @register_action("failover", args=FailoverArgs)
    def failover(ctx: DrillContext, to: str, mode: str, ...) -> dict: ...

The function receives the :class:`dr.drills.drill_context.DrillContext` and the validated
arguments as keyword arguments. A provider that calls AWS declares, at its registration, the IAM
actions it calls (``iam=(Need("rds:RebootDBInstance", "both"), …)``, the region roles of
:class:`dr.procedures.iam.Need`); one that runs a whole procedure names it instead
(``policy_of="failover"``: it needs that procedure's policy). ``dr iam-policy --procedure drill``
is the union of the declared needs (:mod:`dr.drills.drill_iam`).

Registering happens on import; these modules register:

* :mod:`dr.drills.builtin_actions` — pause, HTTP, endpoint and heartbeat probes, AWS faults;
* :mod:`dr.drills.procedure_actions`, :mod:`dr.drills.procedure_probes` — the real procedures;
* :mod:`dr.sandbox.drill_adapter` — the sandbox's faults (above the drills: the drill command
  imports it, so this package never imports the sandbox).

:mod:`dr.drills.scenario` imports the drills' own modules; :func:`dr.cli.drill_cmd.load_activities`
all of them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from dr.errors import GateRefused, OperationFailed

if TYPE_CHECKING:
    from dr.procedures.iam import Need

Kind = Literal["action", "probe"]
ProviderFn = Callable[..., Any]
F = TypeVar("F", bound=ProviderFn)

ANY_TARGET = "*"


@dataclass(frozen=True)
class Observation:
    """A probe's value with what explains it (``cause``: e.g. the HTTP status /health answered).

    A probe may return one instead of a bare value: the runner compares ``value`` with the
    tolerance and, when it is outside, reports ``cause`` as the step's error — the real reason a
    probe failed reaches the report, not only "value False is outside the tolerance True"."""

    value: Any
    cause: str = ""


class NothingToUndo(GateRefused):
    """An action found the estate already where it would bring it (e.g. a failback on an estate
    that is not failed over). A rollback raising it is a no-op the runner records as skipped,
    saying why; in the method it is a refusal (the step fails, nothing changed)."""


class ProviderUnavailable(OperationFailed):
    """A provider has no implementation for the selected target (exit 1 at run time)."""


class ActionArgs(BaseModel):
    """Base of the argument models: an unknown argument is an error (with its scenario line)."""

    model_config = ConfigDict(extra="forbid")


class NoArgs(ActionArgs):
    pass


Site = Literal["primary", "secondary"]


class SiteArgs(ActionArgs):
    site: Site = "primary"


@dataclass
class Provider:
    name: str
    kind: Kind
    description: str = ""
    args: type[BaseModel] | None = None
    impls: dict[str, ProviderFn] = field(default_factory=dict)
    # The IAM actions its implementations call on AWS (none: it calls no AWS API, or only
    # through the procedure ``policy_of`` names, whose own policy it needs).
    iam: tuple[Need, ...] = ()
    policy_of: str | None = None

    def implementation(self, target: str) -> ProviderFn | None:
        return self.impls.get(target) or self.impls.get(ANY_TARGET)

    def available(self, target: str) -> bool:
        return self.implementation(target) is not None

    def targets(self) -> list[str]:
        return sorted(self.impls)

    def unavailable(self, target: str) -> str:
        """Why the provider cannot run on ``target`` ("" when it can): where it is implemented."""
        if self.available(target):
            return ""
        return f"only on {', '.join(self.targets())}" if self.impls else "no implementation"

    def resolve(self, target: str) -> ProviderFn:
        fn = self.implementation(target)
        if fn is None:
            where = f" ({self.unavailable(target)})"
            raise ProviderUnavailable(
                f"drill {self.kind} provider {self.name!r} has no implementation for target {target!r}{where}",
                hint=f"run the drill on a target that implements it ({', '.join(sorted(self.impls)) or 'none yet'}), "
                "or register one with dr.drills.registry.register_" + self.kind,
            )
        return fn

    def validate_args(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Validated keyword arguments (raises pydantic.ValidationError)."""
        if self.args is None:
            return dict(arguments)
        return self.args.model_validate(arguments).model_dump()


_providers: dict[tuple[Kind, str], Provider] = {}
_lock = threading.RLock()


def _register(
    kind: Kind,
    name: str,
    target: str,
    args: type[BaseModel] | None,
    description: str,
    iam: tuple[Need, ...] = (),
    policy_of: str | None = None,
) -> Callable[[F], F]:
    def decorator(fn: F) -> F:
        with _lock:
            prov = _providers.get((kind, name))
            if prov is None:
                prov = _providers[(kind, name)] = Provider(name=name, kind=kind)
            if args is not None and prov.args is not None and args is not prov.args:
                raise ValueError(f"{kind} provider {name!r} is registered with two argument models")
            if iam and prov.iam and tuple(iam) != prov.iam:
                raise ValueError(f"{kind} provider {name!r} is registered with two IAM declarations")
            if policy_of and prov.policy_of and policy_of != prov.policy_of:
                raise ValueError(f"{kind} provider {name!r} is registered with two procedures' policies")
            prov.args = args or prov.args
            prov.iam = tuple(iam) or prov.iam
            prov.policy_of = policy_of or prov.policy_of
            prov.description = prov.description or description or (fn.__doc__ or "").strip()
            prov.impls[target] = fn
        return fn

    return decorator


def register_action(
    name: str,
    *,
    target: str = ANY_TARGET,
    args: type[BaseModel] | None = None,
    description: str = "",
    iam: tuple[Need, ...] = (),
    policy_of: str | None = None,
) -> Callable[[F], F]:
    """Decorator: ``fn(ctx, **arguments)`` implements action ``name`` on ``target``; ``args`` is
    the model of its arguments (given by at least one of the implementations); ``iam`` the IAM
    actions it calls, or ``policy_of`` the procedure it runs (whose policy it needs)."""
    return _register("action", name, target, args, description, iam, policy_of)


def register_probe(
    name: str,
    *,
    target: str = ANY_TARGET,
    args: type[BaseModel] | None = None,
    description: str = "",
    iam: tuple[Need, ...] = (),
    policy_of: str | None = None,
) -> Callable[[F], F]:
    """Decorator: ``fn(ctx, **arguments) -> value`` implements probe ``name`` on ``target``;
    ``iam`` the IAM actions it calls, or ``policy_of`` the procedure whose policy grants them."""
    return _register("probe", name, target, args, description, iam, policy_of)


def unregister(kind: Kind, name: str, target: str | None = None) -> None:
    """Remove an implementation (``target``) or the whole provider (tests use it)."""
    with _lock:
        if target is None:
            _providers.pop((kind, name), None)
        elif (kind, name) in _providers:
            _providers[(kind, name)].impls.pop(target, None)


def get(kind: Kind, name: str) -> Provider | None:
    with _lock:
        return _providers.get((kind, name))


def names(kind: Kind) -> list[str]:
    with _lock:
        return sorted(n for k, n in _providers if k == kind)


def providers() -> list[Provider]:
    with _lock:
        return sorted(_providers.values(), key=lambda p: (p.kind, p.name))
