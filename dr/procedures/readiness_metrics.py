"""Readiness as CloudWatch metrics and alarms: what `dr readiness --publish` puts, what the DR
stack alarms on (dr/infra/readiness_alarms.py), what `dr status` and the drill probe read back.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from dr.aws.cloudwatch import MetricAlarm
    from dr.aws.session import ClientProvider
    from dr.topology import App, Estate


class _Check(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def status(self) -> str: ...


class ReadinessReport(Protocol):
    """What is published of a :class:`dr.procedures.readiness.ReadinessReport` (typed by its shape:
    readiness imports status, which reads the alarms here, so this module does not import it)."""

    @property
    def generated_at(self) -> dt.datetime: ...

    @property
    def checks(self) -> Sequence[_Check]: ...

    @property
    def facts(self) -> Mapping[str, float]: ...


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
    prefix, dims = alarm_prefix(app), {"App": app.name}

    def spec(
        suffix: str, metric: str, below: bool, threshold: float, description: str, **kw: Any
    ) -> AlarmSpec:
        """Below ``threshold`` (Minimum) or above it (Maximum) over one schedule period."""
        return AlarmSpec(
            name=f"{prefix}{suffix}",
            metric=metric,
            dimensions=kw.pop("dimensions", dims),
            comparison="LessThanThreshold" if below else "GreaterThanThreshold",
            threshold=threshold,
            statistic="Minimum" if below else "Maximum",
            period=r.schedule_minutes * 60,
            evaluation_periods=kw.pop("evaluation_periods", 1),
            treat_missing_data=kw.pop("treat_missing_data", "missing"),
            description=description,
        )

    out = [
        spec(check, CHECK_PASSED, True, 1, f"dr readiness check {check} failed for {app.name}",
             dimensions={"App": app.name, "Check": check})
        for check in CHECKS
    ]  # fmt: skip
    rpo, budget = app.objectives.rpo_seconds, r.recovery_point_budget_seconds
    out += [
        spec("replica-lag-over-rpo", REPLICA_LAG, False, rpo, f"DR replica lag above the RPO objective ({rpo:g}s)"),
        spec("recovery-point-age", RECOVERY_POINT_AGE, False, budget, f"newest DR recovery point older than {budget:g}s"),
        # Missing for 3 schedule periods: readiness stopped running (the alarm says so too).
        spec("single-writer-heartbeat", SINGLE_WRITER, True, 1,
             "more than one writable database (split brain), or readiness stopped publishing",
             evaluation_periods=3, treat_missing_data="breaching"),
    ]  # fmt: skip
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
