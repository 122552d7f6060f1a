"""A small IAM identity-policy evaluator, for where ``iam:SimulatePrincipalPolicy`` is missing.

Real AWS simulates a principal's policies itself (``dr doctor`` calls the API); moto does not
implement the simulator, so there ``dr doctor`` reads the principal's policies and evaluates them
here. Covered: ``Effect``, ``Action``/``NotAction`` (case-insensitive, ``*`` and ``?``
wildcards), ``Resource``/``NotResource`` (case-sensitive wildcards), an explicit Deny beats any
Allow, no matching Allow is an implicit deny. Not covered (the API covers them): permission
boundaries, SCPs, session policies and resource policies. ``Condition``: without a request
context a statement with a Condition is not applied (an Allow under a condition is not counted as
granted, a Deny under one is not counted as denying), so the fallback never reports as granted what
a condition may refuse; with one, the ``StringEquals`` / ``ForAnyValue:StringEquals`` operators the
generated policies use are evaluated against it (any other operator does not hold).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from typing import Any

ALLOWED, EXPLICIT_DENY, IMPLICIT_DENY = "allowed", "explicitDeny", "implicitDeny"


@cache
def _pattern(glob: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return re.compile(f"^{body}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _listed(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _any(globs: list[str], value: str, *, ignore_case: bool) -> bool:
    return any(_pattern(g, ignore_case).match(value) for g in globs)


def _conditions_hold(condition: dict[str, Any], context: dict[str, Any]) -> bool:
    for operator, keys in condition.items():
        for key, wanted in keys.items():
            got = _listed(context[key]) if key in context else []
            if operator == "StringEquals":
                ok = len(got) == 1 and got[0] in _listed(wanted)
            elif operator == "ForAnyValue:StringEquals":
                ok = any(g in _listed(wanted) for g in got)
            else:
                ok = False
            if not ok:
                return False
    return True


def _applies(st: dict[str, Any], action: str, resource: str, context: dict[str, Any] | None = None) -> bool:
    if st.get("Condition") and (context is None or not _conditions_hold(st["Condition"], context)):
        return False
    if "Action" in st:
        action_ok = _any(_listed(st["Action"]), action, ignore_case=True)
    else:
        action_ok = not _any(_listed(st.get("NotAction")), action, ignore_case=True)
    if "Resource" in st:
        resource_ok = _any(_listed(st["Resource"]), resource, ignore_case=False)
    else:
        resource_ok = not _any(_listed(st.get("NotResource")), resource, ignore_case=False)
    return action_ok and resource_ok


def _statements(docs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for doc in docs:
        sts = doc.get("Statement", [])
        out += [sts] if isinstance(sts, dict) else list(sts)
    return out


def evaluate(
    docs: Iterable[dict[str, Any]], action: str, resource: str, context: dict[str, Any] | None = None
) -> str:
    """``allowed``, ``explicitDeny`` or ``implicitDeny`` for ``action`` on ``resource`` (``context``:
    the request's condition keys, e.g. ``{"kms:ViaService": "secretsmanager.us-east-1.amazonaws.com"}``)."""
    statements = _statements(docs)
    if any(st.get("Effect") == "Deny" and _applies(st, action, resource, context) for st in statements):
        return EXPLICIT_DENY
    if any(st.get("Effect") == "Allow" and _applies(st, action, resource, context) for st in statements):
        return ALLOWED
    return IMPLICIT_DENY
