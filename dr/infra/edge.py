"""Edge: ALB + target group + HTTPS listener (ACM) + WAFv2 WebACL associated with the ALB."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from dr.infra._common import NODE_PORT, child, tags
from dr.topology import StackConfig

# AWS managed rule groups every WebACL carries (priority order after the block and rate rules).
MANAGED_RULE_GROUPS = (
    "AWSManagedRulesCommonRuleSet",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesSQLiRuleSet",
    "AWSManagedRulesAmazonIpReputationList",
)


def _visibility(metric: str) -> Any:
    return {"cloudwatch_metrics_enabled": True, "metric_name": metric, "sampled_requests_enabled": True}


@dataclass
class EdgeArgs:
    cfg: StackConfig
    vpc_id: pulumi.Input[str]
    public_subnet_ids: Sequence[pulumi.Input[str]]
    alb_security_group_id: pulumi.Input[str]
    cluster_security_group_id: pulumi.Input[str]
    autoscaling_group_name: pulumi.Input[str]
    zone_id: pulumi.Input[str]


class EdgeComponent(pulumi.ComponentResource):
    """Public entry of one region; names from ``site.edge``."""

    def __init__(self, name: str, args: EdgeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("dr:infra:Edge", name, None, opts)
        cfg, edge, app = args.cfg, args.cfg.site.edge, args.cfg.app

        # -- TLS certificate for the public record, validated in the app's zone ------------------
        cert = aws.acm.Certificate(
            "cert",
            domain_name=edge.certificate_domain or app.record,
            validation_method="DNS",
            tags=tags(cfg),
            opts=child(self),
        )
        validation = aws.route53.Record(
            "cert-validation",
            zone_id=args.zone_id,
            name=cert.domain_validation_options[0].resource_record_name,
            type=cert.domain_validation_options[0].resource_record_type,
            records=[cert.domain_validation_options[0].resource_record_value],
            ttl=60,
            # Both regions validate the same name with the same CNAME: either stack may write it,
            # and destroying one stack must not delete the record the other's renewals need.
            allow_overwrite=True,
            opts=child(self, retain_on_delete=True),
        )
        validated = aws.acm.CertificateValidation(
            "cert", certificate_arn=cert.arn, validation_record_fqdns=[validation.fqdn], opts=child(self)
        )

        # -- load balancer ----------------------------------------------------------------------
        self.alb = aws.lb.LoadBalancer(
            "alb",
            name=edge.alb_name,
            load_balancer_type="application",
            internal=False,
            security_groups=[args.alb_security_group_id],
            subnets=args.public_subnet_ids,
            drop_invalid_header_fields=True,
            enable_deletion_protection=True,
            tags=tags(cfg),
            opts=child(self),
        )
        self.target_group = aws.lb.TargetGroup(
            "api",
            name=edge.target_group_name,
            port=NODE_PORT,
            protocol="HTTP",
            target_type="instance",
            vpc_id=args.vpc_id,
            deregistration_delay=30,
            health_check={
                "enabled": True,
                "path": app.health_path,
                "port": "traffic-port",
                "protocol": "HTTP",
                "matcher": "200",
                "interval": 10,
                "timeout": 5,
                "healthy_threshold": 2,
                "unhealthy_threshold": 2,
            },
            tags=tags(cfg),
            opts=child(self),
        )
        aws.lb.Listener(
            "https",
            load_balancer_arn=self.alb.arn,
            port=443,
            protocol="HTTPS",
            ssl_policy="ELBSecurityPolicy-TLS13-1-2-2021-06",
            certificate_arn=validated.certificate_arn,
            default_actions=[{"type": "forward", "target_group_arn": self.target_group.arn}],
            opts=child(self),
        )
        aws.lb.Listener(
            "http-redirect",
            load_balancer_arn=self.alb.arn,
            port=80,
            protocol="HTTP",
            default_actions=[
                {
                    "type": "redirect",
                    "redirect": {"port": "443", "protocol": "HTTPS", "status_code": "HTTP_301"},
                }
            ],
            opts=child(self),
        )
        # Nodes receive ALB traffic on the Service's NodePort; the nodegroup's ASG feeds the TG.
        aws.vpc.SecurityGroupIngressRule(
            "alb-to-nodes",
            security_group_id=args.cluster_security_group_id,
            referenced_security_group_id=args.alb_security_group_id,
            ip_protocol="tcp",
            from_port=NODE_PORT,
            to_port=NODE_PORT,
            description="ALB to the API NodePort",
            opts=child(self),
        )
        aws.autoscaling.Attachment(
            "nodes",
            autoscaling_group_name=args.autoscaling_group_name,
            lb_target_group_arn=self.target_group.arn,
            opts=child(self),
        )

        # -- WAF ----------------------------------------------------------------------------------
        # `dr block-ip` edits the set's addresses at incident time; Pulumi seeds them and then
        # leaves them alone (ignore_changes), so an up never unblocks an attacker.
        self.ip_set = aws.wafv2.IpSet(
            "blocked",
            name=edge.ip_set_name,
            description=f"{app.name}: addresses blocked at the edge",
            scope="REGIONAL",
            ip_address_version="IPV4",
            addresses=edge.blocked_addresses,
            tags=tags(cfg),
            opts=child(self, ignore_changes=["addresses"]),
        )
        rules: list[Any] = [
            {
                "name": f"block-{edge.ip_set_name}",
                "priority": 0,
                "action": {"block": {}},
                "statement": {"ip_set_reference_statement": {"arn": self.ip_set.arn}},
                "visibility_config": _visibility(f"{edge.web_acl_name}-blocked-ips"),
            },
            {
                "name": "rate-limit",
                "priority": 1,
                "action": {"block": {}},
                "statement": {"rate_based_statement": {"limit": edge.rate_limit, "aggregate_key_type": "IP"}},
                "visibility_config": _visibility(f"{edge.web_acl_name}-rate-limit"),
            },
        ]
        for i, group in enumerate(MANAGED_RULE_GROUPS, start=2):
            rules.append(
                {
                    "name": group,
                    "priority": i,
                    "override_action": {"none": {}},
                    "statement": {"managed_rule_group_statement": {"name": group, "vendor_name": "AWS"}},
                    "visibility_config": _visibility(f"{edge.web_acl_name}-{group}"),
                }
            )
        self.web_acl = aws.wafv2.WebAcl(
            "waf",
            name=edge.web_acl_name,
            description=f"{app.name} edge protection ({cfg.site.name})",
            scope="REGIONAL",
            default_action={"allow": {}},
            rules=rules,
            visibility_config=_visibility(edge.web_acl_name),
            tags=tags(cfg),
            opts=child(self),
        )
        aws.wafv2.WebAclAssociation(
            "waf-alb", resource_arn=self.alb.arn, web_acl_arn=self.web_acl.arn, opts=child(self)
        )
        self.register_outputs(
            {
                "albArn": self.alb.arn,
                "albDnsName": self.alb.dns_name,
                "targetGroupArn": self.target_group.arn,
                "webAclArn": self.web_acl.arn,
                "ipSetId": self.ip_set.id,
                "ipSetArn": self.ip_set.arn,
            }
        )
