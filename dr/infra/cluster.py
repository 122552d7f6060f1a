"""Cluster: EKS at the pinned version, the managed nodegroup and a Kubernetes provider for it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from dr.infra._common import child, tags
from dr.topology import StackConfig

_ASSUME = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "SERVICE"}, "Action": "sts:AssumeRole"}],
}


def _assume(service: str) -> str:
    return json.dumps(_ASSUME).replace("SERVICE", service)


def kubeconfig(name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig that authenticates with ``aws eks get-token`` (no credential is stored)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": name, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}
            ],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
            "users": [
                {
                    "name": name,
                    "user": {
                        "exec": {
                            "apiVersion": "client.authentication.k8s.io/v1beta1",
                            "command": "aws",
                            "args": ["eks", "get-token", "--cluster-name", name, "--region", region],
                        }
                    },
                }
            ],
        }
    )


@dataclass
class ClusterArgs:
    cfg: StackConfig
    subnet_ids: Sequence[pulumi.Input[str]]
    private_subnet_ids: Sequence[pulumi.Input[str]]


class ClusterComponent(pulumi.ComponentResource):
    """EKS control plane + managed nodegroup (names from ``site.cluster``)."""

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("dr:infra:Cluster", name, None, opts)
        cfg, spec = args.cfg, args.cfg.site.cluster
        ng = spec.nodegroup

        cluster_role = aws.iam.Role(
            "cluster-role", assume_role_policy=_assume("eks.amazonaws.com"), tags=tags(cfg), opts=child(self)
        )
        attach_cluster = aws.iam.RolePolicyAttachment(
            "cluster-policy",
            role=cluster_role.name,
            policy_arn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
            opts=child(self),
        )
        self.cluster = aws.eks.Cluster(
            "eks",
            name=spec.name,
            version=spec.version,
            role_arn=cluster_role.arn,
            vpc_config={
                "subnet_ids": args.subnet_ids,
                "endpoint_private_access": True,
                "endpoint_public_access": True,
            },
            access_config={"authentication_mode": "API_AND_CONFIG_MAP"},
            enabled_cluster_log_types=["api", "audit", "authenticator"],
            tags=tags(cfg),
            opts=child(self, depends_on=[attach_cluster]),
        )

        node_role = aws.iam.Role(
            "node-role", assume_role_policy=_assume("ec2.amazonaws.com"), tags=tags(cfg), opts=child(self)
        )
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"node-{policy}",
                role=node_role.name,
                policy_arn=f"arn:aws:iam::aws:policy/{policy}",
                opts=child(self),
            )
            for policy in (
                "AmazonEKSWorkerNodePolicy",
                "AmazonEKS_CNI_Policy",
                "AmazonEC2ContainerRegistryReadOnly",
            )
        ]
        # `dr failover` scales the warm-standby nodegroup up; Pulumi must not scale it back down on
        # the next `pulumi up` (reconcile the stack file instead), hence ignore desiredSize.
        self.nodegroup = aws.eks.NodeGroup(
            "nodegroup",
            cluster_name=self.cluster.name,
            node_group_name=ng.name,
            node_role_arn=node_role.arn,
            subnet_ids=args.private_subnet_ids,
            instance_types=ng.instance_types,
            scaling_config={
                "min_size": ng.min_size,
                "max_size": ng.max_size,
                "desired_size": ng.desired_size,
            },
            update_config={"max_unavailable": 1},
            tags=tags(cfg),
            opts=child(self, depends_on=attachments, ignore_changes=["scalingConfig.desiredSize"]),
        )
        self.kubeconfig = pulumi.Output.all(
            self.cluster.name, self.cluster.endpoint, self.cluster.certificate_authority.data
        ).apply(lambda a: kubeconfig(a[0], a[1], a[2] or "", cfg.region))
        self.provider = k8s.Provider(
            "k8s",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            opts=child(self),
        )
        self.register_outputs(
            {
                "clusterName": self.cluster.name,
                "nodegroupName": self.nodegroup.node_group_name,
                "clusterSecurityGroupId": self.cluster.vpc_config.cluster_security_group_id,
            }
        )
