"""Pulumi policy pack enforcing the estate's DR invariants (served by ``pulumi preview``).

Run: ``pulumi preview --stack prod --policy-pack dr/policy`` (see docs/pulumi.md). The logic lives
in :mod:`dr.policy.validators` (plain functions, unit-tested without the Pulumi CLI).
"""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, PolicyPack

from dr.policy.pack import PACK_NAME, policies

PolicyPack(name=PACK_NAME, enforcement_level=EnforcementLevel.MANDATORY, policies=policies())
