"""Readiness as CloudWatch metrics (moto): what `dr readiness --publish` puts, batching, the Redis
check, and the alarm specs the DR stack deploys."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from dr.aws.cloudwatch import put_metric_data
from dr.aws.session import CallRecorder
from dr.procedures import readiness_metrics as rm
from dr.procedures.readiness import check_readiness
from dr.procedures.readiness_checks import FAIL, PASS, WARN
from tests.unit.cli.test_status_cmd import dr
from tests.unit.procedures.estate_seed import other_app_snapshot
from tests.unit.procedures.status_fixtures import Full, full

__all__ = ["full"]


def _latest(full: Full, metric: str, dims: dict[str, str]) -> float | None:
    ns, region = full.estate.app.readiness.namespace, full.estate.secondary.region
    end = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2)
    raw = full.clients.client("cloudwatch", region).get_metric_statistics(
        Namespace=ns,
        MetricName=metric,
        Dimensions=[{"Name": k, "Value": v} for k, v in dims.items()],
        StartTime=end - dt.timedelta(minutes=15),
        EndTime=end,
        Period=60,
        Statistics=["Minimum", "Maximum"],
    )
    points = raw.get("Datapoints", [])
    return float(points[-1]["Minimum"]) if points else None


def test_check_names_are_the_ones_the_alarms_watch(full: Full) -> None:
    report = check_readiness(full.estate, full.clients, full.kube)
    assert tuple(c.name for c in report.checks) == rm.CHECKS


def test_publish_puts_each_check_and_the_facts_in_the_dr_region(full: Full) -> None:
    full.seeded.put_lag(2.5)
    report = check_readiness(full.estate, full.clients, full.kube)
    statuses = {c.name: c.status for c in report.checks}
    assert statuses["snapshot-age"] == FAIL and statuses["db-engine"] == PASS  # moto baseline
    published = rm.publish(report, full.estate, full.clients)
    app = full.estate.app.name
    assert published.region == full.estate.secondary.region and published.requests == 1
    assert published.metrics == len(rm.CHECKS) + 2  # + replica lag + single writer (no recovery point)

    assert _latest(full, "CheckPassed", {"App": app, "Check": "snapshot-age"}) == 0.0
    assert _latest(full, "CheckPassed", {"App": app, "Check": "db-engine"}) == 1.0
    assert _latest(full, "CheckPassed", {"App": app, "Check": "certificate-expiry"}) == 1.0  # a warn
    assert statuses["certificate-expiry"] == WARN
    assert _latest(full, "ReplicaLagSeconds", {"App": app}) == 2.5
    assert _latest(full, "SingleWriter", {"App": app}) == 1.0
    # Nothing in the primary region: the alarms live in DR and must survive the primary.
    primary = full.clients.client("cloudwatch", full.estate.primary.region)
    assert primary.list_metrics(Namespace=full.estate.app.readiness.namespace)["Metrics"] == []


def test_recovery_point_age_is_published_once_there_is_one(full: Full) -> None:
    from tests.unit.procedures.test_readiness import _snapshot_in_dr

    _snapshot_in_dr(full)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=30)
    report = check_readiness(full.estate, full.clients, full.kube, now=later)
    age = report.facts["recovery_point_age_seconds"]
    assert 30 * 3600 - 120 < age < 30 * 3600 + 120
    data = rm.metric_data(report, full.estate.app, now=dt.datetime.now(dt.UTC))
    assert {d["MetricName"]: d["Value"] for d in data if d["MetricName"] != "CheckPassed"}[
        "RecoveryPointAgeSeconds"
    ] == pytest.approx(age)
    spec = next(a for a in rm.alarm_specs(full.estate.app) if a.metric == "RecoveryPointAgeSeconds")
    assert spec.breaching(age)  # 30 h > the 24 h default budget


def test_put_metric_data_batches_at_the_aws_limit(full: Full) -> None:
    recorder = full.clients.add_recorder(CallRecorder())
    region = full.estate.secondary.region
    data = [{"MetricName": f"m{i}", "Value": 1.0} for i in range(2001)]
    assert put_metric_data(full.clients, region, "dr/test", data) == 3
    assert [c.operation for c in recorder.calls].count("PutMetricData") == 3
    cw = full.clients.client("cloudwatch", region)
    names = {
        m["MetricName"]
        for page in cw.get_paginator("list_metrics").paginate(Namespace="dr/test")
        for m in page["Metrics"]
    }
    assert len(names) == 2001
    with pytest.raises(ValueError, match="1-1000"):
        put_metric_data(full.clients, region, "dr/test", data, batch=1001)


def _drop_dr_redis(full: Full) -> str:
    from moto.elasticache.models import elasticache_backends

    s = full.estate.secondary
    elasticache_backends["123456789012"][s.region].replication_groups.pop(s.cache.replication_group_id)
    return s.cache.replication_group_id


def test_redis_check_counts_only_the_estate_snapshots(full: Full) -> None:
    s = full.estate.secondary
    ec = full.clients.client("elasticache", s.region)
    ec.create_snapshot(ReplicationGroupId=s.cache.replication_group_id, SnapshotName="ours")
    other_app_snapshot(full.clients, s.region, "theirs", "other-app")
    assert {c.name: c.status for c in check_readiness(full.estate, full.clients, full.kube).checks}[
        "redis"
    ] == PASS
    gid = _drop_dr_redis(full)
    redis = check_readiness(full.estate, full.clients, full.kube).check("redis")
    assert redis.status == WARN and "ours" in redis.reason, redis.reason
    ec.delete_snapshot(SnapshotName="ours")
    redis = check_readiness(full.estate, full.clients, full.kube).check("redis")
    assert redis.status == FAIL and gid in redis.reason and "theirs" not in redis.reason, redis.reason


def test_redis_check_fails_when_dr_lacks_the_encryption_production_has(full: Full) -> None:
    from moto.elasticache.models import elasticache_backends

    p = full.estate.primary
    group: Any = elasticache_backends["123456789012"][p.region].replication_groups[
        p.cache.replication_group_id
    ]
    group.transit_encryption_enabled = True
    redis = check_readiness(full.estate, full.clients, full.kube).check("redis")
    assert redis.status == FAIL and "TLS in transit" in redis.reason, redis.reason


def test_alarm_specs_thresholds_follow_the_stack_files(full: Full) -> None:
    app = full.estate.app
    specs = {a.name: a for a in rm.alarm_specs(app)}
    prefix = f"{app.name}-readiness-"
    assert {f"{prefix}{c}" for c in rm.CHECKS} <= set(specs)
    lag = specs[f"{prefix}replica-lag-over-rpo"]
    assert (lag.metric, lag.comparison, lag.threshold) == (
        "ReplicaLagSeconds",
        "GreaterThanThreshold",
        app.objectives.rpo_seconds,
    )
    writer = specs[f"{prefix}single-writer-heartbeat"]
    assert (writer.comparison, writer.threshold, writer.treat_missing_data) == (
        "LessThanThreshold",
        1,
        "breaching",
    )
    assert all(a.period == app.readiness.schedule_minutes * 60 for a in specs.values())


def test_cli_publish_json_carries_what_was_published(full: Full) -> None:
    full.seeded.put_lag(1.0)
    result = dr("-o", "json", "readiness", "--kubeconfig", full.kubeconfig, "--publish")
    assert result.exit_code == 1, result.output  # snapshot-age fails in the moto baseline
    data = json.loads(result.output)
    assert data["published"]["namespace"] == full.estate.app.readiness.namespace
    assert data["published"]["region"] == full.estate.secondary.region
    assert data["facts"]["replica_lag_seconds"] == 1.0
    without = dr("-o", "json", "readiness", "--kubeconfig", full.kubeconfig)
    assert "published" not in json.loads(without.output)


def test_sandbox_evaluates_the_alarms_and_status_shows_them(full: Full) -> None:
    """moto stores alarms but never evaluates them; the sandbox's realism layer does (last period vs
    threshold). `dr status` reads them back with DescribeAlarms."""
    from dr.procedures.status import collect_status
    from dr.sandbox.fakeaws.cloudwatch_ops import evaluate_alarms
    from dr.sandbox.seed import _seed_readiness_alarms

    report = collect_status(full.estate, full.clients, full.kube)
    assert report.readiness is not None and report.readiness["alarms"] == []
    _seed_readiness_alarms(full.clients, full.estate)
    full.seeded.put_lag(30.0)  # over the 5 s RPO objective
    rm.publish(check_readiness(full.estate, full.clients, full.kube), full.estate, full.clients)
    evaluate_alarms(full.estate.secondary.region)
    report = collect_status(full.estate, full.clients, full.kube)
    assert report.readiness is not None
    prefix = f"{full.estate.app.name}-readiness-"
    firing = set(report.readiness["firing"])
    assert {f"{prefix}snapshot-age", f"{prefix}replica-lag", f"{prefix}replica-lag-over-rpo"} <= firing
    assert f"{prefix}db-engine" not in firing and f"{prefix}single-writer-heartbeat" not in firing
    states = {a["name"]: a["state"] for a in report.readiness["alarms"]}
    assert states[f"{prefix}db-engine"] == "OK"
    table = dr("status", "--kubeconfig", full.kubeconfig)
    assert "readiness alarms" in table.output and f"{prefix}snapshot-age" in table.output


def test_redis_check_gates_the_seed_snapshot_on_age(estate: Any) -> None:
    """A missing DR group with only an old estate snapshot is not ready (the failover gate would
    refuse it); a recent one is a warn. (moto snapshots carry no time: checked on the facts.)"""
    from dr.aws.elasticache import CacheSnapshot
    from dr.procedures.readiness_checks import redis_check
    from dr.procedures.status import attempt

    now = dt.datetime(2026, 12, 6, 12, tzinfo=dt.UTC)
    gid = estate.secondary.cache.replication_group_id

    def snap(age: dt.timedelta) -> Any:
        return attempt(
            lambda: CacheSnapshot(
                "s1", estate.secondary.region, gid, "available", "automated", now - age, None, None
            )
        )

    missing, prod = attempt(lambda: None), attempt(lambda: None)
    old = redis_check(prod, missing, snap(dt.timedelta(days=8)), now, estate, dt.timedelta(days=7))
    assert old.status == FAIL and "8d0h old" in old.reason, old.reason
    fresh = redis_check(prod, missing, snap(dt.timedelta(hours=2)), now, estate, dt.timedelta(days=7))
    assert fresh.status == WARN, fresh.reason


def test_the_scheduled_lambda_runs_the_checks_and_publishes(
    full: Full, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DR stack's Lambda entry point: stack files from DR_STACK_DIR, the role's credentials,
    the same checks, published in the DR region; its result names the failed checks only."""
    from dr.cli.readiness_lambda import handler
    from tests.conftest import STACKS

    monkeypatch.setenv("DR_STACK_DIR", str(STACKS))
    monkeypatch.setenv("KUBECONFIG", full.kubeconfig)  # in AWS: the role's EKS access entries
    full.seeded.put_lag(0.5)
    result = handler({}, None)
    assert result["published"]["region"] == full.estate.secondary.region
    assert "snapshot-age" in result["failed"] and result["status"] == "fail"
    assert _latest(full, "ReplicaLagSeconds", {"App": full.estate.app.name}) == 0.5
    assert json.dumps(result)  # the function's result must serialise


def test_status_without_describe_alarms_permission_is_not_partial(
    full: Full, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A policy without cloudwatch:DescribeAlarms (the failover policy has none): the readiness
    alarms show as unreadable, the rest of `dr status` is whole and exits 0."""
    from dr.errors import AccessDenied

    def refused(clients: Any, estate: Any) -> Any:
        raise AccessDenied(
            "describe CloudWatch alarms failed: AccessDenied", iam_action="cloudwatch:DescribeAlarms"
        )

    monkeypatch.setattr(rm, "readiness_alarms", refused)
    result = dr("-o", "json", "status", "--kubeconfig", full.kubeconfig)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["denied"] == [] and "AccessDenied" in data["readiness"]["error"]
