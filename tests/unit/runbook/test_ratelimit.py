"""Rate limits (token buckets) and fleet failover under injected AWS throttling (moto).

Rates are computed from CallRecorder timestamps (the limiter runs before the recorder's hook, so a
timestamp is the moment a call was let through); no wall-clock duration is asserted.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from dr.aws.session import ApiCall, CallRecorder, ClientProvider
from dr.procedures.fleet import Fleet, run_fleet
from dr.runbook.poll import PollPolicy
from dr.runbook.ratelimit import (
    DEFAULT_LIMITS,
    AwsSideThrottle,
    Limit,
    RateLimiter,
    TokenBucket,
    max_rate,
    rate_lower_bound,
)
from tests.unit.procedures.estate_seed import fix_moto_promote

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
from bench_fleet import build_fleet

FAST = PollPolicy(first=0.02, factor=1.5, cap=0.2, floor=0.02, fraction=0.1)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _call(service: str, op: str, at: float, *, mutating: bool = True) -> ApiCall:
    return ApiCall(service, op, "us-east-1", {}, mutating, at)


# -- token buckets ---------------------------------------------------------------------------------


def test_token_bucket_allows_the_burst_then_the_refill_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=4, burst=2, clock=clock, sleep=clock.sleep)
    waits = [bucket.acquire() for _ in range(5)]
    assert waits[:2] == [0.0, 0.0]
    assert waits[2:] == pytest.approx([0.25, 0.25, 0.25])
    clock.now += 10  # refills up to the burst, not beyond
    assert [bucket.try_acquire() for _ in range(3)] == [True, True, False]


def test_limiter_counts_rds_mutations_only_and_route53_globally() -> None:
    clock = FakeClock()
    limiter = RateLimiter(
        {"rds": Limit(1, 1, mutating_only=True), "route53": Limit(1, 1)}, clock, clock.sleep, margin=0
    )
    for _ in range(5):
        limiter.before_call("rds", "us-east-1", "DescribeDBInstances")
    assert clock.slept == []
    limiter.before_call("rds", "us-east-1", "PromoteReadReplica")
    limiter.before_call("rds", "us-west-2", "PromoteReadReplica")  # another region: its own bucket
    assert clock.slept == []
    limiter.before_call("rds", "us-east-1", "PromoteReadReplica")
    assert clock.slept == [pytest.approx(1.0)]
    limiter.before_call("route53", "us-east-1", "GetChange")
    limiter.before_call("route53", "eu-west-1", "GetChange")  # Route53 is one global bucket
    assert clock.slept[-1] == pytest.approx(1.0)
    assert limiter.waited == pytest.approx(2.0)


def test_simulated_aws_throttles_over_the_limit_and_concurrent_zone_writes() -> None:
    clock = FakeClock()
    aws = AwsSideThrottle({"rds": Limit(2, 3, mutating_only=True)}, zone_write_seconds=0.5, clock=clock)
    decisions = [aws.decide("rds", "us-east-1", "PromoteReadReplica") for _ in range(4)]
    assert decisions == [None, None, None, "Throttling"]
    assert aws.decide("rds", "us-east-1", "DescribeDBInstances") is None
    url = "https://route53.amazonaws.com/2013-04-01/hostedzone/Z1/rrset/"
    assert aws.decide("route53", "us-east-1", "ChangeResourceRecordSets", url) is None
    assert aws.decide("route53", "us-east-1", "ChangeResourceRecordSets", url) == "PriorRequestNotComplete"
    other = url.replace("Z1", "Z2")
    assert aws.decide("route53", "us-east-1", "ChangeResourceRecordSets", other) is None
    clock.now += 0.6
    assert aws.decide("route53", "us-east-1", "ChangeResourceRecordSets", url) is None


def test_rate_measures_from_timestamps() -> None:
    calls = [_call("rds", "PromoteReadReplica", t) for t in (0.0, 0.1, 0.2, 1.05, 1.1)]
    calls.append(_call("rds", "DescribeDBInstances", 0.15, mutating=False))
    limit = Limit(12, 40, mutating_only=True)
    assert max_rate(calls, "rds", limit) == 3
    assert max_rate(calls, "rds", Limit(12, 40)) == 4  # counting reads too
    many = [_call("rds", "PromoteReadReplica", 0.0) for _ in range(100)]
    assert rate_lower_bound(many, DEFAULT_LIMITS) == pytest.approx((100 - 40) / 12)


# -- fleets ----------------------------------------------------------------------------------------


@pytest.fixture
def moto_fleet(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    fix_moto_promote(monkeypatch)
    with mock_aws():
        yield {}


def _build(dbs: int, records: int, zones: int = 2) -> Fleet:
    return build_fleet(
        ClientProvider(), dbs=dbs, records=records, zones=zones, source="us-west-2", target="us-east-1"
    )


def _within_bucket(calls: list[ApiCall], service: str, limit: Limit) -> list[str]:
    """Token-bucket bound: by time t after the first call, at most burst + rate * t calls."""
    times = sorted(c.at for c in calls if c.service == service and (c.mutating or not limit.mutating_only))
    bad = []
    for i, t in enumerate(times):
        allowed = limit.burst + limit.rate * (t - times[0]) + 1e-6
        if i + 1 > allowed + 1:  # +1: AWS counts the token in hand at the first call
            bad.append(f"call {i + 1} at +{t - times[0]:.3f}s exceeds {allowed:.1f}")
    return bad


@pytest.mark.slow
def test_fleet_of_100_dbs_and_200_records_completes_within_the_limits(moto_fleet: dict[str, Any]) -> None:
    fleet = _build(100, 200)
    clients = ClientProvider(retry_mode="standard", max_attempts=10)
    aws = AwsSideThrottle()
    aws.attach(clients)
    recorder = clients.add_recorder(CallRecorder())

    result = run_fleet(clients, fleet, limiter=RateLimiter(), recorder=recorder, poll=FAST)

    assert result.status == "succeeded", [(s.id, s.error) for s in result.steps if s.error]
    calls = recorder.since(0)
    rds = clients.client("rds", "us-east-1")
    insts = {
        i["DBInstanceIdentifier"]: i
        for page in rds.get_paginator("describe_db_instances").paginate()
        for i in page["DBInstances"]
    }
    assert all(not insts[d.identifier].get("ReadReplicaSourceDBInstanceIdentifier") for d in fleet.databases)
    # one change batch per zone, every record pointing at its promoted database
    changes = [c for c in calls if c.operation == "ChangeResourceRecordSets"]
    assert Counter(c.params["HostedZoneId"] for c in changes) == Counter(fleet.zones().keys())
    r53 = clients.client("route53", "us-east-1")
    for zone, records in fleet.zones().items():
        sets = {
            s["Name"].rstrip("."): s["ResourceRecords"][0]["Value"]
            for page in r53.get_paginator("list_resource_record_sets").paginate(HostedZoneId=zone)
            for s in page["ResourceRecordSets"]
            if s["Type"] == "CNAME"
        }
        for rec in records:
            assert sets[rec.name] == insts[rec.db]["Endpoint"]["Address"]
    # calls stay within the limits (from recorder timestamps), and the count is near the minimum
    assert _within_bucket(calls, "rds", DEFAULT_LIMITS["rds"]) == []
    assert _within_bucket(calls, "route53", DEFAULT_LIMITS["route53"]) == []
    assert max_rate(calls, "route53", DEFAULT_LIMITS["route53"]) <= 5
    assert sum(1 for c in calls if c.operation == "PromoteReadReplica") == 100
    assert len(calls) <= 100 + 2 * len(fleet.zones()) + 10
    assert aws.throttled.get("PriorRequestNotComplete", 0) == 0


@pytest.mark.slow
def test_throttling_from_aws_is_absorbed_and_never_surfaces(moto_fleet: dict[str, Any]) -> None:
    fleet = _build(20, 4)
    clients = ClientProvider(retry_mode="standard", max_attempts=10)
    aws = AwsSideThrottle({"rds": Limit(rate=20, burst=4, mutating_only=True), "route53": Limit(5, 5)})
    aws.attach(clients)
    # A limiter that believes in far higher limits than the (simulated) account has.
    loose = RateLimiter({"rds": Limit(1000, 1000, mutating_only=True)})

    result = run_fleet(clients, fleet, limiter=loose, poll=FAST)

    assert aws.throttled.get("Throttling", 0) > 0  # AWS did throttle…
    assert result.status == "succeeded", [(s.id, s.error) for s in result.steps if s.error]  # …nobody saw it


def test_rerun_skips_databases_already_promoted(moto_fleet: dict[str, Any]) -> None:
    fleet = _build(3, 2, zones=1)
    clients = ClientProvider()
    first = run_fleet(clients, fleet, poll=FAST)
    assert first.status == "succeeded"
    recorder = clients.add_recorder(CallRecorder())
    again = run_fleet(clients, fleet, poll=FAST)
    assert again.status == "succeeded"
    assert {s.id for s in again.steps if s.status == "skipped"} == {
        f"promote-{d.identifier}" for d in fleet.databases
    }
    assert "PromoteReadReplica" not in {c.operation for c in recorder.since(0)}
