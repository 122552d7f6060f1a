"""Background-sandbox bookkeeping that needs no running sandbox."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dr.sandbox.manager import (
    MARKER,
    _pid_alive,
    _write_private,
    sandbox_status,
    stop_background,
)


def test_pid_alive_detects_dead_and_zombie_processes() -> None:
    assert _pid_alive(os.getpid())
    assert not _pid_alive(None)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not _pid_alive(proc.pid)
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    # Not reaped yet: exited but still in the process table.
    os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)
    assert not _pid_alive(zombie.pid)
    zombie.wait()


def test_status_of_an_empty_directory(tmp_path: Path) -> None:
    status = sandbox_status(tmp_path / "none")
    assert status["running"] is False
    assert status["starting"] is False


def test_down_never_removes_a_directory_it_did_not_create(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    result = stop_background(precious)
    assert result["removed"] is False
    assert (precious / "notes.txt").exists()
    # With the marker (a sandbox directory whose process is already gone) it is cleaned up.
    (precious / MARKER).write_text("x")
    assert stop_background(precious)["removed"] is True
    assert not precious.exists()


def test_password_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    _write_private(path, "s3cret")
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text() == "s3cret"
