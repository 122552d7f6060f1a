"""CloudWatch adapter: read a metric's recent datapoints (e.g. RDS ``ReplicaLag``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from dr.aws.common import aware as _aware
from dr.aws.common import aws_errors
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
    since: dt.datetime | None = None,
) -> Datapoint | None:
    """The newest datapoint of ``metric`` in the last ``window`` (None when there is none).

    With ``since``: the newest of the periods that began after ``since`` (``window`` ignored).
    """
    end = (now or dt.datetime.now(dt.UTC)) + dt.timedelta(minutes=1)
    start = end - window - dt.timedelta(minutes=1)
    if since is not None:
        # Only periods that begin after ``since``: CloudWatch rounds StartTime down to the minute,
        # so start on the next whole minute (moto keeps the samples at/after StartTime).
        start = since.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        if start >= end:
            return None
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
    clients: ClientProvider,
    region: str,
    db_instance: str,
    *,
    now: dt.datetime | None = None,
    since: dt.datetime | None = None,
) -> Datapoint | None:
    """RDS ``ReplicaLag`` (seconds) of a read replica: newest datapoint of the last 10 minutes, or
    (``since``) of the periods that began after ``since``."""
    return latest_metric(
        clients,
        region,
        namespace="AWS/RDS",
        metric="ReplicaLag",
        dimensions={"DBInstanceIdentifier": db_instance},
        now=now,
        since=since,
    )


@dataclass(frozen=True)
class Alarm:
    name: str
    region: str
    state: str
    reason: str
    updated: dt.datetime | None
    metric: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "region": self.region,
            "state": self.state,
            "reason": self.reason,
            "updated": self.updated.isoformat() if self.updated else None,
            "metric": self.metric,
        }


def alarms_in_state(clients: ClientProvider, region: str, state: str = "ALARM") -> list[Alarm]:
    """Metric and composite alarms currently in ``state`` (newest first). Added for `dr ops triage`."""
    client = clients.client("cloudwatch", region)
    out: list[Alarm] = []
    with aws_errors(resource=f"CloudWatch alarms ({state})", region=region, action="list"):
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"StateValue": state, "MaxRecords": 100}
            if token:
                kwargs["NextToken"] = token
            raw = client.describe_alarms(**kwargs)
            for a in raw.get("MetricAlarms", []) + raw.get("CompositeAlarms", []):
                out.append(
                    Alarm(
                        name=a["AlarmName"],
                        region=region,
                        state=a.get("StateValue", state),
                        reason=a.get("StateReason", ""),
                        updated=_aware(a.get("StateUpdatedTimestamp")),
                        metric=a.get("MetricName"),
                    )
                )
            token = raw.get("NextToken")
            if not token:
                break
    return sorted(out, key=lambda a: a.updated or dt.datetime.min.replace(tzinfo=dt.UTC), reverse=True)
