"""A fake cluster on a hand-driven clock, for the fake Kubernetes API's tests.

Import as ``from tests.unit.sandbox.fakekube.cluster_helpers import ...``.
"""

from __future__ import annotations

from dr.sandbox.fakekube import FakeKubeApi
from dr.sandbox.fakekube.kube_seed import deployment_manifest
from dr.sandbox.latency import LatencyProfile

NS = "shop"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(capacity: int | None = None, ready_delay: float = 0.0) -> tuple[FakeKubeApi, Clock]:
    clock = Clock()
    latency = LatencyProfile("none").with_overrides(k8s__pod_ready=ready_delay)
    api = FakeKubeApi(
        "c1", latency=latency, capacity_fn=(None if capacity is None else (lambda _c: capacity)), clock=clock
    )
    api.create("namespaces", "", {"metadata": {"name": NS}})
    return api, clock


def add_deployment(api: FakeKubeApi, name: str = "web", replicas: int = 3) -> None:
    api.create("deployments", NS, deployment_manifest(NS, name, "img:1", 8080, replicas))
