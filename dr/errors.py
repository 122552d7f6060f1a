"""One error hierarchy for the whole toolkit, with the exit codes of DESIGN.md.

0 ok · 1 a drill/verification failed · 2 usage / bad input / bad AWS setup · 3 refused by a safety
gate or by IAM (AccessDenied). Adapters map ``botocore.exceptions.ClientError`` to these with
:func:`from_client_error`, naming the resource, the region and the AWS error code; botocore's own
exceptions (no credentials, unknown profile, SSO session expired, endpoint unreachable) are mapped
in one place, :func:`dr.aws.session.aws_setup_error`, which the CLI entry and the plan executor use.

Credential and permission errors name the profile, the region and the IAM action, and say what to
run (``aws sso login --profile X``, ``aws configure --profile X``, ``dr iam-policy --procedure P``).
"""

from __future__ import annotations

import re
from typing import Any

import click

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_GATE = 3


class DrError(click.ClickException):
    """Base of every error the CLI reports. ``exit_code`` follows DESIGN.md."""

    exit_code = EXIT_USAGE

    def __init__(
        self,
        message: str,
        *,
        resource: str | None = None,
        region: str | None = None,
        code: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.resource = resource
        self.region = region
        self.code = code
        self.hint = hint
        super().__init__(message)

    def format_message(self) -> str:
        parts = [self.message]
        if self.hint:
            parts.append(f"→ {self.hint}")
        return "\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": type(self).__name__,
            "message": self.message,
            "resource": self.resource,
            "region": self.region,
            "code": self.code,
            "hint": self.hint,
            "exit_code": self.exit_code,
        }


class ConfigError(DrError):
    """A stack file or scenario file is invalid (exit 2)."""


class BadInput(DrError):
    """The operator asked for something that cannot be done as asked (exit 2)."""


class NotFound(BadInput):
    """A named resource does not exist (exit 2)."""


class GateRefused(DrError):
    """A safety gate refused the operation: lag over budget, lock held, target unhealthy (exit 3)."""

    exit_code = EXIT_GATE


class LockHeld(GateRefused):
    """Another run holds the lock (exit 3)."""


class VerificationFailed(DrError):
    """A drill, check or verification failed (exit 1)."""

    exit_code = EXIT_FAILED


class OperationFailed(DrError):
    """An AWS/Kubernetes operation failed at run time (exit 1)."""

    exit_code = EXIT_FAILED


class TimeoutExpired(OperationFailed):
    """A wait ran past its timeout (exit 1)."""


class SetupError(DrError):
    """The AWS setup keeps dr from running: credentials, profile, region, endpoint (exit 2).

    Nothing was changed by the call that raised it; fix the setup and run the command again (a plan
    that stopped on it resumes with ``--resume RUN_ID``)."""


class CredentialsError(SetupError):
    """No, expired or invalid credentials; unknown profile; SSO session expired (exit 2)."""


class RegionNotEnabled(SetupError):
    """The region is not enabled for the account (an opt-in region) (exit 2)."""


class EndpointUnreachable(SetupError):
    """An AWS endpoint did not answer (DNS, connection refused, timeout) (exit 2)."""


class AccessDenied(GateRefused):
    """IAM refused a call (AccessDenied, UnauthorizedOperation) (exit 3). ``iam_action`` names it."""

    def __init__(self, message: str, *, iam_action: str | None = None, **kwargs: Any) -> None:
        self.iam_action = iam_action
        super().__init__(message, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "iam_action": self.iam_action}


# The procedure whose policy (``dr iam-policy --procedure P``) grants what a command calls.
COMMAND_PROCEDURE = {
    "failover": "failover",
    "fleet": "failover",
    "promote": "failover",
    "dns": "failover",
    "status": "failover",
    "readiness": "failover",
    "doctor": "failover",
    "iam-policy": "failover",
    "failback": "failback",
    "reconcile": "failback",
    "reprotect": "reprotect",
    "drill": "drill",
    "snapshot": "snapshot",
    "restore": "restore",
    "ops": "ops",
}


# AWS error codes that mean "the thing you named does not exist".
_NOT_FOUND_CODES = {
    "DBInstanceNotFound",
    "DBInstanceNotFoundFault",
    "DBSnapshotNotFound",
    "DBSnapshotNotFoundFault",
    "DBClusterNotFoundFault",
    "DBSubnetGroupNotFoundFault",
    "ReplicationGroupNotFoundFault",
    "SnapshotNotFoundFault",
    "CacheClusterNotFound",
    "ResourceNotFoundException",
    "NoSuchHostedZone",
    "NoSuchHealthCheck",
    "NoSuchBucket",
    "NoSuchKey",
    "WAFNonexistentItemException",
    "LoadBalancerNotFound",
    "TargetGroupNotFound",
    "NotFoundException",
}
# Codes that mean the request itself is wrong for the resource's current state.
_BAD_INPUT_CODES = {
    "InvalidParameterValue",
    "InvalidParameterCombination",
    "InvalidDBInstanceState",
    "InvalidDBInstanceStateFault",
    "InvalidRestoreTime",
    "InvalidRestoreFault",
    "DBInstanceAlreadyExists",
    "DBInstanceAlreadyExistsFault",
    "DBSnapshotAlreadyExists",
    "InvalidChangeBatch",
    "ValidationException",
    "InvalidInput",
    "WAFInvalidParameterException",
    "InvalidParameterException",
    "ReplicationGroupAlreadyExistsFault",
    "SnapshotAlreadyExistsFault",
}


# IAM said no (the caller is known, the action is not allowed).
ACCESS_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}
)
# The credentials were valid once and have expired.
EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"})
# The service does not know the credentials: wrong/revoked keys — or, with good keys, a region the
# account has not enabled (opt-in regions answer InvalidClientTokenId / UnrecognizedClientException).
UNKNOWN_CREDENTIALS_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "AuthFailure",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
    }
)
OPT_IN_CODES = frozenset({"OptInRequired", "SubscriptionRequiredException"})
_NOT_AUTHORIZED = re.compile(r"not authorized to perform:?\s+([A-Za-z0-9-]+:[A-Za-z0-9]+)")


def profile_words(profile: str | None) -> tuple[str, str]:
    """(``profile 'X'`` or the default chain, the ``--profile X`` to append to an aws command)."""
    if profile:
        return f"profile {profile!r}", f" --profile {profile}"
    return "the default profile (no --profile, AWS_PROFILE unset)", ""


def iam_action_of(err: Exception) -> str | None:
    """The IAM action a refused call needed: from AWS's message, else what the client recorded."""
    response: dict[str, Any] = getattr(err, "response", {}) or {}
    detail = str(response.get("Error", {}).get("Message", ""))
    match = _NOT_AUTHORIZED.search(detail)
    if match:
        return match.group(1)
    call = response.get("DrCall") or {}
    if call.get("iam_action"):
        return str(call["iam_action"])
    return None


def credentials_error(
    code: str, detail: str, *, region: str | None, profile: str | None, what: str
) -> DrError | None:
    """The setup error an authentication error code means (None: the code is not one of those)."""
    who, flag = profile_words(profile)
    where = f" in {region}" if region else ""
    region_flag = f" --region {region}" if region else ""
    if code in EXPIRED_CODES:
        return CredentialsError(
            f"{what}{where}: the credentials of {who} have expired ({code}: {detail})",
            region=region,
            code=code,
            resource=profile,
            hint=f"refresh them: `aws sso login{flag}` (SSO) or get new keys (`aws configure{flag}`), "
            "then run the command again",
        )
    if code in UNKNOWN_CREDENTIALS_CODES:
        return CredentialsError(
            f"{what}{where}: AWS does not accept the credentials of {who} ({code}: {detail}) — "
            f"either the keys are wrong or revoked, or {region or 'the region'} is an opt-in region "
            "this account has not enabled",
            region=region,
            code=code,
            resource=profile,
            hint=f"check them with `aws sts get-caller-identity{flag}{region_flag}`; fix the keys with "
            f"`aws configure{flag}` (or `aws sso login{flag}`), or enable {region or 'the region'} "
            "(AWS console → Account → AWS Regions)",
        )
    if code in OPT_IN_CODES:
        return RegionNotEnabled(
            f"{what}{where}: {region or 'the region'} is not enabled for this account ({code}: {detail})",
            region=region,
            code=code,
            hint=f"enable {region or 'the region'} (AWS console → Account → AWS Regions, or "
            f"`aws account enable-region --region-name {region or 'REGION'}`), or fix the stack files",
        )
    return None


def access_denied(
    *, iam_action: str | None, resource: str, region: str | None, profile: str | None, code: str, detail: str
) -> AccessDenied:
    who, _ = profile_words(profile)
    where = f" in {region}" if region else ""
    what = iam_action or "the call"
    return AccessDenied(
        f"access denied: {who} may not call {what} on {resource}{where} ({code}: {detail})",
        iam_action=iam_action,
        resource=resource,
        region=region,
        code=code,
        hint=f"grant {what}: `dr iam-policy --procedure PROCEDURE` prints the policy the command needs "
        "(then run it again; a plan that stopped resumes with `--resume RUN_ID`)",
    )


def partial_report_denied(denied: list[str], *, profile: str | None, command: str) -> AccessDenied:
    """The one error a read-only report ends with when IAM refused some of its reads (exit 3, after
    the report): which actions, where, and the policy that grants them."""
    who, _ = profile_words(profile)
    actions = sorted({d.split(" in ", 1)[0] for d in denied})
    return AccessDenied(
        f"access denied: {who} may not call {', '.join(denied)}; the {command} report above is partial",
        iam_action=actions[0] if len(actions) == 1 else None,
        code="AccessDenied",
        hint=f"grant {', '.join(actions)}: `dr iam-policy --procedure "
        f"{COMMAND_PROCEDURE.get(command.split()[0], 'failover')}` prints the policy, then run `dr {command}` again",
    )


def name_procedure(err: DrError, command: str | None) -> DrError:
    """Fill in which procedure's policy to print in an AccessDenied hint (the command knows)."""
    if isinstance(err, AccessDenied) and err.hint and command:
        procedure = COMMAND_PROCEDURE.get(command, "failover")
        err.hint = err.hint.replace("--procedure PROCEDURE", f"--procedure {procedure}")
    return err


def from_client_error(err: Exception, *, resource: str, region: str | None, action: str) -> DrError:
    """Translate a botocore ClientError into a typed error naming resource, region and code."""
    response: dict[str, Any] = getattr(err, "response", {}) or {}
    code = str(response.get("Error", {}).get("Code", type(err).__name__))
    detail = str(response.get("Error", {}).get("Message", err))
    call = response.get("DrCall") or {}
    region = region or call.get("region")
    profile = call.get("profile")
    where = f" in {region}" if region else ""
    message = f"{action} {resource}{where} failed: {code}: {detail}"
    if code in ACCESS_DENIED_CODES:
        return access_denied(
            iam_action=iam_action_of(err),
            resource=resource,
            region=region,
            profile=profile,
            code=code,
            detail=detail,
        )
    setup = credentials_error(code, detail, region=region, profile=profile, what=f"{action} {resource}")
    if setup is not None:
        return setup
    cls: type[DrError]
    if code in _NOT_FOUND_CODES or code.endswith("NotFound") or code.endswith("NotFoundFault"):
        cls = NotFound
        hint = f"check the name in the stack files and that {resource} exists{where}"
    elif code in _BAD_INPUT_CODES:
        cls = BadInput
        hint = None
    else:
        cls = OperationFailed
        hint = None
    return cls(message, resource=resource, region=region, code=code, hint=hint)
