"""Latency profiles: a seed reproduces the same durations in every process."""

from __future__ import annotations

import os
import subprocess
import sys

from dr.sandbox.latency import REALISTIC, profile

CODE = (
    "from dr.sandbox.latency import profile; p = profile('realistic', 0.05, seed=7); "
    "print(repr([p.duration(w) for w in ('rds.promote', 'eks.nodegroup_scale', 'route53.insync')]))"
)


def _draw(hash_seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    return subprocess.run(
        [sys.executable, "-c", CODE], env=env, capture_output=True, text=True, check=True
    ).stdout


def test_the_same_seed_draws_the_same_durations_in_another_process() -> None:
    """The benchmark starts two sandboxes (parallel and sequential procedure) with one seed: their
    transitions must take the same time, or the ratio measures the dice (str hashes differ per
    process, so a seed derived with hash() did not reproduce)."""
    assert _draw("1") == _draw("2")
    here = profile("realistic", 0.05, seed=7)
    assert repr([here.duration(w) for w in ("rds.promote", "eks.nodegroup_scale", "route53.insync")]) + (
        "\n"
    ) == _draw("3")


def test_durations_stay_within_the_profile_and_differ_by_seed() -> None:
    low, high = REALISTIC["rds.promote"]
    draws = {profile("realistic", 1.0, seed=s).duration("rds.promote") for s in range(20)}
    assert all(low <= d <= high for d in draws)
    assert len(draws) > 1
