"""Pure parts of the realism layer: request parsing, fault rules, error envelopes, transitions,
health evaluation."""

from __future__ import annotations

import datetime as dt
import io
import json
import threading
import time
from typing import Any

import pytest

from dr.sandbox.fakeaws.faults import FaultRule, Faults
from dr.sandbox.fakeaws.health_checks import HealthEvaluator
from dr.sandbox.fakeaws.middleware import Realism
from dr.sandbox.fakeaws.route53_ops import parse_changes
from dr.sandbox.fakeaws.transitions import Transitions
from dr.sandbox.fakeaws.wire import (
    AwsRequest,
    ErrorReply,
    cbor_map,
    parse_request,
    parse_time,
    throttle_reply,
)
from dr.sandbox.latency import LatencyProfile


def _auth(region: str, service: str) -> str:
    return (
        f"AWS4-HMAC-SHA256 Credential=sandbox/20261124/{region}/{service}/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=abc"
    )


def _environ(
    region: str, service: str, *, body: bytes = b"", method: str = "POST", path: str = "/", **headers: str
) -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "HTTP_AUTHORIZATION": _auth(region, service),
    }
    env.update(headers)
    return env


# -- parsing -------------------------------------------------------------------------------------


def test_query_request_region_service_operation_and_body_kept() -> None:
    body = b"Action=PromoteReadReplica&Version=2014-10-31&DBInstanceIdentifier=db-1"
    env = _environ(
        "us-east-1", "rds", body=body, CONTENT_TYPE="application/x-www-form-urlencoded; charset=utf-8"
    )
    req = parse_request(env)
    assert req is not None
    assert (req.service, req.region, req.operation, req.protocol) == (
        "rds",
        "us-east-1",
        "PromoteReadReplica",
        "query",
    )
    assert req.params["DBInstanceIdentifier"] == "db-1"
    assert env["wsgi.input"].read() == body  # moto can still read it


def test_json_cbor_and_rest_requests() -> None:
    waf = parse_request(
        _environ(
            "eu-west-1",
            "wafv2",
            HTTP_X_AMZ_TARGET="AWSWAF_20190729.GetIPSet",
            CONTENT_TYPE="application/x-amz-json-1.1",
        )
    )
    assert waf is not None and (waf.operation, waf.protocol) == ("GetIPSet", "json")
    cw = parse_request(
        _environ(
            "us-west-2",
            "monitoring",
            path="/service/GraniteServiceVersion20100801/operation/GetMetricData",
            CONTENT_TYPE="application/cbor",
            HTTP_SMITHY_PROTOCOL="rpc-v2-cbor",
        )
    )
    assert cw is not None and (cw.operation, cw.protocol) == ("GetMetricData", "cbor")
    eks = parse_request(_environ("us-west-2", "eks", path="/clusters/c1/node-groups/ng/update-config"))
    assert eks is not None and eks.operation == "UpdateNodegroupConfig"
    r53 = parse_request(_environ("us-east-1", "route53", method="GET", path="/2013-04-01/change/C123"))
    assert r53 is not None and r53.operation == "GetChange"
    hc = parse_request(
        _environ("us-east-1", "route53", method="GET", path="/2013-04-01/healthcheck/abc/status")
    )
    assert hc is not None and hc.operation == "GetHealthCheckStatus"


def test_unsigned_request_is_not_aws() -> None:
    env = _environ("us-east-1", "rds")
    del env["HTTP_AUTHORIZATION"]
    assert parse_request(env) is None


def test_parse_time_variants() -> None:
    assert parse_time("2026-11-24T07:00:00Z") == dt.datetime(2026, 11, 24, 7, 0, tzinfo=dt.UTC)
    assert parse_time("2026-11-24T07:00:00") == dt.datetime(2026, 11, 24, 7, 0, tzinfo=dt.UTC)
    assert parse_time("0") == dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_parse_route53_changes() -> None:
    body = b"""<?xml version="1.0"?><ChangeResourceRecordSetsRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/">
    <ChangeBatch><Changes><Change><Action>CREATE</Action><ResourceRecordSet><Name>api.example.com</Name>
    <Type>CNAME</Type><SetIdentifier>east</SetIdentifier><Failover>SECONDARY</Failover><TTL>60</TTL>
    <ResourceRecords><ResourceRecord><Value>lb.example.com</Value></ResourceRecord></ResourceRecords>
    </ResourceRecordSet></Change></Changes></ChangeBatch></ChangeResourceRecordSetsRequest>"""
    assert parse_changes(body) == [
        {
            "action": "CREATE",
            "name": "api.example.com",
            "type": "CNAME",
            "set_identifier": "east",
            "failover": "SECONDARY",
        }
    ]
    assert parse_changes(b"not xml") == []


# -- faults ----------------------------------------------------------------------------------------


def _req(
    region: str = "us-west-2", service: str = "rds", operation: str = "DescribeDBInstances"
) -> AwsRequest:
    return AwsRequest(service, region, operation, "POST", "/", b"")


def test_fault_rule_validation() -> None:
    with pytest.raises(ValueError, match="rate"):
        FaultRule(kind="throttle", rate=1.5)
    with pytest.raises(ValueError, match="kind"):
        FaultRule(kind="meteor")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown fault field"):
        FaultRule.from_dict({"kind": "error", "severity": "high"})


def test_fault_rule_matching() -> None:
    rule = FaultRule(kind="throttle", region="us-west-2", service="rds", operation="DescribeDBInstances")
    assert rule.matches(_req())
    assert not rule.matches(_req(region="us-east-1"))
    assert not rule.matches(_req(service="eks"))
    assert not rule.matches(_req(operation="PromoteReadReplica"))
    down = FaultRule(kind="unreachable", region="us-east-1")
    assert down.matches(_req(region="us-east-1"))
    # Route53 is global: a regional outage does not take it down.
    assert not down.matches(_req(region="us-east-1", service="route53"))


def test_fault_rate_is_honoured_statistically() -> None:
    faults = Faults(seed=7)
    faults.add(FaultRule(kind="error", rate=0.3))
    hits = sum(faults.pick(_req()) is not None for _ in range(4000))
    assert 0.26 < hits / 4000 < 0.34
    assert faults.injected["error"] == hits


def test_region_down_notifies_listeners_and_up_restores() -> None:
    faults = Faults()
    events: list[tuple[str, bool]] = []
    faults.listeners.append(lambda region, up: events.append((region, up)))
    faults.set_region_down("us-west-2")
    assert faults.region_down("us-west-2") and not faults.region_down("us-east-1")
    assert faults.pick(_req()) is not None
    faults.set_region_up("us-west-2")
    assert not faults.region_down("us-west-2")
    assert faults.pick(_req()) is None
    assert events == [("us-west-2", False), ("us-west-2", True)]


# -- error envelopes: botocore must parse them into the right code/status ----------------------------


def _botocore_parse(protocol: str, reply: ErrorReply) -> dict[str, Any]:
    from botocore.parsers import create_parser

    status, headers, body = reply.render(protocol)
    parser = create_parser({"cbor": "smithy-rpc-v2-cbor"}.get(protocol, protocol))
    parsed: dict[str, Any] = parser.parse(
        {"status_code": status, "headers": dict(headers), "body": body}, None
    )
    return parsed


@pytest.mark.parametrize(
    ("service", "protocol", "code", "status"),
    [
        ("rds", "query", "Throttling", 400),
        ("eks", "rest-json", "ThrottlingException", 429),
        ("wafv2", "json", "ThrottlingException", 400),
        ("route53", "rest-xml", "Throttling", 400),
        ("monitoring", "cbor", "Throttling", 400),
        ("monitoring", "json", "Throttling", 400),
        ("ec2", "ec2", "RequestLimitExceeded", 503),
        ("s3", "rest-xml", "SlowDown", 503),
    ],
)
def test_throttle_envelopes_parse_in_botocore(service: str, protocol: str, code: str, status: int) -> None:
    reply = throttle_reply(service, protocol)
    parsed = _botocore_parse(protocol, reply)
    assert parsed["Error"]["Code"] == code
    assert reply.status == status


def test_cbor_map_is_valid_cbor() -> None:
    long = "m" * 300  # exercises the 2-byte length header
    parsed = _botocore_parse("cbor", ErrorReply(400, "SomeCode", long))
    assert (parsed["Error"]["Code"], parsed["Error"]["Message"]) == ("SomeCode", long)
    assert cbor_map({"a": "b"}) == bytes([0xA1, 0x61, 0x61, 0x61, 0x62])


# -- transitions ------------------------------------------------------------------------------------


def test_zero_duration_transition_completes_before_returning() -> None:
    table = Transitions()
    done: list[str] = []
    tr = table.begin("rds.promote", "us-east-1", "db", "modifying", 0.0, lambda: done.append("x"))
    assert tr.done and done == ["x"]
    assert table.active() == []


def test_timed_transition_is_visible_then_completes_once() -> None:
    table = Transitions()
    table.start()
    done = threading.Event()
    calls: list[int] = []
    try:
        table.begin(
            "rds.snapshot", "us-west-2", "s1", "creating", 0.05, lambda: (calls.append(1), done.set())
        )
        active = table.get("rds.snap", "us-west-2", "s1")
        assert active is not None and active.status == "creating"
        assert done.wait(5)
        assert table.wait_idle(5)
        assert table.get("rds.snap", "us-west-2", "s1") is None
        assert calls == [1]
    finally:
        table.stop()


def test_failing_completion_does_not_kill_the_scheduler() -> None:
    table = Transitions()
    table.start()
    ok = threading.Event()
    try:
        table.begin("a", "r", "1", "x", 0.01, lambda: 1 / 0)  # type: ignore[func-returns-value]
        table.begin("a", "r", "2", "x", 0.02, ok.set)
        assert ok.wait(5)
    finally:
        table.stop()


# -- health evaluation --------------------------------------------------------------------------------


def test_health_change_is_reported_only_after_the_evaluation_delay() -> None:
    now = [1000.0]
    truth = {"us-west-2": True}
    ev = HealthEvaluator(["us-west-2"], lambda r: truth[r], lambda: 10.0, clock=lambda: now[0])
    ev.tick()
    assert ev.healthy("us-west-2")
    truth["us-west-2"] = False
    ev.tick()
    assert ev.healthy("us-west-2")  # checkers have not agreed yet
    now[0] += 9.9
    ev.tick()
    assert ev.healthy("us-west-2")
    now[0] += 0.2
    ev.tick()
    assert not ev.healthy("us-west-2")
    # A flap shorter than the delay is never reported.
    truth["us-west-2"] = True
    ev.tick()
    now[0] += 5
    truth["us-west-2"] = False
    ev.tick()
    now[0] += 6
    ev.tick()
    assert not ev.healthy("us-west-2")


def test_probe_exception_counts_unhealthy() -> None:
    def boom(region: str) -> bool:
        raise OSError("refused")

    ev = HealthEvaluator(["r"], boom, lambda: 0.0)
    ev.tick()
    assert not ev.healthy("r")


def test_reports_say_whether_the_endpoint_answered_and_follow_the_reported_state() -> None:
    """A 503 is an answer (Route53: "HTTP Status Code 503"), a bare False is no answer; the report
    changes together with the (delayed) reported state, never ahead of it."""
    from dr.aws.route53 import answered
    from dr.sandbox.fakeaws.health_checks import NO_ANSWER, http_report

    now = [0.0]
    truth: dict[str, Any] = {"r": http_report(200)}
    ev = HealthEvaluator(["r"], lambda r: truth[r], lambda: 10.0, clock=lambda: now[0])
    ev.start()
    ev.stop()
    assert ev.healthy("r") and ev.report("r").startswith("Success: HTTP Status Code 200")
    truth["r"] = http_report(503)
    ev.tick()
    assert ev.healthy("r") and ev.report("r").startswith("Success")  # not reported yet
    now[0] += 10.1
    ev.tick()
    assert not ev.healthy("r")
    assert ev.report("r").startswith("Failure: HTTP Status Code 503") and answered(ev.report("r"))
    truth["r"] = False  # the endpoint stops answering: still unhealthy, the report says why
    ev.tick()
    assert ev.report("r") == NO_ANSWER and not answered(NO_ANSWER)


# -- Realism without moto -------------------------------------------------------------------------


def test_capacity_follows_nodes_and_region_loss(estate: Any) -> None:
    realism = Realism(estate, LatencyProfile())
    view = estate.secondary
    ng = view.cluster.nodegroup
    realism.set_nodes(view.region, view.cluster.name, ng.name, 3)
    assert realism.capacity(view.cluster.name) == 3 * ng.pods_per_node
    realism.faults.set_region_down(view.region)
    assert realism.capacity(view.cluster.name) == 0
    assert realism.capacity("no-such-cluster") == 0


def test_admin_api_faults_and_unknown_paths(estate: Any) -> None:
    realism = Realism(estate, LatencyProfile())
    added = realism.admin("POST", "/faults", {"kind": "throttle", "rate": 0.5, "service": "rds"}, {})["added"]
    assert added[0]["rate"] == 0.5
    assert len(realism.admin("GET", "/faults", {}, {})["rules"]) == 1
    realism.admin("DELETE", "/faults", {}, {})
    assert realism.admin("GET", "/faults", {}, {})["rules"] == []
    with pytest.raises(KeyError):
        realism.admin("POST", "/regions/mars-1/down", {}, {})
    with pytest.raises(KeyError):
        realism.admin("GET", "/nope", {}, {})
    events: list[str] = []
    realism.on("region.down", lambda region: events.append(region))
    assert realism.admin("POST", f"/regions/{estate.primary.region}/down", {}, {})["down"] is True
    assert events == [estate.primary.region]
    assert json.dumps(realism.admin("GET", "/transitions", {}, {}))


def test_fast_forward_completes_only_the_matching_transitions() -> None:
    table = Transitions()
    table.start()
    done: list[str] = []
    try:
        table.begin("rds.snapshot", "r", "s1", "creating", 60, lambda: done.append("snap"))
        table.begin("eks.nodegroup_scale", "r", "ng", "UPDATING", 60, lambda: done.append("ng"))
        assert table.fast_forward("rds.") == 1
        deadline = time.monotonic() + 5
        while done != ["snap"]:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert [t.kind for t in table.active()] == ["eks.nodegroup_scale"]
    finally:
        table.stop()


def test_admin_latency_overrides_apply_and_reset(estate: Any) -> None:
    realism = Realism(estate, LatencyProfile("fast"))
    assert realism.profile.duration("rds.promote") == pytest.approx(0.2)
    realism.admin("POST", "/latency", {"overrides": {"rds.promote": 30}}, {})
    assert realism.profile.duration("rds.promote") == 30
    with pytest.raises(ValueError):
        realism.admin("POST", "/latency", {"overrides": {"rds.promote": -1}}, {})
    realism.admin("DELETE", "/latency", {}, {})
    assert realism.profile.duration("rds.promote") == pytest.approx(0.2)
