"""Test-only instrumentation of a real `python -m dr ...` process (installed by shim/sitecustomize.py).

* ``DR_RELIABILITY_CALL_LOG=<file>``: every AWS call attempted through any ``ClientProvider`` and
  every Kubernetes write is appended to the file as one JSON line, written through (flushed) before
  the request is sent, so a ``kill -9`` loses nothing that reached the wire.
* ``DR_RELIABILITY_PAUSE_AFTER=<event>:<step>:<seconds>``: sleep there (a slow run holding its lock).
* ``DR_RELIABILITY_HANG_AFTER=<event>:<step>`` (e.g. ``step_done:promote-db``): once the journal has
  recorded that event, the process writes ``DR_RELIABILITY_MARKER`` and blocks the journaling thread,
  waiting for the test's ``kill -9``.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

_LOCK = threading.Lock()


def _append(entry: dict[str, Any]) -> None:
    path = os.environ.get("DR_RELIABILITY_CALL_LOG")
    if not path:
        return
    line = json.dumps(entry, default=str) + "\n"
    with _LOCK, open(path, "a") as fh:
        fh.write(line)
        fh.flush()


def _install_aws() -> None:
    from dr.aws import session

    original = session.ClientProvider._make_hook

    def make_hook(self: Any, service: str, region: str) -> Any:
        inner = original(self, service, region)

        def hook(model: Any, params: dict[str, Any], **kw: Any) -> None:
            mutating = session.is_mutating(model.name)
            _append(
                {
                    "kind": "aws",
                    "service": service,
                    "operation": model.name,
                    "region": region,
                    "params": session.safe_params(params),
                    "mutating": mutating,
                    # a read-only provider refuses the call before it is sent
                    "sent": not (mutating and self.read_only),
                    "pid": os.getpid(),
                    "at": time.time(),
                }
            )
            inner(model, params, **kw)

        return hook

    session.ClientProvider._make_hook = make_hook  # type: ignore[method-assign]


def _install_kube() -> None:
    from kubernetes.client import rest

    original = rest.RESTClientObject.request

    def request(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if method.upper() not in ("GET", "HEAD", "OPTIONS"):
            body = kwargs.get("body")
            _append(
                {
                    "kind": "kube",
                    "operation": method.upper(),
                    "path": url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0],
                    "body": body if isinstance(body, (dict, list)) else None,
                    "mutating": True,
                    "sent": True,
                    "pid": os.getpid(),
                    "at": time.time(),
                }
            )
        return original(self, method, url, *args, **kwargs)

    rest.RESTClientObject.request = request  # type: ignore[method-assign]


def _install_hang() -> None:
    from dr.runbook.journal import Journal

    original = Journal.event

    def event(self: Any, kind_: str, **fields: Any) -> None:
        original(self, kind_, **fields)
        pause = os.environ.get("DR_RELIABILITY_PAUSE_AFTER", "")
        if pause and pause.rsplit(":", 1)[0] == f"{kind_}:{fields.get('step')}":
            time.sleep(float(pause.rsplit(":", 1)[1]))  # test only: hold the lock a while
        spec = os.environ.get("DR_RELIABILITY_HANG_AFTER")
        if spec and spec == f"{kind_}:{fields.get('step')}":
            Path(os.environ["DR_RELIABILITY_MARKER"]).write_text(spec)
            # Freeze every thread at this exact point; the test then kill -9s the process.
            os.kill(os.getpid(), signal.SIGSTOP)
            threading.Event().wait()

    Journal.event = event  # type: ignore[method-assign,assignment]


_INSTALLED = False


def install() -> None:
    """Patch once; every hook reads its environment variables at call time."""
    global _INSTALLED
    if _INSTALLED:
        return
    _INSTALLED = True
    _install_aws()
    _install_kube()
    _install_hang()


def read_log(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
