"""Continuous readiness under Pulumi mocks: the DR stack's schedule, alarms and SNS topic."""

from __future__ import annotations

import json

from dr.infra.mockrun import MockRun
from dr.procedures.readiness_metrics import CHECKS
from tests.unit.infra.conftest import READINESS_IMAGE

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


def _alarms(run: MockRun) -> dict[str, dict[str, object]]:
    return {r.inputs["name"]: r.inputs for r in run.of_type(ALARM)}


def test_dr_stack_schedules_readiness_in_its_region_with_the_configured_rate(
    runs: dict[str, MockRun],
) -> None:
    run = runs["readiness-dr"]
    rule = run.one("aws:cloudwatch/eventRule:EventRule").inputs
    assert rule["scheduleExpression"] == "rate(10 minutes)"
    fn = run.one("aws:lambda/function:Function")
    assert fn.region == run.region  # the DR region: survives the primary's loss
    assert fn.inputs["packageType"] == "Image" and fn.inputs["imageUri"] == READINESS_IMAGE
    assert fn.inputs["imageConfig"]["commands"] == ["dr.cli.readiness_lambda.handler"]
    target = run.one("aws:cloudwatch/eventTarget:EventTarget").inputs
    assert target["rule"] == rule["name"] and ":function/readiness-" in target["arn"]  # the mocks' ARN
    perm = run.one("aws:lambda/permission:Permission").inputs
    assert perm["principal"] == "events.amazonaws.com"
    policy = json.loads(run.one("aws:iam/rolePolicy:RolePolicy", "readiness").inputs["policy"])
    put = next(s for s in policy["Statement"] if s["Sid"] == "ReadinessMetrics")
    assert put["Condition"] == {"StringEquals": {"cloudwatch:namespace": "dr/readiness"}}
    assert not any(
        "Put" in a or "Delete" in a
        for s in policy["Statement"]
        if s["Sid"] == "ReadinessReads"
        for a in s["Action"]
    )


def test_dr_stack_alarms_on_every_metric_with_the_stack_thresholds_and_the_topic(
    runs: dict[str, MockRun],
) -> None:
    run = runs["readiness-dr"]
    topic = run.one("aws:sns/topic:Topic").inputs
    assert topic["name"] == "pager-dr"
    alarms = _alarms(run)
    app = "claude-deployment"
    for check in CHECKS:
        a = alarms[f"{app}-readiness-{check}"]
        assert (a["metricName"], a["comparisonOperator"], a["threshold"]) == (
            "CheckPassed",
            "LessThanThreshold",
            1,
        )
        assert a["dimensions"] == {"App": app, "Check": check}
    lag = alarms[f"{app}-readiness-replica-lag-over-rpo"]
    assert (lag["metricName"], lag["comparisonOperator"], lag["threshold"]) == (
        "ReplicaLagSeconds",
        "GreaterThanThreshold",
        5,  # objectives.rpoSeconds in stacks/Pulumi.dr.yaml
    )
    age = alarms[f"{app}-readiness-recovery-point-age"]
    assert (age["metricName"], age["threshold"]) == ("RecoveryPointAgeSeconds", 7200)
    writer = alarms[f"{app}-readiness-single-writer-heartbeat"]
    assert (writer["comparisonOperator"], writer["threshold"], writer["treatMissingData"]) == (
        "LessThanThreshold",
        1,
        "breaching",
    )
    actions = {json.dumps([a["alarmActions"], a["okActions"]]) for a in alarms.values()}
    assert len(actions) == 1  # every alarm notifies the one topic (the mocks' ARN of "alarms")
    (arn,) = json.loads(actions.pop())[0]
    assert ":topic/alarms-" in arn
    for a in alarms.values():
        assert a["namespace"] == "dr/readiness" and a["period"] == 600


def test_primary_stack_has_no_readiness_and_no_image_means_no_schedule(runs: dict[str, MockRun]) -> None:
    assert _alarms(runs["prod"]) == {}
    assert runs["prod"].of_type("aws:cloudwatch/eventRule:EventRule") == []
    shipped = runs["dr"]
    assert shipped.of_type("aws:lambda/function:Function") == []
    assert shipped.of_type("aws:cloudwatch/eventRule:EventRule") == []
    assert shipped.one("aws:sns/topic:Topic").inputs["name"] == "claude-deployment-dr-readiness"
    assert len(_alarms(shipped)) == len(CHECKS) + 3


def test_another_estate_gets_its_own_alarm_names_topic_and_rpo(runs: dict[str, MockRun]) -> None:
    from dr.procedures.readiness_metrics import alarm_specs
    from dr.topology import read_stack
    from tests.unit.infra.conftest import CHESS

    cfg = read_stack(CHESS, "dr")
    assert cfg.app.name != "claude-deployment"
    run = runs["chess-dr"]
    assert run.one("aws:sns/topic:Topic").inputs["name"] == f"{cfg.app.name}-dr-readiness"
    alarms = _alarms(run)
    assert set(alarms) == {a.name for a in alarm_specs(cfg.app)}
    lag = alarms[f"{cfg.app.name}-readiness-replica-lag-over-rpo"]
    assert lag["threshold"] == cfg.app.objectives.rpo_seconds
    assert all(a["dimensions"]["App"] == cfg.app.name for a in alarms.values())
