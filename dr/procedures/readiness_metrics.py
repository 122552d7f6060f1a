"""Readiness as CloudWatch metrics and alarms: what `dr readiness --publish` puts, what the DR
stack alarms on (dr/infra/readiness.py), what `dr status` and the drill probe read back.

One definition for all of them, so the metric names, dimensions and thresholds cannot drift:

* ``CheckPassed`` {App, Check}: 1 when the check passed or warned, 0 when it failed — one per check;
* ``ReplicaLagSeconds`` {App}: the DR replica's ``ReplicaLag`` (alarm: above the RPO objective);
* ``RecoveryPointAgeSeconds`` {App}: age of the newest recovery point in DR (alarm: above
  ``app.readiness.recoveryPointBudgetSeconds``);
* ``SingleWriter`` {App}: 1 when at most one database is writable (alarm: below 1). Published on
  every run, its alarm treats missing data as breaching: readiness that stopped running alarms too.

No boto3 or pulumi at import: the Pulumi program imports the specs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dr.aws.cloudwatch import MetricAlarm
    from dr.aws.session import ClientProvider
    from dr.procedures.readiness import ReadinessReport
    from dr.topology import App, Estate

# Every check `dr readiness` reports, in report order (a test holds check_readiness to this list).
CHECKS = (
    "db-engine",
    "db-instance-class",
    "db-multi-az",
    "db-encryption",
    "db-parameter-group",
    "eks-version",
    "node-capacity",
    "waf-ip-set",
    "container-images",
    "single-writer",
    "db-secret",
    "replica-lag",
    "snapshot-age",
    "certificate-expiry",
    "redis",
)

CHECK_PASSED = "CheckPassed"
REPLICA_LAG = "ReplicaLagSeconds"
RECOVERY_POINT_AGE = "RecoveryPointAgeSeconds"
SINGLE_WRITER = "SingleWriter"

# Readiness facts (ReadinessReport.facts) published as their own metric.
FACT_METRICS = {
    "replica_lag_seconds": (REPLICA_LAG, "Seconds"),
    "recovery_point_age_seconds": (RECOVERY_POINT_AGE, "Seconds"),
}

# PutMetricData: at most 1000 metrics per request (and 1 MB; our data are far below it).
MAX_PER_REQUEST = 1000


@dataclass(frozen=True)
class AlarmSpec:
    name: str
    metric: str
    dimensions: dict[str, str]
    comparison: str  # CloudWatch ComparisonOperator
    threshold: float
    statistic: str
    period: int
    evaluation_periods: int
    treat_missing_data: str
    description: str

    def breaching(self, value: float) -> bool:
        ops = {
            "GreaterThanThreshold": value > self.threshold,
            "GreaterThanOrEqualToThreshold": value >= self.threshold,
            "LessThanThreshold": value < self.threshold,
            "LessThanOrEqualToThreshold": value <= self.threshold,
        }
        return ops[self.comparison]

    def put_kwargs(self, namespace: str, actions: list[str]) -> dict[str, Any]:
        """PutMetricAlarm parameters (the sandbox seeds the alarms the DR stack deploys)."""
        return {
            "AlarmName": self.name,
            "AlarmDescription": self.description,
            "Namespace": namespace,
            "MetricName": self.metric,
            "Dimensions": [{"Name": k, "Value": v} for k, v in self.dimensions.items()],
            "ComparisonOperator": self.comparison,
            "Threshold": self.threshold,
            "Statistic": self.statistic,
            "Period": self.period,
            "EvaluationPeriods": self.evaluation_periods,
            "TreatMissingData": self.treat_missing_data,
            "AlarmActions": actions,
            "OKActions": actions,
        }


def alarm_prefix(app: App) -> str:
    return f"{app.name}-readiness-"


def alarm_specs(app: App) -> list[AlarmSpec]:
    """The alarms the DR stack deploys on the readiness metrics (names ``<app>-readiness-…``)."""
    r = app.readiness
    period = r.schedule_minutes * 60
    prefix, dims = alarm_prefix(app), {"App": app.name}
    out = [
        AlarmSpec(
            name=f"{prefix}{check}",
            metric=CHECK_PASSED,
            dimensions={"App": app.name, "Check": check},
            comparison="LessThanThreshold",
            threshold=1,
            statistic="Minimum",
            period=period,
            evaluation_periods=1,
            treat_missing_data="missing",
            description=f"dr readiness check {check} failed for {app.name} (run `dr readiness`)",
        )
        for check in CHECKS
    ]
    out += [
        AlarmSpec(
            name=f"{prefix}replica-lag-over-rpo",
            metric=REPLICA_LAG,
            dimensions=dims,
            comparison="GreaterThanThreshold",
            threshold=app.objectives.rpo_seconds,
            statistic="Maximum",
            period=period,
            evaluation_periods=1,
            treat_missing_data="missing",
            description=f"DR replica lag above the RPO objective ({app.objectives.rpo_seconds:g}s)",
        ),
        AlarmSpec(
            name=f"{prefix}recovery-point-age",
            metric=RECOVERY_POINT_AGE,
            dimensions=dims,
            comparison="GreaterThanThreshold",
            threshold=r.recovery_point_budget_seconds,
            statistic="Maximum",
            period=period,
            evaluation_periods=1,
            treat_missing_data="missing",
            description=f"newest DR recovery point older than {r.recovery_point_budget_seconds:g}s",
        ),
        AlarmSpec(
            name=f"{prefix}single-writer-heartbeat",
            metric=SINGLE_WRITER,
            dimensions=dims,
            comparison="LessThanThreshold",
            threshold=1,
            statistic="Minimum",
            period=period,
            # Missing for 3 schedule periods: readiness stopped running (the alarm says so too).
            evaluation_periods=3,
            treat_missing_data="breaching",
            description="more than one writable database (split brain), or readiness stopped publishing",
        ),
    ]
    return out


def metric_data(report: ReadinessReport, app: App, *, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """PutMetricData ``MetricData`` entries for ``report``."""
    ts = now or report.generated_at
    dims = [{"Name": "App", "Value": app.name}]
    out: list[dict[str, Any]] = [
        {
            "MetricName": CHECK_PASSED,
            "Dimensions": [*dims, {"Name": "Check", "Value": c.name}],
            "Timestamp": ts,
            "Value": 0.0 if c.status == "fail" else 1.0,
            "Unit": "Count",
        }
        for c in report.checks
    ]
    for key, (metric, unit) in FACT_METRICS.items():
        value = report.facts.get(key)
        if value is not None:
            out.append(
                {
                    "MetricName": metric,
                    "Dimensions": dims,
                    "Timestamp": ts,
                    "Value": float(value),
                    "Unit": unit,
                }
            )
    writer = next((c for c in report.checks if c.name == "single-writer"), None)
    if writer is not None:
        out.append(
            {
                "MetricName": SINGLE_WRITER,
                "Dimensions": dims,
                "Timestamp": ts,
                "Value": 0.0 if writer.status == "fail" else 1.0,
                "Unit": "Count",
            }
        )
    return out


@dataclass(frozen=True)
class Published:
    namespace: str
    region: str
    metrics: int
    requests: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "region": self.region,
            "metrics": self.metrics,
            "requests": self.requests,
        }


def publish(report: ReadinessReport, estate: Estate, clients: ClientProvider) -> Published:
    """Put the report's metrics in the DR region (where the alarms live and survive the primary)."""
    from dr.aws.cloudwatch import put_metric_data

    ns, region = estate.app.readiness.namespace, estate.secondary.region
    data = metric_data(report, estate.app)
    requests = put_metric_data(clients, region, ns, data)
    return Published(ns, region, len(data), requests)


def readiness_alarms(clients: ClientProvider, estate: Estate) -> list[MetricAlarm]:
    """The readiness alarms in the DR region, as CloudWatch reports them (any state)."""
    from dr.aws.cloudwatch import alarms_with_prefix

    return alarms_with_prefix(clients, estate.secondary.region, alarm_prefix(estate.app))
