"""ReplicaLag reads: ``since`` keeps only periods that began after a moment (the planned switch's
caught-up fallback must not trust a period sampled before writes stopped)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from moto import mock_aws

from dr.aws.cloudwatch import replica_lag
from dr.aws.session import ClientProvider

REGION, DB = "us-east-1", "app-replica"


@pytest.fixture
def clients() -> Iterator[ClientProvider]:
    with mock_aws():
        yield ClientProvider(credentials={"aws_access_key_id": "x", "aws_secret_access_key": "y"})


def _put(clients: ClientProvider, at: dt.datetime, value: float) -> None:
    clients.client("cloudwatch", REGION).put_metric_data(
        Namespace="AWS/RDS",
        MetricData=[
            {
                "MetricName": "ReplicaLag",
                "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": DB}],
                "Value": value,
                "Unit": "Seconds",
                "Timestamp": at,
            }
        ],
    )


def test_since_ignores_the_period_the_moment_falls_in(clients: ClientProvider) -> None:
    minute = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(minutes=5)
    stopped = minute + dt.timedelta(seconds=30)
    _put(clients, minute + dt.timedelta(seconds=10), 0.0)  # before the stop, same minute
    now = minute + dt.timedelta(seconds=50)
    assert replica_lag(clients, REGION, DB, now=now).value == 0.0  # type: ignore[union-attr]
    assert replica_lag(clients, REGION, DB, now=now, since=stopped) is None

    _put(clients, minute + dt.timedelta(seconds=65), 2.5)  # the next minute: still behind
    point = replica_lag(clients, REGION, DB, now=minute + dt.timedelta(seconds=100), since=stopped)
    assert point is not None and point.value == 2.5
    _put(clients, minute + dt.timedelta(seconds=130), 0.0)  # the one after: caught up
    point = replica_lag(clients, REGION, DB, now=minute + dt.timedelta(seconds=170), since=stopped)
    assert point is not None and point.value == 0.0
    # a moment after "now" has no period yet
    assert replica_lag(clients, REGION, DB, now=minute, since=minute + dt.timedelta(minutes=3)) is None
