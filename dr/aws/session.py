"""The only place that builds boto3 clients.

``ClientProvider`` hands out one cached client per (service, region) with botocore's retry modes
(``standard`` by default: exponential back-off with jitter on throttling, 5xx and transient
errors, 8 attempts; ``AWS_RETRY_MODE`` chooses another), an optional ``endpoint_url`` (the
sandbox), and two botocore event hooks.

Why not ``adaptive``: its client-side rate limiter cuts a client's send rate after a throttle and
is slow to raise it again. A failover is a low-volume client whose every call is on the critical
path: with 20 % of calls throttled or failing (the fault-injection benchmark), the Route53 step alone took 9–12 s instead of
3–5 s and the whole run twice as long. Bulk callers (fleets) are paced by our own
:mod:`dr.runbook.ratelimit` instead.

* :class:`CallRecorder` records every API call (service, operation, region, identifying
  parameters — never secrets), flagging the mutating ones. Journals and tests use it.
* Every error answer gets ``response["DrCall"]`` (service, operation, region, profile, IAM action):
  :func:`dr.errors.from_client_error` names them in AccessDenied / expired-token messages.
* ``read_only=True`` refuses every mutating call before it is sent — ``--dry-run`` runs with it,
  so a dry run cannot change infrastructure even if a code path forgets to check the flag.

Every provider of the process shares one botocore data loader (:func:`_shared_loader`): a command
builds several providers (the run's, read-only ones, the lock's, the journal mirror's), and each
fresh botocore session would otherwise parse ``endpoints.json`` and every service model again
(~0.1 s of CPU per session and per model).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

from dr.aws.iam_names import iam_action
from dr.errors import (
    BadInput,
    CredentialsError,
    DrError,
    EndpointUnreachable,
    from_client_error,
    profile_words,
)

# Operation-name prefixes that never change anything.
_READ_PREFIXES = (
    "Describe",
    "List",
    "Get",
    "Head",
    "Lookup",
    "Search",
    "Select",
    "Scan",
    "Query",
    "BatchGet",
    "Filter",
    "Check",
    "Validate",
    "Download",
    "Estimate",
    "Simulate",
    "Preview",
)

# Parameter names worth recording (resource identifiers, times, sizes) — values of anything else
# (passwords, secret strings, user data) never reach the journal.
_ID_KEY = re.compile(
    r"(Identifier|Id|Ids|Name|Names|Arn|ARN|Time|Status|Size|Count|Scope|Type|Region|Path|Key|Bucket"
    r"|ApplyImmediately|ForceFailover|Inverted|Disabled|Addresses)$"
)
_SECRET_KEY = re.compile(r"(?i)(password|secret|token|credential|privatekey|authtoken|userdata)")


# Reads whose names have no read prefix ("Test…" cannot be one: ElastiCache TestFailover mutates).
_READ_OPERATIONS = frozenset({"TestDNSAnswer"})


def is_mutating(operation: str) -> bool:
    """True when an AWS operation (e.g. ``PromoteReadReplica``) may change state."""
    return operation not in _READ_OPERATIONS and not operation.startswith(_READ_PREFIXES)


def safe_params(params: dict[str, Any]) -> dict[str, Any]:
    """Keep identifying scalar parameters; drop secrets and bulky payloads."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if _SECRET_KEY.search(key):
            continue
        if key == "ChangeBatch" and isinstance(value, dict):
            out[key] = [
                {
                    "Action": c.get("Action"),
                    "Name": c.get("ResourceRecordSet", {}).get("Name"),
                    "SetIdentifier": c.get("ResourceRecordSet", {}).get("SetIdentifier"),
                }
                for c in value.get("Changes", [])
            ]
        elif key == "HealthCheckConfig" and isinstance(value, dict):
            out[key] = {k: v for k, v in value.items() if k in ("Inverted", "Disabled", "Type")}
        elif _ID_KEY.search(key):
            if isinstance(value, (str, int, float, bool)):
                out[key] = value
            elif isinstance(value, list) and all(isinstance(v, (str, int)) for v in value):
                out[key] = list(value)
            elif isinstance(value, dict):
                out[key] = {k: v for k, v in value.items() if isinstance(v, (str, int, float, bool))}
    return out


@dataclass(frozen=True)
class ApiCall:
    service: str
    operation: str
    region: str
    params: dict[str, Any]
    mutating: bool
    at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "operation": self.operation,
            "region": self.region,
            "params": self.params,
            "mutating": self.mutating,
            "at": self.at,
        }


@dataclass
class CallRecorder:
    """Thread-safe record of API calls made through a ClientProvider."""

    calls: list[ApiCall] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, call: ApiCall) -> None:
        with self._lock:
            self.calls.append(call)

    def mutating(self) -> list[ApiCall]:
        with self._lock:
            return [c for c in self.calls if c.mutating]

    def since(self, index: int) -> list[ApiCall]:
        with self._lock:
            return list(self.calls[index:])

    def __len__(self) -> int:
        with self._lock:
            return len(self.calls)


RETRY_MODES = ("standard", "adaptive", "legacy")
_LOADER_LOCK = threading.Lock()
_LOADER: Any = None


class _SearchPaths(list[Any]):
    """A loader's search paths that ignore a path already there (boto3 appends its own data path
    to the loader of every boto3 session it creates; with one shared loader the list would grow)."""

    def append(self, path: Any) -> None:
        if path not in self:
            super().append(path)


def _adopt(loader: Any) -> Any:
    global _LOADER
    if _LOADER is None:
        loader._search_paths = _SearchPaths(loader.search_paths)
        _LOADER = loader
    return _LOADER


def _shared_loader(session: Any) -> Any:
    """The process's botocore data loader (its cache holds the parsed JSON models and endpoints).

    The first session's loader becomes the shared one (boto3 has added its own data path to it);
    later sessions are given it before they build a client or their endpoint resolver.
    """
    core = session._session
    with _LOADER_LOCK:
        loader = _adopt(core.get_component("data_loader"))
        if core.get_component("data_loader") is not loader:
            core.register_component("data_loader", loader)
        return loader


def share_loader_process_wide() -> None:
    """Give *every* botocore session of this process the shared loader, moto's own included.

    For processes that host moto (the sandbox's server, the test suite): moto builds boto3 sessions
    internally (regions of each backend, ARN checks…), each parsing ``endpoints.json`` and models
    again — a third of the CPU of a unit test's moto seeding. Idempotent.
    """
    import botocore.session

    cls: Any = botocore.session.Session
    if getattr(cls, "_dr_shared_loader", False):
        return

    def register(self: Any) -> None:
        with _LOADER_LOCK:
            if _LOADER is None:
                from botocore.loaders import create_loader

                _adopt(create_loader(os.environ.get("AWS_DATA_PATH")))
            self._components.register_component("data_loader", _LOADER)

    cls._register_data_loader = register
    cls._dr_shared_loader = True


class _Partitions:
    """Stands in for ``boto3.Session`` where moto only asks it for the partitions."""

    @staticmethod
    @functools.cache
    def get_available_partitions() -> list[str]:
        return list(boto3.session.Session().get_available_partitions())


def cache_moto_partitions() -> None:
    """moto's EKS builds a whole boto3 session on every CreateCluster and CreateNodegroup only to
    list the AWS partitions (a role ARN check; ~25 ms each, four per seeded estate): list them once
    per process. Idempotent; the check itself is moto's, unchanged."""
    import moto.eks.utils as eks_utils

    eks_utils.Session = _Partitions


class ReadOnlyViolation(DrError):
    """A mutating API call was attempted while the provider is read-only (a dry run)."""

    exit_code = 1


@dataclass
class ClientProvider:
    """Builds and caches boto3 clients. Everything else receives clients from here."""

    profile: str | None = None
    endpoint_url: str | None = None
    retry_mode: str = field(default_factory=lambda: os.environ.get("AWS_RETRY_MODE") or "standard")
    max_attempts: int = 8
    read_only: bool = False
    recorders: list[CallRecorder] = field(default_factory=list)
    # Static credentials (the sandbox uses fake ones so a developer's real keys are never sent there).
    credentials: dict[str, str] | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _session: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.retry_mode not in RETRY_MODES:
            raise BadInput(
                f"retry mode {self.retry_mode!r} (AWS_RETRY_MODE) is not one of botocore's",
                resource="AWS_RETRY_MODE",
                hint=f"use one of {', '.join(RETRY_MODES)}, or unset AWS_RETRY_MODE (default standard)",
            )

    def _boto_session(self) -> Any:
        if self._session is None:
            kwargs: dict[str, Any] = {}
            if self.credentials:
                kwargs.update(self.credentials)
            elif self.profile:
                kwargs["profile_name"] = self.profile
            from botocore.exceptions import ProfileNotFound

            try:
                session = boto3.session.Session(**kwargs)
            except ProfileNotFound as err:
                raise _setup_error(err, profile=self.profile) from None
            _shared_loader(session)
            self._session = session
        return self._session

    def client(self, service: str, region: str) -> Any:
        key = (service, region)
        with self._lock:
            if key not in self._clients:
                config = Config(
                    region_name=region,
                    retries={"mode": self.retry_mode, "max_attempts": self.max_attempts},
                    connect_timeout=self.connect_timeout,
                    read_timeout=self.read_timeout,
                    user_agent_extra="dr-toolkit",
                )
                client = self._boto_session().client(
                    service, region_name=region, endpoint_url=self.endpoint_url, config=config
                )
                client.meta.events.register("before-parameter-build.*.*", self._make_hook(service, region))
                client.meta.events.register("after-call.*.*", self._make_error_note(service, region))
                client.meta.events.register("after-call-error.*.*", self._make_raise_note(service, region))
                client.meta.events.register("before-sign.*.*", self._make_credentials_check(service, region))
                self._clients[key] = client
            return self._clients[key]

    def add_recorder(self, recorder: CallRecorder) -> CallRecorder:
        self.recorders.append(recorder)
        return recorder

    def _make_hook(self, service: str, region: str) -> Any:
        def hook(model: Any, params: dict[str, Any], **_: Any) -> None:
            operation = model.name
            mutating = is_mutating(operation)
            if self.recorders:
                call = ApiCall(service, operation, region, safe_params(params), mutating, time.time())
                for recorder in self.recorders:
                    recorder.record(call)
            if mutating and self.read_only:
                raise ReadOnlyViolation(
                    f"dry run: refused to send {service}:{operation} in {region} (a mutating call)",
                    region=region,
                )

        return hook

    def _make_credentials_check(self, service: str, region: str) -> Any:
        """Resolve the credentials before a request is signed, so a missing, unloadable or expired
        (SSO) credential becomes one CredentialsError naming this provider's profile and the region,
        wherever the call is made. The session caches them: this is a lookup, not a new resolution."""

        def check(operation_name: str = "", **_: Any) -> None:
            from botocore.exceptions import BotoCoreError

            action = iam_action(service, operation_name) if operation_name else None
            try:
                creds = self._boto_session().get_credentials()
                if creds is not None:
                    creds.get_frozen_credentials()  # refreshes an expiring (SSO, assume-role) one
            except BotoCoreError as err:
                raise _setup_error(err, profile=self.profile, region=region, action=action) from None
            if creds is None:
                raise _setup_error(_no_credentials(), profile=self.profile, region=region, action=action)

        return check

    def _make_error_note(self, service: str, region: str) -> Any:
        """Attach who called what where to an error answer (it becomes ``ClientError.response``)."""

        def note(http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
            if getattr(http_response, "status_code", 200) >= 300 and isinstance(parsed, dict):
                parsed["DrCall"] = {
                    "service": service,
                    "operation": model.name,
                    "region": region,
                    "profile": self.profile,
                    "iam_action": iam_action(service, model.name),
                }

        return note

    def _make_raise_note(self, service: str, region: str) -> Any:
        """Attach where a call went to an exception raised while sending it (endpoint down, DNS):
        ``exception.dr_call``, read by :func:`aws_setup_error` to name the region and action."""

        def note(exception: BaseException, event_name: str = "", **_: Any) -> None:
            with contextlib.suppress(AttributeError, TypeError):
                exception.dr_call = {  # type: ignore[attr-defined]
                    "service": service,
                    "region": region,
                    "profile": self.profile,
                    "operation": event_name.rsplit(".", 1)[-1] or None,
                }

        return note

    def exceptions(self, service: str, region: str) -> Any:
        return self.client(service, region).exceptions


def service_model(service: str) -> dict[str, Any] | None:
    """botocore's service model (``service-2``) of ``service`` as shipped with botocore, or None
    when botocore knows no such service. Offline: reads the installed data files."""
    from botocore.exceptions import DataNotFoundError, UnknownServiceError
    from botocore.loaders import create_loader

    loader = _LOADER or create_loader()
    try:
        model: dict[str, Any] = loader.load_service_model(service, "service-2")
    except (DataNotFoundError, UnknownServiceError):
        return None
    return model


def client_error_type() -> type[Exception]:
    """botocore's ClientError, for adapters that must not import botocore at module import time."""
    from botocore.exceptions import ClientError

    return ClientError


def endpoint_error_types() -> tuple[type[Exception], ...]:
    """Errors meaning 'the region did not answer' (connection refused or dropped, timeouts)."""
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    return (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)


def _no_credentials() -> Exception:
    from botocore.exceptions import NoCredentialsError

    return NoCredentialsError()


_REGION_IN_URL = re.compile(r"\.([a-z]{2}(?:-gov)?-[a-z]+-\d)\.amazonaws\.com")


def _setup_error(
    err: Exception, *, profile: str | None, region: str | None = None, action: str | None = None
) -> DrError:
    """The message for botocore's own (non-ClientError) setup exceptions. See aws_setup_error.

    ``action``/``region``: the IAM action of the call that needed the credentials, and where."""
    from botocore import exceptions as bx

    who, flag = profile_words(profile)
    detail = str(err)
    needed = f" (needed for {action}" + (f" in {region})" if region else ")") if action else ""
    if isinstance(err, bx.ProfileNotFound):
        name = getattr(err, "kwargs", {}).get("profile") or profile
        return CredentialsError(
            f"AWS profile {name!r} is not in the AWS config (~/.aws/config, AWS_CONFIG_FILE)",
            resource=name,
            code="ProfileNotFound",
            hint=f"create it with `aws configure sso --profile {name}` (SSO) or `aws configure --profile {name}` "
            "(keys); `aws configure list-profiles` lists the ones you have",
        )
    if isinstance(err, (bx.SSOError, bx.TokenRetrievalError)):  # SSOTokenLoadError, UnauthorizedSSOTokenError
        return CredentialsError(
            f"the AWS SSO session of {who} has expired or was never started{needed} "
            f"({type(err).__name__}: {detail})",
            resource=profile,
            region=region,
            code=type(err).__name__,
            hint=f"run `aws sso login{flag}`, then the command again",
        )
    if isinstance(err, bx.NoCredentialsError):
        return CredentialsError(
            f"no AWS credentials found for {who}" + (needed or (f"; needed in {region}" if region else "")),
            resource=profile,
            region=region,
            code="NoCredentials",
            hint=f"sign in: `aws configure sso{flag}` then `aws sso login{flag}`, or `aws configure{flag}` for "
            "keys; or pass --profile / set AWS_PROFILE; `--target sandbox` runs against the local sandbox",
        )
    if isinstance(err, (bx.PartialCredentialsError, bx.CredentialRetrievalError, bx.InvalidConfigError)):
        return CredentialsError(
            f"the AWS credentials of {who} could not be loaded{needed} ({type(err).__name__}: {detail})",
            resource=profile,
            region=region,
            code=type(err).__name__,
            hint=f"fix {who} in ~/.aws/config / ~/.aws/credentials (`aws configure{flag}`), then "
            f"check with `aws sts get-caller-identity{flag}`",
        )
    if isinstance(err, (bx.InvalidRegionError, bx.NoRegionError)):
        return BadInput(
            f"not a valid AWS region: {detail}",
            region=region,
            code=type(err).__name__,
            hint="fix the region in the stack files (stacks/Pulumi.<stack>.yaml: aws:region)",
        )
    if isinstance(err, endpoint_error_types()):
        url = str(getattr(err, "kwargs", {}).get("endpoint_url") or "")
        match = _REGION_IN_URL.search(url)
        region = region or (match.group(1) if match else None)
        where = f" in {region}" if region else ""
        return EndpointUnreachable(
            f"the AWS endpoint{where} did not answer{needed} ({type(err).__name__}: {detail})",
            resource=url or None,
            region=region,
            code=type(err).__name__,
            hint="check the network (proxy, VPN, HTTPS_PROXY, AWS_ENDPOINT_URL) and that "
            f"`aws sts get-caller-identity{flag}"
            + (f" --region {region}`" if region else "`")
            + " answers; if the whole region is down, `dr status` shows it and "
            "`dr failover --mode unplanned` is the procedure",
        )
    return CredentialsError(
        f"AWS setup error for {who}: {type(err).__name__}: {detail}", code=type(err).__name__
    )


def aws_setup_error(err: BaseException, *, profile: str | None = None) -> DrError | None:
    """The typed error for an exception botocore raised outside an adapter's ``aws_errors`` block
    (None when it is not botocore's): the single mapping the CLI entry and the executor share.

    ClientErrors go through :func:`dr.errors.from_client_error`; credential, profile, SSO, region and
    endpoint exceptions get one message naming the profile and region and what to run."""
    module = type(err).__module__ or ""
    if not (module.startswith("botocore") or module.startswith("boto3")):
        return None
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(err, ClientError):
        call = (err.response or {}).get("DrCall") or {}
        op = str(call.get("iam_action") or getattr(err, "operation_name", "call"))
        return from_client_error(err, resource=op, region=call.get("region"), action="calling")
    if isinstance(err, BotoCoreError):
        sent = getattr(err, "dr_call", None) or {}
        name = sent.get("operation")
        return _setup_error(
            err,
            profile=sent.get("profile", profile),
            region=sent.get("region"),
            action=iam_action(sent["service"], name) if name and sent.get("service") else None,
        )
    return None


def services_used(calls: Iterable[ApiCall]) -> set[str]:
    return {c.service for c in calls}
