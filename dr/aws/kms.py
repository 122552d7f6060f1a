"""KMS adapter: resolve a key alias to the key ARN of one region."""

from __future__ import annotations

from dr.aws.calls import aws_errors
from dr.aws.session import ClientProvider, client_error_type


def key_arn(clients: ClientProvider, region: str, key: str) -> str | None:
    """ARN of ``key`` (alias, id or ARN) in ``region``; None when it does not exist there or is not
    usable (disabled, pending deletion)."""
    client_error = client_error_type()
    client = clients.client("kms", region)
    try:
        meta = client.describe_key(KeyId=key)["KeyMetadata"]
    except client_error as err:
        if err.response.get("Error", {}).get("Code") == "NotFoundException":  # type: ignore[attr-defined]
            return None
        with aws_errors(resource=f"KMS key {key}", region=region, action="describe"):
            raise
    if not meta.get("Enabled", True) or meta.get("KeyState", "Enabled") != "Enabled":
        return None
    arn: str = meta["Arn"]
    return arn
