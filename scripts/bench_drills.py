"""P6 benchmark: the RPO the shipped drills measure on the sandbox (real PostgreSQL primary + replica).

Each scenario runs on its own fresh sandbox (a drill fails the estate over for good):

* ``planned-switchover`` — stop writes, lag 0, promote: goal **0 rows lost** (RPO 0).
* ``region-loss`` — the primary region disappears abruptly with replication lag injected: goal
  RPO <= the replica lag at the fault + 1 s.

The figures come from the drill's own journal (``dr drill run -o json``): the heartbeat writer's
acknowledged writes vs what the promoted database holds (see docs/drills.md).

Run: ``.venv/bin/python scripts/bench_drills.py [--scenario region-loss]`` (prints JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCENARIOS = ("planned-switchover", "region-loss")


def _find(data: Any, key: str) -> list[Any]:
    """Every value under ``key`` anywhere in a JSON document."""
    found: list[Any] = []
    if isinstance(data, dict):
        for k, v in data.items():
            if k == key:
                found.append(v)
            found += _find(v, key)
    elif isinstance(data, list):
        for v in data:
            found += _find(v, key)
    return found


def run_drill(scenario: str, *, latency: str = "fast") -> dict[str, Any]:
    from dr.sandbox.daemon import start_background, stop_background

    with tempfile.TemporaryDirectory(prefix=f"dr-bench-{scenario}-") as tmp:
        directory = Path(tmp) / "sandbox"
        start_background(
            directory,
            stack_dir=ROOT / "stacks",
            stack="prod",
            latency=latency,
            postgres=True,
            parent_pid=os.getpid(),
            timeout=180,
        )
        try:
            out = Path(tmp) / "evidence"
            env = {
                **os.environ,
                "DR_TARGET": "sandbox",
                "DR_SANDBOX_DIR": str(directory),
                "DR_RUNS_DIR": str(Path(tmp) / "runs"),
                "DR_STACK_DIR": str(ROOT / "stacks"),
            }
            proc = subprocess.run(
                [sys.executable, "-m", "dr", "-o", "json", "drill", "run", scenario, "--out", str(out)],
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
            )
            journal_path = out / "journal.json"
            journal = json.loads(journal_path.read_text()) if journal_path.exists() else {}
        finally:
            stop_background(directory)
    measurements = journal.get("measurements") or {}
    rpo = measurements.get("rpo") if isinstance(measurements, dict) else None
    # The region-loss action reports the replica's measured lag when the region went away.
    lag_at_fault = [
        v for v in _find(journal.get("steps", []), "lag_at_loss_seconds") if isinstance(v, (int, float))
    ]
    return {
        "scenario": scenario,
        "exit_code": proc.returncode,
        "status": journal.get("status"),
        "reason": journal.get("reason"),
        "rpo": rpo,
        "lag_at_fault_seconds": max(lag_at_fault) if lag_at_fault else None,
        "stderr_tail": proc.stderr[-800:] if proc.returncode else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", action="append", choices=SCENARIOS)
    args = parser.parse_args()
    print(json.dumps([run_drill(s) for s in (args.scenario or SCENARIOS)], indent=2, default=str))


if __name__ == "__main__":
    main()
