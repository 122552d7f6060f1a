"""The pack's policies, built from :data:`dr.policy.validators.RULES` (importable without serving)."""

from __future__ import annotations

from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from dr.policy.validators import RULES, Rule

PACK_NAME = "dr-invariants"


def _policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        region: Any = None
        if args.provider is not None:
            region = (args.provider.props or {}).get("region")
        for message in rule.check(args.resource_type, args.props, region):
            report_violation(message, None)

    return ResourceValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


def policies() -> list[Policy]:
    return [_policy(rule) for rule in RULES]
