"""scripts/preview.py: renders the declared estate and fails on policy violations / bad config."""

from __future__ import annotations

import copy
import importlib.util
import io
from pathlib import Path
from types import ModuleType

from rich.console import Console

from dr.infra.mockrun import MockRun

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "preview.py"


def _preview() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dr_preview_script", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _render(run: MockRun) -> tuple[int, str]:
    buf = io.StringIO()
    bad = _preview().render(run, Console(file=buf, width=200, color_system=None))
    return bad, buf.getvalue()


def test_tree_shows_components_physical_names_and_key_properties(runs: dict[str, MockRun]) -> None:
    bad, text = _render(runs["dr"])
    assert bad == 0
    for needle in (
        "stack dr — standby in us-east-1",
        "Database database",
        "claude-deployment-replica: replica of arn:aws:rds:us-west-2:",
        "SECONDARY failover alias",
        "claude-deployment-api: replicas=1",
        "WebAcl claude-deployment-dr-waf",
    ):
        assert needle in text, needle


def test_policy_violations_are_counted_and_shown(runs: dict[str, MockRun]) -> None:
    broken = copy.deepcopy(runs["prod"])
    db = broken.one("aws:rds/instance:Instance")
    db.inputs["multiAz"] = False
    db.inputs["backupRetentionPeriod"] = 1
    bad, text = _render(broken)
    assert bad == 2
    assert "POLICY rds-multi-az" in text and "POLICY rds-backup-retention" in text


def test_bad_stack_file_exits_2_before_running_the_program(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.prod.yaml").write_text("config:\n  aws:region: mars-1\n")
    assert _preview().main(["--stack-dir", str(tmp_path)]) == 2
