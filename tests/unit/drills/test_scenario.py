"""Scenario parsing: every shipped scenario loads; bad files fail with the right line numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from dr.drills.lifecycle import resolve_objectives
from dr.drills.scenario import (
    ScenarioError,
    ToleranceSpec,
    discover,
    parse_scenario,
    resolve,
    shipped_scenarios,
    within_tolerance,
)

SHIPPED = {"region-loss", "planned-switchover", "db-corruption", "az-failure", "bad-deploy", "failback"}


def test_all_shipped_scenarios_load() -> None:
    texts = shipped_scenarios()
    assert set(texts) >= SHIPPED
    for name, text in texts.items():
        loaded = parse_scenario(text, f"{name}.yaml")
        assert loaded.scenario.method, name
        assert loaded.name == name


def test_shipped_scenarios_encode_their_procedures() -> None:
    region = resolve("region-loss").scenario
    assert region.mode == "unplanned"
    fault = region.fault_step
    assert fault is not None and fault.provider == "region-loss"
    failover = next(a for a in region.method if a.provider == "failover")
    assert failover.arguments == {"to": "secondary", "mode": "unplanned"}
    assert region.rollbacks, "region-loss must bring the region back"

    planned = resolve("planned-switchover").scenario
    assert planned.objectives.rpo_seconds == 0
    assert planned.stop_conditions is not None and planned.stop_conditions.probes

    corruption = resolve("db-corruption").scenario
    providers = [a.provider for a in corruption.method]
    # the chess-ai runbook's order: stop writes, restore to before the corruption, repoint, scale
    # back; then DR re-protected from the restored instance (not the corrupt primary)
    assert providers == [
        "corrupt-data",
        "scale-deployment",
        "restore-pitr",
        "repoint-app",
        "scale-deployment",
        "reprotect",
    ]
    assert corruption.method[-1].arguments["db_from"] == "restored_db"
    assert corruption.method[1].arguments["replicas"] == 0
    assert corruption.method[2].arguments["restore_time"] == "before-fault"

    az = resolve("az-failure").scenario
    assert {a.provider for a in az.method} == {"rds-reboot-failover", "redis-primary-failure"}


def test_objectives_default_from_estate(estate) -> None:
    loaded = resolve("region-loss")
    obj = resolve_objectives(loaded, estate)
    assert obj["rto_seconds"] == estate.app.objectives.rto_seconds
    assert obj["rpo_seconds"] == estate.app.objectives.rpo_seconds
    assert obj["source"] == {"rto_seconds": "estate", "rpo_seconds": "estate"}
    planned = resolve_objectives(resolve("planned-switchover"), estate)
    assert planned["rpo_seconds"] == 0 and planned["source"]["rpo_seconds"] == "scenario"


def _issues(text: str) -> list[tuple[int, str]]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "bad.yaml")
    assert info.value.exit_code == 2
    return [(i.line, i.message) for i in info.value.issues]


def test_unknown_provider_names_its_line() -> None:
    issues = _issues(
        "title: t\n"
        "method:\n"
        "  - name: a\n"
        "    type: action\n"
        "    provider: pause\n"
        "    arguments: {seconds: 0}\n"
        "  - name: b\n"
        "    type: action\n"
        "    provider: failovr\n"
    )
    assert len(issues) == 1
    line, message = issues[0]
    assert line == 9
    assert "unknown action provider 'failovr'" in message and "failover" in message


def test_bad_arguments_unknown_keys_and_duplicates_all_reported_with_lines() -> None:
    text = (
        "title: t\n"  # 1
        "method:\n"  # 2
        "  - name: a\n"  # 3
        "    type: action\n"  # 4
        "    provider: failover\n"  # 5
        "    arguments:\n"  # 6
        "      to: tertiary\n"  # 7
        "  - name: a\n"  # 8
        "    type: probe\n"  # 9
        "    provider: endpoint\n"  # 10
        "    tolerance: {range: [5, 1]}\n"  # 11
        "rollbacks:\n"  # 12
        "  - name: c\n"  # 13
        "    type: action\n"  # 14
        "    provider: pause\n"  # 15
        "    colour: red\n"  # 16
    )
    issues = dict(_issues(text))
    assert "Input should be 'primary' or 'secondary'" in issues[7]
    assert "already used at line 3" in issues[8]
    assert "empty" in issues[11]
    assert issues[16] == "unknown key 'colour'"
    # missing required provider argument (pause needs seconds) points at the activity
    assert any("Field required" in m for line, m in _issues(text) if line in (13, 15))


def test_missing_required_top_level_key_and_wrong_type() -> None:
    issues = _issues("title: t\nmode: sometimes\n")
    lines = dict(issues)
    assert 2 in lines and "planned" in lines[2]
    assert any("method" in m or "Field required" in m for _, m in issues)


def test_probe_only_sections_and_fault_marks() -> None:
    issues = _issues(
        "title: t\n"
        "steady-state-hypothesis:\n"
        "  probes:\n"
        "    - {name: h, type: action, provider: pause, arguments: {seconds: 0}}\n"
        "method:\n"
        "  - {name: a, type: action, provider: pause, fault: true, arguments: {seconds: 0}}\n"
        "  - {name: b, type: action, provider: pause, fault: true, arguments: {seconds: 0}}\n"
    )
    lines = dict(issues)
    assert "holds only probes" in lines[4]
    assert "only one method action" in lines[7]


def test_yaml_syntax_error_has_line() -> None:
    issues = _issues("title: t\nmethod:\n  - name: a\n    type: [action\n")
    assert issues[0][0] >= 4 and "YAML syntax error" in issues[0][1]


def test_not_a_mapping() -> None:
    assert _issues("- a\n- b\n")[0][0] == 1


def test_scenario_dir_overrides_and_path(tmp_path: Path) -> None:
    text = shipped_scenarios()["bad-deploy"].replace("Bad deploy rolled back", "Custom")
    (tmp_path / "bad-deploy.yaml").write_text(text)
    (tmp_path / "mine.yaml").write_text(text)
    found = discover([tmp_path])
    assert found["bad-deploy"][0] == str(tmp_path / "bad-deploy.yaml")
    assert resolve("mine", [tmp_path]).scenario.title == "Custom"
    assert resolve(str(tmp_path / "mine.yaml")).name == "mine"


def test_unknown_scenario_name_is_bad_input() -> None:
    from dr.errors import NotFound

    with pytest.raises(NotFound) as info:
        resolve("no-such-drill")
    assert "region-loss" in (info.value.hint or "")


@pytest.mark.parametrize(
    ("value", "tolerance", "ok"),
    [
        (True, True, True),
        (False, True, False),
        (200, 200, True),
        (500, 200, False),
        (True, 1, False),  # a bool is not the number 1
        ("up", "up", True),
        (3, [1, 2, 3], True),
        (4, [1, 2, 3], False),
        (2.5, ToleranceSpec(range=(0, 5)), True),
        (7, ToleranceSpec(range=(0, 5)), False),
        (4, ToleranceSpec(max=5), True),
        (6, ToleranceSpec(max=5), False),
        ("x", ToleranceSpec(max=5), False),
        (1, ToleranceSpec(min=2), False),
        ("status: ok", ToleranceSpec(regex="ok$"), True),
        ({"a": 1}, ToleranceSpec(equals={"a": 1}), True),
        (1, None, True),
        (0, None, False),
    ],
)
def test_tolerance(value: object, tolerance: object, ok: bool) -> None:
    assert within_tolerance(value, tolerance) is ok  # type: ignore[arg-type]


def test_a_steady_state_can_hold_no_readiness_alarm_fired() -> None:
    loaded = parse_scenario(
        "title: t\n"
        "steady-state-hypothesis:\n"
        "  probes:\n"
        "    - {name: no-readiness-alarm, type: probe, provider: readiness-alarms, tolerance: {max: 0}}\n"
        "method:\n"
        "  - {name: a, type: action, provider: pause, arguments: {seconds: 0}}\n"
    )
    (probe,) = loaded.scenario.steady_state_hypothesis.probes
    assert probe.provider == "readiness-alarms"
    assert within_tolerance(0, probe.tolerance) and not within_tolerance(1, probe.tolerance)
