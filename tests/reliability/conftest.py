"""Fault-injection suite (R1-R8). Set ``DR_RELIABILITY_SUMMARY=<file.jsonl>`` to record every case.

Each finished case appends one JSON line ``{"suite": "R4", "case": nodeid, "outcome": ...}`` (xdist
workers append to the same file; one short line per write). ``scripts/bench.py`` runs this directory
with the variable set and publishes cases tried / passed per suite.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.harness import Estate, running_estate

_SUITE = re.compile(r"test_(r\d)_")


def suite_of(nodeid: str) -> str | None:
    match = _SUITE.search(nodeid.split("::", 1)[0])
    return match.group(1).upper() if match else None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    path = os.environ.get("DR_RELIABILITY_SUMMARY")
    suite = suite_of(report.nodeid)
    if not path or suite is None:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        line: dict[str, object] = {"suite": suite, "case": report.nodeid, "outcome": report.outcome}
        line.update({str(k): v for k, v in report.user_properties})  # e.g. R1's crash_points
        with open(path, "a") as fh:
            fh.write(json.dumps(line) + "\n")


@pytest.fixture(scope="module")
def shared_estate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    """One estate for the cases of a module that change nothing (R4, R5)."""
    with running_estate(tmp_path_factory.mktemp("estate") / "e") as e:
        yield e


@pytest.fixture
def fresh_estate(tmp_path: Path) -> Iterator[Estate]:
    with running_estate(tmp_path / "estate") as e:
        yield e
