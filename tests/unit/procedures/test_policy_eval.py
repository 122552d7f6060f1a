"""The local IAM evaluator `dr doctor` falls back on where SimulatePrincipalPolicy is missing, and
the caller-ARN → principal mapping the simulator is given."""

from __future__ import annotations

from typing import Any

import pytest

from dr.aws.identity import principal_arn
from dr.procedures.policy_eval import ALLOWED, EXPLICIT_DENY, IMPLICIT_DENY, evaluate

DB = "arn:aws:rds:us-east-1:123456789012:db:shop-replica"


def doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_allow_deny_and_nothing() -> None:
    allow = doc({"Effect": "Allow", "Action": "rds:PromoteReadReplica", "Resource": DB})
    assert evaluate([allow], "rds:PromoteReadReplica", DB) == ALLOWED
    assert evaluate([allow], "rds:DeleteDBInstance", DB) == IMPLICIT_DENY
    assert evaluate([allow], "rds:PromoteReadReplica", DB.replace("replica", "primary")) == IMPLICIT_DENY
    deny = doc({"Effect": "Deny", "Action": "rds:*", "Resource": "*"})
    assert evaluate([allow, deny], "rds:PromoteReadReplica", DB) == EXPLICIT_DENY
    assert evaluate([], "rds:PromoteReadReplica", DB) == IMPLICIT_DENY


def test_wildcards_case_and_single_statement_documents() -> None:
    one = {
        "Version": "2012-10-17",
        "Statement": {"Effect": "Allow", "Action": ["RDS:promote*"], "Resource": "*"},
    }
    assert evaluate([one], "rds:PromoteReadReplica", DB) == ALLOWED  # actions are case-insensitive
    q = doc({"Effect": "Allow", "Action": "rds:Describe?BInstances", "Resource": "arn:aws:rds:*:*:db:shop-*"})
    assert evaluate([q], "rds:DescribeDBInstances", DB) == ALLOWED
    assert (
        evaluate([q], "rds:DescribeDBInstances", DB.replace("shop", "SHOP")) == IMPLICIT_DENY
    )  # ARNs are not


def test_not_action_not_resource_and_conditions() -> None:
    not_action = doc({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"})
    assert evaluate([not_action], "rds:PromoteReadReplica", DB) == ALLOWED
    assert evaluate([not_action], "iam:PassRole", "*") == IMPLICIT_DENY
    not_resource = doc({"Effect": "Deny", "Action": "rds:*", "NotResource": DB})
    allow_all = doc({"Effect": "Allow", "Action": "*", "Resource": "*"})
    assert evaluate([allow_all, not_resource], "rds:PromoteReadReplica", DB) == ALLOWED
    assert evaluate([allow_all, not_resource], "rds:PromoteReadReplica", DB + "-x") == EXPLICIT_DENY
    conditioned = doc(
        {
            "Effect": "Allow",
            "Action": "*",
            "Resource": "*",
            "Condition": {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
        }
    )
    assert evaluate([conditioned], "rds:PromoteReadReplica", DB) == IMPLICIT_DENY  # never counted as granted


@pytest.mark.parametrize(
    ("arn", "principal"),
    [
        ("arn:aws:sts::123456789012:assumed-role/ops/alice", "arn:aws:iam::123456789012:role/ops"),
        (
            "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Admin_0123abcd/alice@example.com",
            "arn:aws:iam::123456789012:role/AWSReservedSSO_Admin_0123abcd",
        ),
        ("arn:aws-us-gov:sts::123456789012:assumed-role/ops/s", "arn:aws-us-gov:iam::123456789012:role/ops"),
        ("arn:aws:iam::123456789012:user/bob", "arn:aws:iam::123456789012:user/bob"),
        ("arn:aws:sts::123456789012:user/moto", "arn:aws:iam::123456789012:user/moto"),
        ("arn:aws:iam::123456789012:root", None),
        ("arn:aws:sts::123456789012:federated-user/bob", None),
    ],
)
def test_principal_of_a_caller_arn(arn: str, principal: str | None) -> None:
    assert principal_arn(arn) == principal
