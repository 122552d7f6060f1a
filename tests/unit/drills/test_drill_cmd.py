"""`dr drill list|run|report|history` through click's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from dr.cli.main import cli

FAKE = """
title: CLI drill
target: [sandbox]
measure: {heartbeat: false, prober: false}
objectives: {rto_seconds: 10, rpo_seconds: 0}
method:
  - {name: m, type: action, provider: t-record, arguments: {tag: m}}
verification:
  probes: [{name: v, type: probe, provider: t-value, arguments: {value: VALUE}, tolerance: 1}]
rollbacks:
  - {name: r, type: action, provider: t-record, arguments: {tag: rollback}}
"""


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_drill_list_json_has_all_shipped_scenarios(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("title: x\nmethod:\n  - {name: a, type: action, provider: nope}\n")
    res = invoke("-o", "json", "drill", "list", "--scenario-dir", str(tmp_path))
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.output)}
    for name in (
        "region-loss",
        "planned-switchover",
        "db-corruption",
        "az-failure",
        "bad-deploy",
        "failback",
    ):
        assert rows[name]["valid"], name
    # default target aws: region-loss runs only on the sandbox, its rollback is sandbox-only
    assert "region-restore" in rows["region-loss"]["pending_providers"]
    assert rows["broken"]["valid"] is False and ":3:" in rows["broken"]["error"]


def test_drill_list_table() -> None:
    res = invoke("drill", "list")
    assert res.exit_code == 0 and "region-loss" in res.output


def test_dry_run_prints_plan_and_writes_nothing(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    res = invoke("-o", "json", "--target", "aws", "drill", "run", "az-failure", "--dry-run")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    acts = {a["name"]: a for ph in data["phases"] for a in ph["activities"]}
    assert acts["rds-reboot-with-failover"]["implemented"] is True  # real AWS implementation
    assert acts["rds-reboot-with-failover"]["arguments"] == {"site": "primary"}
    assert data["objectives"]["rto_seconds"] == 180
    assert not (tmp_path / "drills").exists()
    table = invoke(
        "drill", "run", "db-corruption", "--dry-run", "--target", "aws"
    )  # corrupt-data: sandbox only
    assert table.exit_code == 0 and "PENDING" in table.output and "Dry run" in table.output
    switchover = invoke("drill", "run", "planned-switchover", "--dry-run", "--target", "aws")
    assert "planned-failover (fault)" in switchover.output  # not eaten as rich markup
    assert "fail-back-to-primary (undoes planned-failover)" in switchover.output
    refused = invoke("drill", "run", "region-loss", "--dry-run", "--target", "aws")
    assert refused.exit_code == 2 and "does not support target 'aws'" in refused.output


def test_run_writes_evidence_and_exit_codes(fake_providers, tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(FAKE.replace("VALUE", "1"))
    (tmp_path / "bad-verify.yaml").write_text(FAKE.replace("VALUE", "2"))
    runs = tmp_path / "runs"
    ok = invoke(
        "--target",
        "sandbox",
        "drill",
        "run",
        "good",
        "--scenario-dir",
        str(tmp_path),
        "--runs-dir",
        str(runs),
    )
    assert ok.exit_code == 0, ok.output
    out = tmp_path / "explicit"
    bad = invoke(
        "-o",
        "json",
        "--target",
        "sandbox",
        "drill",
        "run",
        "bad-verify",
        "--scenario-dir",
        str(tmp_path),
        "--out",
        str(out),
    )
    assert bad.exit_code == 1
    data = json.loads(bad.output)
    assert data["status"] == "failed" and data["out_dir"] == str(out)
    assert fake_providers == ["m", "rollback", "m", "rollback"]
    for name in ("journal.json", "report.md", "report.html", "junit.xml", "metrics.prom"):
        assert (out / name).exists()
    (good_dir,) = list(runs.iterdir())
    assert good_dir.name.endswith("-good")

    again = invoke(
        "--target", "sandbox", "drill", "run", "good", "--scenario-dir", str(tmp_path), "--out", str(out)
    )
    assert again.exit_code == 2  # refuses to overwrite evidence

    (out / "report.md").unlink()
    rep = invoke("drill", "report", str(out))
    assert rep.exit_code == 0 and (out / "report.md").exists()

    hist = invoke("-o", "json", "drill", "history", "--dir", str(runs))
    assert hist.exit_code == 0
    assert [r["scenario"] for r in json.loads(hist.output)] == ["good"]
    table = invoke("drill", "history", "--dir", str(runs))
    assert "good" in table.output


def test_bad_scenario_file_exits_2_with_line(tmp_path: Path) -> None:
    path = tmp_path / "oops.yaml"
    path.write_text(
        "title: x\nmethod:\n  - name: a\n    type: action\n    provider: pause\n    arguments: {seconds: -3}\n"
    )
    res = CliRunner().invoke(cli, ["drill", "run", str(path), "--dry-run"])
    assert res.exit_code == 2
    assert "oops.yaml:6:" in res.output and "seconds" in res.output


def test_unsupported_target_and_unknown_scenario_exit_2(fake_providers, tmp_path: Path) -> None:
    (tmp_path / "sbx.yaml").write_text(FAKE.replace("VALUE", "1"))
    res = CliRunner().invoke(cli, ["--target", "aws", "drill", "run", "sbx", "--scenario-dir", str(tmp_path)])
    assert res.exit_code == 2 and "does not support target 'aws'" in res.output
    res = CliRunner().invoke(cli, ["drill", "run", "nope", "--dry-run"])
    assert res.exit_code == 2 and "no drill scenario named 'nope'" in res.output


def test_report_of_missing_dir_exits_2(tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["drill", "report", str(tmp_path / "none")])
    assert res.exit_code == 2
