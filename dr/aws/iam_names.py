"""IAM action names of API calls — pure, importable without boto3 (plans and policies use it)."""

from __future__ import annotations

# Client names whose IAM action prefix differs (Kubernetes calls are authorised by the cluster's
# RBAC; connecting to the cluster is an EKS call).
IAM_PREFIX = {"elbv2": "elasticloadbalancing", "stepfunctions": "states", "k8s": "eks"}


def iam_action(service: str, operation: str) -> str:
    """The IAM action authorising ``operation`` of the boto3 client ``service``:
    ``iam_action("elbv2", "DescribeTargetHealth") == "elasticloadbalancing:DescribeTargetHealth"``."""
    return f"{IAM_PREFIX.get(service, service)}:{operation}"
