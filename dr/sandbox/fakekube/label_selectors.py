"""Label and field selectors (``?labelSelector=`` / ``?fieldSelector=``), as pure predicates.

A selector that does not parse raises :class:`ApiError` 400, as the API server answers it.
"""

from __future__ import annotations

import re
from typing import Any

from dr.sandbox.fakekube.resources import ApiError, Obj

_SEL_IN = re.compile(r"^\s*(!?)([\w./-]+)\s*(?:(in|notin)\s*\(([^)]*)\)|(==|=|!=)\s*([\w./-]*))?\s*$")


def _split_selector(selector: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def label_selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """Kubernetes label selector syntax: ``a=b,c!=d,e in (x,y),f notin (z),g,!h``."""
    for term in _split_selector(selector or ""):
        m = _SEL_IN.match(term)
        if not m:
            raise ApiError(400, "BadRequest", f"unable to parse requirement {term!r} in labelSelector")
        neg, key, setop, values, op, value = m.groups()
        if setop:
            allowed = {v.strip() for v in values.split(",") if v.strip()}
            if (setop == "in") != (labels.get(key) in allowed):
                return False
        elif op:
            if (op == "!=") == (labels.get(key) == value):
                return False
        elif bool(neg) == (key in labels):
            return False
    return True


def _dig(obj: Obj, path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def field_selector_matches(selector: str, obj: Obj) -> bool:
    for term in [t for t in (selector or "").split(",") if t.strip()]:
        m = re.match(r"^\s*([\w.]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if not m:
            raise ApiError(400, "BadRequest", f"unable to parse fieldSelector term {term!r}")
        path, op, value = m.groups()
        actual = _dig(obj, path)
        actual = "" if actual is None else str(actual)
        if (op == "!=") == (actual == value):
            return False
    return True
