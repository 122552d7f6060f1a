"""``dr iam-policy --procedure drill``: the IAM actions the drills' own actions and probes declare
where they register (:mod:`dr.drills.registry`), assembled for :mod:`dr.procedures.iam`.

The procedures cannot import the drills (they are a layer below), so the drill policy's needs are
handed down: :func:`install` declares them with :func:`dr.procedures.iam.declare_needs`; every
entry point that builds the drill policy (``dr iam-policy``, ``dr doctor``, the sandbox's operator
role) calls it first, and building it without does not fall back to anything (ConfigError).

The registry fills on import, so :func:`needs` imports the modules that register the drills'
providers itself. The sandbox's faults (:mod:`dr.sandbox.drill_adapter`) call no AWS API and are
not imported; its implementations of the AWS faults are the same functions, whose needs the
``aws`` registration declares. A provider that runs a procedure (``policy_of``) adds nothing:
it needs that procedure's policy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dr.procedures.iam import Need


def needs() -> list[Need]:
    """Every IAM need the registered drill actions and probes declare (no duplicate)."""
    from dr.drills import builtin_actions, procedure_actions, procedure_probes  # noqa: F401  (they register)
    from dr.drills import registry

    return list(dict.fromkeys(n for p in registry.providers() for n in p.iam))


def install() -> None:
    """Let :func:`dr.procedures.iam.needed` build the drill policy from :func:`needs`."""
    from dr.procedures.iam import declare_needs

    declare_needs("drill", needs)
