"""The Pulumi program: one region of the estate per stack (``pulumi up --stack prod|dr``).

The only place that reads ``pulumi.Config``. The values are validated by ``dr.topology`` (the same
model the ``dr`` CLI loads from the stack files) and handed to ``dr.infra.EstateStack``.

Stack references (docs/pulumi.md):
* the *home* stack is the one without ``dr-toolkit:primaryStackRef`` (``prod`` as shipped); it
  owns the app-wide resources (hosted zone, lock table); the other stack reads them from it;
* the home stack also owns the app's secret (the master credentials), replicated to the peer's
  region (read from the peer's stack file); the other stack reads that replica in its own region;
* a standby reads the primary's database ARN from its peer: through
  ``primaryStackRef`` when set, else ``<org>/<project>/<peerStack>`` (a home stack demoted to
  standby after a failover).
"""

from __future__ import annotations

import pulumi

from dr.infra import EstateArgs, EstateStack, PrimaryRefs, SecretReplica, SharedRefs
from dr.infra._common import kms_alias
from dr.topology import NS, PROJECT, parse_stack, read_stack, stack_config_dir, stack_file


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
    stack_cfg = parse_stack(raw, stack, str(stack_file(stack_config_dir(), stack)))

    refs: dict[str, pulumi.StackReference] = {}

    def ref(name: str) -> pulumi.StackReference:
        if name not in refs:
            refs[name] = pulumi.StackReference(name)
        return refs[name]

    shared: SharedRefs | None = None
    if stack_cfg.primary_stack_ref:
        home = ref(stack_cfg.primary_stack_ref)
        shared = SharedRefs(
            zone_id=home.require_output("zoneId"), lock_table_arn=home.require_output("lockTableArn")
        )

    primary: PrimaryRefs | None = None
    if stack_cfg.role == "standby":
        peer_name = stack_cfg.primary_stack_ref or (
            f"{pulumi.get_organization()}/{pulumi.get_project()}/{stack_cfg.peer_stack}"
        )
        peer = ref(peer_name)
        primary = PrimaryRefs(db_arn=peer.require_output("dbArn"))

    replica: SecretReplica | None = None
    if shared is None:
        # The home stack owns the app's secret and replicates it to the peer's region, encrypted
        # with the peer site's data key (by alias: the peer stack creates that key).
        peer_cfg = read_stack(stack_config_dir(), stack_cfg.peer_stack)
        replica = SecretReplica(region=peer_cfg.region, kms_key_id=kms_alias(peer_cfg.site))

    estate = EstateStack(
        stack_cfg.site.name,
        EstateArgs(cfg=stack_cfg, primary=primary, shared=shared, secret_replica=replica),
    )
    for key, value in estate.stack_outputs().items():
        pulumi.export(key, value)
    # The failover to this stack's region as a Step Functions state machine (dr/infra/orchestrator.py).
    from dr.infra.orchestrator import deploy_for

    deploy_for(estate, stack_cfg)
    # Continuous readiness in the DR region: schedule, alarms, SNS topic (dr/infra/readiness_alarms.py).
    from dr.infra.readiness_alarms import deploy_for as deploy_readiness

    deploy_readiness(estate, stack_cfg)


main()
