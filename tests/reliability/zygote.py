"""A pre-imported parent that forks real ``dr`` processes (reliability tests only).

Each ``dr`` process of these tests would otherwise spend seconds importing boto3 and the kubernetes
client on this machine. The zygote imports them once, then for every request forks a child that runs
exactly what ``python -m dr ARGS`` runs (``runpy.run_module("dr", run_name="__main__")``) with the
request's argv, environment, working directory and stdout/stderr files. The child is an ordinary OS
process: the test ``kill -9``s it by pid, and the zygote reports its exit status like ``Popen`` would
(``-9`` after SIGKILL).

Protocol: one JSON object per line on stdin, one JSON reply per line on stdout.
``{"op": "spawn", "argv": [...], "env": {...}, "cwd": "...", "stdout": "file", "stderr": "file"}``
-> ``{"pid": N}``; ``{"op": "wait"|"poll", "pid": N}`` -> ``{"returncode": R}`` (poll: None while running).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import runpy
import signal
import sys
from typing import Any

PRELOAD = (
    "boto3",
    "botocore.session",
    "botocore.exceptions",
    "kubernetes.client",
    "kubernetes.config",
    "dr.cli.main",
    "dr.aws.session",
    "tests.reliability.callog",
)


def _preload() -> None:
    for name in PRELOAD:
        importlib.import_module(name)
    from dr.cli.main import COMMANDS

    for target, _ in COMMANDS.values():
        importlib.import_module(target.split(":")[0])
    for pkg in ("dr.cli", "dr.procedures", "dr.drills", "dr.runbook", "dr.aws"):
        mod = importlib.import_module(pkg)
        for entry in sorted(os.listdir(os.path.dirname(mod.__file__ or ""))):
            if entry.endswith(".py") and entry != "__init__.py":
                with contextlib.suppress(Exception):  # optional; the child imports it again
                    importlib.import_module(f"{pkg}.{entry[:-3]}")
    from tests.reliability.callog import install

    install()


def _child(req: dict[str, Any]) -> None:
    try:
        os.environ.clear()
        os.environ.update(req["env"])
        os.chdir(req["cwd"])
        out = os.open(req["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        err = os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if os.environ.get("DR_RELIABILITY_FAKE_PG") == "caught-up":
            from tests.reliability.fakepg import install as fake_pg

            fake_pg()
        sys.argv = ["dr", *req["argv"]]
        code = 0
        try:
            runpy.run_module("dr", run_name="__main__", alter_sys=True)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if exc.code is not None and not isinstance(exc.code, int):
                print(exc.code, file=sys.stderr)
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    finally:
        os._exit(70)


def main() -> None:
    _preload()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "spawn":
            pid = os.fork()
            if pid == 0:
                _child(req)
            reply: dict[str, Any] = {"pid": pid}
        elif req["op"] in ("wait", "poll"):
            flags = os.WNOHANG if req["op"] == "poll" else 0
            done, status = os.waitpid(int(req["pid"]), flags)
            reply = {"returncode": os.waitstatus_to_exitcode(status) if done else None}
        else:
            reply = {"error": f"unknown op {req['op']!r}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
