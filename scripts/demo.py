"""`make demo`: lose a whole AWS region and recover, on this machine — no AWS account needed.

1. start the embedded sandbox (`dr sandbox up`: moto + realism layer, real PostgreSQL primary and
   cross-region replica, fake Kubernetes APIs, Route53-style resolver) with the *realistic*
   latency profile time-scaled (default x0.05: a 5-minute RDS promotion takes ~15 s), so the
   steps keep their real proportions while the whole demo fits in about two minutes;
2. show the estate (`dr topology show`) and the Pulumi program's preview for the primary stack
   (`scripts/preview.py`, under mocks — computed while the sandbox starts);
3. run the quarterly game-day drill `dr --target sandbox drill run region-loss`: the primary
   region disappears (its database killed with WAL in flight, its AWS API unreachable, its
   /health down) and the unplanned failover brings the public name back on the DR region,
   while a heartbeat writer and an endpoint prober measure the real RPO and RTO;
4. print the RTO/RPO table and where the evidence is (report.html, report.md, junit.xml, ...);
5. ALWAYS stop the sandbox (also on failure and on Ctrl-C).

Exit code: the drill's (0 all objectives met, 1 failed, 130 interrupted); 2 when the sandbox
could not start.

    python scripts/demo.py [--time-scale 0.05] [--no-preview] [--out DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = "region-loss"


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m" if sys.stdout.isatty() else f"\n== {text}", flush=True)


def show(args: list[str]) -> None:
    print(f"$ {' '.join(args)}", flush=True)


def dr(*args: str) -> list[str]:
    return [sys.executable, "-m", "dr", *args]


def wait_child(proc: subprocess.Popen[Any], grace: float = 120.0) -> int:
    """Wait for a child; on Ctrl-C let it finish its own clean-up (it got the SIGINT too)."""
    try:
        return proc.wait()
    except KeyboardInterrupt:
        print(
            "\ninterrupted: letting it clean up (a drill runs its rollbacks) ...", file=sys.stderr, flush=True
        )
        try:
            proc.wait(timeout=grace)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            proc.kill()
            proc.wait()
        raise


def run(args: list[str], env: dict[str, str]) -> int:
    show(args[2:] if args[:2] == [sys.executable, "-m"] else args)
    return wait_child(subprocess.Popen(args, cwd=ROOT, env=env))


def summary(out: Path) -> None:
    """The RTO/RPO lines from journal.json, and where the evidence is."""
    path = out / "journal.json"
    if not path.exists():
        print(f"no journal at {path}", flush=True)
        return
    journal = json.loads(path.read_text())
    m = journal.get("measurements") or {}
    objectives = {o["name"]: o for o in journal.get("objectives_result") or []}
    for name in ("rto", "rpo"):
        o = objectives.get(name) or {}
        value = (m.get(name) or {}).get(f"{name}_seconds")
        met = o.get("met")
        verdict = "n/a" if met is None else "met" if met else "NOT MET"
        measured = "not measured" if value is None else f"{value:.2f} s"
        objective = "-" if o.get("objective") is None else f"{o['objective']:g} s"
        print(f"  {name.upper()}: {measured}  (objective {objective}: {verdict})", flush=True)
    rpo = m.get("rpo") or {}
    if rpo.get("rows_lost") is not None:
        print(
            f"  acknowledged heartbeat writes lost: {rpo['rows_lost']} of {rpo.get('writes_on_old_primary')}",
            flush=True,
        )
    print(f"  result: {journal.get('status')} — {journal.get('reason')}", flush=True)
    print(f"  report: {out / 'report.html'}  (also report.md, junit.xml, metrics.prom, journal.json)")


def wait_steady_state(sandbox_dir: Path, timeout: float = 120.0) -> bool:
    """Wait until the public name resolves to a region whose /health answers 200.

    `dr sandbox up` returns when every component runs; the API pods still take the latency
    profile's pod-ready delay to become Ready, and a drill's steady-state hypothesis must not
    race them.
    """
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    state = json.loads((sandbox_dir / "state.json").read_text())
    resolver = state["resolver"]
    query = urllib.parse.urlencode({"name": resolver["name"]})
    deadline = time.monotonic() + timeout
    delay = 0.2
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{resolver['url']}/resolve?{query}", timeout=5) as resp:
                answer = json.loads(resp.read())
            with urllib.request.urlopen(answer["health_url"], timeout=5) as resp:
                if resp.status == 200:
                    print(f"steady state: {resolver['name']} -> {answer.get('region')} healthy", flush=True)
                    return True
        except (urllib.error.URLError, OSError, KeyError, ValueError):
            pass
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--time-scale", type=float, default=0.05, help="realistic AWS durations x this (default 0.05)"
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the realistic durations")
    parser.add_argument("--no-preview", action="store_true", help="skip the Pulumi preview")
    parser.add_argument("--out", type=Path, help="evidence directory (default drills/<UTC>-region-loss)")
    opts = parser.parse_args(argv)

    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="dr-demo-"))
    sandbox_dir = work / "sandbox"
    env = {
        **os.environ,
        "DR_SANDBOX_DIR": str(sandbox_dir),
        "DR_RUNS_DIR": str(work / "runs"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DR_TARGET", None)
    out = opts.out or ROOT / "drills" / f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{SCENARIO}"
    preview: subprocess.Popen[str] | None = None
    rc = 0
    try:
        if not opts.no_preview:  # ~20-30 s of Pulumi imports: overlap it with the sandbox start
            preview = subprocess.Popen(
                [sys.executable, str(ROOT / "scripts" / "preview.py"), "--stack", "prod"],
                cwd=ROOT,
                env={**env, "COLUMNS": env.get("COLUMNS", "100")},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,  # Ctrl-C is handled here, not by the preview
            )
        say(f"1. Start the sandbox: both regions on this machine (realistic latency x{opts.time_scale:g})")
        up = run(
            dr(
                "sandbox",
                "up",
                "--latency",
                "realistic",
                "--time-scale",
                f"{opts.time_scale:g}",
                "--seed",
                str(opts.seed),
            ),
            env,
        )
        if up != 0:
            print("the sandbox did not start (see above)", file=sys.stderr)
            return 2

        if not wait_steady_state(sandbox_dir):
            print("the sandbox never reached its steady state (public endpoint healthy)", file=sys.stderr)
            return 2

        say("2. The estate (from stacks/*.yaml — the single source of names and regions)")
        run(dr("topology", "show"), env)
        if preview is not None:
            say("   The Pulumi program for stack prod, previewed under mocks (no Pulumi CLI needed)")
            show(["python", "scripts/preview.py", "--stack", "prod"])
            text, _ = preview.communicate()
            print(text.rstrip(), flush=True)
            preview = None

        say(f"3. Game day: `dr --target sandbox drill run {SCENARIO}` — lose the primary region, fail over")
        rc = run(dr("--target", "sandbox", "drill", "run", SCENARIO, "--out", str(out)), env)

        say("4. Measured")
        summary(out)
        if rc == 0:
            print("\nThe drill met every objective.", flush=True)
        else:
            print(f"\nThe drill FAILED (exit {rc}): see the report above.", file=sys.stderr, flush=True)
        return rc
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr, flush=True)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the clean-up itself is not interruptible
        if preview is not None:
            preview.kill()
            preview.wait()
        say("5. Stop the sandbox")
        subprocess.run(dr("sandbox", "down"), cwd=ROOT, env=env, check=False)
        shutil.rmtree(work, ignore_errors=True)
        print(f"\ndemo finished in {time.monotonic() - started:.0f} s", flush=True)


if __name__ == "__main__":
    sys.exit(main())
