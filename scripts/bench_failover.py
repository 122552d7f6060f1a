"""P1/P2 benchmark: `dr failover` on the sandbox under a realistic, time-scaled latency profile.

Three identical sandboxes (same seed, same profile) are started one after the other:

* **parallel** — ``dr --target sandbox failover --mode unplanned --yes`` exactly as an operator runs
  it (the runbook engine: independent steps in parallel, adaptive polling). Figure P1 is its
  ``wall ÷ critical path`` (the executor's own critical path: the longest dependency chain with
  each step's measured duration).
* **sequential** — the runbook's procedure done by hand: the *same* steps, one after another in the
  plan's order, the waits botocore has a waiter for polled at its default interval (30 s for
  ``DBInstanceAvailable``, ``NodegroupActive``, ``ResourceRecordSetsChanged``; scaled by the same
  time scale) and the others as ``dr`` polls them (``kubectl rollout status`` watches), and — as
  the runbook does after patching the DB secret ("Restart pods to pick up new secret") — a rolling
  restart of every deployment (``app.dbSecret.restartPods: always``).
  Speed-up = sequential wall ÷ parallel wall (figure P1b).
* **sequential, dr's steps** — a third sandbox: the same, but skipping the restart as ``dr failover``
  does when the pods' connection is not stale (the standby's secret already names its replica).
  The speed-up over the very same work done one step at a time; reported beside P1b.
* **P2 polling slack** — during the parallel run a thread polls the sandbox's transition table
  (``GET /transitions``, every 50 ms) and keeps each transition's scheduled end; for every step that
  waits on one (promote ↔ ``rds.promote``, nodegroup ↔ ``eks.nodegroup_scale``, DNS ↔
  ``route53.insync``) slack = the step's end − the transition's end.

Run: ``.venv/bin/python scripts/bench_failover.py [--time-scale 0.05] [--seed 7]`` (prints JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BOTOCORE_WAITER_DELAY = 30.0  # seconds: RDS DBInstanceAvailable, EKS NodegroupActive, Route53 INSYNC
# Steps that are serial in any correct failover plan: the DB writable, then the target healthy,
# then the DNS change in sync (the runbook's order flips DNS first; ours must not).
ORDERING_FLOOR = ("promote-db", "target-healthy", "route-traffic")
WAITED: dict[str, str] = {  # step id -> the sandbox transition it waits for
    "promote-db": "rds.promote",
    "scale-nodegroup": "eks.nodegroup_scale",
    "route-traffic": "route53.insync",
}


def start(directory: Path, *, time_scale: float, seed: int, postgres: bool = False) -> dict[str, Any]:
    from dr.sandbox.daemon import start_background

    state, _ = start_background(
        directory,
        stack_dir=ROOT / "stacks",
        stack="prod",
        latency="realistic",
        time_scale=time_scale,
        seed=seed,
        postgres=postgres,
        parent_pid=os.getpid(),
        timeout=180,
    )
    return state


def stop(directory: Path) -> None:
    from dr.sandbox.daemon import stop_background

    stop_background(directory)


class TransitionWatch:
    """Polls GET /transitions; remembers every transition seen (kind, region, resource) -> dict."""

    def __init__(self, state: dict[str, Any], interval: float = 0.05) -> None:
        from dr.sandbox.admin import SandboxAdmin

        self.admin = SandboxAdmin.from_state(state)
        self.interval = interval
        self.seen: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TransitionWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                for tr in self.admin.transitions():
                    self.seen.setdefault((tr["kind"], tr["region"], tr["resource"]), tr)
            except Exception:
                continue


def _env(directory: Path, runs: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DR_TARGET": "sandbox",
        "DR_SANDBOX_DIR": str(directory),
        "DR_RUNS_DIR": str(runs),
        "DR_STACK_DIR": str(ROOT / "stacks"),
    }


def parallel_run(directory: Path, state: dict[str, Any], timeout: float) -> dict[str, Any]:
    """The operator's command; returns its run JSON plus the transitions it waited for."""
    with TransitionWatch(state) as watch:
        t0 = time.time()
        proc = subprocess.run(
            [sys.executable, "-m", "dr", "-o", "json", "failover", "--mode", "unplanned", "--yes",
             "--timeout", str(timeout)],
            env=_env(directory, directory / "runs"),
            capture_output=True,
            text=True,
            timeout=timeout * 4,
        )  # fmt: skip
        elapsed = time.time() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"dr failover exited {proc.returncode}: {proc.stderr[-2000:]}")
    run: dict[str, Any] = json.loads(proc.stdout)["run"]
    if run["status"] != "succeeded":
        raise RuntimeError(f"dr failover {run['status']}: {run['summary']}")
    return {"run": run, "process_seconds": elapsed, "transitions": list(watch.seen.values())}


def _inprocess_run(
    directory: Path,
    state: dict[str, Any],
    *,
    timeout: float,
    runs: str,
    max_workers: int = 8,
    step_polls: Any = None,
    restart_pods: str | None = None,
) -> dict[str, Any]:
    """The failover plan run in this process (the engine `dr failover` uses), optionally one step
    at a time, with per-step polling policies and ``app.dbSecret.restartPods`` overridden."""
    import datetime as dt

    from dr.aws.session import ClientProvider
    from dr.kube import KubeFactory
    from dr.procedures.failover import failover_plan
    from dr.procedures.failover_gates import preflight
    from dr.procedures.support import services
    from dr.runbook.runner import run_plan
    from dr.target import SANDBOX_CREDENTIALS
    from dr.topology import load_estate

    estate = load_estate(ROOT / "stacks", "prod")
    if restart_pods is not None:
        app = estate.app
        secret = app.db_secret.model_copy(update={"restart_pods": restart_pods})
        estate = estate.model_copy(update={"app": app.model_copy(update={"db_secret": secret})})
    clients = ClientProvider(endpoint_url=state["aws_endpoint"], credentials=dict(SANDBOX_CREDENTIALS))
    t0 = time.time()
    pre = preflight(
        clients, estate, target=estate.secondary, mode="unplanned", max_lag=dt.timedelta(seconds=60)
    )
    plan = failover_plan(estate, pre, timeout=timeout)
    kube = KubeFactory(kubeconfig=state["kubeconfig"], clients=clients)
    try:
        result = run_plan(
            plan,
            services(clients, estate, kube=kube),
            dry_run=False,
            assume_yes=True,
            resume=None,
            runs_dir=directory / runs,
            lock=None,
            break_lock=False,
            output="json",
            max_workers=max_workers,
            step_polls=step_polls,
        )
    finally:
        kube.close()
    if result.status != "succeeded":
        raise RuntimeError(f"{runs} failover {result.status}: {result.summary()}")
    return {"wall_seconds": result.wall_seconds, "process_seconds": time.time() - t0}


def sequential_run(
    directory: Path, state: dict[str, Any], *, time_scale: float, timeout: float, restart_pods: str
) -> dict[str, Any]:
    """The same plan, one step at a time; the waits botocore has a waiter for poll at its delay
    (fixed), the others (pods Ready: ``kubectl rollout status`` watches; health) as dr does."""
    from dr.runbook.poll import PollPolicy

    delay = BOTOCORE_WAITER_DELAY * time_scale
    fixed = PollPolicy(first=delay, factor=1.0, cap=delay, floor=delay, fraction=0.0)
    out = _inprocess_run(
        directory,
        state,
        timeout=timeout,
        runs=f"runs-sequential-{restart_pods}",
        max_workers=1,
        step_polls=dict.fromkeys(WAITED, fixed),
        restart_pods=restart_pods,
    )
    return {**out, "poll_interval": delay}


def slack(run: dict[str, Any], transitions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    steps = {s["id"]: s for s in run["steps"]}
    out = []
    for step_id, kind in WAITED.items():
        step = steps.get(step_id)
        matches = [t for t in transitions if t["kind"] == kind]
        if step is None or not matches or step.get("ended_at") is None:
            out.append({"step": step_id, "transition": kind, "slack_seconds": None})
            continue
        tr = max(matches, key=lambda t: t["ends"])
        waited = tr["ends"] - tr["started"]
        value = step["ended_at"] - tr["ends"]
        goal = max(1.0, 0.05 * waited)
        out.append(
            {
                "step": step_id,
                "transition": kind,
                "transition_seconds": round(waited, 3),
                "slack_seconds": round(value, 3),
                "goal_seconds": round(goal, 3),
                "met": value <= goal,
            }
        )
    return out


def failover_benchmark(time_scale: float = 0.05, seed: int = 7) -> dict[str, Any]:
    timeout = 600.0
    with tempfile.TemporaryDirectory(prefix="dr-bench-") as tmp:
        base = Path(tmp)
        par_dir, seq_dir = base / "parallel", base / "sequential"
        state = start(par_dir, time_scale=time_scale, seed=seed)
        try:
            par = parallel_run(par_dir, state, timeout)
        finally:
            stop(par_dir)
        seqs: dict[str, dict[str, Any]] = {}
        for restart_pods, directory in (("always", seq_dir), ("on-change", base / "sequential-dr-steps")):
            state = start(directory, time_scale=time_scale, seed=seed)
            try:
                seqs[restart_pods] = sequential_run(
                    directory, state, time_scale=time_scale, timeout=timeout, restart_pods=restart_pods
                )
            finally:
                stop(directory)
        seq, same_steps = seqs["always"], seqs["on-change"]
    run = par["run"]
    durations = {s["id"]: s["duration"] or 0.0 for s in run["steps"]}
    floor = sum(durations.get(sid, 0.0) for sid in ORDERING_FLOOR)
    return {
        "time_scale": time_scale,
        "seed": seed,
        "parallel_wall_seconds": run["wall_seconds"],
        "critical_path_seconds": run["critical_path_seconds"],
        "critical_path": run["critical_path"],
        "p1_ratio": run["ratio"],
        "sequential_wall_seconds": round(seq["wall_seconds"], 3),
        "sequential_poll_interval": seq["poll_interval"],
        "speedup": round(seq["wall_seconds"] / run["wall_seconds"], 3),
        # No plan that moves DNS only after the database is writable and the target healthy can be
        # faster than these steps back to back: the speed-up any such plan could reach.
        "ordering_floor_steps": list(ORDERING_FLOOR),
        "ordering_floor_seconds": round(floor, 3),
        "speedup_ceiling": round(seq["wall_seconds"] / floor, 3) if floor > 0 else None,
        # The same work as `dr failover` did (no restart: the pods' connection was not stale), one
        # step at a time: the speed-up the engine alone (parallelism, adaptive polling) buys.
        "sequential_dr_steps_wall_seconds": round(same_steps["wall_seconds"], 3),
        "speedup_over_dr_steps": round(same_steps["wall_seconds"] / run["wall_seconds"], 3),
        "restarted_in_parallel_run": [
            s["id"] for s in run["steps"] if s["id"].startswith("restart-") and s["status"] == "done"
        ],
        "p2_slack": slack(run, par["transitions"]),
        "steps": [
            {"id": s["id"], "status": s["status"], "duration": s["duration"], "polls": s.get("polls")}
            for s in run["steps"]
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-scale", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps(failover_benchmark(args.time_scale, args.seed), indent=2))


if __name__ == "__main__":
    main()
