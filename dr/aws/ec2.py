"""EC2 adapter: the estate's security groups, found by the ``Name`` tag the Pulumi program gives them."""

from __future__ import annotations

from dr.aws.calls import aws_errors
from dr.aws.session import ClientProvider


def security_groups_named(clients: ClientProvider, region: str, name: str, vpc_id: str) -> list[str]:
    """Ids of the security groups tagged ``Name=<name>`` in ``vpc_id`` (sorted; [] when none)."""
    client = clients.client("ec2", region)
    filters = [{"Name": "tag:Name", "Values": [name]}, {"Name": "vpc-id", "Values": [vpc_id]}]
    with aws_errors(resource=f"security group {name} (VPC {vpc_id})", region=region, action="describe"):
        pages = client.get_paginator("describe_security_groups").paginate(Filters=filters)
        return sorted(g["GroupId"] for page in pages for g in page.get("SecurityGroups", []))
