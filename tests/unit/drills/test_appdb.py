"""The heartbeat target follows the application: serving site's DB secret, nothing while writers are at 0.

The sandbox's measurement hooks, which build one, are tested in tests/unit/sandbox/test_drill_adapter.py.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dr.drills.appdb import AppDatabase
from dr.drills.drill_context import DrillContext, measurement_hooks

PRIMARY_URL = "postgresql://app_admin:pw-primary@127.0.0.1:5001/claude_deployment"
STANDBY_URL = "postgresql://app_admin:pw-standby@127.0.0.1:5002/claude_deployment"


class FakeKube:
    def __init__(self, url: str, replicas: int = 2) -> None:
        self.url = url
        self.replicas = replicas
        self.calls = 0

    def get_deployment(self, namespace: str, name: str) -> Any:
        self.calls += 1
        return SimpleNamespace(replicas=self.replicas)

    def read_secret_key(self, namespace: str, name: str, key: str) -> Any:
        return SimpleNamespace(reveal=lambda: self.url)


def test_app_database_follows_site_and_writers(estate) -> None:  # type: ignore[no-untyped-def]
    kubes = {estate.primary.region: FakeKube(PRIMARY_URL), estate.secondary.region: FakeKube(STANDBY_URL, 1)}
    site = {"region": estate.primary.region}
    now = {"t": 0.0}
    db = AppDatabase(estate, lambda: site["region"], lambda v: kubes[v.region], clock=lambda: now["t"])
    target = db()
    assert target is not None and target.label == "postgresql://127.0.0.1:5001/claude_deployment"
    assert "pw-primary" not in repr(target) and "pw-primary" in target.conninfo
    kubes[estate.primary.region].replicas = 0  # stop-writes
    assert db() is target  # cached for cache_seconds
    now["t"] = 1.0
    assert db() is None
    assert db.without_writer_check()() is not None  # reading back ignores the writers
    site["region"] = estate.secondary.region  # DNS flipped
    now["t"] = 2.0
    moved = db()
    assert moved is not None and moved.label.endswith(":5002/claude_deployment")


def test_lookup_errors_propagate_to_the_writer(estate) -> None:  # type: ignore[no-untyped-def]
    def broken(view):  # type: ignore[no-untyped-def]
        raise ConnectionError("cluster API unreachable")

    db = AppDatabase(estate, lambda: "primary", broken)
    with pytest.raises(ConnectionError):
        db()
