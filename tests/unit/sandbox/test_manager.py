"""The sandbox assembly's bookkeeping that needs no running sandbox."""

from __future__ import annotations

from pathlib import Path

from dr.sandbox.manager import _write_private


def test_password_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    _write_private(path, "s3cret")
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text() == "s3cret"
