"""`make bench`: performance figures as ratios measured side by side in one run.

P3: `dr --help` cold start ÷ `python -c pass` (goal <= 3).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time


def timed(cmd: list[str], runs: int = 15) -> float:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def cold_start() -> dict[str, float]:
    # interleave warm-up so both commands see the same page cache
    timed([sys.executable, "-c", "pass"], runs=3)
    timed([sys.executable, "-m", "dr", "--help"], runs=3)
    base = timed([sys.executable, "-c", "pass"])
    help_ = timed([sys.executable, "-m", "dr", "--help"])
    return {"python_pass_s": base, "dr_help_s": help_, "ratio": help_ / base}


def main() -> None:
    cs = cold_start()
    print("| figure | measured | goal |")
    print("|---|---|---|")
    print(
        f"| P3 `dr --help` ÷ `python -c pass` | {cs['ratio']:.2f} "
        f"({cs['dr_help_s'] * 1000:.0f} ms ÷ {cs['python_pass_s'] * 1000:.0f} ms) | <= 3 |"
    )
    if cs["ratio"] > 3:
        print("P3 goal missed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
