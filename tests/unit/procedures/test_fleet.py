"""The fleet plan (data) and its DNS step against moto; rate limits are in tests/unit/runbook."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from dr.aws.session import CallRecorder, ClientProvider
from dr.errors import BadInput
from dr.procedures.fleet import (
    TAIL,
    Fleet,
    FleetDb,
    FleetRecord,
    fleet_inventory,
    fleet_plan,
    load_fleet,
    promotion_groups,
    run_fleet,
)
from dr.runbook.poll import PollPolicy
from dr.runbook.ratelimit import AwsSideThrottle, RateLimiter
from tests.unit.procedures.estate_seed import fix_moto_promote

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
from bench_fleet import build_fleet

FAST = PollPolicy(first=0.02, factor=1.5, cap=0.2, floor=0.02, fraction=0.1)


def test_fleet_file_validation(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        "databases:\n  - {identifier: a, region: us-east-1}\nrecords:\n  - {zoneId: Z1, name: x.example.com, db: b}\n"
    )
    with pytest.raises(BadInput, match="does not list"):
        load_fleet(path)
    path.write_text("databases:\n  - {region: us-east-1}\n")
    with pytest.raises(BadInput, match=r"databases\[0\] has no `identifier`"):
        load_fleet(path)
    path.write_text("databases: {identifier: a}\n")
    with pytest.raises(BadInput, match="must be a list"):
        load_fleet(path)
    path.write_text(
        "databases:\n  - {identifier: a, region: us-east-1}\n"
        "records:\n  - {zoneId: Z1, name: x.example.com., db: a, ttl: soon}\n"
    )
    with pytest.raises(BadInput, match=r"records\[0\].ttl"):
        load_fleet(path)
    path.write_text(
        "databases:\n  - {identifier: a, region: us-east-1}\nrecords:\n  - {zoneId: Z1, name: x.example.com., db: a}\n"
    )
    fleet = load_fleet(path)
    assert fleet.records == [FleetRecord("Z1", "x.example.com", "a")]
    with pytest.raises(BadInput, match="twice"):
        Fleet([FleetDb("a", "us-east-1"), FleetDb("a", "us-east-1")])
    with pytest.raises(BadInput, match="twice"):
        Fleet([FleetDb("a", "us-east-1")], [FleetRecord("Z1", "x.y", "a"), FleetRecord("Z1", "X.y", "a")])
    with pytest.raises(BadInput, match="not an AWS region"):
        Fleet([FleetDb("a", "mars-1")])


def test_plan_one_dns_step_per_zone_and_no_promotion_before_every_inventory() -> None:
    dbs = [FleetDb(f"db{i}", "us-east-1") for i in range(3)] + [FleetDb("w", "eu-west-1")]
    recs = [FleetRecord("Z1", "a.x", "db0"), FleetRecord("Z1", "b.x", "w"), FleetRecord("Z2", "c.y", "db1")]
    plan = fleet_plan(Fleet(dbs, recs))
    assert [s.id for s in plan.steps if s.service == "route53"] == ["dns-Z1", "dns-Z2"]
    # db0 (zone Z1), db1 (Z2) and db2 (no record) are waited for in separate groups
    assert set(plan.step("dns-Z1").depends_on) == {"promoted-us-east-1-1", "promoted-eu-west-1"}
    assert plan.step("dns-Z2").depends_on == ("promoted-us-east-1-2",)
    assert plan.step("promoted-us-east-1-3").depends_on == ("promote-db2",)
    for d in dbs:
        assert set(plan.step(f"promote-{d.identifier}").depends_on) == {
            "inventory-us-east-1",
            "inventory-eu-west-1",
        }


def test_groups_go_zone_by_zone_with_a_small_last_group() -> None:
    # the benchmark's layout: record j -> db j % 100, zone j % 2 (so zone 0 holds the even dbs)
    dbs = [FleetDb(f"d{i:03d}", "us-east-1") for i in range(100)]
    recs = [FleetRecord(f"Z{j % 2}", f"r{j}.x", f"d{j % 100:03d}") for j in range(200)]
    groups = promotion_groups(Fleet(dbs, recs))["us-east-1"]
    assert [len(g) for g in groups] == [50, 50 - TAIL, TAIL]
    assert all(int(i[1:]) % 2 == 0 for i in groups[0])
    assert all(int(i[1:]) % 2 == 1 for g in groups[1:] for i in g)
    plan = fleet_plan(Fleet(dbs, recs))
    promotes = [s.id.removeprefix("promote-") for s in plan.steps if s.id.startswith("promote-")]
    assert promotes == [i for g in groups for i in g]  # plan order = promotion order
    assert plan.step("dns-Z0").depends_on == ("promoted-us-east-1-1",)
    assert set(plan.step("dns-Z1").depends_on) == {"promoted-us-east-1-2", "promoted-us-east-1-3"}
    # no group reads more than 100 instances (one DescribeDBInstances filter)
    many = Fleet([FleetDb(f"m{i}", "us-east-1") for i in range(250)])
    assert [len(g) for g in promotion_groups(many)["us-east-1"]] == [100, 100, 40, TAIL]


@pytest.fixture
def moto_fleet(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    fix_moto_promote(monkeypatch)
    with mock_aws():
        yield


def _build(dbs: int, records: int, zones: int = 1) -> Fleet:
    return build_fleet(
        ClientProvider(), dbs=dbs, records=records, zones=zones, source="us-west-2", target="us-east-1"
    )


def test_inventory_preflight_names_missing_databases(moto_fleet: None) -> None:
    fleet = _build(2, 0)
    clients = ClientProvider()
    assert sorted(fleet_inventory(clients, fleet)["to_promote"]) == sorted(
        d.identifier for d in fleet.databases
    )
    bad = Fleet([*fleet.databases, FleetDb("ghost", "us-east-1")])
    with pytest.raises(BadInput, match="ghost") as err:
        fleet_inventory(clients, bad)
    assert err.value.region == "us-east-1"


def test_missing_database_fails_the_run_before_any_promotion(moto_fleet: None) -> None:
    fleet = _build(3, 1)
    bad = Fleet([*fleet.databases, FleetDb("ghost", "us-west-2")], fleet.records)
    clients = ClientProvider()
    recorder = clients.add_recorder(CallRecorder())
    result = run_fleet(clients, bad, poll=FAST)
    assert result.status == "failed"
    assert "ghost" in (result.step("inventory-us-west-2").error or "")
    assert recorder.mutating() == []


def _pending_changes(clients: ClientProvider) -> None:
    """Make Route53 answer PENDING to ChangeResourceRecordSets, as AWS does (moto says INSYNC)."""

    def pending(parsed: dict[str, Any], **_: Any) -> None:
        parsed["ChangeInfo"]["Status"] = "PENDING"

    clients.client("route53", "us-east-1").meta.events.register(
        "after-call.route-53.ChangeResourceRecordSets", pending
    )


def test_dns_polls_get_change_only_when_the_change_is_pending(moto_fleet: None) -> None:
    fleet = _build(2, 4)
    clients = ClientProvider()
    recorder = clients.add_recorder(CallRecorder())
    assert run_fleet(clients, fleet, poll=FAST).status == "succeeded"
    assert "GetChange" not in {c.operation for c in recorder.since(0)}  # INSYNC in the answer

    _pending_changes(clients)
    start = len(recorder)
    assert run_fleet(clients, fleet, poll=FAST).status == "succeeded"
    ops = Counter(c.operation for c in recorder.since(start))
    assert ops["ChangeResourceRecordSets"] == 1 and ops["GetChange"] >= 1


def test_zone_over_500_records_sends_batches_one_after_another(moto_fleet: None) -> None:
    fleet = _build(2, 501)
    clients = ClientProvider(retry_mode="standard", max_attempts=10)
    aws = AwsSideThrottle(zone_write_seconds=0.05)
    aws.attach(clients)
    _pending_changes(clients)
    recorder = clients.add_recorder(CallRecorder())
    result = run_fleet(clients, fleet, limiter=RateLimiter(), recorder=recorder, poll=FAST)
    assert result.status == "succeeded", [(s.id, s.error) for s in result.steps if s.error]
    calls = [c for c in recorder.since(0) if c.service == "route53"]
    ops = [c.operation for c in calls]
    assert ops.count("ChangeResourceRecordSets") == 2
    # the second batch went out only after GetChange saw the first INSYNC
    first, second = [i for i, op in enumerate(ops) if op == "ChangeResourceRecordSets"]
    assert "GetChange" in ops[first:second]
    zone = next(iter(fleet.zones()))
    r53 = clients.client("route53", "us-east-1")
    names = {
        s["Name"].rstrip(".")
        for page in r53.get_paginator("list_resource_record_sets").paginate(HostedZoneId=zone)
        for s in page["ResourceRecordSets"]
        if s["Type"] == "CNAME"
    }
    assert names == {r.name for r in fleet.records}


def test_change_batches_respect_route53_counting() -> None:
    from dr.aws.route53 import MAX_BATCH_VALUE_CHARS, change_batches, change_cost

    def cname(action: str, value: str, n: int = 1) -> dict[str, Any]:
        rrs = {"Name": "x.example.com", "Type": "CNAME", "ResourceRecords": [{"Value": value}] * n}
        return {"Action": action, "ResourceRecordSet": rrs}

    assert change_cost(cname("UPSERT", "a" * 50)) == (2, 100)
    assert change_cost(cname("CREATE", "a" * 50, 3)) == (3, 150)
    alias = {"Action": "UPSERT", "ResourceRecordSet": {"Name": "x", "Type": "A", "AliasTarget": {}}}
    assert change_cost(alias) == (0, 0)
    upserts = [cname("UPSERT", "a" * 50) for _ in range(500)]
    batches = change_batches(upserts)
    assert [len(b) for b in batches] == [320, 180]  # 320 x 50 x 2 = 32,000 characters
    assert [c for b in batches for c in b] == upserts  # order kept
    short = [cname("UPSERT", "a") for _ in range(1001)]
    assert [len(b) for b in change_batches(short)] == [500, 500, 1]  # 1,000 elements
    assert [len(b) for b in change_batches([cname("CREATE", "a")] * 1001)] == [1000, 1]
    with pytest.raises(BadInput, match="alone exceeds"):
        change_batches([cname("UPSERT", "a" * (MAX_BATCH_VALUE_CHARS // 2 + 1))])


def _realism_server(overrides: dict[str, float]) -> Any:
    from dr.sandbox.fakeaws.middleware import Realism
    from dr.sandbox.latency import LatencyProfile
    from dr.sandbox.server import MotoServer

    realism = Realism(None, LatencyProfile("none", overrides=overrides))
    server = MotoServer(middleware=realism.middleware).start()
    realism.start()
    return realism, server


def _sandbox_clients(url: str) -> ClientProvider:
    from dr.target import SANDBOX_CREDENTIALS

    return ClientProvider(endpoint_url=url, credentials=dict(SANDBOX_CREDENTIALS), retry_mode="standard")


@pytest.mark.slow  # moto's server + RDS models
def test_a_large_zone_is_sent_in_batches_route53_accepts() -> None:
    """400 UPSERTs of ~45-character endpoints count ~36,000 characters: one batch is refused by
    Route53 (InvalidChangeBatch), so the zone goes out in batches within the limits."""
    realism, server = _realism_server({"route53.insync": 0.0})
    try:
        clients = _sandbox_clients(server.url)
        fleet = build_fleet(clients, dbs=2, records=400, zones=1, source="us-west-2", target="us-east-1")
        recorder = clients.add_recorder(CallRecorder())
        result = run_fleet(clients, fleet, limiter=RateLimiter(), recorder=recorder, poll=FAST)
        assert result.status == "succeeded", [(s.id, s.error) for s in result.steps if s.error]
        sent = [c for c in recorder.since(0) if c.operation == "ChangeResourceRecordSets"]
        assert len(sent) >= 2
        zone = next(iter(fleet.zones()))
        r53 = clients.client("route53", "us-east-1")
        endpoints = {
            s["Name"].rstrip("."): s["ResourceRecords"][0]["Value"]
            for page in r53.get_paginator("list_resource_record_sets").paginate(HostedZoneId=zone)
            for s in page["ResourceRecordSets"]
            if s["Type"] == "CNAME"
        }
        assert set(endpoints) == {r.name for r in fleet.records}
        assert sum(2 * len(v) for v in endpoints.values()) > 32000  # one batch would have been refused
    finally:
        realism.stop()
        server.stop()
        with mock_aws():  # moto's backends are process-global: starting a mock resets them
            pass


@pytest.mark.slow  # moto's server + RDS models, and 1 s promotions
def test_on_the_sandbox_realism_layer_dns_moves_only_after_its_databases_are_promoted() -> None:
    """The sandbox models a promotion as a transition (``modifying``, still a replica, then
    standalone) and a Route53 change as PENDING then INSYNC: the run waits for both, and each zone's
    change batch goes out only once every database it names has finished promoting."""
    import time

    from dr.sandbox.fakeaws.middleware import Realism
    from dr.sandbox.latency import LatencyProfile
    from dr.sandbox.server import MotoServer
    from dr.target import SANDBOX_CREDENTIALS

    realism = Realism(None, LatencyProfile("none", overrides={"rds.promote": 1.0, "route53.insync": 0.3}))
    server = MotoServer(middleware=realism.middleware).start()
    realism.start()
    promoted: dict[str, float] = {}

    def on_promoted(region: str, identifier: str) -> None:
        promoted.setdefault(identifier, time.time())

    realism.on("rds.promoted", on_promoted)
    try:
        clients = ClientProvider(
            endpoint_url=server.url, credentials=dict(SANDBOX_CREDENTIALS), retry_mode="standard"
        )
        fleet = build_fleet(clients, dbs=3, records=4, zones=2, source="us-west-2", target="us-east-1")
        recorder = clients.add_recorder(CallRecorder())
        result = run_fleet(clients, fleet, limiter=RateLimiter(), recorder=recorder, poll=FAST)
        assert result.status == "succeeded", [(s.id, s.error) for s in result.steps if s.error]
        calls = recorder.since(0)
        ops = Counter(c.operation for c in calls)
        assert ops["PromoteReadReplica"] == 3 and ops["ChangeResourceRecordSets"] == 2
        assert ops["GetChange"] >= 2  # each zone's change was PENDING at first
        # every wait saw its promotions still in progress, then complete
        assert all(s.polls >= 2 for s in result.steps if s.id.startswith("promoted-"))
        assert set(promoted) == {d.identifier for d in fleet.databases}
        sent = {c.params["HostedZoneId"]: c.at for c in calls if c.operation == "ChangeResourceRecordSets"}
        for zone, records in fleet.zones().items():
            assert all(promoted[r.db] <= sent[zone] for r in records), zone
        rds = clients.client("rds", "us-east-1")
        for db in fleet.databases:
            inst = rds.describe_db_instances(DBInstanceIdentifier=db.identifier)["DBInstances"][0]
            assert inst["DBInstanceStatus"] == "available"
            assert "ReadReplicaSourceDBInstanceIdentifier" not in inst
    finally:
        realism.stop()
        server.stop()
