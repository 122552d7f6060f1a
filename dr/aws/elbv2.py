"""ELBv2 adapter: the health of a site's ALB target group."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dr.aws.calls import aws_errors
from dr.aws.session import ClientProvider


@dataclass(frozen=True)
class TargetHealth:
    target: str
    port: int | None
    state: str
    reason: str | None
    description: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "port": self.port,
            "state": self.state,
            "reason": self.reason,
            "description": self.description,
        }


@dataclass(frozen=True)
class TargetGroupHealth:
    name: str
    region: str
    arn: str
    targets: tuple[TargetHealth, ...]

    @property
    def healthy(self) -> int:
        return sum(1 for t in self.targets if t.state == "healthy")

    def to_dict(self) -> dict[str, Any]:
        return {
            "target_group": self.name,
            "region": self.region,
            "arn": self.arn,
            "healthy": self.healthy,
            "total": len(self.targets),
            "targets": [t.to_dict() for t in self.targets],
        }


def target_group_arn(clients: ClientProvider, region: str, name: str) -> str:
    with aws_errors(resource=f"target group {name}", region=region, action="describe"):
        raw = clients.client("elbv2", region).describe_target_groups(Names=[name])
    return str(raw["TargetGroups"][0]["TargetGroupArn"])


def target_health(clients: ClientProvider, region: str, name: str) -> TargetGroupHealth:
    arn = target_group_arn(clients, region, name)
    with aws_errors(resource=f"target group {name}", region=region, action="describe health of"):
        raw = clients.client("elbv2", region).describe_target_health(TargetGroupArn=arn)
    targets = tuple(
        TargetHealth(
            target=str(d.get("Target", {}).get("Id", "")),
            port=d.get("Target", {}).get("Port"),
            state=str(d.get("TargetHealth", {}).get("State", "unknown")),
            reason=d.get("TargetHealth", {}).get("Reason"),
            description=d.get("TargetHealth", {}).get("Description"),
        )
        for d in raw.get("TargetHealthDescriptions", [])
    )
    return TargetGroupHealth(name=name, region=region, arn=arn, targets=targets)


@dataclass(frozen=True)
class LoadBalancer:
    name: str
    region: str
    arn: str
    dns_name: str
    state: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "region": self.region, "arn": self.arn, "state": self.state}


def load_balancer(clients: ClientProvider, region: str, name: str) -> LoadBalancer:
    """The load balancer named ``name`` (NotFound naming it otherwise)."""
    with aws_errors(resource=f"load balancer {name}", region=region, action="describe"):
        raw = clients.client("elbv2", region).describe_load_balancers(Names=[name])
    lb = raw["LoadBalancers"][0]
    return LoadBalancer(
        name=name,
        region=region,
        arn=str(lb["LoadBalancerArn"]),
        dns_name=str(lb.get("DNSName", "")),
        state=str((lb.get("State") or {}).get("Code", "unknown")),
    )
