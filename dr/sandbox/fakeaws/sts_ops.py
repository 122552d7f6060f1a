"""STS: the caller is a session of the operator role."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from dr.sandbox.fakeaws.backends import iam_backend
from dr.sandbox.fakeaws.wire import (
    ACCOUNT_ID,
    OPERATOR_ARN,
    OPERATOR_ROLE,
    OPERATOR_SESSION,
    AwsRequest,
    Reply,
)

if TYPE_CHECKING:
    from dr.sandbox.fakeaws.layer import Handler, Layer


def get_caller_identity(layer: Layer, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
    """The caller is a session of the operator role once the seed created it (moto would
    answer its placeholder ``user/moto``, which no IAM policy is attached to)."""
    role = next((r for r in iam_backend().roles.values() if r.name == OPERATOR_ROLE), None)
    if role is None:
        return None
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        f"<GetCallerIdentityResult><Arn>{OPERATOR_ARN}</Arn><UserId>{role.id}:{OPERATOR_SESSION}</UserId>"
        f"<Account>{ACCOUNT_ID}</Account></GetCallerIdentityResult>"
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        "</GetCallerIdentityResponse>"
    ).encode()
    return 200, [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))], body


HANDLERS: dict[tuple[str, str], Handler] = {
    ("sts", "GetCallerIdentity"): get_caller_identity,
}
