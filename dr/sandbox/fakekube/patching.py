"""The three patch formats of the Kubernetes API, as pure functions over JSON-like values.

``application/merge-patch+json`` (RFC 7386), ``application/strategic-merge-patch+json`` (merge
patch, plus lists of objects merged by ``name`` as containers are) and
``application/json-patch+json`` (RFC 6902). A malformed or failing JSON patch raises
:class:`ApiError` 422, as the API server answers it.
"""

from __future__ import annotations

import copy
from typing import Any

from dr.sandbox.fakekube.resources import ApiError, Obj


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Merge patch where lists of objects that all carry ``name`` merge by name (containers, ports)."""
    if isinstance(patch, dict):
        if patch.get("$patch") == "replace":
            return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
        out = copy.deepcopy(target) if isinstance(target, dict) else {}
        for key, value in patch.items():
            if key.startswith("$"):
                continue
            if value is None:
                out.pop(key, None)
            else:
                out[key] = strategic_merge_patch(out.get(key), value)
        return out
    if (
        isinstance(patch, list)
        and isinstance(target, list)
        and patch
        and all(isinstance(i, dict) and "name" in i for i in patch)
        and all(isinstance(i, dict) and "name" in i for i in target)
    ):
        merged = [copy.deepcopy(i) for i in target]
        for item in patch:
            idx = next((n for n, cur in enumerate(merged) if cur["name"] == item["name"]), None)
            if item.get("$patch") == "delete":
                if idx is not None:
                    merged.pop(idx)
            elif idx is None:
                merged.append(copy.deepcopy(item))
            else:
                merged[idx] = strategic_merge_patch(merged[idx], item)
        return merged
    return copy.deepcopy(patch)


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, "Invalid", f"json patch path {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(doc: Any, ops: list[Obj]) -> Any:
    """RFC 6902 JSON patch (add, replace, remove, test, copy, move)."""
    out = copy.deepcopy(doc)

    def parent(parts: list[str]) -> tuple[Any, str]:
        cur = out
        for part in parts[:-1]:
            cur = cur[int(part)] if isinstance(cur, list) else cur[part]
        return cur, parts[-1]

    def get(parts: list[str]) -> Any:
        cur = out
        for part in parts:
            cur = cur[int(part)] if isinstance(cur, list) else cur[part]
        return cur

    for op in ops:
        kind, parts = op.get("op"), _pointer(str(op.get("path", "")))
        try:
            if kind == "test":
                if get(parts) != op.get("value"):
                    raise ApiError(422, "Invalid", f"json patch test failed at {op.get('path')}")
                continue
            value = copy.deepcopy(get(_pointer(op["from"]))) if kind in ("copy", "move") else op.get("value")
            if kind == "move":
                p, k = parent(_pointer(op["from"]))
                if isinstance(p, list):
                    p.pop(int(k))
                else:
                    del p[k]
            if not parts:
                out = copy.deepcopy(value)
                continue
            p, k = parent(parts)
            if kind in ("add", "copy", "move"):
                if isinstance(p, list):
                    p.insert(len(p) if k == "-" else int(k), copy.deepcopy(value))
                else:
                    p[k] = copy.deepcopy(value)
            elif kind == "replace":
                if isinstance(p, list):
                    p[int(k)] = copy.deepcopy(value)
                else:
                    if k not in p:
                        raise ApiError(422, "Invalid", f"json patch replace: {op.get('path')} does not exist")
                    p[k] = copy.deepcopy(value)
            elif kind == "remove":
                if isinstance(p, list):
                    p.pop(int(k))
                else:
                    del p[k]
            else:
                raise ApiError(422, "Invalid", f"unsupported json patch op {kind!r}")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ApiError(422, "Invalid", f"json patch {kind} {op.get('path')} failed: {exc}") from None
    return out
