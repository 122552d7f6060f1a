"""Background-sandbox bookkeeping that needs no running sandbox."""

from __future__ import annotations

from pathlib import Path

from dr.sandbox.daemon import sandbox_status, stop_background
from dr.sandbox.manager import MARKER


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
