"""The AWS wire protocols the fake speaks: who the caller is, how a request names its service,
region and operation, and each protocol's error envelope (moto's ``responses`` side)."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

ACCOUNT_ID = "123456789012"  # moto's default account (fake credentials map to it)
# Who the sandbox's caller is: a session of this role (seeded with every procedure's `dr iam-policy`
# policy, dr.sandbox.seed), as an operator's SSO or assumed role is in a real account.
OPERATOR_ROLE, OPERATOR_SESSION = "sandbox", "operator"
OPERATOR_ARN = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{OPERATOR_ROLE}/{OPERATOR_SESSION}"


# Wire protocol by SigV4 signing name (what the error envelope must look like).
PROTOCOLS: dict[str, str] = {
    "rds": "query",
    "elasticache": "query",
    "elasticloadbalancing": "query",
    "sts": "query",
    "iam": "query",
    "sns": "query",
    "sqs": "json",
    "ec2": "ec2",
    "monitoring": "cbor",
    "eks": "rest-json",
    "route53": "rest-xml",
    "s3": "rest-xml",
    "wafv2": "json",
    "secretsmanager": "json",
    "dynamodb": "json",
    "states": "json",
    "acm": "json",
    "logs": "json",
    "kms": "json",
    "ssm": "json",
}
# Services with one global endpoint: a regional outage does not take them down.
GLOBAL_SERVICES = frozenset({"route53", "iam", "cloudfront", "organizations"})


R53_NS = "https://route53.amazonaws.com/doc/2013-04-01/"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso_time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_time(value: str) -> dt.datetime:
    """Parse an AWS timestamp parameter (ISO 8601, with or without zone; epoch seconds)."""
    text = value.strip()
    try:
        return dt.datetime.fromtimestamp(float(text), dt.UTC)
    except ValueError:
        pass
    parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


# ---------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------


_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request")
_EKS_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"^/clusters/[^/]+/node-groups/[^/]+/update-config/?$"), "UpdateNodegroupConfig"),
    ("GET", re.compile(r"^/clusters/[^/]+/node-groups/[^/]+/?$"), "DescribeNodegroup"),
    ("GET", re.compile(r"^/clusters/[^/]+/node-groups/?$"), "ListNodegroups"),
    ("POST", re.compile(r"^/clusters/[^/]+/node-groups/?$"), "CreateNodegroup"),
    ("GET", re.compile(r"^/clusters/[^/]+/?$"), "DescribeCluster"),
    ("GET", re.compile(r"^/clusters/?$"), "ListClusters"),
    ("POST", re.compile(r"^/clusters/?$"), "CreateCluster"),
]
_R53_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"^/2013-04-01/hostedzone/[^/]+/rrset/?$"), "ChangeResourceRecordSets"),
    ("GET", re.compile(r"^/2013-04-01/hostedzone/[^/]+/rrset/?$"), "ListResourceRecordSets"),
    ("GET", re.compile(r"^/2013-04-01/change/[^/]+/?$"), "GetChange"),
    ("GET", re.compile(r"^/2013-04-01/healthcheck/[^/]+/status/?$"), "GetHealthCheckStatus"),
    ("GET", re.compile(r"^/2013-04-01/healthcheck/[^/]+/?$"), "GetHealthCheck"),
    ("POST", re.compile(r"^/2013-04-01/healthcheck/[^/]+/?$"), "UpdateHealthCheck"),
    ("GET", re.compile(r"^/2013-04-01/healthcheck/?$"), "ListHealthChecks"),
    ("POST", re.compile(r"^/2013-04-01/healthcheck/?$"), "CreateHealthCheck"),
    ("GET", re.compile(r"^/2013-04-01/hostedzonesbyname/?$"), "ListHostedZonesByName"),
    ("GET", re.compile(r"^/2013-04-01/hostedzone/[^/]+/?$"), "GetHostedZone"),
    ("GET", re.compile(r"^/2013-04-01/hostedzone/?$"), "ListHostedZones"),
    ("POST", re.compile(r"^/2013-04-01/hostedzone/?$"), "CreateHostedZone"),
    ("GET", re.compile(r"^/2013-04-01/tags/[^/]+/[^/]+/?$"), "ListTagsForResource"),
    ("POST", re.compile(r"^/2013-04-01/tags/[^/]+/?$"), "ListTagsForResources"),
]


@dataclass
class AwsRequest:
    """What the realism layer needs to know about one AWS API request."""

    service: str
    region: str
    operation: str
    method: str
    path: str
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    protocol: str = "json"


def read_body(environ: dict[str, Any]) -> bytes:
    """Read the request body and put it back so moto can read it again."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ.get("wsgi.input")
    body = stream.read(length) if (stream is not None and length > 0) else b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def parse_request(environ: dict[str, Any]) -> AwsRequest | None:
    """Service/region from the SigV4 scope, operation from the protocol; None if not AWS-signed."""
    match = _SCOPE.search(environ.get("HTTP_AUTHORIZATION", ""))
    if not match:
        return None
    region, service = match.group(1), match.group(2)
    method = environ.get("REQUEST_METHOD", "GET").upper()
    path = unquote(environ.get("PATH_INFO", "/"))
    body = read_body(environ)
    params: dict[str, str] = {}
    operation = ""
    content_type = environ.get("CONTENT_TYPE", "")
    # The client picks the wire protocol (CloudWatch speaks cbor, json or query): read it off the request.
    if environ.get("HTTP_X_AMZ_TARGET"):
        protocol = "json"
    elif "cbor" in content_type or environ.get("HTTP_SMITHY_PROTOCOL"):
        protocol = "cbor"
    elif "x-www-form-urlencoded" in content_type and PROTOCOLS.get(service) not in ("rest-xml", "rest-json"):
        protocol = "ec2" if service == "ec2" else "query"
    else:
        protocol = PROTOCOLS.get(service, "json")
    if protocol in ("query", "ec2"):
        raw = body.decode("utf-8", "replace") if body else environ.get("QUERY_STRING", "")
        params = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        operation = params.get("Action", "")
    elif protocol == "cbor":
        parts = path.strip("/").split("/")
        operation = parts[-1] if "operation" in parts else ""
    elif protocol == "json":
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        operation = target.rsplit(".", 1)[-1]
    else:
        routes = _EKS_ROUTES if service == "eks" else _R53_ROUTES if service == "route53" else []
        for verb, pattern, name in routes:
            if verb == method and pattern.match(path):
                operation = name
                break
        else:
            operation = f"{method} {path}"
    return AwsRequest(service, region, operation, method, path, body, params, protocol)


# ---------------------------------------------------------------------------------------------
# Errors in each protocol's envelope
# ---------------------------------------------------------------------------------------------


def _cbor_text(value: str) -> bytes:
    raw = value.encode()
    n = len(raw)
    if n < 24:
        head = bytes([0x60 + n])
    elif n < 256:
        head = bytes([0x78, n])
    else:
        head = bytes([0x79]) + n.to_bytes(2, "big")
    return head + raw


def cbor_map(values: dict[str, str]) -> bytes:
    """Tiny CBOR encoder for a str->str map (smithy-rpc-v2-cbor error bodies)."""
    out = bytes([0xA0 + len(values)])
    for key, value in values.items():
        out += _cbor_text(key) + _cbor_text(value)
    return out


@dataclass
class ErrorReply:
    status: int
    code: str
    message: str

    def render(self, protocol: str) -> tuple[int, list[tuple[str, str]], bytes]:
        request_id = str(uuid.uuid4())
        headers = [("x-amzn-RequestId", request_id)]
        if protocol == "query":
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse><Error><Type>Sender</Type>'
                f"<Code>{self.code}</Code><Message>{xml_escape(self.message)}</Message></Error>"
                f"<RequestId>{request_id}</RequestId></ErrorResponse>"
            ).encode()
            headers.append(("Content-Type", "text/xml"))
        elif protocol == "ec2":
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
                f"<Code>{self.code}</Code><Message>{xml_escape(self.message)}</Message></Error></Errors>"
                f"<RequestID>{request_id}</RequestID></Response>"
            ).encode()
            headers.append(("Content-Type", "text/xml"))
        elif protocol == "rest-xml":
            body = (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse xmlns="{R53_NS}"><Error>'
                f"<Type>Sender</Type><Code>{self.code}</Code><Message>{xml_escape(self.message)}</Message>"
                f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
            ).encode()
            headers.append(("Content-Type", "text/xml"))
        elif protocol == "cbor":
            body = cbor_map({"__type": self.code, "message": self.message})
            headers += [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")]
        else:  # json, rest-json
            body = json.dumps({"__type": self.code, "message": self.message}).encode()
            headers += [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", self.code)]
        headers.append(("Content-Length", str(len(body))))
        return self.status, headers, body


def xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class AwsError(Exception):
    """Raised by a validation: answered to the client in the service's error envelope."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.reply = ErrorReply(status, code, message)


def throttle_reply(service: str, protocol: str | None = None) -> ErrorReply:
    """The throttling error a service really returns (code and HTTP status)."""
    protocol = protocol or PROTOCOLS.get(service, "json")
    if service == "ec2":
        return ErrorReply(503, "RequestLimitExceeded", "Request limit exceeded.")
    if service == "s3":
        return ErrorReply(503, "SlowDown", "Please reduce your request rate.")
    if service == "monitoring":
        return ErrorReply(400, "Throttling", "Rate exceeded")
    if protocol in ("json", "rest-json", "cbor"):
        status = 429 if protocol == "rest-json" else 400
        return ErrorReply(status, "ThrottlingException", "Rate exceeded")
    return ErrorReply(400, "Throttling", "Rate exceeded")


# IAM's refusal as each API family spells it (EC2: UnauthorizedOperation; query APIs: AccessDenied;
# JSON APIs: AccessDeniedException), with the message AWS writes (it names the action and resource).
_DENIED_CODE = {"ec2": "UnauthorizedOperation"}
_IAM_PREFIX = {"monitoring": "cloudwatch"}  # signing names that are not IAM prefixes


def denied_reply(req: AwsRequest, code: str | None = None) -> ErrorReply:
    """An IAM refusal (or, with ``code``, another authentication error) as AWS answers it."""
    protocol = req.protocol or PROTOCOLS.get(req.service, "json")
    default = _DENIED_CODE.get(req.service) or (
        "AccessDeniedException" if "json" in protocol else "AccessDenied"
    )
    code = code or default
    action = f"{_IAM_PREFIX.get(req.service, req.service)}:{req.operation}"
    if code == default:
        message = (
            f"User: {OPERATOR_ARN} is not authorized to perform: "
            f"{action} on resource: * because no identity-based policy allows the {action} action"
        )
    elif code.startswith("ExpiredToken"):
        message = "The security token included in the request is expired"
    elif code in ("UnrecognizedClientException", "InvalidClientTokenId"):
        message = "The security token included in the request is invalid."
    else:
        message = f"{code} (sandbox fault injection)"
    return ErrorReply(403 if code == default else 400, code, message)


def server_error_reply(service: str) -> ErrorReply:
    if service == "s3":
        return ErrorReply(503, "ServiceUnavailable", "Please reduce your request rate.")
    return ErrorReply(503, "ServiceUnavailable", "Service is unavailable (sandbox fault injection)")


# ---------------------------------------------------------------------------------------------
# Replies
# ---------------------------------------------------------------------------------------------


Reply = tuple[int, list[tuple[str, str]], bytes]


def aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def jsonable(info: dict[str, Any]) -> dict[str, Any]:
    return {k: (iso_time(v) if isinstance(v, dt.datetime) else v) for k, v in info.items()}


def rewrite_status(reply: Reply, tag: str, value: str) -> Reply:
    status, headers, body = reply
    text = re.sub(rf"<{tag}>[^<]*</{tag}>", f"<{tag}>{value}</{tag}>", body.decode(), count=1)
    data = text.encode()
    headers = [(k, v) for k, v in headers if k.lower() != "content-length"] + [
        ("Content-Length", str(len(data)))
    ]
    return status, headers, data
