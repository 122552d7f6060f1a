"""The realism layer: a WSGI middleware around moto adding what moto lacks (see docs/sandbox.md).

* **Transitions** — statuses change over time, with durations from the
  :class:`~dr.sandbox.latency.LatencyProfile`: RDS promote (``modifying``; the instance stays a
  replica until the transition ends, then moto's promote is applied), snapshots / copies /
  restores (``creating``), reboot (``rebooting``), modify (``modifying``), EKS
  ``UpdateNodegroupConfig`` (``UPDATING``; the nodes join ``eks.node_ready`` later), ElastiCache
  modify / ``TestFailover`` (``modifying``), Route53 changes (``PENDING`` → ``INSYNC`` via
  ``GetChange``). The transition table (:class:`Transitions`) is thread-safe; statuses are set on
  moto's own model objects, so every API view and waiter agrees.
* **Validations** real AWS performs and moto does not: promoting a non-replica or a busy instance,
  PITR outside the restorable window, duplicate Route53 ``CREATE``, Route53 change batches over
  1,000 ResourceRecord elements or 32,000 Value characters (UPSERT counting twice), deleting a snapshot that is
  still being created or restored from, changing a nodegroup that is still ``UPDATING``.
* **Faults** (:class:`Faults`): throttling and 5xx at a rate, per region/service/operation, and a
  whole region unreachable (its requests' connections are dropped or hang; its per-region port is
  closed). Region is read from the SigV4 credential scope.
* **Hooks**: other sandbox parts react to AWS calls (:meth:`Realism.on`), the RDS endpoint is
  rewritten to the real local PostgreSQL (``endpoint_fn``), ``GetHealthCheckStatus`` answers from
  the health evaluator, ``ReplicaLag`` is published from the measured lag.

moto is imported lazily (only the sandbox process needs it).
"""

from __future__ import annotations

import datetime as dt
import heapq
import io
import itertools
import json
import logging
import random
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs, unquote

from dr.sandbox.latency import LatencyProfile

if TYPE_CHECKING:
    from dr.sandbox.server import WSGIApp
    from dr.topology import Estate

log = logging.getLogger("dr.sandbox.realism")

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
HEALTH_CHECKER_REGIONS = ("us-east-1", "us-west-1", "eu-west-1")

# What Route53's checkers report (GetHealthCheckStatus StatusReport.Status), as AWS words it.
NO_ANSWER = (
    "Failure: Connection timed out. The endpoint or the internet connection is down, or requests are "
    "being blocked by your firewall."
)
_HTTP_REASONS = {200: "OK", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


def http_report(code: int) -> tuple[bool, str]:
    """(healthy, report) for an endpoint that answered with HTTP ``code`` (2xx/3xx healthy)."""
    reason = _HTTP_REASONS.get(code, "")
    if 200 <= code < 400:
        return True, f"Success: HTTP Status Code {code}, {reason or 'OK'}"
    return False, f"Failure: HTTP Status Code {code}, {reason}. Resolved IP: 127.0.0.1".replace(", .", ".")


HealthProbe = Callable[[str], bool | tuple[bool, str]]

_R53_NS = "https://route53.amazonaws.com/doc/2013-04-01/"
# ChangeResourceRecordSets limits per request (Route53 DNSLimitations), which moto does not enforce:
# ResourceRecord elements and characters in all Value elements, an UPSERT counting both twice.
R53_MAX_RECORDS = 1000
R53_MAX_VALUE_CHARS = 32000
_CREATE_REPLICA = "CreateDBInstanceReadReplica"
# Operations moto lacks entirely: the realism layer answers them even while seeding.
_NOT_IN_MOTO = frozenset(
    {
        ("rds", "StartDBInstanceAutomatedBackupsReplication"),
        ("rds", "StopDBInstanceAutomatedBackupsReplication"),
        ("rds", "DescribeDBInstanceAutomatedBackups"),
    }
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(value: dt.datetime) -> str:
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
                f"<Code>{self.code}</Code><Message>{_xml_escape(self.message)}</Message></Error>"
                f"<RequestId>{request_id}</RequestId></ErrorResponse>"
            ).encode()
            headers.append(("Content-Type", "text/xml"))
        elif protocol == "ec2":
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
                f"<Code>{self.code}</Code><Message>{_xml_escape(self.message)}</Message></Error></Errors>"
                f"<RequestID>{request_id}</RequestID></Response>"
            ).encode()
            headers.append(("Content-Type", "text/xml"))
        elif protocol == "rest-xml":
            body = (
                f'<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse xmlns="{_R53_NS}"><Error>'
                f"<Type>Sender</Type><Code>{self.code}</Code><Message>{_xml_escape(self.message)}</Message>"
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


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class AwsError(Exception):
    """Raised by a validation: answered to the client in the service's error envelope."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.reply = ErrorReply(status, code, message)


def managed_password_conflict(db: Any, params: dict[str, Any]) -> AwsError | None:
    """RDS's rule that moto does not enforce: ``ModifyDBInstance MasterUserPassword`` is refused
    while RDS manages the instance's password in Secrets Manager ("Can't be specified if
    ManageMasterUserPassword is turned on"), unless the same call turns management off."""
    managed = bool(
        getattr(db, "manage_master_user_password", False) and getattr(db, "master_user_secret", None)
    )
    if not managed or not params.get("MasterUserPassword"):
        return None
    if str(params.get("ManageMasterUserPassword", "")).lower() == "false":
        return None
    return AwsError(
        "InvalidParameterCombination",
        "You can't specify MasterUserPassword for an instance that manages its master user password "
        "with AWS Secrets Manager. Use RotateMasterUserPassword instead.",
    )


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
# Faults
# ---------------------------------------------------------------------------------------------

FaultKind = Literal["throttle", "error", "unreachable", "denied"]


@dataclass
class FaultRule:
    """One injected fault. ``None`` in region/service/operation matches anything."""

    kind: FaultKind
    rate: float = 1.0
    region: str | None = None
    service: str | None = None
    operation: str | None = None
    # unreachable: "refuse" drops the connection at once; "hang" holds it hang_seconds first.
    mode: Literal["refuse", "hang"] = "refuse"
    hang_seconds: float = 30.0
    # denied: the error code answered (default: the service's own AccessDenied code); e.g.
    # ExpiredToken, UnrecognizedClientException (an opt-in region), OptInRequired.
    code: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def __post_init__(self) -> None:
        if self.kind not in ("throttle", "error", "unreachable", "denied"):
            raise ValueError(f"unknown fault kind {self.kind!r}: use throttle, error, unreachable or denied")
        if not 0.0 <= float(self.rate) <= 1.0:
            raise ValueError(f"fault rate must be within [0, 1], got {self.rate}")
        if self.mode not in ("refuse", "hang"):
            raise ValueError(f"unknown unreachable mode {self.mode!r}: use refuse or hang")

    def matches(self, req: AwsRequest) -> bool:
        if self.kind == "unreachable" and req.service in GLOBAL_SERVICES:
            return False
        return (
            (self.region is None or self.region == req.region)
            and (self.service is None or self.service == req.service)
            and (self.operation is None or self.operation == req.operation)
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultRule:
        known = {"kind", "rate", "region", "service", "operation", "mode", "hang_seconds", "code", "id"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault field(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)


class Faults:
    """Thread-safe set of fault rules plus counters of what was injected."""

    def __init__(self, seed: int | None = None) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.injected: dict[str, int] = {"throttle": 0, "error": 0, "unreachable": 0, "denied": 0}
        self.listeners: list[Callable[[str, bool], None]] = []

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
        if rule.kind == "unreachable" and rule.region and rule.rate >= 1.0:
            self._notify(rule.region, False)
        return rule

    def remove(self, rule_id: str) -> bool:
        with self._lock:
            before = list(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            removed = [r for r in before if r.id == rule_id]
        for rule in removed:
            if rule.kind == "unreachable" and rule.region and not self.region_down(rule.region):
                self._notify(rule.region, True)
        return bool(removed)

    def clear(self) -> None:
        with self._lock:
            downs = {r.region for r in self._rules if r.kind == "unreachable" and r.region}
            self._rules = []
        for region in downs:
            if region:
                self._notify(region, True)

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def set_region_down(self, region: str, mode: Literal["refuse", "hang"] = "refuse") -> FaultRule:
        return self.add(FaultRule(kind="unreachable", region=region, mode=mode))

    def set_region_up(self, region: str) -> None:
        with self._lock:
            self._rules = [r for r in self._rules if not (r.kind == "unreachable" and r.region == region)]
        self._notify(region, True)

    def region_down(self, region: str) -> bool:
        with self._lock:
            return any(
                r.kind == "unreachable" and r.region == region and r.rate >= 1.0 and r.service is None
                for r in self._rules
            )

    def down_regions(self) -> list[str]:
        with self._lock:
            return sorted({r.region for r in self._rules if r.kind == "unreachable" and r.region})

    def pick(self, req: AwsRequest) -> FaultRule | None:
        """The fault to inject for this request, if any (each rule rolls its own rate)."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(req) and (rule.rate >= 1.0 or self._rng.random() < rule.rate):
                    self.injected[rule.kind] += 1
                    return rule
        return None

    def _notify(self, region: str, up: bool) -> None:
        for listener in list(self.listeners):
            try:
                listener(region, up)
            except Exception:  # a listener must not break fault injection
                log.exception("region %s listener failed", region)


# ---------------------------------------------------------------------------------------------
# Transitions
# ---------------------------------------------------------------------------------------------


@dataclass
class Transition:
    kind: str
    region: str
    resource: str
    status: str
    started: float
    ends: float
    on_complete: Callable[[], None] | None = field(default=None, repr=False)
    done: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "region": self.region,
            "resource": self.resource,
            "status": self.status,
            "started": self.started,
            "ends": self.ends,
            "remaining": max(0.0, self.ends - time.time()),
            "done": self.done,
            **({"info": self.info} if self.info else {}),
        }


class Transitions:
    """Thread-safe table of resources in transition; one scheduler thread completes them."""

    def __init__(self) -> None:
        self._active: dict[tuple[str, str, str], Transition] = {}
        self._heap: list[tuple[float, int, tuple[str, str, str]]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.completed = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sandbox-transitions", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def begin(
        self,
        kind: str,
        region: str,
        resource: str,
        status: str,
        duration: float,
        on_complete: Callable[[], None] | None = None,
        **info: Any,
    ) -> Transition:
        """Start a transition; with ``duration <= 0`` it completes before this call returns."""
        now = time.time()
        tr = Transition(kind, region, resource, status, now, now + max(0.0, duration), on_complete, info=info)
        key = (kind, region, resource)
        if duration <= 0:
            self._complete(tr)
            return tr
        with self._cond:
            self._active[key] = tr
            heapq.heappush(self._heap, (tr.ends, next(self._counter), key))
            self._cond.notify_all()
        return tr

    def fast_forward(self, kind_prefix: str = "") -> int:
        """Complete the active transitions (of ``kind_prefix``) now; returns how many."""
        now = time.time()
        count = 0
        with self._cond:
            for key, tr in self._active.items():
                if key[0].startswith(kind_prefix):
                    tr.ends = now
                    heapq.heappush(self._heap, (now, next(self._counter), key))
                    count += 1
            self._cond.notify_all()
        return count

    def get(self, kind_prefix: str, region: str, resource: str) -> Transition | None:
        with self._cond:
            for (kind, reg, res), tr in self._active.items():
                if kind.startswith(kind_prefix) and reg == region and res == resource:
                    return tr
        return None

    def active(self) -> list[Transition]:
        with self._cond:
            return list(self._active.values())

    def wait_idle(self, timeout: float = 30.0) -> bool:
        deadline = time.time() + timeout
        with self._cond:
            while self._active:
                remaining = deadline - time.time()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.1))
        return True

    def _complete(self, tr: Transition) -> None:
        try:
            if tr.on_complete is not None:
                tr.on_complete()
        except Exception:
            log.exception("completing transition %s %s/%s failed", tr.kind, tr.region, tr.resource)
        tr.done = True
        self.completed += 1

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stop:
                    return
                now = time.time()
                due: list[Transition] = []
                while self._heap and self._heap[0][0] <= now:
                    _, _, key = heapq.heappop(self._heap)
                    tr = self._active.get(key)
                    if tr is not None and tr.ends <= now:
                        due.append(tr)
                timeout = (self._heap[0][0] - now) if self._heap else 0.5
            for tr in due:
                self._complete(tr)
                with self._cond:
                    key = (tr.kind, tr.region, tr.resource)
                    if self._active.get(key) is tr:
                        del self._active[key]
                    self._cond.notify_all()
            if not due:
                with self._cond:
                    if not self._stop:
                        self._cond.wait(max(0.005, min(timeout, 0.5)))


# ---------------------------------------------------------------------------------------------
# Route53 health evaluation
# ---------------------------------------------------------------------------------------------


class HealthEvaluator:
    """What Route53's checkers conclude per region: the probe's state once it held for a delay.

    ``probe(region)`` is the raw truth: ``(healthy, report)`` (the region's /health answers 200;
    the report is what a checker would say, e.g. ``Failure: HTTP Status Code 503`` when the
    endpoint answers with an error, :data:`NO_ANSWER` when it does not answer), or a bare bool
    (False = does not answer). A change is reported only after it persisted ``delay()`` seconds
    (``route53.health_eval``), as Route53 needs several consecutive failures before it flips.
    """

    def __init__(
        self,
        regions: Iterable[str],
        probe: HealthProbe,
        delay: Callable[[], float],
        interval: float = 0.1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.probe = probe
        self.delay = delay
        self.interval = interval
        self._state: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        ok = http_report(200)[1]
        for region in regions:
            self._state[region] = {
                "reported": True,
                "raw": True,
                "since": self.clock(),
                "needed": 0.0,
                "raw_report": ok,
                "report": ok,
            }

    def start(self) -> None:
        for region in list(self._state):
            healthy, report = self._safe_probe(region)
            self._state[region].update(reported=healthy, raw=healthy, raw_report=report, report=report)
        self._thread = threading.Thread(target=self._run, name="sandbox-health-eval", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _safe_probe(self, region: str) -> tuple[bool, str]:
        try:
            got = self.probe(region)
        except Exception:
            return False, NO_ANSWER
        if isinstance(got, tuple):
            return bool(got[0]), str(got[1])
        return (True, http_report(200)[1]) if got else (False, NO_ANSWER)

    def tick(self) -> None:
        for region in list(self._state):
            raw, report = self._safe_probe(region)
            now = self.clock()
            with self._lock:
                st = self._state[region]
                if raw != st["raw"]:
                    st.update(raw=raw, since=now, needed=max(0.0, self.delay()))
                st["raw_report"] = report
                if st["reported"] != st["raw"] and now - st["since"] >= st["needed"]:
                    st["reported"] = st["raw"]
                if st["reported"] == st["raw"]:
                    st["report"] = report

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def healthy(self, region: str) -> bool:
        with self._lock:
            st = self._state.get(region)
            return bool(st["reported"]) if st else False

    def report(self, region: str) -> str:
        """The checkers' report matching :meth:`healthy` (the newest one while it agrees)."""
        with self._lock:
            st = self._state.get(region)
            return str(st["report"]) if st else NO_ANSWER

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {r: dict(s) for r, s in self._state.items()}


# ---------------------------------------------------------------------------------------------
# moto backends (in this process)
# ---------------------------------------------------------------------------------------------


def rds_backend(region: str) -> Any:
    from moto.rds.models import rds_backends

    return rds_backends[ACCOUNT_ID][region]


def eks_backend(region: str) -> Any:
    from moto.eks.models import eks_backends

    return eks_backends[ACCOUNT_ID][region]


def elasticache_backend(region: str) -> Any:
    from moto.elasticache.models import elasticache_backends

    return elasticache_backends[ACCOUNT_ID][region]


def iam_backend() -> Any:
    from moto.iam.models import iam_backends

    return iam_backends[ACCOUNT_ID]["aws"]


def route53_batch_as_whole(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap moto's ``Route53Backend.change_resource_record_sets`` so a batch that DELETEs a record
    set and CREATEs it again (e.g. with another Failover role) is accepted, as Route53 accepts it
    (it validates a batch as a whole). moto checks each CREATE against its change journal before
    any DELETE of the batch applies and refuses it; the pair is applied as one UPSERT instead."""

    def key(rrs: dict[str, Any]) -> tuple[str, str, str | None]:
        return (str(rrs.get("Name", "")).rstrip(".").lower(), str(rrs.get("Type")), rrs.get("SetIdentifier"))

    def change(self: Any, zoneid: str, change_list: list[dict[str, Any]]) -> Any:
        deleted = {key(c["ResourceRecordSet"]) for c in change_list if c.get("Action") == "DELETE"}
        recreated = {
            key(c["ResourceRecordSet"])
            for c in change_list
            if c.get("Action") == "CREATE" and key(c["ResourceRecordSet"]) in deleted
        }
        if recreated:
            change_list = [
                {**c, "Action": "UPSERT"}
                if c.get("Action") == "CREATE" and key(c["ResourceRecordSet"]) in recreated
                else c
                for c in change_list
                if not (c.get("Action") == "DELETE" and key(c["ResourceRecordSet"]) in recreated)
            ]
        return original(self, zoneid, change_list)

    change.__wrapped__ = original  # type: ignore[attr-defined]
    return change


def install_route53_batch_as_whole() -> None:
    """Apply :func:`route53_batch_as_whole` to moto, once per process."""
    from moto.route53.models import Route53Backend

    current = Route53Backend.change_resource_record_sets
    if not hasattr(current, "__wrapped__"):
        Route53Backend.change_resource_record_sets = route53_batch_as_whole(current)  # type: ignore[method-assign]


def route53_backend() -> Any:
    from moto.route53.models import route53_backends

    return route53_backends[ACCOUNT_ID]["aws"]


def cloudwatch_backend(region: str) -> Any:
    from moto.cloudwatch.models import cloudwatch_backends

    return cloudwatch_backends[ACCOUNT_ID][region]


_COMPARE: dict[str, Callable[[float, float], bool]] = {
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
    now = now or _now()
    for alarm in list(backend.alarms.values()):
        if alarm.comparison_operator not in _COMPARE or alarm.metric_data_queries:
            continue
        want = {(d.name, d.value) for d in alarm.dimensions}
        start = now - dt.timedelta(seconds=int(alarm.period or 60))
        values = [
            float(d.value)
            for d in backend.metric_data
            if d.namespace == alarm.namespace
            and d.name == alarm.metric_name
            and {(x.name, x.value) for x in d.dimensions} == want
            and _aware(d.timestamp) >= start
            and hasattr(d, "value")
        ]
        if not values:
            continue
        stat = {"Minimum": min, "Maximum": max}.get(alarm.statistic, lambda v: sum(v) / len(v))
        value = stat(values)
        breaching = _COMPARE[alarm.comparison_operator](value, float(alarm.threshold))
        state = "ALARM" if breaching else "OK"
        if alarm.state_value != state:
            reason = (
                f"Threshold Crossed: {alarm.statistic} {value:g} "
                f"{'breaches' if breaching else 'within'} threshold {alarm.threshold:g} (sandbox evaluation)"
            )
            backend.set_alarm_state(alarm.name, reason, json.dumps({"value": value}), state)


def _find_db_by_arn(arn: str) -> tuple[str, Any] | None:
    parts = arn.split(":")
    if len(parts) < 7:
        return None
    region, ident = parts[3], parts[6]
    db = rds_backend(region).databases.get(ident)
    return (region, db) if db is not None else None


# ---------------------------------------------------------------------------------------------
# The middleware
# ---------------------------------------------------------------------------------------------

Reply = tuple[int, list[tuple[str, str]], bytes]
Hook = Callable[..., None]


class Realism:
    """WSGI middleware over moto: transitions, validations, faults and hooks.

    Construct it, pass :meth:`middleware` to :class:`dr.sandbox.server.MotoServer`, then
    :meth:`start`. Other components register ``endpoint_fn`` (local PostgreSQL host/port per RDS
    instance), ``lag_fn`` (measured replica lag), ``health_probe`` and hooks with :meth:`on`:

    ============================  =====================================================
    event                          keyword arguments
    ============================  =====================================================
    ``rds.promoted``               region, identifier (after the transition; moto updated)
    ``rds.restored``               region, identifier, source, restore_time (datetime|None),
                                   use_latest (bool) — PITR, when the new instance is available
    ``rds.restored_from_snapshot`` region, identifier, snapshot
    ``rds.snapshot_created``       region, identifier (instance), snapshot
    ``rds.snapshot_copied``        region (destination), snapshot, source
    ``rds.rebooted``               region, identifier, failover (bool)
    ``rds.modified``               region, identifier, params (may hold MasterUserPassword)
    ``rds.deleted``                region, identifier
    ``eks.nodes_ready``            region, cluster, nodegroup, nodes
    ``elasticache.failover``       region, replication_group
    ``route53.changed``            change_id, changes (list of dicts)
    ``region.down`` / ``region.up``  region
    ============================  =====================================================
    """

    def __init__(
        self,
        estate: Estate | None = None,
        profile: LatencyProfile | None = None,
        *,
        seed: int | None = None,
    ) -> None:
        self.estate = estate
        self.profile = profile or LatencyProfile()
        self._initial_overrides = dict(self.profile.overrides)
        self.faults = Faults(seed)
        self.transitions = Transitions()
        self.hooks: dict[str, list[Hook]] = {}
        self.endpoint_fn: Callable[[str, str], tuple[str, int] | None] | None = None
        self.lag_fn: Callable[[str, str], float | None] | None = None  # (region, identifier)
        self.health_probe: HealthProbe | None = None
        self.health: HealthEvaluator | None = None
        self.enabled = True  # False while seeding: no transitions, no faults
        # path prefix -> handler(method, path, params) returning JSON-able data (manager adds some)
        self.admin_handlers: dict[str, Callable[[str, str, dict[str, Any]], Any]] = {}
        self._inner: WSGIApp | None = None
        self._changes: dict[str, Transition] = {}
        self._nodes: dict[tuple[str, str, str], int] = {}  # effective Ready nodes per nodegroup
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pump: threading.Thread | None = None
        # How far behind "now" LatestRestorableTime is (real RDS: up to ~5 minutes).
        self.restorable_lag = (
            self.profile.duration("rds.restorable_lag") if self._has("rds.restorable_lag") else 0.0
        )
        # Automated backups replicated into another region (StartDBInstanceAutomatedBackupsReplication),
        # by their auto-backup ARN in the destination region.
        self.backup_replications: dict[str, dict[str, Any]] = {}
        # Instance ARN -> when its automated backups (re)started: its promotion to a standalone.
        self._backups_since: dict[str, dt.datetime] = {}
        # (destination region, source instance ARN) -> [earliest, latest] the local PostgreSQL's
        # replicated WAL archive really covers (None: nothing replicated yet). Without it the window
        # is modelled from the clock: replication start ... now - ``rds.replicated_backup_lag``.
        self.replicated_window_fn: Callable[[str, str], tuple[dt.datetime, dt.datetime] | None] | None = None
        self.replicated_lag = (
            self.profile.duration("rds.replicated_backup_lag")
            if self._has("rds.replicated_backup_lag")
            else 0.0
        )

    def _has(self, what: str) -> bool:
        from dr.sandbox.latency import REALISTIC

        return what in REALISTIC or what in self.profile.overrides

    # -- wiring ------------------------------------------------------------------------------
    def middleware(self, app: WSGIApp) -> WSGIApp:
        self._inner = app
        install_route53_batch_as_whole()
        return self

    def start(self) -> None:
        self.transitions.start()
        regions = list(self.estate.regions) if self.estate else []
        if regions:
            self.health = HealthEvaluator(
                regions, self._probe, lambda: self.profile.duration("route53.health_eval"), interval=0.5
            )
            self.health.start()
        self._pump = threading.Thread(target=self._metrics_loop, name="sandbox-metrics", daemon=True)
        self._pump.start()

    def stop(self) -> None:
        self._stop.set()
        self.transitions.stop()
        if self.health:
            self.health.stop()
        if self._pump:
            self._pump.join(timeout=5)

    def on(self, event: str, fn: Hook) -> None:
        self.hooks.setdefault(event, []).append(fn)

    def emit(self, event: str, **kwargs: Any) -> None:
        for fn in list(self.hooks.get(event, [])):
            try:
                fn(**kwargs)
            except Exception:
                log.exception("hook %s failed", event)

    @contextmanager
    def disabled(self) -> Iterator[None]:
        """Seeding: let requests through untouched (no transitions, faults or validations)."""
        previous, self.enabled = self.enabled, False
        try:
            yield
        finally:
            self.enabled = previous

    def region_down(self, region: str, mode: Literal["refuse", "hang"] = "refuse") -> None:
        """Lose a region: its AWS API unreachable (port closed, connections dropped) and the
        ``region.down`` hook (the manager kills the region's databases; /health fails)."""
        self.faults.set_region_down(region, mode)
        self.emit("region.down", region=region)

    def region_up(self, region: str) -> None:
        """The region's API answers again (databases killed by region_down stay down)."""
        self.faults.set_region_up(region)
        self.emit("region.up", region=region)

    def _probe(self, region: str) -> bool | tuple[bool, str]:
        if self.faults.region_down(region):
            return False, NO_ANSWER
        return self.health_probe(region) if self.health_probe else True

    # -- capacity for the fake Kubernetes API ---------------------------------------------------
    def set_nodes(self, region: str, cluster: str, nodegroup: str, nodes: int) -> None:
        with self._lock:
            self._nodes[(region, cluster, nodegroup)] = nodes

    def nodes(self, region: str, cluster: str, nodegroup: str) -> int:
        with self._lock:
            return self._nodes.get((region, cluster, nodegroup), 0)

    def capacity(self, cluster_name: str) -> int:
        """Pods the cluster's nodegroup can hold now (Ready nodes × pods per node); 0 if its region is down."""
        if self.estate is None:
            return 0
        for view in (self.estate.primary, self.estate.secondary):
            if view.cluster.name == cluster_name:
                if self.faults.region_down(view.region):
                    return 0
                ng = view.cluster.nodegroup
                return self.nodes(view.region, cluster_name, ng.name) * ng.pods_per_node
        return 0

    # -- WSGI ---------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_sandbox/"):
            return self._respond(start_response, self._admin(environ))
        req = parse_request(environ)
        seeding_replica = req is not None and (req.service, req.operation) == ("rds", _CREATE_REPLICA)
        if req is not None and seeding_replica and not self.enabled:
            try:  # seeding: no transition, but the moto workaround still applies
                return self._respond(start_response, self._create_replica_in_destination(req, environ))
            except AwsError as err:
                return self._respond(start_response, err.reply.render(req.protocol))
        if req is not None and not self.enabled and (req.service, req.operation) in _NOT_IN_MOTO:
            try:
                reply = getattr(self, f"_op_{req.service}_{req.operation}")(req, environ)
                return self._respond(start_response, reply)
            except AwsError as err:
                return self._respond(start_response, err.reply.render(req.protocol))
        if req is None or not self.enabled:
            return self._forward(environ, start_response)
        fault = self.faults.pick(req)
        if fault is not None:
            if fault.kind == "unreachable":
                return self._drop(environ, fault)
            if fault.kind == "denied":
                return self._respond(start_response, denied_reply(req, fault.code).render(req.protocol))
            reply = (
                throttle_reply(req.service, req.protocol)
                if fault.kind == "throttle"
                else server_error_reply(req.service)
            )
            return self._respond(start_response, reply.render(req.protocol))
        handler = getattr(self, f"_op_{req.service}_{req.operation}", None)
        try:
            if handler is not None:
                result = handler(req, environ)
                if result is not None:
                    return self._respond(start_response, result)
            return self._forward(environ, start_response)
        except AwsError as err:
            return self._respond(start_response, err.reply.render(req.protocol))

    def _drop(self, environ: dict[str, Any], rule: FaultRule) -> Iterable[bytes]:
        if rule.mode == "hang":
            self._stop.wait(rule.hang_seconds)
        sock = environ.get("werkzeug.socket")
        if sock is not None:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        raise ConnectionAbortedError(f"sandbox: region {rule.region} is unreachable")

    @staticmethod
    def _respond(start_response: Callable[..., Any], reply: Reply) -> Iterable[bytes]:
        status, headers, body = reply
        start_response(f"{status} {_REASONS.get(status, 'Error')}", headers)
        return [body]

    def _forward(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        assert self._inner is not None, "Realism.middleware() was not applied"
        return self._inner(environ, start_response)

    def call_inner(self, environ: dict[str, Any], body: bytes | None = None, **overrides: str) -> Reply:
        """Send a (possibly rewritten) request to moto and collect the reply."""
        env = dict(environ)
        env.update(overrides)
        if body is not None:
            env["wsgi.input"] = io.BytesIO(body)
            env["CONTENT_LENGTH"] = str(len(body))
        else:
            read_body(environ)
            env["wsgi.input"] = environ["wsgi.input"]
        captured: dict[str, Any] = {}

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            captured["status"] = int(status.split()[0])
            captured["headers"] = list(headers)

        assert self._inner is not None
        chunks = self._inner(env, start)
        try:
            data = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close:
                close()
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(data))))
        return captured["status"], headers, data

    def _query(self, environ: dict[str, Any], params: dict[str, str]) -> Reply:
        from urllib.parse import urlencode

        return self.call_inner(
            environ,
            urlencode(params).encode(),
            CONTENT_TYPE="application/x-www-form-urlencoded; charset=utf-8",
        )

    # -- admin ---------------------------------------------------------------------------------
    def _admin(self, environ: dict[str, Any]) -> Reply:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET").upper()
        body = read_body(environ)
        try:
            payload = json.loads(body) if body else {}
            query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
            data = self.admin(method, path.removeprefix("/_sandbox"), payload, query)
            return _json_reply(200, data)
        except KeyError as exc:
            return _json_reply(404, {"error": str(exc)})
        except (ValueError, TypeError) as exc:
            return _json_reply(400, {"error": str(exc)})

    def admin(self, method: str, path: str, payload: dict[str, Any], query: dict[str, Any]) -> Any:
        """The admin API (also reachable over HTTP under ``/_sandbox``)."""
        for prefix, handler in self.admin_handlers.items():
            if path.startswith(prefix):
                return handler(method, path, payload | query)
        if path == "/faults" and method == "GET":
            return {
                "rules": [r.to_dict() for r in self.faults.rules()],
                "injected": dict(self.faults.injected),
            }
        if path == "/faults" and method == "POST":
            rules = payload.get("rules", [payload] if payload else [])
            if payload.get("replace"):
                self.faults.clear()
            added = [self.faults.add(FaultRule.from_dict(r)).to_dict() for r in rules]
            return {"added": added}
        if path == "/faults" and method == "DELETE":
            if "id" in query:
                return {"removed": self.faults.remove(query["id"])}
            self.faults.clear()
            return {"cleared": True}
        m = re.match(r"^/regions/([a-z0-9-]+)/(down|up)$", path)
        if m and method == "POST":
            region, what = m.groups()
            if self.estate is not None and region not in self.estate.regions:
                raise KeyError(f"region {region!r} is not in the estate ({', '.join(self.estate.regions)})")
            if what == "down":
                self.region_down(region, payload.get("mode", "refuse"))
            else:
                self.region_up(region)
            return {"region": region, "down": self.faults.region_down(region)}
        if path == "/transitions" and method == "GET":
            return {"active": [t.to_dict() for t in self.transitions.active()]}
        if path == "/transitions/fast-forward" and method == "POST":
            return {"completed": self.transitions.fast_forward(str(payload.get("kind", "")))}
        if path == "/latency" and method == "GET":
            return {
                "profile": self.profile.name,
                "time_scale": self.profile.time_scale,
                "overrides": self.profile.overrides,
            }
        if path == "/latency" and method == "POST":
            overrides = {str(k): float(v) for k, v in dict(payload.get("overrides") or {}).items()}
            if any(v < 0 for v in overrides.values()):
                raise ValueError("latency overrides must be >= 0 seconds")
            self.profile = replace(self.profile, overrides={**self.profile.overrides, **overrides})
            return {"overrides": self.profile.overrides}
        if path == "/latency" and method == "DELETE":
            self.profile = replace(self.profile, overrides=dict(self._initial_overrides))
            return {"overrides": self.profile.overrides}
        if path == "/health-checks":
            return self.health.snapshot() if self.health else {}
        if path == "/capacity" and self.estate is not None:
            return {
                v.cluster.name: self.capacity(v.cluster.name)
                for v in (self.estate.primary, self.estate.secondary)
            }
        raise KeyError(f"no admin endpoint {method} /_sandbox{path}")

    # ======================= RDS =========================================================
    def _db(self, region: str, ident: str) -> Any:
        return rds_backend(region).databases.get(ident)

    def _op_rds_PromoteReadReplica(self, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
        ident = req.params.get("DBInstanceIdentifier", "")
        db = self._db(req.region, ident)
        if db is None:
            return None  # moto answers DBInstanceNotFound
        if not db.is_replica:
            raise AwsError("InvalidDBInstanceState", f"DB Instance {ident} is not a read replica.")
        if db.status != "available":
            raise AwsError(
                "InvalidDBInstanceState",
                f"DB Instance {ident} is not in available state (status: {db.status}).",
            )
        retention = req.params.get("BackupRetentionPeriod")
        db.status = "modifying"

        def complete() -> None:
            self._apply_promote(req.region, ident, retention)

        self.transitions.begin(
            "rds.promote", req.region, ident, "modifying", self.profile.duration("rds.promote"), complete
        )
        return self._describe_db_as(environ, req.region, ident, "PromoteReadReplica")

    def _apply_promote(self, region: str, ident: str, retention: str | None) -> None:
        backend = rds_backend(region)
        db = backend.databases.get(ident)
        if db is None:
            return
        # PromoteReadReplica's BackupRetentionPeriod defaults to 1 day (a PostgreSQL replica has
        # none of its own): the new primary keeps only what the caller asked for.
        kwargs: dict[str, Any] = {
            "db_instance_identifier": ident,
            "backup_retention_period": int(retention) if retention not in (None, "") else 1,
        }
        backend.promote_read_replica(kwargs)
        self._backups_since[db.db_instance_arn] = _now()  # a replica had no automated backups
        source = db.source_db_instance_identifier
        if source:
            found = (
                _find_db_by_arn(source)
                if source.startswith("arn:")
                else (region, backend.databases.get(source))
            )
            if found and found[1] is not None:
                src = found[1]
                for entry in (db.db_instance_arn, ident):
                    if entry in src.replicas:
                        src.replicas.remove(entry)
        db.source_db_instance_identifier = None
        self.emit("rds.promoted", region=region, identifier=ident)
        db.status = "available"

    def _describe_db_as(self, environ: dict[str, Any], region: str, ident: str, action: str) -> Reply:
        status, headers, body = self._query(
            environ, {"Action": "DescribeDBInstances", "Version": "2014-10-31", "DBInstanceIdentifier": ident}
        )
        text = self._rewrite_db_instances(body.decode(), region)
        text = text.replace("DescribeDBInstancesResponse", f"{action}Response")
        text = text.replace("DescribeDBInstancesResult", f"{action}Result")
        text = re.sub(r"</?DBInstances>", "", text)
        data = text.encode()
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"] + [
            ("Content-Length", str(len(data)))
        ]
        return status, headers, data

    def _op_rds_DescribeDBInstances(self, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
        status, headers, body = self.call_inner(environ)
        if status != 200:
            return status, headers, body
        data = self._rewrite_db_instances(body.decode(), req.region).encode()
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"] + [
            ("Content-Length", str(len(data)))
        ]
        return status, headers, data

    def latest_restorable(self) -> dt.datetime:
        return _now() - dt.timedelta(seconds=self.restorable_lag)

    def restorable_window(self, db: Any) -> tuple[dt.datetime, dt.datetime]:
        """[earliest, latest] restorable times of an instance: its first backup (creation, or its
        promotion for a promoted replica) or ``now - retention`` days, whichever is later."""
        created = db.instance_create_time
        if isinstance(created, str):
            created = parse_time(created)
        if created.tzinfo is None:
            created = created.replace(tzinfo=dt.UTC)
        created = max(created, self._backups_since.get(db.db_instance_arn, created))
        retention = int(db.backup_retention_period or 0)
        earliest = max(created, _now() - dt.timedelta(days=retention))
        return earliest, max(earliest, self.latest_restorable())

    def _rewrite_db_instances(self, xml: str, region: str) -> str:
        def one(match: re.Match[str]) -> str:
            block = match.group(0)
            ident_m = re.search(r"<DBInstanceIdentifier>([^<]+)</DBInstanceIdentifier>", block)
            if not ident_m:
                return block
            ident = ident_m.group(1)
            db = self._db(region, ident)
            if self.endpoint_fn is not None:
                endpoint = self.endpoint_fn(region, ident)
                if endpoint is not None:
                    host, port = endpoint
                    block = re.sub(
                        r"<Endpoint>.*?</Endpoint>",
                        f"<Endpoint><Address>{host}</Address><Port>{port}</Port></Endpoint>",
                        block,
                        flags=re.S,
                    )
                    block = re.sub(
                        r"<DbInstancePort>\d+</DbInstancePort>",
                        f"<DbInstancePort>{port}</DbInstancePort>",
                        block,
                    )
            if db is not None and int(db.backup_retention_period or 0) > 0 and not db.is_replica:
                latest = _iso(self.latest_restorable())
                if "<LatestRestorableTime>" in block:
                    block = re.sub(
                        r"<LatestRestorableTime>[^<]*</LatestRestorableTime>",
                        f"<LatestRestorableTime>{latest}</LatestRestorableTime>",
                        block,
                    )
                else:
                    block = block.replace(
                        "</DBInstance>", f"<LatestRestorableTime>{latest}</LatestRestorableTime></DBInstance>"
                    )
            else:
                block = re.sub(r"<LatestRestorableTime>[^<]*</LatestRestorableTime>", "", block)
            return block

        return re.sub(r"<DBInstance>.*?</DBInstance>", one, xml, flags=re.S)

    def _op_rds_RestoreDBInstanceToPointInTime(
        self, req: AwsRequest, environ: dict[str, Any]
    ) -> Reply | None:
        p = req.params
        source = p.get("SourceDBInstanceIdentifier", "")
        target = p.get("TargetDBInstanceIdentifier", "")
        restore_time = p.get("RestoreTime")
        use_latest = p.get("UseLatestRestorableTime", "false").lower() == "true"
        if restore_time and use_latest:
            raise AwsError(
                "InvalidParameterCombination", "Cannot specify both RestoreTime and UseLatestRestorableTime."
            )
        if not restore_time and not use_latest:
            raise AwsError(
                "InvalidParameterCombination",
                "Either RestoreTime or UseLatestRestorableTime must be specified.",
            )
        if p.get("SourceDBInstanceAutomatedBackupsArn"):
            return self._restore_from_automated_backups(req, environ, use_latest)
        db = self._db(req.region, source)
        if db is None:
            return None  # moto: DBInstanceNotFound
        if int(db.backup_retention_period or 0) == 0:
            raise AwsError(
                "PointInTimeRestoreNotEnabled",
                f"Point-in-time restore is not enabled for {source}: its backup retention period is 0.",
            )
        when: dt.datetime | None = None
        if restore_time:
            try:
                when = parse_time(restore_time)
            except ValueError:
                raise AwsError(
                    "InvalidParameterValue", f"RestoreTime {restore_time!r} is not a valid timestamp."
                ) from None
            earliest, latest = self.restorable_window(db)
            if not earliest <= when <= latest:
                raise AwsError(
                    "InvalidRestoreTime",
                    f"Restore time {_iso(when)} is outside the restorable window of {source}: "
                    f"[{_iso(earliest)}, {_iso(latest)}].",
                )
        reply = self.call_inner(environ)
        if reply[0] == 200:
            restored = self._db(req.region, target)
            if restored is not None:
                # moto copies the request's SourceDBInstanceIdentifier onto the new instance, which
                # then describes as a read replica of its source; a restored instance is standalone.
                restored.source_db_instance_identifier = None
                reply = _drop_replica_source(reply)
            self._creating(
                req.region,
                target,
                "rds.restore",
                "rds.restored",
                source=source,
                restore_time=when,
                use_latest=use_latest,
            )
            reply = _rewrite_status(reply, "DBInstanceStatus", self._status(req.region, target))
        return reply

    # -- automated backups and their cross-region replication ----------------------------------
    @staticmethod
    def _auto_backup_arn(region: str, source_arn: str) -> str:
        """A stable ``arn:aws:rds:<region>:<acct>:auto-backup:ab-…`` for a source instance's backups."""
        import base64
        import hashlib

        digest = base64.b32encode(hashlib.sha256(f"{region}|{source_arn}".encode()).digest()).decode()
        return f"arn:aws:rds:{region}:{ACCOUNT_ID}:auto-backup:ab-{digest.lower().rstrip('=')[:40]}"

    def replicated_window(self, rec: dict[str, Any]) -> tuple[dt.datetime, dt.datetime] | None:
        """RestoreWindow of replicated backups: what the DR region's copy of the WAL archive covers
        (the local PostgreSQL's, when wired), else replication start ... now - replication lag."""
        if self.replicated_window_fn is not None:
            return self.replicated_window_fn(rec["region"], rec["source_arn"])
        started: dt.datetime = rec["started_at"]
        latest = _now() - dt.timedelta(seconds=self.replicated_lag)
        return (started, latest) if latest >= started else None

    def _op_rds_StartDBInstanceAutomatedBackupsReplication(
        self, req: AwsRequest, environ: dict[str, Any]
    ) -> Reply:
        source_arn = req.params.get("SourceDBInstanceArn", "")
        found = _find_db_by_arn(source_arn) if source_arn.startswith("arn:") else None
        if found is None:
            raise AwsError("DBInstanceNotFound", f"DBInstance {source_arn or '(none)'} not found.", 404)
        src_region, db = found
        if src_region == req.region:
            raise AwsError(
                "InvalidParameterValue",
                f"The source DB instance {source_arn} is in {req.region}: replicate its automated "
                "backups to another AWS Region.",
            )
        if db.is_replica or int(db.backup_retention_period or 0) == 0:
            raise AwsError(
                "InvalidDBInstanceState",
                f"Automated backups are not enabled on DB instance {db.db_instance_identifier}.",
            )
        arn = self._auto_backup_arn(req.region, source_arn)
        if arn in self.backup_replications:
            raise AwsError(
                "InvalidDBInstanceAutomatedBackupState",
                f"Automated backups of {db.db_instance_identifier} are already replicated to {req.region}.",
            )
        self.backup_replications[arn] = {
            "arn": arn,
            "region": req.region,
            "source_arn": source_arn,
            "source_region": src_region,
            "identifier": db.db_instance_identifier,
            "dbi_resource_id": db.dbi_resource_id,
            "engine": db.engine,
            "engine_version": db.engine_version,
            "instance_class": db.db_instance_class,
            "allocated_storage": db.allocated_storage,
            "master_username": db.master_username,
            "db_name": db.db_name,
            "port": db.port,
            "storage_type": db.storage_type,
            "encrypted": bool(db.storage_encrypted),
            "kms_key_id": req.params.get("KmsKeyId") or "",
            "retention": int(req.params.get("BackupRetentionPeriod") or 7),
            "started_at": _now(),
        }
        self._backups_since.setdefault(source_arn, _now())
        body = f"<DBInstanceAutomatedBackup>{self._auto_backup_xml(self.backup_replications[arn])}</DBInstanceAutomatedBackup>"
        return _query_reply("StartDBInstanceAutomatedBackupsReplication", body)

    def _op_rds_StopDBInstanceAutomatedBackupsReplication(
        self, req: AwsRequest, environ: dict[str, Any]
    ) -> Reply:
        source_arn = req.params.get("SourceDBInstanceArn", "")
        arn = self._auto_backup_arn(req.region, source_arn)
        rec = self.backup_replications.pop(arn, None)
        if rec is None:
            raise AwsError(
                "DBInstanceAutomatedBackupNotFound",
                f"No automated backups of {source_arn} are replicated to {req.region}.",
                404,
            )
        body = f"<DBInstanceAutomatedBackup>{self._auto_backup_xml(rec)}</DBInstanceAutomatedBackup>"
        return _query_reply("StopDBInstanceAutomatedBackupsReplication", body)

    def _auto_backup_xml(self, rec: dict[str, Any]) -> str:
        window = self.replicated_window(rec)
        restore = (
            f"<RestoreWindow><EarliestTime>{_iso(window[0])}</EarliestTime>"
            f"<LatestTime>{_iso(window[1])}</LatestTime></RestoreWindow>"
            if window
            else "<RestoreWindow/>"
        )
        fields = {
            "DBInstanceArn": rec["source_arn"],
            "DbiResourceId": rec["dbi_resource_id"],
            "Region": rec["source_region"],
            "DBInstanceIdentifier": rec["identifier"],
            "Status": "replicating" if window else "pending",
            "Engine": rec["engine"],
            "EngineVersion": rec["engine_version"],
            "AllocatedStorage": rec["allocated_storage"],
            "MasterUsername": rec["master_username"],
            "Port": rec["port"],
            "StorageType": rec["storage_type"],
            "Encrypted": str(rec["encrypted"]).lower(),
            "KmsKeyId": rec["kms_key_id"],
            "BackupRetentionPeriod": rec["retention"],
            "DBInstanceAutomatedBackupsArn": rec["arn"],
        }
        return restore + "".join(
            f"<{k}>{_xml_escape(str(v))}</{k}>" for k, v in fields.items() if v not in (None, "")
        )

    def _own_backups_xml(self, region: str, db: Any) -> tuple[str, str]:
        """(auto-backup ARN, XML members) of an instance's automated backups in its own region."""
        arn = self._auto_backup_arn(region, db.db_instance_arn)
        earliest, latest = self.restorable_window(db)
        replications = "".join(
            f"<DBInstanceAutomatedBackupsReplication><DBInstanceAutomatedBackupsArn>{r['arn']}"
            "</DBInstanceAutomatedBackupsArn></DBInstanceAutomatedBackupsReplication>"
            for r in self.backup_replications.values()
            if r["source_arn"] == db.db_instance_arn
        )
        fields = {
            "DBInstanceArn": db.db_instance_arn,
            "DbiResourceId": db.dbi_resource_id,
            "Region": region,
            "DBInstanceIdentifier": db.db_instance_identifier,
            "Status": "active",
            "Engine": db.engine,
            "EngineVersion": db.engine_version,
            "Port": db.port,
            "BackupRetentionPeriod": db.backup_retention_period,
            "DBInstanceAutomatedBackupsArn": arn,
        }
        xml = (
            f"<RestoreWindow><EarliestTime>{_iso(earliest)}</EarliestTime>"
            f"<LatestTime>{_iso(latest)}</LatestTime></RestoreWindow>"
            + "".join(f"<{k}>{_xml_escape(str(v))}</{k}>" for k, v in fields.items() if v not in (None, ""))
            + (
                f"<DBInstanceAutomatedBackupsReplications>{replications}</DBInstanceAutomatedBackupsReplications>"
                if replications
                else ""
            )
        )
        return arn, xml

    def _op_rds_DescribeDBInstanceAutomatedBackups(self, req: AwsRequest, environ: dict[str, Any]) -> Reply:
        """This region's instances' automated backups (retention > 0, not a replica) and those
        replicated into it from another region, each with its RestoreWindow (moto has neither)."""
        p = req.params
        entries: list[tuple[str, str, str, str]] = []  # (arn, identifier, dbi resource id, xml)
        for db in list(rds_backend(req.region).databases.values()):
            if db.is_replica or int(db.backup_retention_period or 0) == 0:
                continue
            arn, xml = self._own_backups_xml(req.region, db)
            entries.append((arn, db.db_instance_identifier, db.dbi_resource_id, xml))
        for rec in list(self.backup_replications.values()):
            if rec["region"] == req.region:
                entries.append(
                    (rec["arn"], rec["identifier"], rec["dbi_resource_id"], self._auto_backup_xml(rec))
                )
        wanted = {
            0: p.get("DBInstanceAutomatedBackupsArn"),
            1: p.get("DBInstanceIdentifier"),
            2: p.get("DbiResourceId"),
        }
        chosen = [e for e in entries if all(v is None or e[i] == v for i, v in wanted.items())]
        if not chosen and any(wanted.values()):
            raise AwsError(
                "DBInstanceAutomatedBackupNotFound",
                f"No automated backups match {', '.join(v for v in wanted.values() if v)} in {req.region}.",
                404,
            )
        body = (
            "<DBInstanceAutomatedBackups>"
            + "".join(f"<DBInstanceAutomatedBackup>{e[3]}</DBInstanceAutomatedBackup>" for e in chosen)
            + "</DBInstanceAutomatedBackups>"
        )
        return _query_reply("DescribeDBInstanceAutomatedBackups", body)

    def _restore_from_automated_backups(
        self, req: AwsRequest, environ: dict[str, Any], use_latest: bool
    ) -> Reply:
        """PITR from automated backups named by ARN — replicated into this region (the DR region's
        recovery point when the primary region is lost). The source instance is not needed: what
        the new instance is made of was recorded when the replication started."""
        from urllib.parse import urlencode

        p = req.params
        arn = p["SourceDBInstanceAutomatedBackupsArn"]
        target = p.get("TargetDBInstanceIdentifier", "")
        rec = self.backup_replications.get(arn)
        if rec is None or rec["region"] != req.region:
            raise AwsError(
                "DBInstanceAutomatedBackupNotFound",
                f"Automated backups {arn} not found in {req.region}.",
                404,
            )
        window = self.replicated_window(rec)
        if window is None:
            raise AwsError(
                "InvalidRestoreFault",
                f"The replicated automated backups {arn} have no restorable time yet.",
            )
        when = window[1]
        if not use_latest:
            try:
                when = parse_time(p.get("RestoreTime", ""))
            except ValueError:
                raise AwsError(
                    "InvalidParameterValue", f"RestoreTime {p.get('RestoreTime')!r} is not a valid timestamp."
                ) from None
            if not window[0] <= when <= window[1]:
                raise AwsError(
                    "InvalidRestoreTime",
                    f"Restore time {_iso(when)} is outside the restorable window of {arn}: "
                    f"[{_iso(window[0])}, {_iso(window[1])}].",
                )
        if self._db(req.region, target) is not None:
            raise AwsError("DBInstanceAlreadyExists", f"DB instance already exists: {target}")
        copied = (
            "DBInstanceClass",
            "DBSubnetGroupName",
            "DBParameterGroupName",
            "MultiAZ",
            "PubliclyAccessible",
            "DeletionProtection",
            "StorageType",
            "CopyTagsToSnapshot",
        )
        params = {
            k: v for k, v in p.items() if k in copied or k.startswith(("VpcSecurityGroupIds.", "Tags."))
        }
        params.update(
            {
                "Action": "CreateDBInstance",
                "Version": "2014-10-31",
                "DBInstanceIdentifier": target,
                "DBInstanceClass": p.get("DBInstanceClass") or rec["instance_class"],  # RDS: the source's
                "Engine": rec["engine"],
                "EngineVersion": rec["engine_version"],
                "AllocatedStorage": str(rec["allocated_storage"] or 20),
                "MasterUsername": rec["master_username"] or "postgres",
                "MasterUserPassword": uuid.uuid4().hex,  # the backup's own password comes with the data
                "BackupRetentionPeriod": p.get("BackupRetentionPeriod") or "1",
                "Port": str(rec["port"] or 5432),
                "StorageEncrypted": str(rec["encrypted"]).lower(),
            }
        )
        if rec["db_name"]:
            params["DBName"] = rec["db_name"]
        if rec["kms_key_id"]:
            params["KmsKeyId"] = rec["kms_key_id"]
        status, headers, body = self.call_inner(
            environ,
            urlencode(params).encode(),
            CONTENT_TYPE="application/x-www-form-urlencoded; charset=utf-8",
        )
        if status != 200:
            return status, headers, body
        text = body.decode().replace("CreateDBInstance", "RestoreDBInstanceToPointInTime")
        self._creating(
            req.region,
            target,
            "rds.restore",
            "rds.restored",
            source=arn,
            restore_time=when,
            use_latest=use_latest,
            replicated_from=rec["source_arn"],
        )
        data = text.encode()
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"] + [
            ("Content-Length", str(len(data)))
        ]
        return _rewrite_status((status, headers, data), "DBInstanceStatus", self._status(req.region, target))

    def _snap_status(self, region: str, snap_id: str) -> str:
        snap = rds_backend(region).database_snapshots.get(snap_id)
        return str(snap.status) if snap is not None else "available"

    def _status(self, region: str, ident: str) -> str:
        db = self._db(region, ident)
        return str(db.status) if db is not None else "available"

    def _creating(self, region: str, ident: str, what: str, event: str, **info: Any) -> None:
        db = self._db(region, ident)
        if db is None:
            return
        db.status = "creating"

        def complete() -> None:
            self.emit(event, region=region, identifier=ident, **info)
            current = self._db(region, ident)
            if current is not None:
                current.status = "available"

        self.transitions.begin(
            what, region, ident, "creating", self.profile.duration(what), complete, **_jsonable(info)
        )

    def _op_rds_RestoreDBInstanceFromDBSnapshot(
        self, req: AwsRequest, environ: dict[str, Any]
    ) -> Reply | None:
        snap_id = req.params.get("DBSnapshotIdentifier", "")
        snap = rds_backend(req.region).database_snapshots.get(snap_id.split(":")[-1])
        if snap is not None and snap.status != "available":
            raise AwsError(
                "InvalidDBSnapshotState", f"Snapshot {snap_id} is not available (status: {snap.status})."
            )
        reply = self.call_inner(environ)
        if reply[0] == 200:
            target = req.params.get("DBInstanceIdentifier", "")
            self._creating(req.region, target, "rds.restore", "rds.restored_from_snapshot", snapshot=snap_id)
            reply = _rewrite_status(reply, "DBInstanceStatus", self._status(req.region, target))
        return reply

    def _snapshot_transition(self, region: str, snap_id: str, what: str, event: str, **info: Any) -> None:
        snap = rds_backend(region).database_snapshots.get(snap_id)
        if snap is None:
            return
        snap.status = "creating"

        def complete() -> None:
            self.emit(event, region=region, snapshot=snap_id, **info)
            current = rds_backend(region).database_snapshots.get(snap_id)
            if current is not None:
                current.status = "available"

        self.transitions.begin(
            what, region, snap_id, "creating", self.profile.duration(what), complete, **info
        )

    def _op_rds_CreateDBSnapshot(self, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
        ident = req.params.get("DBInstanceIdentifier", "")
        db = self._db(req.region, ident)
        if db is not None and db.status not in ("available", "backing-up"):
            raise AwsError(
                "InvalidDBInstanceState",
                f"DB Instance {ident} is not in available state (status: {db.status}).",
            )
        reply = self.call_inner(environ)
        if reply[0] == 200:
            snap = req.params.get("DBSnapshotIdentifier", "")
            self._snapshot_transition(
                req.region, snap, "rds.snapshot", "rds.snapshot_created", identifier=ident
            )
            reply = _rewrite_status(reply, "Status", self._snap_status(req.region, snap))
        return reply

    def _op_rds_CopyDBSnapshot(self, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
        source = req.params.get("SourceDBSnapshotIdentifier", "")
        src_region = source.split(":")[3] if source.startswith("arn:") else req.region
        src = rds_backend(src_region).database_snapshots.get(source.split(":")[-1])
        if src is not None and src.status != "available":
            raise AwsError(
                "InvalidDBSnapshotState", f"Snapshot {source} is not available (status: {src.status})."
            )
        reply = self.call_inner(environ)
        if reply[0] == 200:
            target = req.params.get("TargetDBSnapshotIdentifier", "")
            what = "rds.snapshot_copy" if src_region != req.region else "rds.snapshot"
            self._snapshot_transition(req.region, target, what, "rds.snapshot_copied", source=source)
            reply = _rewrite_status(reply, "Status", self._snap_status(req.region, target))
        return reply

    def _op_rds_DeleteDBSnapshot(self, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
        snap_id = req.params.get("DBSnapshotIdentifier", "")
        snap = rds_backend(req.region).database_snapshots.get(snap_id)
        if snap is not None and snap.status != "available":
            raise AwsError(
                "InvalidDBSnapshotState", f"Snapshot {snap_id} cannot be deleted while it is {snap.status}."
            )
        for tr in self.transitions.active():
            if tr.kind == "rds.restore" and tr.info.get("snapshot") in (snap_id,) and tr.region == req.region:
                raise AwsError(
                    "InvalidDBSnapshotState", f"Snapshot {snap_id} is in use by the restore of {tr.resource}."
                )
        return None

    def _op_rds_RebootDBInstance(self, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
        ident = req.params.get("DBInstanceIdentifier", "")
        db = self._db(req.region, ident)
        if db is None:
            return None
        failover = req.params.get("ForceFailover", "false").lower() == "true"
        if failover and not db.multi_az:
            raise AwsError(
                "InvalidParameterCombination", f"Cannot force a failover of {ident}: it is not Multi-AZ."
            )
        if db.status != "available":
            raise AwsError(
                "InvalidDBInstanceState",
                f"DB Instance {ident} is not in available state (status: {db.status}).",
            )
        reply = self.call_inner(environ)
        if reply[0] == 200:
            db.status = "rebooting"

            def complete() -> None:
                db.status = "available"
                self.emit("rds.rebooted", region=req.region, identifier=ident, failover=failover)

            duration = self.profile.duration("rds.reboot_failover") * (1.0 if failover else 0.5)
            self.transitions.begin("rds.reboot", req.region, ident, "rebooting", duration, complete)
            reply = _rewrite_status(reply, "DBInstanceStatus", str(db.status))
        return reply

    def _op_rds_ModifyDBInstance(self, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
        ident = req.params.get("DBInstanceIdentifier", "")
        db = self._db(req.region, ident)
        if db is None:
            return None
        conflict = managed_password_conflict(db, req.params)
        if conflict is not None:
            raise conflict
        if db.status not in ("available",):
            raise AwsError(
                "InvalidDBInstanceState",
                f"DB Instance {ident} is not in available state (status: {db.status}).",
            )
        reply = self.call_inner(environ)
        if reply[0] == 200:
            new_ident = req.params.get("NewDBInstanceIdentifier") or ident
            target = self._db(req.region, new_ident)
            params = dict(req.params)
            if target is not None:
                target.status = "modifying"

                def complete() -> None:
                    target.status = "available"
                    self.emit("rds.modified", region=req.region, identifier=new_ident, params=params)

                self.transitions.begin(
                    "rds.modify",
                    req.region,
                    new_ident,
                    "modifying",
                    self.profile.duration("rds.modify"),
                    complete,
                )
                reply = _rewrite_status(reply, "DBInstanceStatus", str(target.status))
        return reply

    def _create_replica_in_destination(self, req: AwsRequest, environ: dict[str, Any]) -> Reply:
        """``CreateDBInstanceReadReplica`` with the subnet group resolved where real RDS does.

        moto copies the source instance and sets ``DBSubnetGroupName`` *before* it moves the copy
        to the destination backend, so a cross-region replica's group is looked up in the source
        region (``DBSubnetGroupNotFound`` for a group that exists where the replica is created).
        Here the group is checked in the request's (destination) region, left out of the call to
        moto, and set on the new instance afterwards — so DescribeDBInstances reports it.
        Applies while seeding too (a moto bug, not a behaviour the latency profile models).
        """
        group = req.params.get("DBSubnetGroupName") or ""
        source = req.params.get("SourceDBInstanceIdentifier", "")
        src_region = source.split(":")[3] if source.startswith("arn:") and source.count(":") >= 6 else None
        if not group or src_region in (None, req.region):
            return self.call_inner(environ)
        backend = rds_backend(req.region)
        if group not in backend.subnet_groups:
            raise AwsError("DBSubnetGroupNotFoundFault", f"DBSubnetGroup {group} not found.", 404)
        params = {k: v for k, v in req.params.items() if k != "DBSubnetGroupName"}
        from urllib.parse import urlencode

        reply = self.call_inner(environ, urlencode(params).encode())
        ident = params.get("DBInstanceIdentifier", "").lower()
        db = backend.databases.get(ident)
        if reply[0] != 200 or db is None:
            return reply
        db.db_subnet_group = backend.subnet_groups[group]
        db._db_subnet_group_name = group
        return self._describe_db_as(environ, req.region, ident, "CreateDBInstanceReadReplica")

    def _op_rds_CreateDBInstanceReadReplica(self, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
        ident = req.params.get("DBInstanceIdentifier", "").lower()
        reply = self._create_replica_in_destination(req, environ)
        if reply[0] == 200:
            # moto's replica is a copy of its source, creation time included; RDS's is created now
            # (moved-aside names and the restorable window derive from it).
            db = self._db(req.region, ident)
            if db is not None:
                db.created = db.instance_create_time = _now().replace(tzinfo=None)  # naive, as moto keeps it
            source = req.params.get("SourceDBInstanceIdentifier", "")
            self._creating(req.region, ident, "rds.create_replica", "rds.replica_created", source=source)
            reply = _rewrite_status(reply, "DBInstanceStatus", self._status(req.region, ident))
        return reply

    def _op_rds_DeleteDBInstance(self, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
        ident = req.params.get("DBInstanceIdentifier", "")
        db = self._db(req.region, ident)
        if db is not None and getattr(db, "deletion_protection", False):
            raise AwsError(
                "InvalidParameterCombination",
                f"Cannot delete protected DB Instance {ident}, please disable deletion protection and try again.",
            )
        reply = self.call_inner(environ)
        if reply[0] == 200:
            self.emit("rds.deleted", region=req.region, identifier=ident)
        return reply

    # ======================= EKS =========================================================
    def _op_eks_UpdateNodegroupConfig(self, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
        parts = req.path.strip("/").split("/")
        cluster, ngname = parts[1], parts[3]
        backend = eks_backend(req.region)
        ng = backend.clusters.get(cluster).nodegroups.get(ngname) if cluster in backend.clusters else None
        if ng is None:
            return None
        if ng.status != "ACTIVE":
            raise AwsError("ResourceInUseException", f"Nodegroup {ngname} is in {ng.status} state.", 409)
        body = json.loads(req.body or b"{}")
        scaling = {**ng.scaling_config, **(body.get("scalingConfig") or {})}
        if not scaling["minSize"] <= scaling["desiredSize"] <= scaling["maxSize"]:
            raise AwsError(
                "InvalidParameterException",
                f"Desired size {scaling['desiredSize']} must be within [{scaling['minSize']}, {scaling['maxSize']}].",
            )
        reply = self.call_inner(environ)
        if reply[0] != 200:
            return reply
        ng.status = "UPDATING"
        desired = int(scaling["desiredSize"])
        region = req.region

        def nodes_ready() -> None:
            self.set_nodes(region, cluster, ngname, desired)
            self.emit("eks.nodes_ready", region=region, cluster=cluster, nodegroup=ngname, nodes=desired)

        def active() -> None:
            ng.status = "ACTIVE"
            if desired < self.nodes(region, cluster, ngname):
                nodes_ready()  # scale-in: nodes drain as the update completes
            else:
                self.transitions.begin(
                    "eks.node_ready",
                    region,
                    f"{cluster}/{ngname}",
                    "joining",
                    self.profile.duration("eks.node_ready"),
                    nodes_ready,
                )

        self.transitions.begin(
            "eks.nodegroup_scale",
            region,
            f"{cluster}/{ngname}",
            "UPDATING",
            self.profile.duration("eks.nodegroup_scale"),
            active,
        )
        return reply

    # ======================= ElastiCache =================================================
    def _group(self, region: str, group_id: str) -> Any:
        return elasticache_backend(region).replication_groups.get(group_id)

    def _op_elasticache_ModifyReplicationGroup(
        self, req: AwsRequest, environ: dict[str, Any]
    ) -> Reply | None:
        gid = req.params.get("ReplicationGroupId", "")
        group = self._group(req.region, gid)
        if group is not None and group.status != "available":
            raise AwsError("InvalidReplicationGroupState", f"Replication group {gid} is {group.status}.")
        reply = self.call_inner(environ)
        if reply[0] == 200 and group is not None:
            group.status = "modifying"

            def complete() -> None:
                group.status = "available"

            self.transitions.begin(
                "elasticache.modify",
                req.region,
                gid,
                "modifying",
                self.profile.duration("elasticache.failover"),
                complete,
            )
        return reply

    def _op_elasticache_TestFailover(self, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
        gid = req.params.get("ReplicationGroupId", "")
        group = self._group(req.region, gid)
        if group is None:
            raise AwsError("ReplicationGroupNotFoundFault", f"Replication group {gid} not found.", 404)
        if group.status != "available":
            raise AwsError("InvalidReplicationGroupState", f"Replication group {gid} is {group.status}.")
        group.status = "modifying"
        region = req.region

        def complete() -> None:
            group.status = "available"
            self.emit("elasticache.failover", region=region, replication_group=gid)

        self.transitions.begin(
            "elasticache.failover",
            region,
            gid,
            "modifying",
            self.profile.duration("elasticache.failover"),
            complete,
        )
        status, headers, body = self._query(
            environ,
            {"Action": "DescribeReplicationGroups", "Version": "2015-02-02", "ReplicationGroupId": gid},
        )
        text = body.decode().replace("DescribeReplicationGroupsResponse", "TestFailoverResponse")
        text = text.replace("DescribeReplicationGroupsResult", "TestFailoverResult")
        text = re.sub(r"</?ReplicationGroups>", "", text)
        text = re.sub(r"<Marker>[^<]*</Marker>|<Marker/>", "", text)
        data = text.encode()
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"] + [
            ("Content-Length", str(len(data)))
        ]
        return status, headers, data

    # ======================= Route53 =====================================================
    def _op_monitoring_PutMetricData(self, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
        """moto stores metrics but never evaluates alarms: evaluate the region's alarms on the
        datapoints just put, as CloudWatch would within a period."""
        reply = self.call_inner(environ)
        if reply[0] == 200:
            evaluate_alarms(req.region)
        return reply

    def _op_route53_ChangeResourceRecordSets(self, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
        zone_id = req.path.strip("/").split("/")[2]
        changes = _parse_changes(req.body)
        try:
            zone = route53_backend().get_hosted_zone(zone_id)
        except Exception:
            return None  # moto answers NoSuchHostedZone
        records, chars = _batch_size(req.body)
        if records > R53_MAX_RECORDS:
            raise AwsError(
                "InvalidChangeBatch",
                f"[Number of records limit of {R53_MAX_RECORDS} exceeded: the batch counts {records} "
                "ResourceRecord elements (UPSERT counts each twice)]",
            )
        if chars > R53_MAX_VALUE_CHARS:
            raise AwsError(
                "InvalidChangeBatch",
                f"[Number of characters limit of {R53_MAX_VALUE_CHARS} in Value elements exceeded: the "
                f"batch counts {chars} (UPSERT counts each character twice)]",
            )
        deleted: set[tuple[str, str, str | None]] = set()  # a batch applies as a whole, in order
        for change in changes:
            name = change["name"].rstrip(".").lower()
            key = (name, change["type"], change["set_identifier"] or None)
            if change["action"] == "DELETE":
                deleted.add(key)
                continue
            if change["action"] != "CREATE" or key in deleted:
                continue
            for rr in zone.rrsets:
                if (
                    rr.name.rstrip(".").lower() == name
                    and rr.type == change["type"]
                    and (rr.set_identifier or None) == (change["set_identifier"] or None)
                ):
                    ident = (
                        f", set-identifier='{change['set_identifier']}'" if change["set_identifier"] else ""
                    )
                    raise AwsError(
                        "InvalidChangeBatch",
                        f"[Tried to create resource record set [name='{name}.', type='{change['type']}'{ident}] "
                        "but it already exists]",
                    )
        reply = self.call_inner(environ)
        if reply[0] != 200:
            return reply
        change_id = "C" + uuid.uuid4().hex[:20].upper()
        tr = self.transitions.begin(
            "route53.insync",
            "global",
            change_id,
            "PENDING",
            self.profile.duration("route53.insync"),
            lambda: self.emit("route53.changed", change_id=change_id, changes=changes),
        )
        with self._lock:
            self._changes[change_id] = tr
        return _rewrite_change(reply, change_id, "INSYNC" if tr.done else "PENDING")

    def _op_route53_GetChange(self, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
        change_id = req.path.rstrip("/").rsplit("/", 1)[-1]
        with self._lock:
            tr = self._changes.get(change_id)
        if tr is None:
            return None
        reply = self.call_inner(environ)
        return _rewrite_change(reply, change_id, "INSYNC" if tr.done else "PENDING")

    def health_check_region(self, health_check_id: str) -> str | None:
        """The estate region a Route53 health check watches (by its CallerReference)."""
        if self.estate is None:
            return None
        hc = route53_backend().health_checks.get(health_check_id)
        if hc is None:
            return None
        for view in (self.estate.primary, self.estate.secondary):
            if hc.caller_reference == self.estate.health_check_ref(view):
                return view.region
        return None

    def health_check_healthy(self, health_check_id: str) -> bool:
        """Routing view of a health check: Disabled counts healthy, Inverted flips (as Route53 does)."""
        hc = route53_backend().health_checks.get(health_check_id)
        if hc is None:
            return False
        if hc.disabled:
            return True
        region = self.health_check_region(health_check_id)
        raw = self.health.healthy(region) if (self.health and region) else True
        return (not raw) if hc.inverted else raw

    def _op_route53_GetHealthCheckStatus(self, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
        hc_id = req.path.strip("/").split("/")[2]
        if route53_backend().health_checks.get(hc_id) is None:
            return None  # moto answers NoSuchHealthCheck
        region = self.health_check_region(hc_id)
        checked = _iso(_now())
        status = self.health.report(region) if (self.health and region) else http_report(200)[1]
        observations = "".join(
            f"<HealthCheckObservation><Region>{r}</Region><IPAddress>127.0.0.1</IPAddress><StatusReport>"
            f"<Status>{_xml_escape(status)}</Status><CheckedTime>{checked}</CheckedTime></StatusReport>"
            "</HealthCheckObservation>"
            for r in HEALTH_CHECKER_REGIONS
        )
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<GetHealthCheckStatusResponse xmlns="{_R53_NS}">'
            f"<HealthCheckObservations>{observations}</HealthCheckObservations></GetHealthCheckStatusResponse>"
        ).encode()
        return 200, [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))], body

    # ======================= STS ==============================================================
    def _op_sts_GetCallerIdentity(self, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
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

    def _op_iam_SimulatePrincipalPolicy(self, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
        """moto has no policy simulator (its server would answer an HTML 500): say so the way an
        endpoint says it does not know an action, so clients can tell "missing" from "failed"."""
        raise AwsError(
            "InvalidAction", "SimulatePrincipalPolicy is not yet implemented by the sandbox (moto)"
        )

    # ======================= CloudWatch ReplicaLag =========================================
    def publish_replica_lag(self) -> None:
        """Put each replica's measured lag into moto's CloudWatch (``AWS/RDS ReplicaLag``)."""
        if self.estate is None:
            return
        for region in self.estate.regions:
            try:
                replicas = [db for db in list(rds_backend(region).databases.values()) if db.is_replica]
            except Exception:
                continue
            for db in replicas:
                ident = db.db_instance_identifier
                lag: float | None
                if self.lag_fn is not None:
                    try:
                        lag = self.lag_fn(region, ident)
                    except Exception:
                        lag = None
                else:  # no real database: the modelled shipping delay
                    lag = self.profile.duration("replication.lag")
                if lag is not None:
                    self._put_lag(region, ident, float(lag))

    def _put_lag(self, region: str, ident: str, lag: float) -> None:
        backend = cloudwatch_backend(region)
        backend.put_metric_data(
            "AWS/RDS",
            [
                {
                    "MetricName": "ReplicaLag",
                    "Value": lag,
                    "Unit": "Seconds",
                    "Dimensions": [{"Name": "DBInstanceIdentifier", "Value": ident}],
                    "Timestamp": _now().replace(tzinfo=None),  # moto keeps naive UTC
                }
            ],
        )
        cutoff = _now() - dt.timedelta(hours=3)
        backend.metric_data = [
            d for d in backend.metric_data if not (d.name == "ReplicaLag" and _aware(d.timestamp) < cutoff)
        ]

    def _metrics_loop(self) -> None:
        while not self._stop.wait(1.0):
            if not self.enabled:
                continue
            try:
                self.publish_replica_lag()
            except Exception:
                log.exception("publishing ReplicaLag failed")


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def _query_reply(action: str, result_xml: str) -> Reply:
    """A 200 answer of the RDS query protocol for an operation the realism layer implements."""
    body = (
        f'<{action}Response xmlns="http://rds.amazonaws.com/doc/2014-10-31/">'
        f"<{action}Result>{result_xml}</{action}Result>"
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        f"</{action}Response>"
    ).encode()
    return 200, [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))], body


def _json_reply(status: int, data: Any) -> Reply:
    body = json.dumps(data, default=str).encode()
    return status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))], body


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _jsonable(info: dict[str, Any]) -> dict[str, Any]:
    return {k: (_iso(v) if isinstance(v, dt.datetime) else v) for k, v in info.items()}


def _rewrite_status(reply: Reply, tag: str, value: str) -> Reply:
    status, headers, body = reply
    text = re.sub(rf"<{tag}>[^<]*</{tag}>", f"<{tag}>{value}</{tag}>", body.decode(), count=1)
    data = text.encode()
    headers = [(k, v) for k, v in headers if k.lower() != "content-length"] + [
        ("Content-Length", str(len(data)))
    ]
    return status, headers, data


def _drop_replica_source(reply: Reply) -> Reply:
    status, headers, body = reply
    text = re.sub(
        r"<ReadReplicaSourceDBInstanceIdentifier>[^<]*</ReadReplicaSourceDBInstanceIdentifier>",
        "",
        body.decode(),
    )
    data = text.encode()
    headers = [(k, v) for k, v in headers if k.lower() != "content-length"] + [
        ("Content-Length", str(len(data)))
    ]
    return status, headers, data


def _rewrite_change(reply: Reply, change_id: str, status_value: str) -> Reply:
    status, headers, body = reply
    text = body.decode()
    text = re.sub(r"<Id>/change/[^<]*</Id>", f"<Id>/change/{change_id}</Id>", text, count=1)
    text = re.sub(r"<Status>[^<]*</Status>", f"<Status>{status_value}</Status>", text, count=1)
    data = text.encode()
    headers = [(k, v) for k, v in headers if k.lower() != "content-length"] + [
        ("Content-Length", str(len(data)))
    ]
    return status, headers, data


def _batch_size(body: bytes) -> tuple[int, int]:
    """(ResourceRecord elements, Value characters) a ChangeResourceRecordSets body counts."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return 0, 0
    records = chars = 0
    for change in root.iter():
        if change.tag.rsplit("}", 1)[-1] != "Change":
            continue
        action = next((c.text for c in change if c.tag.rsplit("}", 1)[-1] == "Action"), "")
        weight = 2 if (action or "").strip() == "UPSERT" else 1
        for elem in change.iter():
            tag = elem.tag.rsplit("}", 1)[-1]
            if tag == "ResourceRecord":
                records += weight
            elif tag == "Value":
                chars += weight * len(elem.text or "")
    return records, chars


def _parse_changes(body: bytes) -> list[dict[str, str]]:
    import xml.etree.ElementTree as ET

    out: list[dict[str, str]] = []
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return out

    def local(tag: str) -> str:
        return tag.rsplit("}", 1)[-1]

    for change in root.iter():
        if local(change.tag) != "Change":
            continue
        entry = {"action": "", "name": "", "type": "", "set_identifier": "", "failover": ""}
        for child in change.iter():
            name = local(child.tag)
            text = (child.text or "").strip()
            if name == "Action":
                entry["action"] = text
            elif name == "Name" and not entry["name"]:
                entry["name"] = text
            elif name == "Type" and not entry["type"]:
                entry["type"] = text
            elif name == "SetIdentifier":
                entry["set_identifier"] = text
            elif name == "Failover":
                entry["failover"] = text
        out.append(entry)
    return out
