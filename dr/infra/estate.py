"""The root component: one region of the estate, wired from its stack config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from dr.infra.cache import CacheArgs, CacheComponent
from dr.infra.cluster import ClusterArgs, ClusterComponent
from dr.infra.database import DatabaseArgs, DatabaseComponent, SecretReplica
from dr.infra.edge import EdgeArgs, EdgeComponent
from dr.infra.network import Network, NetworkArgs
from dr.infra.routing import Dns, DnsArgs, HostedZone, HostedZoneArgs
from dr.infra.tooling import Tooling, ToolingArgs
from dr.infra.workload import Workload, WorkloadArgs
from dr.topology import StackConfig


def _first_asg(resources: Any) -> str:
    """Name of the nodegroup's Auto Scaling group (EKS creates exactly one per managed nodegroup)."""
    if resources and resources[0].autoscaling_groups:
        return str(resources[0].autoscaling_groups[0].name or "")
    return ""


@dataclass
class PrimaryRefs:
    """What a standby stack reads from the primary stack (a ``pulumi.StackReference``)."""

    db_arn: pulumi.Input[str]


@dataclass
class SharedRefs:
    """App-wide resources (hosted zone, lock table) read from the *home* stack that owns them.

    Ownership never follows the role: the home stack is the one without ``primaryStackRef``
    (``prod`` as shipped), so a failover + role swap moves no zone and no table (docs/pulumi.md).
    """

    zone_id: pulumi.Input[str]
    lock_table_arn: pulumi.Input[str]


@dataclass
class EstateArgs:
    cfg: StackConfig
    # Required when cfg.role == "standby": the primary's database.
    primary: PrimaryRefs | None = None
    # None = this is the home stack and creates the zone, the lock table and the app's secret.
    shared: SharedRefs | None = None
    # Home stack only: where the app's secret is replicated (the peer site's region and key).
    secret_replica: SecretReplica | None = None


class EstateStack(pulumi.ComponentResource):
    """Network -> cluster -> database/cache -> edge -> dns -> workload, for one region."""

    def __init__(self, name: str, args: EstateArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("dr:infra:Estate", name, None, opts)
        cfg = self.cfg = args.cfg
        if (args.shared is None) != (args.secret_replica is not None):
            raise ValueError(
                f"{cfg.path}: the home stack (no dr-toolkit:primaryStackRef) and only it replicates the app's secret"
            )
        if cfg.role == "standby" and args.primary is None:
            raise ValueError(
                f"{cfg.path}: a standby stack needs dr-toolkit:primaryStackRef (the primary stack's outputs)"
            )
        here = pulumi.ResourceOptions(parent=self)
        prim, shared = args.primary, args.shared

        self.network = Network("network", NetworkArgs(cfg=cfg), here)
        public = [s.id for s in self.network.public_subnets]
        private = [s.id for s in self.network.private_subnets]
        self.cluster = ClusterComponent(
            "cluster", ClusterArgs(cfg=cfg, subnet_ids=public + private, private_subnet_ids=private), here
        )
        self.database = DatabaseComponent(
            "database",
            DatabaseArgs(
                cfg=cfg,
                subnet_ids=private,
                security_group_id=self.network.db_sg.id,
                source_db_arn=prim.db_arn if prim else None,
                secret_replica=args.secret_replica,
            ),
            here,
        )
        self.cache = CacheComponent(
            "cache",
            CacheArgs(
                cfg=cfg,
                subnet_ids=private,
                security_group_id=self.network.cache_sg.id,
                kms_key_arn=self.database.key.arn,
            ),
            here,
        )
        self.tooling = Tooling(
            "tooling",
            ToolingArgs(
                cfg=cfg,
                kms_key_arn=self.database.key.arn,
                lock_table_arn=shared.lock_table_arn if shared else None,
            ),
            here,
        )
        if shared is None:
            self.zone: HostedZone | None = HostedZone("zone", HostedZoneArgs(cfg=cfg), here)
            self.zone_id: pulumi.Output[str] = self.zone.zone.zone_id
        else:
            self.zone = None
            self.zone_id = pulumi.Output.from_input(shared.zone_id)
        asg_name = self.cluster.nodegroup.resources.apply(_first_asg)
        self.edge = EdgeComponent(
            "edge",
            EdgeArgs(
                cfg=cfg,
                vpc_id=self.network.vpc.id,
                public_subnet_ids=public,
                alb_security_group_id=self.network.alb_sg.id,
                cluster_security_group_id=self.cluster.cluster.vpc_config.cluster_security_group_id,
                autoscaling_group_name=asg_name,
                zone_id=self.zone_id,
            ),
            here,
        )
        self.dns = Dns(
            "dns",
            DnsArgs(
                cfg=cfg,
                zone_id=self.zone_id,
                alb_dns_name=self.edge.alb.dns_name,
                alb_zone_id=self.edge.alb.zone_id,
            ),
            here,
        )
        self.workload = Workload(
            "workload",
            WorkloadArgs(
                cfg=cfg,
                provider=self.cluster.provider,
                db_address=self.database.instance.address,
                credentials=self.database.credentials,
            ),
            # Pods need nodes; the provider waits for rollouts, so create the nodegroup first.
            pulumi.ResourceOptions(parent=self, depends_on=[self.cluster.nodegroup]),
        )
        self.register_outputs({"role": cfg.role, "region": cfg.region})

    def stack_outputs(self) -> dict[str, pulumi.Input[object]]:
        """Every identifier the ``dr`` CLI needs, by output name (exported by ``__main__.py``)."""
        return {
            "role": self.cfg.role,
            "region": self.cfg.region,
            "site": self.cfg.site.name,
            "clusterName": self.cluster.cluster.name,
            "nodegroupName": self.cluster.nodegroup.node_group_name,
            "namespace": self.cfg.app.namespace,
            "dbIdentifier": self.database.instance.identifier,
            "dbArn": self.database.instance.arn,
            "dbEndpoint": self.database.instance.endpoint,
            "dbAddress": self.database.instance.address,
            "appSecretArn": self.database.app_secret_arn,
            "kmsKeyArn": self.database.key.arn,
            "redisGroupId": self.cache.group.replication_group_id,
            "redisPrimaryEndpoint": self.cache.group.primary_endpoint_address,
            "albArn": self.edge.alb.arn,
            "albDnsName": self.edge.alb.dns_name,
            "targetGroupArn": self.edge.target_group.arn,
            "webAclArn": self.edge.web_acl.arn,
            "ipSetId": self.edge.ip_set.id,
            "ipSetArn": self.edge.ip_set.arn,
            "zoneId": self.zone_id,
            "nameServers": self.zone.zone.name_servers if self.zone else [],
            "healthCheckId": self.dns.health_check.id,
            "lockTableArn": self.tooling.lock_table_arn,
            "journalBucket": self.tooling.bucket.bucket,
        }
