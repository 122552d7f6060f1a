"""The running sandbox for integration tests.

The sandbox runs in a *subprocess* (``python -m dr.sandbox.daemon serve``, exactly what
``dr sandbox up`` starts): moto keeps its state in process-global backends, and unit tests in the
same xdist worker use ``mock_aws``, which resets them. Tests talk to it over HTTP only — boto3 via
``endpoint_url``, the admin API, the resolver, kubeconfig — like the CLI does with ``--target sandbox``.

* ``sandbox`` (session, one per xdist worker): shared; tests must leave it as they found it
  (faults are cleared after every test by ``_clean_faults``). No promotion, no region loss here.
* ``fresh_sandbox`` (module): a private one for tests that change the estate for good
  (promotion, failover, region loss).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import STACKS


@dataclass
class RunningSandbox:
    directory: Path
    state: dict[str, Any]
    _providers: list[Any] = field(default_factory=list)

    @property
    def admin(self) -> Any:
        from dr.sandbox.admin import SandboxAdmin

        return SandboxAdmin.from_state(self.state)

    @property
    def estate(self) -> Any:
        from dr.topology import load_estate

        return load_estate(STACKS, "prod")

    def clients(self, **kwargs: Any) -> Any:
        """A ClientProvider on the sandbox (no retries by default: tests assert error codes)."""
        from dr.aws.session import ClientProvider
        from dr.target import SANDBOX_CREDENTIALS

        kwargs.setdefault("endpoint_url", self.state["aws_endpoint"])
        kwargs.setdefault("credentials", dict(SANDBOX_CREDENTIALS))
        kwargs.setdefault("max_attempts", 0)  # botocore: retries after the first attempt
        kwargs.setdefault("retry_mode", "standard")
        kwargs.setdefault("connect_timeout", 2.0)
        kwargs.setdefault("read_timeout", 10.0)
        provider = ClientProvider(**kwargs)
        self._providers.append(provider)
        return provider

    def password(self) -> str:
        return Path(self.state["postgres"]["password_file"]).read_text().strip()


def run_dr(
    sb: RunningSandbox, *args: str, timeout: float = 120, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """``python -m dr --stack-dir stacks --target sandbox ARGS`` on ``sb``, as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "dr", "--stack-dir", str(STACKS), "--target", "sandbox", *args],
        env={**os.environ, "DR_SANDBOX_DIR": str(sb.directory), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def stdout_json(proc: Any) -> Any:
    """The one JSON document a ``dr -o json`` subprocess wrote to stdout (an AssertionError showing
    what it wrote instead)."""
    import json

    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(
            f"stdout is not one JSON document (rc {proc.returncode}): {proc.stdout[:800]!r}\n"
            f"{proc.stderr[-2000:]}"
        ) from None


def _start(directory: Path, latency: str = "fast", **kwargs: Any) -> RunningSandbox:
    import os

    from dr.sandbox.daemon import start_background

    state, _ = start_background(
        directory,
        stack_dir=STACKS,
        stack="prod",
        latency=latency,
        timeout=120,
        parent_pid=os.getpid(),  # a killed test run leaves no sandbox behind
        **kwargs,
    )
    return RunningSandbox(directory, state)


@contextlib.contextmanager
def running_sandbox(directory: Path, latency: str = "fast", **kwargs: Any) -> Iterator[RunningSandbox]:
    from dr.sandbox.daemon import stop_background

    sb = _start(directory, latency, **kwargs)
    try:
        yield sb
    finally:
        stop_background(directory)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path_factory.mktemp("sandbox") / "sbx") as sb:
        yield sb


@pytest.fixture(scope="module")
def fresh_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path_factory.mktemp("fresh-sandbox") / "sbx") as sb:
        yield sb


@pytest.fixture(autouse=True)
def _clean_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    for name in ("sandbox", "fresh_sandbox"):
        if name in request.fixturenames:
            sb: RunningSandbox = request.getfixturevalue(name)
            with contextlib.suppress(Exception):
                sb.admin.clear_faults()
                sb.admin.reset_latency()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
