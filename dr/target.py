"""Where commands send their calls: real AWS, or the embedded sandbox.

``--target sandbox`` (env ``DR_TARGET``) changes only *where* calls go — the boto3 endpoint, fake
credentials, and a kubeconfig with one context per cluster — never *what* procedures do.
The sandbox records its endpoints in ``$DR_SANDBOX_DIR/state.json`` (default ``.dr-sandbox/``)::

    {"aws_endpoint": "http://127.0.0.1:PORT", "kubeconfig": "/abs/path/kubeconfig", ...}
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dr.errors import BadInput

TargetName = Literal["aws", "sandbox"]
SANDBOX_CREDENTIALS = {
    "aws_access_key_id": "sandbox",
    "aws_secret_access_key": "sandbox",
    "aws_session_token": "sandbox",
}


def sandbox_dir() -> Path:
    return Path(os.environ.get("DR_SANDBOX_DIR", ".dr-sandbox")).absolute()


@dataclass(frozen=True)
class Target:
    name: TargetName
    endpoint_url: str | None = None
    kubeconfig: str | None = None
    credentials: dict[str, str] | None = None
    state: dict[str, Any] | None = None


def read_sandbox_state(directory: Path | None = None) -> dict[str, Any]:
    path = (directory or sandbox_dir()) / "state.json"
    if not path.exists():
        raise BadInput(
            f"--target sandbox: no sandbox is running ({path} does not exist)",
            resource=str(path),
            hint="start one with `dr sandbox up`, or set DR_SANDBOX_DIR to its directory",
        )
    try:
        state: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BadInput(f"sandbox state {path} is corrupt ({exc}); run `dr sandbox down` then `up`") from None
    return state


def resolve_target(name: str, directory: Path | None = None) -> Target:
    if name == "aws":
        return Target("aws", kubeconfig=os.environ.get("KUBECONFIG"))
    if name == "sandbox":
        state = read_sandbox_state(directory)
        return Target(
            "sandbox",
            endpoint_url=state["aws_endpoint"],
            kubeconfig=state.get("kubeconfig"),
            credentials=dict(SANDBOX_CREDENTIALS),
            state=state,
        )
    raise BadInput(f"unknown target {name!r}: use 'aws' or 'sandbox'")
