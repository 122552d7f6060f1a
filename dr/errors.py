"""One error hierarchy for the whole toolkit, with the exit codes of DESIGN.md.

0 ok · 1 a drill/verification failed · 2 usage / bad input · 3 refused by a safety gate.
Adapters map ``botocore.exceptions.ClientError`` to these with :func:`from_client_error`, naming
the resource, the region and the AWS error code.
"""

from __future__ import annotations

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


def from_client_error(err: Exception, *, resource: str, region: str | None, action: str) -> DrError:
    """Translate a botocore ClientError into a typed error naming resource, region and code."""
    response: dict[str, Any] = getattr(err, "response", {}) or {}
    code = str(response.get("Error", {}).get("Code", type(err).__name__))
    detail = str(response.get("Error", {}).get("Message", err))
    where = f" in {region}" if region else ""
    message = f"{action} {resource}{where} failed: {code}: {detail}"
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
