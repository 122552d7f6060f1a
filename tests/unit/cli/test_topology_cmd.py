from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner

from dr.cli.main import cli


def test_topology_show_json_lists_both_regions() -> None:
    result = CliRunner().invoke(cli, ["-o", "json", "topology", "show"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["sites"]["primary"]["region"] == "us-west-2"
    assert data["sites"]["secondary"]["region"] == "us-east-1"
    assert data["sites"]["secondary"]["rds"]["role"] == "cross-region read replica"
    assert data["sites"]["secondary"]["deployments"]["claude-deployment-api"] == 1


def test_topology_show_table() -> None:
    result = CliRunner().invoke(cli, ["topology", "show"])
    assert result.exit_code == 0, result.output
    assert "us-west-2" in result.output and "us-east-1" in result.output


def test_bad_stack_file_exits_2_naming_file_and_key(stack_dir: Path) -> None:
    path = stack_dir / "Pulumi.dr.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["config"]["aws:region"] = "mars-north-1"
    path.write_text(yaml.safe_dump(doc))
    proc = subprocess.run(
        [sys.executable, "-m", "dr", "--stack-dir", str(stack_dir), "-o", "json", "topology", "show"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "Pulumi.dr.yaml" in proc.stderr and "mars-north-1" in proc.stderr
    assert json.loads(proc.stdout)["error"] == "ConfigError"
