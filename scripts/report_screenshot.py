"""Screenshot a drill report in headless Chromium and check that no label is clipped.

    .venv/bin/python scripts/report_screenshot.py RUN_DIR [--png out.png]
    .venv/bin/python scripts/report_screenshot.py --sample [--png out.png]

``RUN_DIR`` holds a drill's report.html (``--sample`` renders one from a built-in failed run with
long step names). The page is loaded twice by ``chromium --headless``: once for a PNG screenshot
(for a human to look at), once with a measuring script injected whose verdict Chromium prints with
``--dump-dom``. It checks, in the browser's real layout and fonts, that every text of the SVG
timeline lies inside the picture, that every step label ends before the bars start, and that no
table cell's content is wider than the cell (``scrollWidth > clientWidth``: cut off) and no word
of a cell is split over two lines ("hypothe|sis"). It also
reports the widest glyph advance seen, which must stay within ``dr.drills.report.CHAR_W`` (the
width the layout reserves per character).

Exit 0: nothing clipped; 1: something is (listed); 2: Chromium is not installed
(``apt-get install -y chromium``). Prints the verdict as JSON.
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_MEASURE = r"""
<script>
window.addEventListener('load', function () {
  var out = {clipped: [], labels: 0, cells: 0, max_char_px: 0};
  document.querySelectorAll('svg').forEach(function (svg) {
    var box = svg.getBoundingClientRect();
    var bars = Array.prototype.map.call(svg.querySelectorAll('rect.step'),
      function (r) { return r.getBoundingClientRect().left; });
    var barStart = bars.length ? Math.min.apply(null, bars) : Infinity;
    svg.querySelectorAll('text').forEach(function (t) {
      var r = t.getBoundingClientRect();
      var n = (t.textContent || '').length;
      if (n) { out.max_char_px = Math.max(out.max_char_px, r.width / n); }
      out.labels += 1;
      if (r.left < box.left - 0.5 || r.right > box.right + 0.5) {
        out.clipped.push({text: t.textContent, why: 'outside the picture', right: r.right, edge: box.right});
      }
      if (t.getAttribute('class') === 'label' && r.right > barStart + 0.5) {
        out.clipped.push({text: t.textContent, why: 'runs under the bars', right: r.right, bars: barStart});
      }
    });
  });
  document.querySelectorAll('td, th').forEach(function (c) {
    out.cells += 1;
    if (c.scrollWidth > c.clientWidth + 1) {
      out.clipped.push({text: c.textContent.slice(0, 80), why: 'wider than its cell'});
    }
    // a word of a short cell split over two lines ("hypothe|sis") reads as a cut label
    var walker = document.createTreeWalker(c, NodeFilter.SHOW_TEXT);
    for (var node = walker.nextNode(); node; node = walker.nextNode()) {
      var re = /[^\s\-\/·,:;()]+/g, m;  // between break opportunities (spaces, hyphens…)
      while ((m = re.exec(node.data)) !== null) {
        if (m[0].length > 40) { continue; }  // a long token (URL, ARN) may wrap
        var range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        var lines = {};
        Array.prototype.forEach.call(range.getClientRects(), function (r) {
          if (r.width > 0) { lines[Math.round(r.top)] = true; }
        });
        if (Object.keys(lines).length > 1) {
          out.clipped.push({text: m[0], why: 'word split over two lines'});
        }
      }
    }
  });
  var pre = document.createElement('pre');
  pre.id = 'clip-report';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _browser(binary: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1400,1800",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def sample_doc() -> dict[str, Any]:
    """A failed run with long step names in every phase (what used to be cut)."""
    names = [
        ("hypothesis", "replica-caught-up-within-the-rpo-budget", "ok"),
        ("hypothesis", "api-healthy", "ok"),
        ("method", "planned-failover-to-the-disaster-recovery-region", "error"),
        ("verification", "dns-on-secondary", "skipped"),
        ("rollback", "fail-back-to-primary", "ok"),
        ("rollback", "reprotect-dr-after-the-switchover-back", "ok"),
    ]
    steps = [
        {
            "phase": phase,
            "name": name,
            "provider": "failover" if phase == "method" else "endpoint",
            "status": status,
            "started_at": 1000.0 + 2 * i,
            "ended_at": 1001.5 + 2 * i,
            "duration": 1.5,
            "recovery": phase == "method",
            "error": "OperationFailed: plan failover (run r) failed: promote-db: InvalidDBInstanceState "
            "(the instance is not a read replica)"
            if status == "error"
            else "",
        }
        for i, (phase, name, status) in enumerate(names)
    ]
    return {
        "format": "dr-drill-journal/1",
        "run_id": "20261206T000000Z-sample",
        "scenario": {"name": "planned-switchover", "title": "Planned switchover to the DR region"},
        "target": "sandbox",
        "estate": {
            "app": "chess-ai",
            "primary": {"region": "eu-west-1", "stack": "chess-primary"},
            "secondary": {"region": "eu-central-1", "stack": "chess-standby"},
            "latency": {"profile": "fast", "time_scale": 0.05},
        },
        "status": "failed",
        "exit_code": 1,
        "reason": "method planned-failover-to-the-disaster-recovery-region failed",
        "started_t": 1000.0,
        "ended_t": 1012.0,
        "fault_at": 1004.0,
        "recovery_done_at": 1012.0,
        "steps": steps,
        "objectives_result": [
            {"name": "rto", "objective": 900.0, "measured": None, "met": False, "note": "not measured"},
            {"name": "rpo", "objective": 0.0, "measured": 0.0, "met": True, "note": "0.00s <= objective 0s"},
        ],
        "measurements": {"rto": {"recovered_at": 1011.9, "rto_seconds": 7.9}, "rpo": {}},
        "probes": {"samples": [[1005.0, False, "http://x", 404, None, 0.01, "HTTP 404 on /healthz"]]},
    }


def check(report: Path, png: Path | None) -> dict[str, Any]:
    binary = chromium()
    if binary is None:
        return {"error": "chromium is not installed (apt-get install -y chromium)"}
    with tempfile.TemporaryDirectory(prefix="dr-report-shot-") as tmp:
        page = Path(tmp) / "measure.html"
        page.write_text(report.read_text().replace("</body>", _MEASURE + "</body>"))
        dom = _browser(binary, "--virtual-time-budget=5000", "--dump-dom", page.as_uri())
        found = re.search(r'<pre id="clip-report">(.*?)</pre>', dom.stdout, re.S)
        if found is None:
            return {"error": f"chromium printed no verdict (exit {dom.returncode}): {dom.stderr[-500:]}"}
        verdict: dict[str, Any] = json.loads(html.unescape(found.group(1)))
        if png is not None:
            shot = _browser(binary, f"--screenshot={png.absolute()}", report.absolute().as_uri())
            verdict["screenshot"] = str(png) if png.exists() else f"not written: {shot.stderr[-300:]}"
    from dr.drills.report import CHAR_W

    verdict["char_w_reserved"] = CHAR_W
    if verdict["max_char_px"] > CHAR_W:
        verdict["clipped"].append(
            {"why": f"glyphs {verdict['max_char_px']:.2f} px wide on average: more than CHAR_W {CHAR_W}"}
        )
    return verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", type=Path, help="a drill run directory (holds report.html)")
    parser.add_argument("--sample", action="store_true", help="check a report rendered from a built-in run")
    parser.add_argument("--png", type=Path, help="where to write the screenshot")
    args = parser.parse_args()
    if args.sample == (args.run_dir is not None):
        parser.error("give RUN_DIR or --sample")
    with tempfile.TemporaryDirectory(prefix="dr-report-sample-") as tmp:
        if args.sample:
            from dr.drills.report import render_html

            report = Path(tmp) / "report.html"
            report.write_text(render_html(sample_doc()))
        else:
            report = args.run_dir / "report.html"
            if not report.exists():
                print(f"{report} does not exist: pass a drill run directory", file=sys.stderr)
                sys.exit(2)
        verdict = check(report, args.png)
    print(json.dumps(verdict, indent=2))
    if "error" in verdict:
        sys.exit(2)
    sys.exit(1 if verdict["clipped"] else 0)


if __name__ == "__main__":
    main()
