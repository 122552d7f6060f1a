"""Helpers shared by the infra components: tags, derived names, resource options.

Every physical name below is derived from :mod:`dr.topology` settings exactly as
``topology.Estate`` derives them (``tests/unit/infra`` checks the program's declared names
against ``Estate.physical_names()``, so the two cannot drift apart silently).
"""

from __future__ import annotations

from typing import Any

import pulumi

from dr.topology import App, Site, StackConfig

# NodePort the traffic-serving Service exposes on every node; the ALB target group points at it.
NODE_PORT = 30080


def tags(cfg: StackConfig, **extra: str) -> dict[str, str]:
    """Tags every AWS resource carries (the CLI filters on ``dr:app`` / ``dr:site``)."""
    out = {
        "dr:app": cfg.app.name,
        "dr:site": cfg.site.name,
        "dr:role": cfg.role,
        "dr:stack": cfg.stack,
        "managed-by": "pulumi",
    }
    out.update(extra)
    return out


def child(parent: pulumi.Resource, **kwargs: Any) -> pulumi.ResourceOptions:
    """Options for a child resource of a component."""
    return pulumi.ResourceOptions(parent=parent, **kwargs)


def data_store(parent: pulumi.Resource, **kwargs: Any) -> pulumi.ResourceOptions:
    """Options for a data store: protected from `pulumi destroy` and retained if ever deleted."""
    return pulumi.ResourceOptions(parent=parent, protect=True, retain_on_delete=True, **kwargs)


# -- names derived exactly like dr.topology.Estate ---------------------------------------------
def lock_table(app: App) -> str:
    return app.lock_table or f"{app.name}-dr-lock"


def journal_bucket(app: App, region: str) -> str:
    prefix = app.journal_bucket_prefix or f"{app.name}-dr-journal"
    return f"{prefix}-{region}"


def db_subnet_group(site: Site) -> str:
    return f"{site.name}-db"


def cache_subnet_group(site: Site) -> str:
    return f"{site.name}-cache"


def db_security_group(site: Site) -> str:
    return f"{site.name}-database"


def kms_alias(site: Site) -> str:
    return f"alias/{site.name}-data"


def health_check_ref(site: Site) -> str:
    return f"{site.name}-health"


def replica_count(cfg: StackConfig, deployment: str) -> int:
    """Replicas of ``deployment`` for this stack's role (standby: site.standbyReplicas)."""
    dep = cfg.app.deployment(deployment)
    if cfg.role == "standby":
        return cfg.site.standby_replicas.get(dep.name, dep.replicas)
    return dep.replicas


def service_role(
    name: str, parent: pulumi.Resource, cfg: StackConfig, *, role_name: str, service: str, description: str
) -> Any:
    """An IAM role that AWS ``service`` (e.g. ``lambda.amazonaws.com``) assumes."""
    import json

    import pulumi_aws as aws

    assume = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }
    return aws.iam.Role(
        name,
        name=role_name[:64],
        assume_role_policy=json.dumps(assume),
        description=description,
        tags=tags(cfg),
        opts=child(parent),
    )


def namespace_access(
    name: str,
    parent: pulumi.Resource,
    cfg: StackConfig,
    *,
    cluster_name: pulumi.Input[str],
    principal_arn: pulumi.Input[str],
    policy_arn: str,
) -> tuple[Any, Any]:
    """An EKS access entry for ``principal_arn`` with ``policy_arn`` on the app namespace only
    (never cluster-wide): how an AWS role (no kubeconfig) reaches the workload."""
    import pulumi_aws as aws

    entry = aws.eks.AccessEntry(
        name, cluster_name=cluster_name, principal_arn=principal_arn, type="STANDARD", tags=tags(cfg),
        opts=child(parent),
    )  # fmt: skip
    policy = aws.eks.AccessPolicyAssociation(
        name,
        cluster_name=entry.cluster_name,
        principal_arn=entry.principal_arn,
        policy_arn=policy_arn,
        access_scope={"type": "namespace", "namespaces": [cfg.app.namespace]},
        opts=child(parent),
    )
    return entry, policy
