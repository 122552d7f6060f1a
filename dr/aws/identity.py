"""Who the caller is and what the account allows: STS identity, region opt-in, IAM simulation.

Read-only adapters for ``dr doctor``:

* :func:`caller_identity` — STS ``GetCallerIdentity`` in one region (its regional endpoint: a
  region the account has not enabled does not accept the credentials there).
* :func:`region_opt_in` — EC2 ``DescribeRegions`` with ``AllRegions``: ``opt-in-not-required``,
  ``opted-in`` or ``not-opted-in`` per region (``account:GetRegionOptStatus`` needs the account
  management API and an extra permission; DescribeRegions is what every role can usually call).
* :func:`principal_arn` — the IAM principal behind an STS ARN (an assumed role's session ARN
  becomes the role's ARN, which is what ``iam:SimulatePrincipalPolicy`` takes).
* :func:`simulate` — ``iam:SimulatePrincipalPolicy`` over (action, resource) pairs; raises
  :class:`SimulationUnavailable` when the endpoint does not implement it (moto), so the caller
  can evaluate the principal's own policies (:func:`principal_policies`) instead.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dr.aws.calls import aws_errors
from dr.aws.session import ClientProvider, client_error_type
from dr.errors import AccessDenied, from_client_error


@dataclass(frozen=True)
class Identity:
    account: str
    arn: str
    user_id: str
    region: str

    def to_dict(self) -> dict[str, Any]:
        return {"account": self.account, "arn": self.arn, "user_id": self.user_id, "region": self.region}


def caller_identity(clients: ClientProvider, region: str) -> Identity:
    with aws_errors(resource="caller identity", region=region, action="read"):
        raw = clients.client("sts", region).get_caller_identity()
    return Identity(str(raw["Account"]), str(raw["Arn"]), str(raw.get("UserId", "")), region)


def region_opt_in(clients: ClientProvider, region: str, names: Iterable[str]) -> dict[str, str | None]:
    """Opt-in status of each of ``names`` (None: the partition has no such region), asked in ``region``."""
    wanted = sorted(set(names))
    # No RegionNames filter: EC2 refuses the whole call (InvalidParameterValue) when one name is not
    # a region of the partition, and that answer is what this check must report per region.
    with aws_errors(resource="regions", region=region, action="describe"):
        raw = clients.client("ec2", region).describe_regions(AllRegions=True)
    found = {str(r["RegionName"]): str(r.get("OptInStatus") or "opt-in-not-required") for r in raw["Regions"]}
    return {name: found.get(name) for name in wanted}


_STS_ARN = re.compile(r"^arn:(?P<p>[^:]+):(?:sts|iam)::(?P<a>\d{12}):(?P<kind>[a-z-]+)/(?P<rest>.+)$")


def principal_arn(arn: str) -> str | None:
    """The IAM principal to simulate for a caller ARN; None for the root user and federated users.

    ``arn:aws:sts::A:assumed-role/R/S`` → ``arn:aws:iam::A:role/R`` (an SSO permission set's role
    ``AWSReservedSSO_…`` is found under its path by :func:`role_arn_with_path`); users and roles
    keep their ARN (in the ``iam`` service).
    """
    m = _STS_ARN.match(arn)
    if m is None:
        return None
    partition, account, kind, rest = m["p"], m["a"], m["kind"], m["rest"]
    if kind == "assumed-role":
        return f"arn:{partition}:iam::{account}:role/{rest.split('/')[0]}"
    if kind in ("role", "user"):
        return f"arn:{partition}:iam::{account}:{kind}/{rest}"
    return None


def role_arn_with_path(clients: ClientProvider, arn: str) -> str:
    """The role's full ARN (with its path, e.g. ``/aws-reserved/sso.amazonaws.com/``): an
    assumed-role session ARN drops the path, and the simulator wants the role's real ARN."""
    if ":role/" not in arn or arn.count("/") > 1:
        return arn
    name = arn.rsplit("/", 1)[1]
    try:
        with aws_errors(resource=f"role {name}", region=None, action="read"):
            raw = clients.client("iam", "us-east-1").get_role(RoleName=name)
    except AccessDenied:  # iam:GetRole is not granted: the simulator gets the ARN without a path
        return arn
    return str(raw["Role"]["Arn"])


class SimulationUnavailable(Exception):
    """The IAM endpoint does not implement SimulatePrincipalPolicy (moto, some emulators)."""


_MISSING_API = ("not yet implemented", "has not been implemented", "not implemented")


def _unimplemented(err: Exception) -> bool:
    if isinstance(err, NotImplementedError):
        return True
    response: dict[str, Any] = getattr(err, "response", {}) or {}
    error = response.get("Error", {})
    code, message = str(error.get("Code", "")), str(error.get("Message", "")).lower()
    return code in ("NotImplemented", "InvalidAction", "404", "501") or any(
        m in message for m in _MISSING_API
    )


@dataclass(frozen=True)
class Decision:
    action: str
    resource: str
    decision: str  # allowed | explicitDeny | implicitDeny

    @property
    def allowed(self) -> bool:
        return self.decision == "allowed"


def simulate(
    clients: ClientProvider, principal: str, actions: list[str], resources: list[str]
) -> list[Decision]:
    """``iam:SimulatePrincipalPolicy`` of ``actions`` on each of ``resources`` (all pages)."""
    client = clients.client("iam", "us-east-1")
    out: list[Decision] = []
    marker: str | None = None
    client_error = client_error_type()
    while True:
        kwargs: dict[str, Any] = {
            "PolicySourceArn": principal,
            "ActionNames": actions,
            "ResourceArns": resources,
            "MaxItems": 1000,
        }
        if marker:
            kwargs["Marker"] = marker
        try:
            raw = client.simulate_principal_policy(**kwargs)
        except (NotImplementedError, client_error) as err:
            if _unimplemented(err):
                raise SimulationUnavailable(str(err)) from None
            if isinstance(err, client_error):
                raise from_client_error(
                    err, resource=f"the policies of {principal}", region=None, action="simulating"
                ) from None
            raise
        for result in raw.get("EvaluationResults", []):
            action = str(result["EvalActionName"])
            specific = result.get("ResourceSpecificResults") or []
            if specific:
                out += [
                    Decision(action, str(r["EvalResourceName"]), str(r["EvalResourceDecision"]))
                    for r in specific
                ]
            else:
                out.append(
                    Decision(action, str(result.get("EvalResourceName", "*")), str(result["EvalDecision"]))
                )
        if not raw.get("IsTruncated"):
            return out
        marker = raw.get("Marker")


def _document(raw: Any) -> dict[str, Any]:
    """A policy document as IAM returns it: a dict (boto3 decodes it) or URL-encoded JSON."""
    if isinstance(raw, dict):
        return raw
    doc: dict[str, Any] = json.loads(urllib.parse.unquote(str(raw)))
    return doc


def principal_policies(clients: ClientProvider, principal: str) -> list[dict[str, Any]]:
    """Every identity policy document of a role or user (attached managed, inline, and a user's
    groups'). Permission boundaries, SCPs and resource policies are not read."""
    iam = clients.client("iam", "us-east-1")
    kind, name = principal.split(":", 5)[5].split("/", 1)
    name = name.rsplit("/", 1)[-1]
    docs: list[dict[str, Any]] = []

    def managed(arns: Iterable[str]) -> None:
        for arn in arns:
            version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
            docs.append(
                _document(
                    iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]
                )
            )

    def pages(op: str, key: str, **kwargs: Any) -> list[Any]:
        return [item for page in iam.get_paginator(op).paginate(**kwargs) for item in page[key]]

    with aws_errors(resource=f"{kind} {name}", region=None, action="read the policies of"):
        if kind == "role":
            managed(
                p["PolicyArn"]
                for p in pages("list_attached_role_policies", "AttachedPolicies", RoleName=name)
            )
            for pol in pages("list_role_policies", "PolicyNames", RoleName=name):
                docs.append(_document(iam.get_role_policy(RoleName=name, PolicyName=pol)["PolicyDocument"]))
        else:
            managed(
                p["PolicyArn"]
                for p in pages("list_attached_user_policies", "AttachedPolicies", UserName=name)
            )
            for pol in pages("list_user_policies", "PolicyNames", UserName=name):
                docs.append(_document(iam.get_user_policy(UserName=name, PolicyName=pol)["PolicyDocument"]))
            for group in pages("list_groups_for_user", "Groups", UserName=name):
                g = group["GroupName"]
                managed(
                    p["PolicyArn"]
                    for p in pages("list_attached_group_policies", "AttachedPolicies", GroupName=g)
                )
                for pol in pages("list_group_policies", "PolicyNames", GroupName=g):
                    docs.append(
                        _document(iam.get_group_policy(GroupName=g, PolicyName=pol)["PolicyDocument"])
                    )
    return docs
