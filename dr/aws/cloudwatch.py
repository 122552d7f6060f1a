"""CloudWatch adapter: read a metric's recent datapoints (e.g. RDS ``ReplicaLag``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from dr.aws.calls import aware as _aware
from dr.aws.calls import aws_errors
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


def _describe_alarms(
    clients: ClientProvider, region: str, resource: str, **filters: Any
) -> list[dict[str, Any]]:
    """Every alarm DescribeAlarms returns for ``filters`` (all pages), metric alarms first."""
    client = clients.client("cloudwatch", region)
    out: list[dict[str, Any]] = []
    with aws_errors(resource=resource, region=region, action="describe"):
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {**filters, "MaxRecords": 100}
            if token:
                kwargs["NextToken"] = token
            raw = client.describe_alarms(**kwargs)
            out += raw.get("MetricAlarms", []) + raw.get("CompositeAlarms", [])
            token = raw.get("NextToken")
            if not token:
                break
    return out


def alarms_in_state(clients: ClientProvider, region: str, state: str = "ALARM") -> list[Alarm]:
    """Metric and composite alarms currently in ``state`` (newest first). Added for `dr ops triage`."""
    out = [
        Alarm(
            name=a["AlarmName"],
            region=region,
            state=a.get("StateValue", state),
            reason=a.get("StateReason", ""),
            updated=_aware(a.get("StateUpdatedTimestamp")),
            metric=a.get("MetricName"),
        )
        for a in _describe_alarms(clients, region, f"CloudWatch alarms ({state})", StateValue=state)
    ]
    return sorted(out, key=lambda a: a.updated or dt.datetime.min.replace(tzinfo=dt.UTC), reverse=True)


# PutMetricData: at most 1000 metrics per request (the 1 MB payload limit is far off for ours).
PUT_BATCH = 1000


def put_metric_data(
    clients: ClientProvider,
    region: str,
    namespace: str,
    data: list[dict[str, Any]],
    *,
    batch: int = PUT_BATCH,
) -> int:
    """Put ``data`` (``MetricData`` entries) in ``namespace``, ``batch`` per request; returns the
    number of requests sent."""
    if not 1 <= batch <= PUT_BATCH:
        raise ValueError(f"PutMetricData takes 1-{PUT_BATCH} metrics per request, not {batch}")
    client = clients.client("cloudwatch", region)
    sent = 0
    with aws_errors(resource=f"CloudWatch metrics {namespace}", region=region, action="put"):
        for i in range(0, len(data), batch):
            client.put_metric_data(Namespace=namespace, MetricData=data[i : i + batch])
            sent += 1
    return sent


@dataclass(frozen=True)
class MetricAlarm:
    name: str
    region: str
    state: str
    reason: str
    metric: str | None
    namespace: str | None
    dimensions: dict[str, str]
    comparison: str | None
    threshold: float | None
    actions: tuple[str, ...]
    updated: dt.datetime | None

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            **asdict(self),
            "actions": list(self.actions),
            "updated": self.updated.isoformat() if self.updated else None,
        }


def alarms_with_prefix(clients: ClientProvider, region: str, prefix: str) -> list[MetricAlarm]:
    """Metric alarms whose name starts with ``prefix`` (DescribeAlarms AlarmNamePrefix), any state."""
    raw = _describe_alarms(
        clients, region, f"CloudWatch alarms {prefix}*", AlarmNamePrefix=prefix, AlarmTypes=["MetricAlarm"]
    )
    out = [
        MetricAlarm(
            name=a["AlarmName"],
            region=region,
            state=a.get("StateValue", "INSUFFICIENT_DATA"),
            reason=a.get("StateReason", ""),
            metric=a.get("MetricName"),
            namespace=a.get("Namespace"),
            dimensions={d["Name"]: d["Value"] for d in a.get("Dimensions", [])},
            comparison=a.get("ComparisonOperator"),
            threshold=a.get("Threshold"),
            actions=tuple(a.get("AlarmActions", [])),
            updated=_aware(a.get("StateUpdatedTimestamp")),
        )
        for a in raw
    ]
    return sorted(out, key=lambda a: a.name)
