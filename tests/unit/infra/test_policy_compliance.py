"""The program complies with its own policy pack: every declared resource passes every validator."""

from __future__ import annotations

import pytest

from dr.infra.mockrun import MockRun
from dr.policy.validators import violations


@pytest.mark.parametrize("key", ["prod", "dr", "chess-prod", "chess-dr", "promoted-dr", "demoted-prod"])
def test_declared_resources_pass_the_dr_policy_pack(runs: dict[str, MockRun], key: str) -> None:
    run = runs[key]
    checked = 0
    for r in run.resources:
        found = violations(r.type, r.inputs, r.region or run.region)
        assert not found, f"{key}: {r.type} {r.name}: {found}"
        checked += r.type.startswith(("aws:rds/", "aws:route53/record", "aws:elasticache/"))
    assert checked >= 4  # rds, redis, failover record, validation record at least
