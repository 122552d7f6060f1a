"""Seeding the fake Kubernetes API from the topology, and serving a whole estate for tests and demos.

:func:`seed_site` creates one site's objects from :class:`dr.topology.Estate`;
:func:`write_kubeconfig` writes the kubeconfig the real client reads; :func:`serve_estate` starts,
seeds and describes both clusters of an estate. Secret values are never logged.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from dr.sandbox.fakekube.http_api import FakeKubeApi
from dr.sandbox.fakekube.resources import ApiError, Obj
from dr.sandbox.fakekube.store import ObjectStore
from dr.sandbox.latency import LatencyProfile

if TYPE_CHECKING:
    from dr.topology import Estate, SiteView

log = logging.getLogger(__name__)


def app_labels(deployment: str) -> dict[str, str]:
    return {"app": deployment}


def deployment_manifest(namespace: str, name: str, image: str, port: int, replicas: int) -> Obj:
    labels = app_labels(name)
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": dict(labels)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
            },
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "containers": [
                        {
                            "name": name.rsplit("-", 1)[-1] or "app",
                            "image": image,
                            "ports": [{"containerPort": port, "protocol": "TCP"}],
                        }
                    ]
                },
            },
        },
    }


def seed_site(api: ObjectStore, estate: Estate, view: SiteView, database_url: str) -> None:
    """Create one site's workload objects from the topology (idempotent: existing objects are kept).

    Namespace, one Deployment per ``app.deployments`` (replicas = ``estate.replica_count``), a
    Service for the traffic-serving deployment, the HPA (on a standby site its minimum is the
    standby replica count, so the warm standby stays small), the ConfigMap with the feature flags,
    and the DB Secret holding ``database_url`` (never logged).
    """
    app = estate.app
    ns = app.namespace

    def ensure(plural: str, body: Obj) -> None:
        try:
            api.create(plural, ns, body)
        except ApiError as err:
            if err.code != 409:
                raise

    ensure("namespaces", {"metadata": {"name": ns, "labels": {"app.kubernetes.io/part-of": app.name}}})
    for dep in app.deployments:
        ensure(
            "deployments",
            deployment_manifest(ns, dep.name, dep.image, dep.port, estate.replica_count(view, dep)),
        )
    api_dep = app.api
    ensure(
        "services",
        {
            "metadata": {"name": api_dep.name, "namespace": ns, "labels": app_labels(api_dep.name)},
            "spec": {
                "selector": app_labels(api_dep.name),
                "ports": [{"port": 80, "targetPort": api_dep.port, "protocol": "TCP"}],
                "type": "ClusterIP",
            },
        },
    )
    if app.hpa is not None:
        target = app.deployment(app.hpa.deployment)
        lo = app.hpa.min_replicas
        if view.role == "standby":
            lo = max(1, min(lo, estate.replica_count(view, target)))
        ensure(
            "horizontalpodautoscalers",
            {
                "metadata": {"name": hpa_name(target.name), "namespace": ns},
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target.name},
                    "minReplicas": lo,
                    "maxReplicas": app.hpa.max_replicas,
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {
                                    "type": "Utilization",
                                    "averageUtilization": app.hpa.target_cpu_percent,
                                },
                            },
                        }
                    ],
                },
            },
        )
    ensure(
        "configmaps", {"metadata": {"name": app.config_map, "namespace": ns}, "data": dict(app.feature_flags)}
    )
    ensure(
        "secrets",
        {
            "metadata": {"name": app.db_secret.name, "namespace": ns},
            "type": "Opaque",
            "data": {app.db_secret.key: base64.b64encode(database_url.encode()).decode()},
        },
    )
    log.info("seeded %s objects for %s (%s)", ns, view.site.name, api.cluster)


def hpa_name(deployment: str) -> str:
    """The HPA name the estate uses for a deployment (``<deployment>-hpa``, as in the runbook)."""
    return f"{deployment}-hpa"


def write_kubeconfig(path: str, apis: list[FakeKubeApi]) -> None:
    """Write a kubeconfig with one context per fake cluster (context name = cluster name)."""
    import yaml

    entries = [a.kubeconfig_cluster() for a in apis]
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [e["cluster"] for e in entries],
        "users": [e["user"] for e in entries],
        "contexts": [e["context"] for e in entries],
        "current-context": entries[0]["context"]["name"] if entries else "",
    }
    with open(path, "w") as fh:
        yaml.safe_dump(doc, fh, sort_keys=False)


@contextmanager
def serve_estate(
    estate: Estate,
    kubeconfig: str,
    *,
    latency: LatencyProfile | None = None,
    capacity_fn: Callable[[str], int] | None = None,
    database_urls: dict[str, str] | None = None,
) -> Iterator[dict[str, FakeKubeApi]]:
    """Start, seed and write a kubeconfig for both clusters of the estate (tests, demos).

    ``database_urls`` maps site role ('primary' / 'standby') to the DB URL put in its Secret.
    Yields ``{cluster name: FakeKubeApi}``; stops both servers on exit.
    """
    urls = database_urls or {}
    apis: dict[str, FakeKubeApi] = {}
    try:
        for view in (estate.primary, estate.secondary):
            api = FakeKubeApi(
                view.cluster.name,
                latency=latency or LatencyProfile(),
                capacity_fn=capacity_fn,
                pods_per_node=view.cluster.nodegroup.pods_per_node,
                region=view.region,
            ).start()
            apis[view.cluster.name] = api
            user = estate.app.database.username
            default = f"postgresql://{user}:sandbox@{view.database.identifier}.local:5432/{estate.app.database.db_name}"
            seed_site(api, estate, view, urls.get(view.role, default))
        write_kubeconfig(kubeconfig, list(apis.values()))
        yield apis
    finally:
        for api in apis.values():
            api.stop()
