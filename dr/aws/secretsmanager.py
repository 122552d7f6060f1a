"""Secrets Manager adapter: read and write a secret's value without ever exposing it.

Values are wrapped in :class:`SecretValue`, whose ``repr``/``str`` print ``***``: a value can
reach a log line or a traceback only if someone calls ``.reveal()`` explicitly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dr.aws.calls import aws_errors
from dr.aws.session import ClientProvider


class SecretValue:
    """A secret string that never prints itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def json(self) -> dict[str, Any]:
        """The value parsed as a JSON object ({} when it is not one)."""
        try:
            data = json.loads(self._value)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def __repr__(self) -> str:
        return "SecretValue(***)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretValue) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("SecretValue", self._value))


@dataclass(frozen=True)
class SecretInfo:
    id: str
    region: str
    arn: str
    version_id: str | None
    value: SecretValue

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "region": self.region, "arn": self.arn, "version_id": self.version_id}


def get_secret(clients: ClientProvider, region: str, secret_id: str) -> SecretInfo:
    with aws_errors(resource=f"secret {secret_id}", region=region, action="read"):
        raw = clients.client("secretsmanager", region).get_secret_value(SecretId=secret_id)
    return SecretInfo(
        id=secret_id,
        region=region,
        arn=raw.get("ARN", ""),
        version_id=raw.get("VersionId"),
        value=SecretValue(raw.get("SecretString") or ""),
    )


def put_secret(clients: ClientProvider, region: str, secret_id: str, value: SecretValue) -> str | None:
    """Store a new version (AWSCURRENT); returns the version id."""
    with aws_errors(resource=f"secret {secret_id}", region=region, action="write"):
        raw = clients.client("secretsmanager", region).put_secret_value(
            SecretId=secret_id, SecretString=value.reveal()
        )
    version = raw.get("VersionId")
    return str(version) if version else None


def primary_region(clients: ClientProvider, region: str, secret_id: str) -> str:
    """The region whose copy of ``secret_id`` is writable: its own, unless the secret in ``region``
    is a replica of a multi-region secret (PutSecretValue on a replica is refused; Secrets Manager
    copies every new version of the primary to its replicas)."""
    with aws_errors(resource=f"secret {secret_id}", region=region, action="describe"):
        raw = clients.client("secretsmanager", region).describe_secret(SecretId=secret_id)
    return str(raw.get("PrimaryRegion") or region)
