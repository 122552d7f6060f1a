"""`dr incident` through the CLI: files written, JSON output, bad input exit 2."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from dr.cli.main import cli


def test_incident_cli_flow(tmp_path: Path) -> None:
    run = CliRunner()
    base = str(tmp_path / "inc")
    res = run.invoke(
        cli,
        [
            "-o",
            "json",
            "incident",
            "start",
            "--sev",
            "2",
            "--summary",
            "Errors up",
            "--dir",
            base,
            "--commander",
            "bob",
        ],
    )
    assert res.exit_code == 0, res.output
    start = json.loads(res.stdout)
    assert start["kind"] == "start" and start["incident"]["channel"].startswith("#incident-")
    assert "updates every 30 minutes" in start["text"]
    assert Path(start["path"]).read_text() == start["text"]
    res = run.invoke(
        cli, ["incident", "update", "--summary", "Mitigated", "--actions", "scaled api", "--dir", base]
    )
    assert res.exit_code == 0, res.output
    assert "📊 INCIDENT UPDATE - SEV2" in res.stdout and "Actions Taken: scaled api" in res.stdout
    res = run.invoke(
        cli, ["-o", "json", "incident", "resolve", "--summary", "Done", "--root-cause", "pool", "--dir", base]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["incident"]["status"] == "resolved"
    res = run.invoke(cli, ["-o", "json", "incident", "list", "--dir", base])
    assert [i["status"] for i in json.loads(res.stdout)] == ["resolved"]


def test_incident_cli_bad_input(tmp_path: Path) -> None:
    run = CliRunner()
    res = run.invoke(cli, ["incident", "start", "--sev", "7", "--summary", "x", "--dir", str(tmp_path)])
    assert res.exit_code == 2
    res = run.invoke(cli, ["incident", "update", "--summary", "x", "--dir", str(tmp_path)])
    assert res.exit_code == 2 and "no open incident" in res.output
