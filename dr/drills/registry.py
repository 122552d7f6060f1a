"""Named providers that scenario activities refer to (``provider: failover``).

A provider is *declared* once (name, kind, argument model, description) and *implemented* per
target (``aws``, ``sandbox`` or ``*`` for any). Declaring is enough for a scenario to validate
and for ``--dry-run`` to print it; running needs an implementation for the selected target.

Other packages plug in by registering implementations in a module listed in
:data:`PLUGIN_MODULES` (imported lazily, missing modules are fine)::

    from dr.drills.registry import register_action

    @register_action("failover", target="sandbox")
    def failover(ctx: DrillContext, to: str, mode: str) -> dict: ...

The implementation receives the :class:`dr.drills.drill_context.DrillContext` and the validated
arguments as keyword arguments (the argument model's fields when it has one).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from dr.errors import GateRefused, OperationFailed

Kind = Literal["action", "probe"]
ProviderFn = Callable[..., Any]
F = TypeVar("F", bound=ProviderFn)

ANY_TARGET = "*"

# Modules that register provider implementations (imported once, on first lookup). The failover
# procedures (issue 6) and the sandbox (issue 4) add theirs here.
PLUGIN_MODULES: tuple[str, ...] = (
    "dr.drills.providers",
    "dr.procedures.drill_providers",
    "dr.sandbox.drill_providers",
)


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
    """A declared provider has no implementation for the selected target (exit 1 at run time)."""


@dataclass
class Provider:
    name: str
    kind: Kind
    description: str = ""
    args: type[BaseModel] | None = None
    # Where the implementation is expected to come from while it is missing (shown in plans).
    pending: str = ""
    impls: dict[str, ProviderFn] = field(default_factory=dict)

    def implementation(self, target: str) -> ProviderFn | None:
        return self.impls.get(target) or self.impls.get(ANY_TARGET)

    def available(self, target: str) -> bool:
        return self.implementation(target) is not None

    def resolve(self, target: str) -> ProviderFn:
        fn = self.implementation(target)
        if fn is None:
            where = f" ({self.pending})" if self.pending else ""
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
_plugins_loaded = False


def declare(
    kind: Kind,
    name: str,
    *,
    args: type[BaseModel] | None = None,
    description: str = "",
    pending: str = "",
) -> Provider:
    """Declare a provider (idempotent; a later declaration may add an argument model)."""
    with _lock:
        prov = _providers.get((kind, name))
        if prov is None:
            prov = Provider(name=name, kind=kind, description=description, args=args, pending=pending)
            _providers[(kind, name)] = prov
        else:
            prov.args = args or prov.args
            prov.description = description or prov.description
            prov.pending = pending or prov.pending
        return prov


def _register(
    kind: Kind, name: str, target: str, args: type[BaseModel] | None, description: str
) -> Callable[[F], F]:
    def decorator(fn: F) -> F:
        prov = declare(kind, name, args=args, description=description or (fn.__doc__ or "").strip())
        with _lock:
            prov.impls[target] = fn
        return fn

    return decorator


def register_action(
    name: str, *, target: str = ANY_TARGET, args: type[BaseModel] | None = None, description: str = ""
) -> Callable[[F], F]:
    """Decorator: ``fn(ctx, **arguments)`` implements action ``name`` on ``target``."""
    return _register("action", name, target, args, description)


def register_probe(
    name: str, *, target: str = ANY_TARGET, args: type[BaseModel] | None = None, description: str = ""
) -> Callable[[F], F]:
    """Decorator: ``fn(ctx, **arguments) -> value`` implements probe ``name`` on ``target``."""
    return _register("probe", name, target, args, description)


def unregister(kind: Kind, name: str, target: str | None = None) -> None:
    """Remove an implementation (``target``) or the whole provider (tests use it)."""
    with _lock:
        if target is None:
            _providers.pop((kind, name), None)
        elif (kind, name) in _providers:
            _providers[(kind, name)].impls.pop(target, None)


def load_plugins() -> None:
    """Import the built-in and plug-in provider modules once."""
    global _plugins_loaded
    with _lock:
        if _plugins_loaded:
            return
        _plugins_loaded = True
        for module in PLUGIN_MODULES:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:  # the plug-in exists but one of its imports is missing
                    raise


def get(kind: Kind, name: str) -> Provider | None:
    load_plugins()
    with _lock:
        return _providers.get((kind, name))


def names(kind: Kind) -> list[str]:
    load_plugins()
    with _lock:
        return sorted(n for k, n in _providers if k == kind)


def providers() -> list[Provider]:
    load_plugins()
    with _lock:
        return sorted(_providers.values(), key=lambda p: (p.kind, p.name))
