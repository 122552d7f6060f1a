"""Workload: the app's Kubernetes objects (namespace, deployments, service, HPA, config, secret)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote

import pulumi
import pulumi_kubernetes as k8s

from dr.infra._common import NODE_PORT, child, replica_count
from dr.topology import StackConfig


def database_url(username: str, password: str, host: str, port: int, db_name: str) -> str:
    """The URL the app reads from its DB secret (credentials percent-encoded)."""
    return (
        f"postgresql://{quote(username, safe='')}:{quote(password, safe='')}@{host}:{port}/{db_name}"
        "?sslmode=require"
    )


@dataclass
class WorkloadArgs:
    cfg: StackConfig
    provider: k8s.Provider
    db_address: pulumi.Input[str]
    # The app's master credentials (JSON with username/password) as read in THIS stack's region.
    credentials: pulumi.Input[str]


class Workload(pulumi.ComponentResource):
    """One Deployment per ``app.deployments`` with this role's replica count."""

    def __init__(self, name: str, args: WorkloadArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("dr:infra:Workload", name, None, opts)
        cfg, app = args.cfg, args.cfg.app

        def k8s_opts(**kwargs: object) -> pulumi.ResourceOptions:
            return child(self, provider=args.provider, **kwargs)

        ns = k8s.core.v1.Namespace("namespace", metadata={"name": app.namespace}, opts=k8s_opts())
        namespace = ns.metadata.name

        k8s.core.v1.ConfigMap(
            "config",
            metadata={"name": app.config_map, "namespace": namespace},
            data=dict(app.feature_flags),
            opts=k8s_opts(),
        )

        # The password as the estate's secret holds it now, in this region (Pulumi secret).
        secret_value = pulumi.Output.from_input(args.credentials)
        plain: pulumi.Output[str] = pulumi.Output.all(secret_value, args.db_address).apply(
            lambda a: database_url(
                json.loads(a[0]).get("username", app.database.username),
                json.loads(a[0])["password"],
                a[1],
                app.database.port,
                app.database.db_name,
            )
        )
        url: pulumi.Output[str] = pulumi.Output.secret(plain)
        self.db_secret = k8s.core.v1.Secret(
            "db-secret",
            metadata={"name": app.db_secret.name, "namespace": namespace},
            type="Opaque",
            string_data={app.db_secret.key: url},
            opts=k8s_opts(additional_secret_outputs=["stringData", "data"]),
        )

        self.replicas: dict[str, int] = {}
        for dep in app.deployments:
            labels = {"app.kubernetes.io/name": dep.name, "app.kubernetes.io/part-of": app.name}
            replicas = replica_count(cfg, dep.name)
            self.replicas[dep.name] = replicas
            k8s.apps.v1.Deployment(
                dep.name,
                metadata={"name": dep.name, "namespace": namespace, "labels": labels},
                spec={
                    "replicas": replicas,
                    "selector": {"match_labels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "containers": [
                                {
                                    "name": dep.name,
                                    "image": dep.image,
                                    "ports": [{"container_port": dep.port}],
                                    "env_from": [{"config_map_ref": {"name": app.config_map}}],
                                    "env": [
                                        {
                                            "name": "DATABASE_URL",
                                            "value_from": {
                                                "secret_key_ref": {
                                                    "name": app.db_secret.name,
                                                    "key": app.db_secret.key,
                                                }
                                            },
                                        }
                                    ],
                                    "readiness_probe": (
                                        {"http_get": {"path": app.health_path, "port": dep.port}}
                                        if dep.serves_traffic
                                        else None
                                    ),
                                    "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}},
                                }
                            ]
                        },
                    },
                },
                opts=k8s_opts(depends_on=[self.db_secret]),
            )
            if dep.serves_traffic:
                k8s.core.v1.Service(
                    dep.name,
                    metadata={"name": dep.name, "namespace": namespace, "labels": labels},
                    spec={
                        "type": "NodePort",
                        "selector": labels,
                        "ports": [{"port": 80, "target_port": dep.port, "node_port": NODE_PORT}],
                    },
                    opts=k8s_opts(),
                )

        if app.hpa is not None:
            target = app.deployment(app.hpa.deployment)
            floor = replica_count(cfg, target.name)
            # A standby HPA keeps the warm-standby floor (an HPA cannot hold 0 replicas).
            min_replicas = app.hpa.min_replicas if cfg.role == "primary" else floor
            if min_replicas >= 1:
                k8s.autoscaling.v2.HorizontalPodAutoscaler(
                    target.name,
                    metadata={"name": target.name, "namespace": namespace},
                    spec={
                        "scale_target_ref": {
                            "api_version": "apps/v1",
                            "kind": "Deployment",
                            "name": target.name,
                        },
                        "min_replicas": min_replicas,
                        "max_replicas": app.hpa.max_replicas,
                        "metrics": [
                            {
                                "type": "Resource",
                                "resource": {
                                    "name": "cpu",
                                    "target": {
                                        "type": "Utilization",
                                        "average_utilization": app.hpa.target_cpu_percent,
                                    },
                                },
                            }
                        ],
                    },
                    opts=k8s_opts(),
                )
        self.register_outputs({"namespace": namespace, "replicas": self.replicas})
