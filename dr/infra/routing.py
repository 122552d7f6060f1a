"""DNS: the app's hosted zone (home stack), per-region health checks and failover records.

Each stack owns its own failover record (``set_identifier`` = site name, stable across a role
swap); its role decides PRIMARY or SECONDARY. Alias records carry no TTL (Route53 uses the
target's); every non-alias record the program writes uses ``app.ttl`` (<= 60, validated).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from dr.infra._common import child, data_store, health_check_ref, tags
from dr.topology import StackConfig


@dataclass
class HostedZoneArgs:
    cfg: StackConfig


class HostedZone(pulumi.ComponentResource):
    """The public zone ``app.domain``; created by the home stack, referenced by the other one."""

    def __init__(self, name: str, args: HostedZoneArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("dr:infra:HostedZone", name, None, opts)
        cfg = args.cfg
        self.zone = aws.route53.Zone(
            "zone",
            name=cfg.app.domain,
            comment=f"{cfg.app.name} public zone (failover records for {cfg.app.record})",
            tags=tags(cfg),
            opts=data_store(self),
        )
        self.register_outputs({"zoneId": self.zone.zone_id, "nameServers": self.zone.name_servers})


@dataclass
class DnsArgs:
    cfg: StackConfig
    zone_id: pulumi.Input[str]
    alb_dns_name: pulumi.Input[str]
    alb_zone_id: pulumi.Input[str]


class Dns(pulumi.ComponentResource):
    """This region's health check and its half of the failover record pair."""

    def __init__(self, name: str, args: DnsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("dr:infra:Dns", name, None, opts)
        cfg, app = args.cfg, args.cfg.app
        ref = health_check_ref(cfg.site)
        self.health_check = aws.route53.HealthCheck(
            "health",
            type="HTTPS",
            fqdn=args.alb_dns_name,
            port=443,
            resource_path=app.health_path,
            request_interval=10,
            failure_threshold=3,
            measure_latency=True,
            enable_sni=True,
            reference_name=ref[:64],
            tags=tags(cfg, Name=ref),
            opts=child(self),
        )
        failover = "PRIMARY" if cfg.role == "primary" else "SECONDARY"
        self.record = aws.route53.Record(
            "failover",
            zone_id=args.zone_id,
            name=app.record,
            type="A",
            set_identifier=cfg.site.name,
            failover_routing_policies=[{"type": failover}],
            health_check_id=self.health_check.id,
            aliases=[
                {"name": args.alb_dns_name, "zone_id": args.alb_zone_id, "evaluate_target_health": True}
            ],
            opts=child(self),
        )
        self.register_outputs(
            {"healthCheckId": self.health_check.id, "recordFqdn": self.record.fqdn, "failover": failover}
        )
