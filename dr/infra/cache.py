"""Cache: an ElastiCache Redis 7 replication group per region.

DR decision (docs/pulumi.md): each region runs an *independent* replication group; the DR one is
warm (small, empty or seeded from a copied snapshot) rather than a global-datastore secondary,
because global datastores need M5/R5-class nodes or newer, identical settings in both regions and
an API the sandbox cannot exercise. A cache is rebuildable: losing it costs a warm-up, not data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from dr.infra._common import cache_subnet_group, child, data_store, tags
from dr.topology import StackConfig


@dataclass
class CacheArgs:
    cfg: StackConfig
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]


class CacheComponent(pulumi.ComponentResource):
    """Redis replication group: automatic failover, Multi-AZ, TLS, KMS at rest, daily snapshots."""

    def __init__(self, name: str, args: CacheArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("dr:infra:Cache", name, None, opts)
        cfg, spec = args.cfg, args.cfg.site.cache
        major = spec.engine_version.split(".")[0]
        subnets = aws.elasticache.SubnetGroup(
            "subnets",
            name=cache_subnet_group(cfg.site),
            subnet_ids=args.subnet_ids,
            tags=tags(cfg),
            opts=child(self),
        )
        self.group = aws.elasticache.ReplicationGroup(
            "redis",
            replication_group_id=spec.replication_group_id,
            description=f"{cfg.app.name} Redis ({cfg.site.name})",
            engine="redis",
            engine_version=spec.engine_version,
            parameter_group_name=f"default.redis{major}",
            node_type=spec.node_type,
            num_cache_clusters=spec.num_cache_clusters,
            port=spec.port,
            automatic_failover_enabled=True,
            multi_az_enabled=True,
            at_rest_encryption_enabled=True,
            kms_key_id=args.kms_key_arn,
            transit_encryption_enabled=True,
            snapshot_retention_limit=spec.snapshot_retention_days,
            snapshot_window="02:00-03:00",
            maintenance_window="sun:06:00-sun:07:00",
            final_snapshot_identifier=f"{spec.replication_group_id}-final",
            subnet_group_name=subnets.name,
            security_group_ids=[args.security_group_id],
            auto_minor_version_upgrade=True,
            tags=tags(cfg),
            opts=data_store(self),
        )
        self.register_outputs(
            {
                "replicationGroupId": self.group.replication_group_id,
                "primaryEndpoint": self.group.primary_endpoint_address,
            }
        )
