"""Rollback safety, on every shipped scenario: a failing hypothesis, a failing method step and a
failing verification each leave the estate as it started (or where the scenario meant it to
serve), with a single writer and DNS where intended; rollbacks with nothing to undo say so; the
post-drill invariant check fails a drill that leaves the estate worse."""

from __future__ import annotations

import json
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from dr.drills.drill_context import DrillContext
from dr.drills.report import write_evidence
from dr.drills.lifecycle import DrillResult, DrillRunner
from dr.drills.scenario import parse_scenario, resolve, shipped_scenarios

from .fake_estate import TARGET, FakeEstate, install

# per scenario: the estate it starts from, a method step that fails, a verification probe broken
CASES: dict[str, dict[str, Any]] = {
    "az-failure": {"fail": {"rds-reboot-failover": "before"}, "verify": {"db-writable"}},
    "bad-deploy": {"fail": {"rollback-deploy": "before"}, "verify": {"pods-ready"}},
    "db-corruption": {"fail": {"restore-pitr": "before"}, "verify": {"pods-ready"}},
    "failback": {
        "start": FakeEstate.failed_over,
        "fail": {"failback": "before"},
        "verify": {"replica-lag:secondary"},
    },
    "planned-switchover": {"fail": {"failover": "before"}, "verify": {"dns-points-to"}},
    "region-loss": {"fail": {"failover": "before"}, "verify": {"db-writable"}},
    "region-loss-corrupt-replica": {"fail": {"restore-pitr": "before"}, "verify": {"restored-to-point"}},
}


def test_every_shipped_scenario_is_covered() -> None:
    assert set(CASES) == set(shipped_scenarios())


@contextmanager
def _installed(estate: FakeEstate):  # type: ignore[no-untyped-def]
    yield from install(estate)


def drill(
    estate: FakeEstate, tmp_path: Path, name: str = "", text: str = ""
) -> tuple[DrillResult, dict[str, Any]]:
    loaded = parse_scenario(text, "t.yaml") if text else resolve(name)
    ctx = DrillContext(run_id="r1", target=TARGET, services={"estate_check": estate.facts})
    out = tmp_path / "run"
    with _installed(estate):
        result = DrillRunner(loaded, ctx, out_dir=out).run()
    return result, json.loads((out / "journal.json").read_text())


def _start(name: str) -> FakeEstate:
    factory = CASES[name].get("start", FakeEstate)
    estate: FakeEstate = factory()
    return estate


def _steps(result: DrillResult, phase: str) -> dict[str, Any]:
    return {s.name: s for s in result.steps if s.phase == phase}


def _assert_invariants_hold(result: DrillResult, journal: dict[str, Any]) -> None:
    inv = _steps(result, "invariant")
    assert {"single-writer", "dns-on-intended-region", "replica-replicating"} <= set(inv)
    assert all(s.status == "ok" for s in inv.values()), {n: s.error for n, s in inv.items()}
    assert "invariant broken" not in result.reason
    assert {s["name"] for s in journal["steps"] if s["phase"] == "invariant"} == set(inv)


@pytest.mark.parametrize("name", sorted(CASES))
def test_failing_hypothesis_changes_nothing_and_rollbacks_say_so(name: str, tmp_path: Path) -> None:
    estate = _start(name)
    estate.broken = {"endpoint"}  # every shipped hypothesis asks the API first
    before = estate.snapshot()
    result, journal = drill(estate, tmp_path, name)
    assert result.exit_code == 1 and "steady-state hypothesis not met" in result.reason
    assert estate.calls == [] and estate.snapshot() == before  # no action ran, rollbacks included
    for rb in _steps(result, "rollback").values():
        assert rb.status == "skipped"
        assert rb.error.startswith("skipped: the method did not run") and "nothing to undo" in rb.error
    _assert_invariants_hold(result, journal)


@pytest.mark.parametrize("name", sorted(CASES))
def test_failing_method_step_leaves_the_estate_as_it_started(name: str, tmp_path: Path) -> None:
    estate = _start(name)
    estate.fail = dict(CASES[name]["fail"])
    before = estate.snapshot()
    result, journal = drill(estate, tmp_path, name)
    assert result.exit_code == 1 and "failed" in result.reason
    assert not estate.fail  # the fault fired
    after = estate.snapshot()
    if "corrupt-data" in estate.calls:  # the injected corruption is what the drill is about
        assert after[:5] == before[:5] and after[6:] == before[6:]
        assert estate.writers == {"primary": 2, "secondary": 0}
    else:
        assert after == before
    started = {s.name for s in result.steps if s.phase == "method" and s.status != "skipped"}
    loaded = resolve(name)
    for act in loaded.scenario.rollbacks:
        rec = _steps(result, "rollback")[act.name]
        if act.undoes and act.undoes not in started:
            assert rec.status == "skipped" and f"did not run {act.undoes}" in rec.error
    _assert_invariants_hold(result, journal)


@pytest.mark.parametrize("name", sorted(CASES))
def test_failing_verification_ends_where_the_drill_meant_to_serve(name: str, tmp_path: Path) -> None:
    estate = _start(name)
    estate.broken = set(CASES[name]["verify"])
    result, journal = drill(estate, tmp_path, name)
    assert result.exit_code == 1 and "verification failed" in result.reason
    loaded = resolve(name)
    intended = loaded.scenario.end_state.serving or _start(name).serving
    assert estate.serving == intended
    assert len(estate.writable()) == 1  # a single writer
    _assert_invariants_hold(result, journal)


def test_failback_drill_on_an_estate_that_never_failed_over_does_nothing(tmp_path: Path) -> None:
    """The measured bug: the failback drill on a healthy estate failed it over to DR."""
    estate = FakeEstate()
    before = estate.snapshot()
    result, _ = drill(estate, tmp_path, "failback")
    assert result.exit_code == 1 and "failed-over-to-dr" in result.reason
    assert estate.calls == [] and estate.snapshot() == before


def test_switchover_whose_failover_changed_nothing_skips_the_failback(tmp_path: Path) -> None:
    """The failover step started but was refused: the failback rollback finds the estate not
    failed over and is a no-op that says so (the old engine failed the estate over to DR)."""
    estate = FakeEstate(fail={"failover": "before"})
    before = estate.snapshot()
    result, journal = drill(estate, tmp_path, "planned-switchover")
    rb = _steps(result, "rollback")
    assert rb["fail-back-to-primary"].status == "skipped"
    assert (
        rb["fail-back-to-primary"].error
        == "skipped: app is not failed over: Route53 serves the primary region"
    )
    assert estate.snapshot() == before
    _assert_invariants_hold(result, journal)


def test_switchover_whose_failover_broke_halfway_is_undone(tmp_path: Path) -> None:
    estate = FakeEstate(fail={"failover": "after"})
    before = estate.snapshot()
    result, journal = drill(estate, tmp_path, "planned-switchover")
    assert result.exit_code == 1
    assert estate.calls == ["failover", "failback", "reprotect"]
    assert {n: s.status for n, s in _steps(result, "rollback").items()} == {
        "fail-back-to-primary": "ok",
        "reprotect-dr": "ok",
    }
    assert estate.snapshot() == before
    _assert_invariants_hold(result, journal)


def test_a_rollback_that_cannot_undo_fails_the_drill_loudly(tmp_path: Path) -> None:
    """Verification fails, the failback rollback is refused: DNS stays on DR and two databases
    are writable — the invariant check fails the drill, in the journal and in JUnit."""
    estate = FakeEstate(broken={"dns-points-to"})
    estate.fail = {"failback": "before"}
    result, journal = drill(estate, tmp_path, "planned-switchover")
    assert result.exit_code == 1 and "post-drill invariant broken" in result.reason
    inv = _steps(result, "invariant")
    # reprotect-dr still ran (the old primary is now the replica): DNS on DR, no standby to promote
    assert inv["dns-on-intended-region"].status == "failed"
    assert inv["replica-replicating"].status == "failed"
    assert journal["reason"] == result.reason
    write_evidence(tmp_path / "run")
    junit = (tmp_path / "run" / "junit.xml").read_text()
    assert "dns-on-intended-region" in junit and "<failure" in junit


def test_an_otherwise_green_drill_that_moves_dns_for_good_fails(tmp_path: Path) -> None:
    text = """
title: moves traffic and never comes back
measure: {heartbeat: false, prober: false}
method: [{name: go, type: action, provider: failover, arguments: {to: secondary, mode: planned}}]
"""
    result, _ = drill(FakeEstate(), tmp_path, text=text)
    assert result.exit_code == 1 and result.status == "failed"
    assert "post-drill invariant broken: " in result.reason
    assert "dns-on-intended-region (serving secondary)" in result.reason
    # declaring the intent makes the same drill green
    ok, _ = drill(FakeEstate(), tmp_path, text=text + "end-state: {serving: secondary}\n")
    assert "dns-on-intended-region" not in ok.reason


def test_undoes_must_name_a_method_step() -> None:
    from dr.drills.scenario import ScenarioError

    text = """
title: t
method: [{name: go, type: action, provider: failover, arguments: {to: secondary, mode: planned}}]
rollbacks: [{name: back, type: action, provider: failback, undoes: gone, arguments: {mode: planned}}]
"""
    with pytest.raises(ScenarioError, match="undoes 'gone': no method step has that name"):
        parse_scenario(text, "t.yaml")


def test_an_estate_unreadable_after_the_drill_fails_it_unreadable_before_is_said(tmp_path: Path) -> None:
    text = """
title: reads only
measure: {heartbeat: false, prober: false}
method: [{name: look, type: action, provider: rds-reboot-failover, arguments: {site: primary}}]
"""
    estate = FakeEstate()
    reads: list[str | None] = []

    def flaky(ctx: DrillContext, intended: str | None):  # type: ignore[no-untyped-def]
        reads.append(intended)
        if len(reads) == fail_at:
            raise ConnectionError("Route53 did not answer")
        return estate.facts(ctx, intended)

    loaded = parse_scenario(text, "t.yaml")
    for fail_at, code, status in ((2, 1, "failed"), (1, 0, "skipped")):
        reads.clear()
        ctx = DrillContext(run_id="r", target=TARGET, services={"estate_check": flaky})
        with _installed(estate):
            result = DrillRunner(loaded, ctx, out_dir=tmp_path / str(fail_at)).run()
        assert result.exit_code == code, result.reason
        rec = _steps(result, "invariant")["estate-readable"]
        assert rec.status == status and "Route53 did not answer" in rec.error


def test_corrupt_replica_drill_ends_serving_the_restore_with_the_primary_region_replicating(
    tmp_path: Path,
) -> None:
    """After the failover onto the restored instance, the primary region comes back with the old,
    corrupt primary writable: the reprotect rollback makes it a replica of the restored instance.
    Without that rollback the invariant check fails the drill for the second writer."""
    estate = FakeEstate()
    result, journal = drill(estate, tmp_path, "region-loss-corrupt-replica")
    # (no heartbeat nor prober in memory: only the objectives are not measured)
    assert result.reason.startswith("objective not met: RTO not measured"), result.reason
    assert {s.name: s.status for s in result.steps if s.phase == "rollback"} == {
        "restore-primary-region": "ok",
        "reprotect-primary-from-restored": "ok",
    }
    assert all(s.status == "ok" for s in result.steps if s.phase != "rollback"), result.steps
    assert estate.serving == "secondary" and estate.uses == {"secondary": "secondary-pitr"}
    assert estate.roles["secondary"] == "replica"  # the corrupt replica was never promoted
    assert estate.writable() == ["secondary-pitr"] and estate.replicates_from("primary") == "secondary-pitr"
    _assert_invariants_hold(result, journal)

    text = (resources.files("dr.drills") / "scenarios" / "region-loss-corrupt-replica.yaml").read_text()
    cut = text.index("  # The old primary comes back")
    without = text[:cut] + text[text.index("# The DR region serves") :]
    assert "provider: reprotect" not in without
    split, _ = drill(FakeEstate(), tmp_path / "without", text=without)
    assert split.exit_code == 1 and "post-drill invariant broken: single-writer" in split.reason
    assert "replica-replicating" in split.reason


def test_db_corruption_ends_with_dr_replicating_the_restored_instance(tmp_path: Path) -> None:
    """The app is repointed onto the in-region restore; DR must then replicate from it, not from
    the corrupt primary. Without the re-protection the invariant check fails the drill; when the
    method stops after the repoint, the rollback re-protects."""
    estate = FakeEstate()
    result, journal = drill(estate, tmp_path, "db-corruption")
    assert result.reason.startswith("objective not met"), result.reason  # nothing measured in memory
    assert (
        estate.uses == {"primary": "primary-pitr"} and estate.replicates_from("secondary") == "primary-pitr"
    )
    assert _steps(result, "method")["reprotect-dr-from-restored"].status == "ok"
    _assert_invariants_hold(result, journal)

    text = (resources.files("dr.drills") / "scenarios" / "db-corruption.yaml").read_text()
    bare = text[: text.index("  - name: reprotect-dr-from-restored")] + text[text.index("verification:") :]
    bare = bare[: bare.index("  # The app was repointed")]
    assert "provider: reprotect" not in bare
    corrupt, _ = drill(FakeEstate(), tmp_path / "bare", text=bare)
    assert corrupt.exit_code == 1 and "post-drill invariant broken: replica-replicating" in corrupt.reason

    late = FakeEstate()
    late.fail = {"reprotect": "before"}  # the method's re-protection refused once
    result, journal = drill(late, tmp_path / "late", "db-corruption")
    assert result.exit_code == 1
    assert _steps(result, "rollback")["dr-replicates-the-restored-db"].status == "ok"
    assert late.replicates_from("secondary") == "primary-pitr"
    _assert_invariants_hold(result, journal)
