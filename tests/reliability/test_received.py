"""The instrument R1 counts duplicates with: what the servers received (tests/reliability/received.py)."""

from __future__ import annotations

import json
from typing import Any

from tests.reliability.received import ReceivedLog
from tests.unit.sandbox.fakeaws.test_wire import _environ

FORM = "application/x-www-form-urlencoded; charset=utf-8"


def _app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [])
    return [body]  # echo: proves the body was put back for the inner app


def _send(log: ReceivedLog, region: str, service: str, body: bytes, **kw: Any) -> bytes:
    wsgi = log.wsgi(_app)
    return b"".join(wsgi(_environ(region, service, body=body, **kw), lambda *a: None))


def test_a_change_received_twice_is_a_duplicate_and_reads_bookkeeping_are_not_counted() -> None:
    log = ReceivedLog()
    promote = b"Action=PromoteReadReplica&Version=2014-10-31&DBInstanceIdentifier=db-1"
    assert _send(log, "us-east-1", "rds", promote, CONTENT_TYPE=FORM) == promote
    _send(log, "us-east-1", "rds", promote, CONTENT_TYPE=FORM)
    _send(log, "us-west-2", "rds", promote, CONTENT_TYPE=FORM)  # another region: another change
    describe = b"Action=DescribeDBInstances&Version=2014-10-31&DBInstanceIdentifier=db-1"
    _send(log, "us-east-1", "rds", describe, CONTENT_TYPE=FORM)
    lock = json.dumps({"TableName": "t", "Item": {}}).encode()
    _send(log, "us-east-1", "dynamodb", lock, HTTP_X_AMZ_TARGET="DynamoDB_20120810.PutItem")
    assert len(log.keys) == 3
    assert list(ReceivedLog.duplicates(log.keys).values()) == [2]


def test_idempotency_tokens_do_not_make_a_resend_a_new_change() -> None:
    log = ReceivedLog()
    for token in ("a", "b"):
        body = json.dumps({"scalingConfig": {"desiredSize": 6}, "clientRequestToken": token}).encode()
        _send(
            log,
            "us-east-1",
            "eks",
            body,
            method="POST",
            path="/clusters/c/node-groups/ng/update-config",
            CONTENT_TYPE="application/json",
        )
    assert len(log.keys) == 2 and ReceivedLog.duplicates(log.keys) != {}
    on_write = log.kube_writer("cluster-a")
    on_write("PATCH", "/apis/autoscaling/v2/namespaces/ns/horizontalpodautoscalers/api", {"spec": {"x": 1}})
    on_write("PATCH", "/apis/autoscaling/v2/namespaces/ns/horizontalpodautoscalers/api", {"spec": {"x": 1}})
    assert len(ReceivedLog.duplicates(log.since(2))) == 1
