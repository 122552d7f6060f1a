"""Merge, strategic merge and JSON patch, on their own (no cluster)."""

from __future__ import annotations

import pytest

from dr.sandbox.fakekube.patching import json_patch, merge_patch, strategic_merge_patch
from dr.sandbox.fakekube.resources import ApiError


def test_merge_patch_follows_rfc_7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
    patch = {"a": "z", "c": {"f": None}, "l": [3], "n": {"x": 1}}
    assert merge_patch(target, patch) == {"a": "z", "c": {"d": "e"}, "l": [3], "n": {"x": 1}}
    assert target == {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}  # the input is not changed
    assert merge_patch({"a": 1}, ["x"]) == ["x"]  # a non-object patch replaces the whole document
    assert merge_patch("scalar", {"a": None, "b": 1}) == {"b": 1}


def test_strategic_merge_patch_merges_named_lists_by_name() -> None:
    assert strategic_merge_patch(
        {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]},
        {"containers": [{"name": "b", "image": "2"}]},
    ) == {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]}
    target = {"containers": [{"name": "a", "image": "1", "env": [{"name": "X", "value": "1"}]}]}
    patched = strategic_merge_patch(
        target,
        {
            "containers": [
                {"name": "a", "env": [{"name": "Y", "value": "2"}]},
                {"name": "c", "image": "3"},
            ]
        },
    )
    assert patched == {
        "containers": [
            {"name": "a", "image": "1", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]},
            {"name": "c", "image": "3"},
        ]
    }
    assert target["containers"][0]["env"] == [{"name": "X", "value": "1"}]


def test_strategic_merge_patch_directives() -> None:
    target = {"spec": {"a": 1, "b": 2}, "items": [{"name": "x"}, {"name": "y"}]}
    assert strategic_merge_patch(target, {"spec": {"$patch": "replace", "c": 3}}) == {
        "spec": {"c": 3},
        "items": [{"name": "x"}, {"name": "y"}],
    }
    assert strategic_merge_patch(target, {"items": [{"name": "x", "$patch": "delete"}]}) == {
        "spec": {"a": 1, "b": 2},
        "items": [{"name": "y"}],
    }
    assert strategic_merge_patch(target, {"spec": {"a": None}, "$retainKeys": ["spec"]}) == {
        "spec": {"b": 2},
        "items": [{"name": "x"}, {"name": "y"}],
    }
    # Lists of plain values (or of objects without names) are replaced, as in a merge patch.
    assert strategic_merge_patch({"args": ["a", "b"]}, {"args": ["c"]}) == {"args": ["c"]}


def test_json_patch_operations() -> None:
    assert json_patch(
        {"a": {"b": 1}}, [{"op": "add", "path": "/a/c", "value": 2}, {"op": "remove", "path": "/a/b"}]
    ) == {"a": {"c": 2}}
    doc = {"l": [1, 2, 3], "m": {"k": "v"}}
    assert json_patch(doc, [{"op": "add", "path": "/l/-", "value": 4}])["l"] == [1, 2, 3, 4]
    assert json_patch(doc, [{"op": "add", "path": "/l/0", "value": 0}])["l"] == [0, 1, 2, 3]
    assert json_patch(doc, [{"op": "replace", "path": "/l/1", "value": 9}])["l"] == [1, 9, 3]
    assert json_patch(doc, [{"op": "remove", "path": "/l/0"}])["l"] == [2, 3]
    assert json_patch(doc, [{"op": "copy", "from": "/m/k", "path": "/m/k2"}])["m"] == {"k": "v", "k2": "v"}
    assert json_patch(doc, [{"op": "move", "from": "/m/k", "path": "/n"}]) == {
        "l": [1, 2, 3],
        "m": {},
        "n": "v",
    }
    assert json_patch(doc, [{"op": "replace", "path": "", "value": {"x": 1}}]) == {"x": 1}
    assert json_patch({"a/b": {"~c": 1}}, [{"op": "replace", "path": "/a~1b/~0c", "value": 2}]) == {
        "a/b": {"~c": 2}
    }
    assert json_patch(doc, [{"op": "test", "path": "/m/k", "value": "v"}]) == doc
    assert doc == {"l": [1, 2, 3], "m": {"k": "v"}}  # the input is not changed


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "test", "path": "/a", "value": 2}],
        [{"op": "replace", "path": "/missing", "value": 1}],
        [{"op": "remove", "path": "/missing"}],
        [{"op": "add", "path": "no-slash", "value": 1}],
        [{"op": "frobnicate", "path": "/a"}],
        [{"op": "remove", "path": "/l/7"}],
    ],
)
def test_json_patch_failures_are_422(ops: list[dict[str, object]]) -> None:
    with pytest.raises(ApiError) as err:
        json_patch({"a": 1, "l": [1]}, ops)
    assert err.value.code == 422 and err.value.reason == "Invalid"
