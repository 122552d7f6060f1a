"""Runs the Pulumi program under mocks once per test session (shared by xdist workers).

The stacks run in one subprocess (``dr.infra.mockrun --jobs``), each in a fresh context; the results are cached in the session's shared temp dir behind a file
lock, so N xdist workers pay for one set of runs.
"""

from __future__ import annotations

import fcntl
import json
import shutil
from pathlib import Path

import pytest
import yaml

from dr.infra.mockrun import MockRun, run_many_subprocess

ROOT = Path(__file__).resolve().parents[3]
STACKS = ROOT / "stacks"
CHESS = ROOT / "examples" / "chess-ai" / "stacks"


def _swapped_stack_dir(dst: Path) -> Path:
    """The shipped stacks after a failover and `dr reconcile`: ONLY the roles are swapped."""
    shutil.copytree(STACKS, dst)
    for stack, role in (("dr", "primary"), ("prod", "standby")):
        path = dst / f"Pulumi.{stack}.yaml"
        doc = yaml.safe_load(path.read_text())
        doc["config"]["dr-toolkit:role"] = role
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dst


READINESS_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/dr-toolkit:readiness"


def _readiness_stack_dir(dst: Path) -> Path:
    """The shipped stacks with continuous readiness configured: an image, 10 min, own topic."""
    shutil.copytree(STACKS, dst)
    for stack in ("prod", "dr"):
        path = dst / f"Pulumi.{stack}.yaml"
        doc = yaml.safe_load(path.read_text())
        doc["config"]["dr-toolkit:app"]["readiness"] = {
            "image": READINESS_IMAGE,
            "scheduleMinutes": 10,
            "alarmTopic": "pager-dr",
            "recoveryPointBudgetSeconds": 7200,
        }
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dst


def _compute(workdir: Path) -> dict[str, MockRun]:
    swapped = _swapped_stack_dir(workdir / "swapped")
    watched = _readiness_stack_dir(workdir / "readiness")
    return run_many_subprocess(
        {
            "prod": (str(STACKS), "prod"),
            "dr": (str(STACKS), "dr"),
            "chess-prod": (str(CHESS), "prod"),
            "chess-dr": (str(CHESS), "dr"),
            "promoted-dr": (str(swapped), "dr"),
            "demoted-prod": (str(swapped), "prod"),
            "readiness-dr": (str(watched), "dr"),
        }
    )


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> dict[str, MockRun]:
    base = tmp_path_factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent
    cache = shared / "infra-mockruns.json"
    with open(shared / "infra-mockruns.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if cache.exists():
            data = json.loads(cache.read_text())
            return {k: MockRun.from_json(v) for k, v in data.items()}
        work = shared / "infra-mockruns"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        result = _compute(work)
        cache.write_text(json.dumps({k: v.to_json() for k, v in result.items()}))
        return result
