"""`make demo`: the main job, end to end, on this machine (no AWS account needed).

Today: render the two-region estate from the stack files. Each capability that lands adds its
part (Pulumi program under mocks, the failover plan, a drill on the embedded sandbox).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> None:
    print(f"\n$ dr {' '.join(args)}", flush=True)
    proc = subprocess.run([sys.executable, "-m", "dr", *args], cwd=ROOT)
    if proc.returncode != 0:
        sys.exit(proc.returncode)


def main() -> None:
    run("topology", "show")


if __name__ == "__main__":
    main()
