"""Where runs keep their state: the lock table (DynamoDB) and the journal bucket (S3). Read-only
probes for ``dr doctor`` (dr.runbook.lock and dr.runbook.journal write them)."""

from __future__ import annotations

from typing import Any

from dr.aws.calls import aws_errors
from dr.aws.session import ClientProvider, client_error_type
from dr.errors import NotFound, OperationFailed

PROBE_KEY = "dr-doctor-probe"  # a lock name no run takes: reading it reads nothing


def probe_lock_table(clients: ClientProvider, region: str, table: str) -> None:
    """Read one (absent) item with the lock's own GetItem: the table exists and answers here."""
    with aws_errors(resource=f"lock table {table}", region=region, action="read"):
        clients.client("dynamodb", region).get_item(TableName=table, Key={"name": {"S": PROBE_KEY}})


def probe_bucket(clients: ClientProvider, region: str, bucket: str) -> str:
    """``HeadBucket``: ``ok``; ``exists`` when S3 says 403 (the bucket exists, this caller may not
    list it — the journal only needs s3:PutObject, which the IAM check covers). NotFound when
    there is no such bucket, OperationFailed when it lives in another region."""
    client_error = client_error_type()
    try:
        clients.client("s3", region).head_bucket(Bucket=bucket)
        return "ok"
    except client_error as err:
        response: dict[str, Any] = getattr(err, "response", None) or {}
        code = str(response.get("Error", {}).get("Code", ""))
        actual = (response.get("ResponseMetadata", {}).get("HTTPHeaders") or {}).get("x-amz-bucket-region")
        if code in ("403", "AccessDenied"):
            return "exists"
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise NotFound(
                f"journal bucket {bucket} does not exist ({region})",
                resource=bucket,
                region=region,
                code=code,
                hint="deploy the stack of that region (`pulumi up`), or fix app.journalBucketPrefix",
            ) from None
        if code in ("301", "PermanentRedirect") or (actual and actual != region):
            raise OperationFailed(
                f"journal bucket {bucket} is in {actual or 'another region'}, not {region}",
                resource=bucket,
                region=region,
                code=code,
                hint="the journal mirror writes to the bucket of the region it runs in: fix "
                "app.journalBucketPrefix or recreate the bucket in its region",
            ) from None
        with aws_errors(resource=f"journal bucket {bucket}", region=region, action="read"):
            raise
    raise AssertionError("unreachable")  # pragma: no cover
