"""IAM operations moto lacks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dr.sandbox.fakeaws.wire import AwsError, AwsRequest, Reply

if TYPE_CHECKING:
    from dr.sandbox.fakeaws.layer import Handler, Layer


def simulate_principal_policy(layer: Layer, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
    """moto has no policy simulator (its server would answer an HTML 500): say so the way an
    endpoint says it does not know an action, so clients can tell "missing" from "failed"."""
    raise AwsError("InvalidAction", "SimulatePrincipalPolicy is not yet implemented by the sandbox (moto)")


HANDLERS: dict[tuple[str, str], Handler] = {
    ("iam", "SimulatePrincipalPolicy"): simulate_principal_policy,
}
