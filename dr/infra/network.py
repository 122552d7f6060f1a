"""Network: a VPC over ``site.azCount`` AZs with public + private subnets, NAT and security groups."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from dr.infra._common import NODE_PORT, child, db_security_group, tags
from dr.topology import StackConfig


@dataclass
class NetworkArgs:
    cfg: StackConfig


def subnet_cidrs(vpc_cidr: str, az_count: int) -> tuple[list[str], list[str]]:
    """Split the VPC into ``az_count`` public and ``az_count`` private subnets (/prefix+4 each)."""
    net = ipaddress.IPv4Network(vpc_cidr)
    blocks = [str(b) for b in net.subnets(prefixlen_diff=4)]
    return blocks[:az_count], blocks[az_count : 2 * az_count]


class Network(pulumi.ComponentResource):
    """VPC, subnets, one NAT gateway per AZ (an AZ loss keeps egress) and security groups."""

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("dr:infra:Network", name, None, opts)
        cfg, site = args.cfg, args.cfg.site
        azs = aws.get_availability_zones_output(
            state="available", opts=pulumi.InvokeOutputOptions(parent=self)
        )
        public_cidrs, private_cidrs = subnet_cidrs(site.vpc_cidr, site.az_count)

        self.vpc = aws.ec2.Vpc(
            "vpc",
            cidr_block=site.vpc_cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags=tags(cfg, Name=f"{site.name}-vpc"),
            opts=child(self),
        )
        igw = aws.ec2.InternetGateway(
            "igw", vpc_id=self.vpc.id, tags=tags(cfg, Name=f"{site.name}-igw"), opts=child(self)
        )
        public_rt = aws.ec2.RouteTable(
            "public",
            vpc_id=self.vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": igw.id}],
            tags=tags(cfg, Name=f"{site.name}-public"),
            opts=child(self),
        )
        self.public_subnets: list[aws.ec2.Subnet] = []
        self.private_subnets: list[aws.ec2.Subnet] = []
        for i in range(site.az_count):
            az = azs.names[i]
            pub = aws.ec2.Subnet(
                f"public-{i}",
                vpc_id=self.vpc.id,
                cidr_block=public_cidrs[i],
                availability_zone=az,
                map_public_ip_on_launch=True,
                tags=tags(cfg, Name=f"{site.name}-public-{i}", **{"kubernetes.io/role/elb": "1"}),
                opts=child(self),
            )
            priv = aws.ec2.Subnet(
                f"private-{i}",
                vpc_id=self.vpc.id,
                cidr_block=private_cidrs[i],
                availability_zone=az,
                tags=tags(cfg, Name=f"{site.name}-private-{i}", **{"kubernetes.io/role/internal-elb": "1"}),
                opts=child(self),
            )
            aws.ec2.RouteTableAssociation(
                f"public-{i}", subnet_id=pub.id, route_table_id=public_rt.id, opts=child(self)
            )
            eip = aws.ec2.Eip(f"nat-{i}", domain="vpc", tags=tags(cfg), opts=child(self))
            nat = aws.ec2.NatGateway(
                f"nat-{i}",
                allocation_id=eip.id,
                subnet_id=pub.id,
                tags=tags(cfg, Name=f"{site.name}-nat-{i}"),
                opts=child(self),
            )
            rt = aws.ec2.RouteTable(
                f"private-{i}",
                vpc_id=self.vpc.id,
                routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}],
                tags=tags(cfg, Name=f"{site.name}-private-{i}"),
                opts=child(self),
            )
            aws.ec2.RouteTableAssociation(
                f"private-{i}", subnet_id=priv.id, route_table_id=rt.id, opts=child(self)
            )
            self.public_subnets.append(pub)
            self.private_subnets.append(priv)

        egress: list[Any] = [{"protocol": "-1", "from_port": 0, "to_port": 0, "cidr_blocks": ["0.0.0.0/0"]}]
        self.alb_sg = aws.ec2.SecurityGroup(
            "alb",
            vpc_id=self.vpc.id,
            description=f"{site.name} ALB: HTTPS from the internet",
            ingress=[
                {"protocol": "tcp", "from_port": 443, "to_port": 443, "cidr_blocks": ["0.0.0.0/0"]},
                {"protocol": "tcp", "from_port": 80, "to_port": 80, "cidr_blocks": ["0.0.0.0/0"]},
            ],
            egress=[
                {
                    "protocol": "tcp",
                    "from_port": NODE_PORT,
                    "to_port": NODE_PORT,
                    "cidr_blocks": [site.vpc_cidr],
                }
            ],
            tags=tags(cfg, Name=f"{site.name}-alb"),
            opts=child(self),
        )
        self.db_sg = aws.ec2.SecurityGroup(
            "database",
            vpc_id=self.vpc.id,
            description=f"{site.name} RDS: PostgreSQL from inside the VPC",
            ingress=[
                {
                    "protocol": "tcp",
                    "from_port": cfg.app.database.port,
                    "to_port": cfg.app.database.port,
                    "cidr_blocks": [site.vpc_cidr],
                }
            ],
            egress=egress,
            tags=tags(cfg, Name=db_security_group(site)),
            opts=child(self),
        )
        self.cache_sg = aws.ec2.SecurityGroup(
            "cache",
            vpc_id=self.vpc.id,
            description=f"{site.name} ElastiCache: Redis from inside the VPC",
            ingress=[{"protocol": "tcp", "from_port": 6379, "to_port": 6379, "cidr_blocks": [site.vpc_cidr]}],
            egress=egress,
            tags=tags(cfg, Name=f"{site.name}-cache"),
            opts=child(self),
        )
        self.register_outputs(
            {
                "vpcId": self.vpc.id,
                "publicSubnetIds": [s.id for s in self.public_subnets],
                "privateSubnetIds": [s.id for s in self.private_subnets],
            }
        )
