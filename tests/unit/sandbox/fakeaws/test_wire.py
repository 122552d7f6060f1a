"""The fake's wire protocols: request parsing and each protocol's error envelope."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest

from dr.sandbox.fakeaws.wire import (
    ErrorReply,
    cbor_map,
    parse_request,
    parse_time,
    throttle_reply,
)


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
