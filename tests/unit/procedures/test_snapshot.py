"""Snapshot selection rules (pure) and names."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from dr.aws.elasticache import CacheSnapshot
from dr.aws.rds import DbSnapshot
from dr.errors import BadInput
from dr.procedures.snapshot import select_prunable
from dr.procedures.support import parse_duration, snapshot_name

NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.UTC)


def _db(
    name: str,
    days: float,
    *,
    region: str = "us-west-2",
    source: str = "db1",
    kind: str = "manual",
    status: str = "available",
) -> DbSnapshot:
    return DbSnapshot(
        name, region, f"arn:{name}", source, status, kind, NOW - dt.timedelta(days=days), 100, True, None
    )


def test_snapshot_name_is_sortable_and_utc() -> None:
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert snapshot_name(when) == "manual-snapshot-20260102-010405"
    names = [snapshot_name(NOW - dt.timedelta(hours=h)) for h in (30, 3, 12)]
    assert sorted(names) == [names[0], names[2], names[1]]
    assert re.fullmatch(r"manual-snapshot-\d{8}-\d{6}", snapshot_name())


def test_keep_last_per_source_and_region() -> None:
    snaps = [_db(f"s{i}", i) for i in range(5)] + [
        _db("e0", 9, region="us-east-1"),
        _db("o0", 9, source="db2"),
    ]
    out = select_prunable(snaps, keep_last=2, older_than=None, now=NOW)
    assert [s.identifier for s in out] == ["s4", "s3", "s2"]


def test_never_automated_never_in_flight() -> None:
    snaps = [
        _db("new", 0),
        _db("auto", 50, kind="automated"),
        _db("busy", 40, status="creating"),
        _db("old", 30),
    ]
    out = select_prunable(snaps, keep_last=1, older_than=None, now=NOW)
    assert [s.identifier for s in out] == ["old"]


def test_older_than_alone_still_keeps_newest() -> None:
    snaps = [_db("a", 100), _db("b", 90)]
    out = select_prunable(snaps, keep_last=None, older_than=dt.timedelta(days=30), now=NOW)
    assert [s.identifier for s in out] == ["a"]  # b is the newest of its source: never deleted


def test_prefix_filter_and_redis() -> None:
    redis = [
        CacheSnapshot(
            "manual-snapshot-1",
            "us-west-2",
            "rg",
            "available",
            "manual",
            NOW - dt.timedelta(days=3),
            None,
            None,
        ),
        CacheSnapshot(
            "manual-snapshot-2",
            "us-west-2",
            "rg",
            "available",
            "manual",
            NOW - dt.timedelta(days=1),
            None,
            None,
        ),
        CacheSnapshot(
            "nightly", "us-west-2", "rg", "available", "automated", NOW - dt.timedelta(days=9), None, None
        ),
    ]
    snaps = [*redis, _db("keep-me", 80), _db("manual-snapshot-x", 1)]
    out = select_prunable(snaps, keep_last=1, older_than=None, now=NOW, prefix="manual-snapshot-")
    assert [(s.kind, s.identifier) for s in out] == [("redis", "manual-snapshot-1")]


@pytest.mark.parametrize("keep", [0, -1])
def test_keep_last_must_keep_something(keep: int) -> None:
    with pytest.raises(BadInput, match="keep-last"):
        select_prunable([_db("a", 1)], keep_last=keep, older_than=None, now=NOW)


def test_needs_a_rule() -> None:
    with pytest.raises(BadInput):
        select_prunable([], keep_last=None, older_than=None, now=NOW)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5s", 5), ("500ms", 0.5), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("2w", 1209600), ("10", 10)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


def test_parse_duration_rejects_garbage() -> None:
    with pytest.raises(BadInput, match="5 minutes"):
        parse_duration("5 minutes", option="--older-than")
