"""CloudWatch adapter: read a metric's recent datapoints (e.g. RDS ``ReplicaLag``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from dr.aws.rds import _aware, aws_errors
from dr.aws.session import ClientProvider


@dataclass(frozen=True)
class Datapoint:
    timestamp: dt.datetime
    value: float


def latest_metric(
    clients: ClientProvider,
    region: str,
    *,
    namespace: str,
    metric: str,
    dimensions: dict[str, str],
    window: dt.timedelta = dt.timedelta(minutes=10),
    period: int = 60,
    statistic: str = "Maximum",
    now: dt.datetime | None = None,
) -> Datapoint | None:
    """The newest datapoint of ``metric`` in the last ``window`` (None when there is none)."""
    end = (now or dt.datetime.now(dt.UTC)) + dt.timedelta(minutes=1)
    start = end - window - dt.timedelta(minutes=1)
    resource = f"CloudWatch {namespace}/{metric} " + ",".join(f"{k}={v}" for k, v in dimensions.items())
    with aws_errors(resource=resource, region=region, action="read"):
        raw: dict[str, Any] = clients.client("cloudwatch", region).get_metric_statistics(
            Namespace=namespace,
            MetricName=metric,
            Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
            StartTime=start,
            EndTime=end,
            Period=period,
            Statistics=[statistic],
        )
    points = [
        Datapoint(_aware(p["Timestamp"]) or end, float(p[statistic]))
        for p in raw.get("Datapoints", [])
        if statistic in p
    ]
    return max(points, key=lambda p: p.timestamp) if points else None


def replica_lag(
    clients: ClientProvider, region: str, db_instance: str, *, now: dt.datetime | None = None
) -> Datapoint | None:
    """RDS ``ReplicaLag`` (seconds) of a read replica, newest datapoint of the last 10 minutes."""
    return latest_metric(
        clients,
        region,
        namespace="AWS/RDS",
        metric="ReplicaLag",
        dimensions={"DBInstanceIdentifier": db_instance},
        now=now,
    )
