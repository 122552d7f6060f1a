"""report.html in a real browser: headless Chromium lays it out and measures that no label or cell
is clipped (scripts/report_screenshot.py); skipped when Chromium is not installed. The same layout
rules are checked without a browser in test_evidence_estate.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _chromium() -> bool:
    from report_screenshot import chromium

    return chromium() is not None


@pytest.mark.skipif(not _chromium(), reason="chromium is not installed (apt-get install -y chromium)")
def test_report_has_no_clipped_label_in_headless_chromium(tmp_path: Path) -> None:
    png = tmp_path / "report.png"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "report_screenshot.py"), "--sample", "--png", str(png)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=240,
    )
    verdict = json.loads(proc.stdout)
    assert proc.returncode == 0, verdict
    assert verdict["clipped"] == [] and verdict["labels"] > 10 and verdict["cells"] > 20
    assert png.exists() and png.stat().st_size > 10_000  # a real picture, for a human to look at
    assert 0 < verdict["max_char_px"] <= verdict["char_w_reserved"]
