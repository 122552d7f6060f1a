"""The sandbox as a background process: what ``dr sandbox up/down/status`` call.

``python -m dr.sandbox.daemon serve --dir D ...`` runs one :class:`dr.sandbox.manager.Sandbox` in
the foreground until SIGTERM (or until ``--parent-pid`` exits) and writes ``D/state.json`` (the
contract of :mod:`dr.target`), reporting its start-up in ``D/progress.log``.
:func:`start_background` spawns it detached and waits until it is ready, :func:`stop_background`
stops exactly the processes it recorded and removes its directory, :func:`sandbox_status` says
what runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from dr.errors import BadInput, OperationFailed, TimeoutExpired
from dr.runbook.lock import pid_alive
from dr.sandbox.latency import profile
from dr.sandbox.manager import MARKER, STATE_FILE, Progress, Sandbox

log = logging.getLogger("dr.sandbox.daemon")

LOG_FILE = "sandbox.log"
PROGRESS_FILE = "progress.log"


def serve(argv: list[str] | None = None) -> int:
    """Foreground entry point of the background sandbox (``python -m dr.sandbox.daemon serve``)."""
    parser = argparse.ArgumentParser(prog="python -m dr.sandbox.daemon")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--dir", required=True)
    p.add_argument("--stack-dir", default="stacks")
    p.add_argument("--stack", default=None)
    p.add_argument("--latency", default="none")
    p.add_argument("--time-scale", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--no-postgres", action="store_true")
    p.add_argument("--parent-pid", type=int, default=None, help="stop when this process exits (tests)")
    args = parser.parse_args(argv)

    directory = Path(args.dir).absolute()
    directory.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    progress_path = directory / PROGRESS_FILE

    def say(msg: str) -> None:
        log.info("%s", msg)
        with progress_path.open("a") as fh:
            fh.write(msg + "\n")

    from dr.topology import load_estate

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    estate = load_estate(args.stack_dir, args.stack)
    sandbox = Sandbox(
        estate,
        profile(args.latency, args.time_scale, args.seed),
        directory=directory,
        postgres=False if args.no_postgres else None,
        seed=args.seed,
    )
    try:
        sandbox.start(progress=say)
        sandbox.write_state()
        say("state written")
        while not stop.wait(1.0):
            if args.parent_pid and not pid_alive(args.parent_pid):
                say(f"parent process {args.parent_pid} is gone")
                break
    finally:
        say("stopping")
        sandbox.stop()
    return 0


def read_state(directory: Path) -> dict[str, Any] | None:
    path = directory / STATE_FILE
    if not path.exists():
        return None
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return data


def _http_json(url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            data: dict[str, Any] = json.loads(resp.read())
            return data
    except (urllib.error.URLError, OSError, ValueError):
        return None


def sandbox_status(directory: Path) -> dict[str, Any]:
    """What runs: the state file, each recorded pid alive or dead, the admin endpoint answering."""
    state = read_state(directory)
    if state is None:
        pid_file = directory / "manager.pid"
        pid = int(pid_file.read_text()) if pid_file.exists() else None
        return {"running": False, "starting": pid_alive(pid), "directory": str(directory), "pid": pid}
    processes = {"manager": state.get("pids", {}).get("manager")}
    for name, pid in (state.get("pids", {}).get("postgres") or {}).items():
        processes[f"postgres:{name}"] = pid
    alive = {name: pid_alive(pid) for name, pid in processes.items()}
    ready = _http_json(f"{state['admin_url']}/ready") if state.get("admin_url") else None
    return {
        "running": bool(alive.get("manager")) and bool(ready and ready.get("ready")),
        "directory": str(directory),
        "processes": [{"name": n, "pid": processes[n], "alive": alive[n]} for n in processes],
        "aws_endpoint": state.get("aws_endpoint"),
        "aws_endpoints": state.get("aws_endpoints"),
        "kubeconfig": state.get("kubeconfig"),
        "health_urls": state.get("health_urls"),
        "resolver": state.get("resolver"),
        "latency": state.get("latency"),
        "components": state.get("components"),
        "postgres_dsns": (state.get("postgres") or {}).get("dsns"),
    }


def start_background(
    directory: Path,
    *,
    stack_dir: Path | str,
    stack: str,
    latency: str = "none",
    time_scale: float = 1.0,
    seed: int | None = None,
    postgres: bool = True,
    parent_pid: int | None = None,
    timeout: float = 90.0,
    progress: Progress | None = None,
) -> tuple[dict[str, Any], bool]:
    """Start ``serve`` detached and wait until it is ready. Returns (state, already_running).

    ``parent_pid``: the sandbox stops by itself when that process exits (test fixtures, so a
    killed test run leaves nothing behind); ``dr sandbox up`` leaves it unset.
    """
    directory = Path(directory).absolute()
    status = sandbox_status(directory)
    if status["running"]:
        state = read_state(directory)
        assert state is not None
        return state, True
    if status.get("starting"):
        raise BadInput(
            f"a sandbox is still starting in {directory} (pid {status.get('pid')})",
            hint="wait for it, or run `dr sandbox down` first",
        )
    if read_state(directory) is not None:
        stop_background(directory)  # stale state from a dead sandbox: clean it up first
    profile(latency, time_scale)  # validate before spawning
    directory.mkdir(parents=True, exist_ok=True)
    for name in (PROGRESS_FILE, STATE_FILE):
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()
    cmd = [
        sys.executable, "-m", "dr.sandbox.daemon", "serve", "--dir", str(directory),
        "--stack-dir", str(Path(stack_dir).absolute()), "--stack", stack,
        "--latency", latency, "--time-scale", str(time_scale),
    ]  # fmt: skip
    if seed is not None:
        cmd += ["--seed", str(seed)]
    if not postgres:
        cmd.append("--no-postgres")
    if parent_pid is not None:
        cmd += ["--parent-pid", str(parent_pid)]
    logf = (directory / LOG_FILE).open("ab")
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=logf,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        close_fds=True,
    )
    logf.close()
    (directory / "manager.pid").write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    seen = 0
    delay = 0.05
    while True:
        lines = (
            (directory / PROGRESS_FILE).read_text().splitlines()
            if (directory / PROGRESS_FILE).exists()
            else []
        )
        for line in lines[seen:]:
            if progress:
                progress(line)
        seen = len(lines)
        state = read_state(directory)
        if state is not None and state.get("ready"):
            return state, False
        if proc.poll() is not None:
            tail = _tail(directory / LOG_FILE)
            raise OperationFailed(
                f"the sandbox process exited with code {proc.returncode} before it was ready; log {directory / LOG_FILE}:\n{tail}"
            )
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            raise TimeoutExpired(
                f"the sandbox was not ready after {timeout:.0f}s; see {directory / LOG_FILE}"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop_background(directory: Path, timeout: float = 20.0) -> dict[str, Any]:
    """Stop exactly the processes this sandbox started (by recorded pid), then remove its state."""
    directory = Path(directory).absolute()
    state = read_state(directory)
    pid_file = directory / "manager.pid"
    manager_pid = (state or {}).get("pids", {}).get("manager")
    if manager_pid is None and pid_file.exists():
        with contextlib.suppress(ValueError):
            manager_pid = int(pid_file.read_text())
    stopped: list[int] = []
    if manager_pid and pid_alive(manager_pid):
        os.kill(manager_pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_alive(manager_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(manager_pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(manager_pid, signal.SIGKILL)
        stopped.append(int(manager_pid))
    pg_state = ((state or {}).get("postgres") or {}).get("state")
    if pg_state:
        with contextlib.suppress(Exception):
            from dr.sandbox.pg_server import stop_from_state

            stopped += stop_from_state(pg_state, remove=True)
    leftover = [
        pid
        for pid in [manager_pid, *(((state or {}).get("pids", {}).get("postgres") or {}).values())]
        if pid and pid_alive(pid)
    ]
    removed = False
    if (directory / MARKER).exists() or state is not None:
        shutil.rmtree(directory, ignore_errors=True)
        removed = not directory.exists()
    return {"stopped": stopped, "still_running": leftover, "removed": removed, "directory": str(directory)}


if __name__ == "__main__":
    code = serve()
    # Every component is stopped and the state is written: skip the interpreter's teardown (it
    # collected moto's backends for ~1 s while `dr sandbox down` and every test waited for the pid).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
