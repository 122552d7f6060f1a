"""The Pulumi program: one region of the estate per stack (``pulumi up --stack prod|dr``).

The only place that reads ``pulumi.Config``. The values are validated by ``dr.topology`` (the same
model the ``dr`` CLI loads from the stack files) and handed to ``dr.infra.Estate``.
"""

from __future__ import annotations

import pulumi

from dr.infra import Estate, EstateArgs, PrimaryRefs
from dr.topology import NS, PROJECT, parse_stack


def main() -> None:
    aws_cfg = pulumi.Config("aws")
    cfg = pulumi.Config(PROJECT)
    stack = pulumi.get_stack()
    raw: dict[str, object] = {
        "aws:region": aws_cfg.require("region"),
        NS + "role": cfg.require("role"),
        NS + "peerStack": cfg.require("peerStack"),
        NS + "app": cfg.require_object("app"),
        NS + "site": cfg.require_object("site"),
    }
    ref_name = cfg.get("primaryStackRef")
    if ref_name:
        raw[NS + "primaryStackRef"] = ref_name
    stack_cfg = parse_stack(raw, stack, f"stacks/Pulumi.{stack}.yaml")

    primary: PrimaryRefs | None = None
    if stack_cfg.role == "standby":
        if not stack_cfg.primary_stack_ref:
            raise pulumi.RunError(
                f"stacks/Pulumi.{stack}.yaml: role standby needs dr-toolkit:primaryStackRef "
                "(e.g. organization/dr-toolkit/prod); deploy the primary stack first"
            )
        ref = pulumi.StackReference(stack_cfg.primary_stack_ref)
        primary = PrimaryRefs(
            db_arn=ref.require_output("dbArn"),
            master_secret_arn=ref.require_output("dbMasterSecretArn"),
            region=ref.require_output("region"),
            zone_id=ref.require_output("zoneId"),
            lock_table_arn=ref.require_output("lockTableArn"),
        )

    estate = Estate(stack_cfg.site.name, EstateArgs(cfg=stack_cfg, primary=primary))
    for key, value in estate.stack_outputs().items():
        pulumi.export(key, value)


main()
