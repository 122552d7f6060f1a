"""CloudWatch: alarms evaluated on the datapoints put (moto never evaluates them) and the replicas'
measured ReplicaLag published."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dr.sandbox.fakeaws.backends import cloudwatch_backend, rds_backend
from dr.sandbox.fakeaws.wire import AwsRequest, Reply, aware, utcnow

if TYPE_CHECKING:
    from dr.sandbox.fakeaws.layer import Handler, Layer


COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": lambda v, t: v > t,
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}


def evaluate_alarms(region: str, now: dt.datetime | None = None) -> None:
    """Set each metric alarm of ``region`` to ALARM/OK from its metric's datapoints in the last
    period (statistic Minimum/Maximum/Average; no datapoint: state unchanged). A simplification of
    CloudWatch's evaluation (one period; M-of-N and missing-data treatment are not modelled)."""
    backend = cloudwatch_backend(region)
    now = now or utcnow()
    for alarm in list(backend.alarms.values()):
        if alarm.comparison_operator not in COMPARE or alarm.metric_data_queries:
            continue
        want = {(d.name, d.value) for d in alarm.dimensions}
        start = now - dt.timedelta(seconds=int(alarm.period or 60))
        values = [
            float(d.value)
            for d in backend.metric_data
            if d.namespace == alarm.namespace
            and d.name == alarm.metric_name
            and {(x.name, x.value) for x in d.dimensions} == want
            and aware(d.timestamp) >= start
            and hasattr(d, "value")
        ]
        if not values:
            continue
        stat = {"Minimum": min, "Maximum": max}.get(alarm.statistic, lambda v: sum(v) / len(v))
        value = stat(values)
        breaching = COMPARE[alarm.comparison_operator](value, float(alarm.threshold))
        state = "ALARM" if breaching else "OK"
        if alarm.state_value != state:
            reason = (
                f"Threshold Crossed: {alarm.statistic} {value:g} "
                f"{'breaches' if breaching else 'within'} threshold {alarm.threshold:g} (sandbox evaluation)"
            )
            backend.set_alarm_state(alarm.name, reason, json.dumps({"value": value}), state)


def put_metric_data(layer: Layer, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
    """moto stores metrics but never evaluates alarms: evaluate the region's alarms on the
    datapoints just put, as CloudWatch would within a period."""
    reply = layer.call_inner(environ)
    if reply[0] == 200:
        evaluate_alarms(req.region)
    return reply


def publish_replica_lag(layer: Layer) -> None:
    """Put each replica's measured lag into moto's CloudWatch (``AWS/RDS ReplicaLag``)."""
    if layer.estate is None:
        return
    for region in layer.estate.regions:
        try:
            replicas = [db for db in list(rds_backend(region).databases.values()) if db.is_replica]
        except Exception:
            continue
        for db in replicas:
            ident = db.db_instance_identifier
            lag: float | None
            if layer.lag_fn is not None:
                try:
                    lag = layer.lag_fn(region, ident)
                except Exception:
                    lag = None
            else:  # no real database: the modelled shipping delay
                lag = layer.profile.duration("replication.lag")
            if lag is not None:
                put_lag(region, ident, float(lag))


def put_lag(region: str, ident: str, lag: float) -> None:
    backend = cloudwatch_backend(region)
    backend.put_metric_data(
        "AWS/RDS",
        [
            {
                "MetricName": "ReplicaLag",
                "Value": lag,
                "Unit": "Seconds",
                "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": ident}],
                "Timestamp": utcnow().replace(tzinfo=None),  # moto keeps naive UTC
            }
        ],
    )
    cutoff = utcnow() - dt.timedelta(hours=3)
    backend.metric_data = [
        d for d in backend.metric_data if not (d.name == "ReplicaLag" and aware(d.timestamp) < cutoff)
    ]


HANDLERS: dict[tuple[str, str], Handler] = {
    ("monitoring", "PutMetricData"): put_metric_data,
}
