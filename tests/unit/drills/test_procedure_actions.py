"""Drill providers backed by the real procedures (dr.drills.procedure_actions, procedure_probes) and
the sandbox's fault actions (dr.sandbox.drill_adapter): input refusals, probes against moto, running a plan
through the runbook engine with its journal next to the drill's evidence.

End-to-end runs (failover, region loss, measured RPO) are in tests/integration/test_drills.py.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dr.aws.session import ClientProvider
from dr.drills import registry
from dr.drills.drill_context import DrillContext
from dr.drills.evidence import DrillJournal
from dr.errors import EXIT_USAGE, BadInput, OperationFailed
from dr.runbook.plan import Plan, Step
from tests.unit.procedures.estate_seed import Seeded, seeded
from tests.unit.procedures.status_fixtures import Full, full

__all__ = ["full", "seeded"]


def _ctx(seeded: Seeded | None, tmp_path: Path, target: str = "aws", **kw: Any) -> DrillContext:
    return DrillContext(
        run_id="t",
        target=target,
        estate=seeded.estate if seeded else None,
        journal=DrillJournal(tmp_path / "evidence" / "journal.json", {}),
        clients_factory=(lambda ro: ClientProvider(read_only=ro)) if seeded else None,
        **kw,
    )


def _impl(kind: str, name: str, target: str = "aws") -> Any:
    prov = registry.get(kind, name)  # type: ignore[arg-type]
    assert prov is not None, name
    return prov.resolve(target)


def test_every_declared_provider_is_implemented_on_the_sandbox() -> None:
    missing = [f"{p.kind}:{p.name}" for p in registry.providers() if not p.available("sandbox")]
    assert missing == []


def test_every_provider_is_registered_with_its_argument_model() -> None:
    untyped = [f"{p.kind}:{p.name}" for p in registry.providers() if p.args is None and not p.name.startswith("t-")]
    assert untyped == []


def test_dr_help_does_not_import_the_provider_modules() -> None:
    code = (
        "import sys; import dr.cli.main; "
        "bad = [m for m in ('dr.drills.procedure_actions', 'dr.sandbox.drill_adapter', 'dr.drills.registry') "
        "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_region_loss_on_aws_refuses_with_exit_2(seeded: Seeded, tmp_path: Path) -> None:
    fn = _impl("action", "region-loss", "aws")
    with pytest.raises(BadInput) as info:
        fn(_ctx(seeded, tmp_path), site="primary", lag_seconds=1.0)
    assert info.value.exit_code == EXIT_USAGE
    assert seeded.estate.primary.region in info.value.message and "sandbox" in (info.value.hint or "")


def test_region_loss_scenario_is_sandbox_only() -> None:
    from dr.drills.scenario import resolve

    assert list(resolve("region-loss").scenario.target) == ["sandbox"]


def test_failover_to_the_primary_site_is_bad_input(seeded: Seeded, tmp_path: Path) -> None:
    fn = _impl("action", "failover")
    with pytest.raises(BadInput, match="is the site the stack files declare primary"):
        fn(_ctx(seeded, tmp_path), to="primary", mode="unplanned", max_lag_seconds=None)


def test_restore_before_fault_needs_a_fault(seeded: Seeded, tmp_path: Path) -> None:
    fn = _impl("action", "restore-pitr")
    with pytest.raises(BadInput, match="fault"):
        fn(
            _ctx(seeded, tmp_path),
            site="primary",
            restore_time="before-fault",
            seconds_before=1.0,
            target_identifier=None,
        )


def test_repoint_needs_the_output_of_an_earlier_step(seeded: Seeded, tmp_path: Path) -> None:
    fn = _impl("action", "repoint-app")
    with pytest.raises(BadInput, match="restored_db"):
        fn(_ctx(seeded, tmp_path), site="primary", database_from="restored_db")


def test_failback_is_always_planned(seeded: Seeded, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="planned"):
        _impl("action", "failback")(_ctx(seeded, tmp_path), mode="unplanned")


def test_replica_lag_reads_cloudwatch_and_is_zero_for_a_writer(seeded: Seeded, tmp_path: Path) -> None:
    fn = _impl("probe", "replica-lag")
    ctx = _ctx(seeded, tmp_path)
    secondary = seeded.estate.secondary
    # A replica created minutes ago (a failback's or reprotect's) may not have published yet:
    # nothing to measure (None: no stop-condition breach, a failed steady-state probe).
    assert fn(ctx, site="secondary") is None
    from dr.procedures import support as common

    common.set_clock(lambda: dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    try:
        with pytest.raises(OperationFailed, match="no ReplicaLag datapoint"):
            fn(ctx, site="secondary")  # an older replica without a metric: unknown is not "caught up"
    finally:
        common.set_clock(None)
    ClientProvider().client("cloudwatch", secondary.region).put_metric_data(
        Namespace="AWS/RDS",
        MetricData=[
            {
                "MetricName": "ReplicaLag",
                "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": secondary.database.identifier}],
                "Value": 2.5,
                "Timestamp": dt.datetime.now(dt.UTC),
            }
        ],
    )
    assert fn(ctx, site="secondary") == 2.5
    assert fn(ctx, site="primary") == 0.0  # the writer trails nothing


def test_dns_points_to_follows_route53_failover(seeded: Seeded, tmp_path: Path) -> None:
    fn = _impl("probe", "dns-points-to")
    ctx = _ctx(seeded, tmp_path)
    assert fn(ctx, site="primary") is True and fn(ctx, site="secondary") is False
    # The primary's health check fails: Route53 answers with the SECONDARY record.
    from dr.steps import dns_records

    real = dns_records.FailoverRecord.healthy

    def healthy(self: Any) -> bool:
        return False if self.region == seeded.estate.primary.region else bool(real.fget(self))  # type: ignore[attr-defined]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dns_records.FailoverRecord, "healthy", property(healthy))
        assert fn(ctx, site="secondary") is True and fn(ctx, site="primary") is False


def _plan(fail: bool) -> Plan:
    def action(ctx: Any) -> None:
        if fail:
            raise RuntimeError("boom")

    return Plan("t-plan", [Step(id="only", title="only", region=None, service="local", action=action)])


def test_run_journals_next_to_the_evidence_and_summarizes(seeded: Seeded, tmp_path: Path) -> None:
    from dr.drills.procedure_actions import run, runs_dir

    ctx = _ctx(seeded, tmp_path)
    assert runs_dir(ctx) == tmp_path / "evidence" / "runs"
    summary = run(ctx, _plan(False), kube=object())  # type: ignore[arg-type]
    assert summary["status"] == "succeeded" and summary["steps"][0]["id"] == "only"
    assert summary["steps"][0]["duration"] is not None
    assert Path(summary["journal_path"]).is_relative_to(tmp_path / "evidence" / "runs")
    notes = [e for e in ctx.journal.doc.get("events", []) if e.get("kind") == "note"]  # type: ignore[union-attr]
    assert any(n.get("run_id") == summary["run_id"] for n in notes)


def test_run_raises_with_the_failed_step(seeded: Seeded, tmp_path: Path) -> None:
    from dr.drills.procedure_actions import run

    with pytest.raises(OperationFailed, match="only") as info:
        run(_ctx(seeded, tmp_path), _plan(True), kube=object())  # type: ignore[arg-type]
    assert "boom" in info.value.message and "--resume" in (info.value.hint or "")


def test_dry_run_executes_no_action(seeded: Seeded, tmp_path: Path) -> None:
    from dr.drills.procedure_actions import run

    summary = run(_ctx(seeded, tmp_path, dry_run=True), _plan(True), kube=object())  # type: ignore[arg-type]
    assert summary["status"] == "dry-run"


def test_failback_on_an_estate_that_never_failed_over_has_nothing_to_undo(
    seeded: Seeded, tmp_path: Path
) -> None:
    """As a rollback it is a no-op that says why (the runner records it skipped), read-only."""
    from dr.aws.session import CallRecorder

    recorder = CallRecorder()
    ctx = _ctx(seeded, tmp_path)
    clients = ClientProvider()
    clients.add_recorder(recorder)
    ctx.clients_factory = lambda ro: clients
    with pytest.raises(registry.NothingToUndo) as info:
        _impl("action", "failback")(ctx, mode="planned")
    estate = seeded.estate
    assert f"{estate.app.name} is not failed over" in info.value.message
    assert info.value.region == estate.primary.region
    assert recorder.calls and recorder.mutating() == []


def test_estate_invariants_on_a_healthy_estate(
    full: Full, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dr.drills.procedure_probes import estate_invariants

    monkeypatch.setenv("KUBECONFIG", full.kubeconfig)  # the served site's DB secret is read
    seeded = full.seeded
    estate = seeded.estate
    home = estate_invariants(_ctx(seeded, tmp_path), "primary")
    assert home.serving == estate.primary.region
    assert {i.name: i.ok for i in home.invariants} == {
        "single-writer": True,
        "dns-on-intended-region": True,
        "replica-replicating": True,
    }, home.invariants
    away = {i.name: i for i in estate_invariants(_ctx(seeded, tmp_path), "secondary").invariants}
    assert away["single-writer"].ok  # one writer wherever DNS points
    assert not away["dns-on-intended-region"].ok
    assert estate.secondary.region in away["dns-on-intended-region"].detail
    assert not away["replica-replicating"].ok and "dr reprotect" in away["replica-replicating"].detail


def test_readiness_alarms_probe_counts_the_alarms_firing(seeded: Seeded, tmp_path: Path) -> None:
    from dr.sandbox.seed import _seed_readiness_alarms

    fn = _impl("probe", "readiness-alarms")
    ctx = _ctx(seeded, tmp_path)
    with pytest.raises(OperationFailed, match="no readiness alarm"):
        fn(ctx)  # nothing deployed: "no alarm fired" must not hold vacuously
    _seed_readiness_alarms(seeded.clients, seeded.estate)
    assert fn(ctx) == 0
    name = f"{seeded.estate.app.name}-readiness-replica-lag-over-rpo"
    cw = seeded.clients.client("cloudwatch", seeded.estate.secondary.region)
    cw.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="lag 30s > 5s")
    assert fn(ctx) == 1
    other = seeded.clients.client("cloudwatch", seeded.estate.primary.region)
    other.put_metric_alarm(
        AlarmName=f"{seeded.estate.app.name}-readiness-elsewhere", MetricName="x", Namespace="n",
        ComparisonOperator="LessThanThreshold", Threshold=1, Period=60, EvaluationPeriods=1, Statistic="Minimum",
    )  # fmt: skip
    other.set_alarm_state(
        AlarmName=f"{seeded.estate.app.name}-readiness-elsewhere", StateValue="ALARM", StateReason="x"
    )
    assert fn(ctx) == 1  # only the DR region's alarms count


def test_a_repoint_onto_a_restore_leaves_dr_replicating_the_corrupt_instance(
    full: Full, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """db-corruption's repoint: the primary's app uses an in-region restore, DR still replicates
    the old (corrupt) primary — a failover would promote the corruption. The invariants judge the
    restored instance, so the replica check fails and says how to re-protect from it."""
    from dr.drills.procedure_probes import estate_invariants
    from tests.unit.procedures.test_readiness import _restored_and_served

    monkeypatch.setenv("KUBECONFIG", full.kubeconfig)
    estate = full.estate
    restored = _restored_and_served(full, "primary")
    inv = {i.name: i for i in estate_invariants(_ctx(full.seeded, tmp_path), "primary").invariants}
    assert inv["single-writer"].ok and restored in inv["single-writer"].detail
    bad = inv["replica-replicating"]
    assert not bad.ok and f"not a replica of {restored} in {estate.primary.region}" in bad.detail, bad
    assert f"dr reprotect --region {estate.secondary.region} --db {restored}" in bad.detail
