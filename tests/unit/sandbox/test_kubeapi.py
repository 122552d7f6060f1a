"""The fake Kubernetes API: controllers (rollout history, capacity, readiness, HPA) and HTTP with the real client."""

from __future__ import annotations

import base64

import pytest

from dr.sandbox.kubeapi import (
    REVISION,
    ApiError,
    FakeKubeApi,
    deployment_manifest,
    json_patch,
    label_selector_matches,
    seed_site,
    strategic_merge_patch,
    write_kubeconfig,
)
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


def revisions(api: FakeKubeApi, name: str = "web") -> dict[int, int]:
    return {
        int(rs["metadata"]["annotations"][REVISION]): rs["spec"]["replicas"]
        for rs in api.list_objects("replicasets", NS, f"app={name}")
    }


def test_pods_become_ready_only_after_the_ready_delay() -> None:
    api, clock = make(ready_delay=30)
    add_deployment(api, replicas=3)
    assert len(api.pods(NS, "app=web")) == 3
    assert api.ready_pods(NS, "web") == 0
    clock.now += 29
    assert api.ready_pods(NS, "web") == 0
    clock.now += 1.5
    assert api.ready_pods(NS, "web") == 3
    status = api.get("deployments", NS, "web")["status"]
    assert status["availableReplicas"] == 3 and status["updatedReplicas"] == 3


def test_pods_beyond_capacity_stay_pending_with_a_failed_scheduling_warning() -> None:
    api, _ = make(capacity=2)
    add_deployment(api, replicas=5)
    pods = api.pods(NS, "app=web")
    assert sorted(p["status"]["phase"] for p in pods) == ["Pending"] * 3 + ["Running"] * 2
    assert api.ready_pods(NS, "web") == 2
    warnings = api.list_objects("events", NS, field_selector="type=Warning")
    assert {e["reason"] for e in warnings} == {"FailedScheduling"}
    assert len(warnings) == 3


def test_capacity_growth_schedules_pending_pods_and_shrink_evicts() -> None:
    cap = {"n": 2}
    api = FakeKubeApi("c1", capacity_fn=lambda _c: cap["n"])
    api.create("namespaces", "", {"metadata": {"name": NS}})
    add_deployment(api, replicas=4)
    assert api.ready_pods(NS, "web") == 2
    cap["n"] = 8
    assert api.ready_pods(NS, "web") == 4
    cap["n"] = 1
    assert api.ready_pods(NS, "web") == 1
    assert len(api.pods(NS, "app=web")) == 4  # recreated, Pending


def test_the_ticker_reconciles_while_time_or_inputs_matter_and_not_when_idle() -> None:
    """The background ticker makes pods Ready when their time comes (no request needed) and
    follows capacity changes, but an idle cluster runs no controller pass (an idle sandbox used
    ~2 % of a core per cluster, every test's sandbox included)."""
    import time

    cap = {"n": 8}
    clock = Clock()
    latency = LatencyProfile("none").with_overrides(k8s__pod_ready=30)
    api = FakeKubeApi(
        "c1", latency=latency, capacity_fn=lambda _c: cap["n"], clock=clock, tick_interval=0.005
    )
    api.create("namespaces", "", {"metadata": {"name": NS}})
    add_deployment(api, replicas=4)
    passes = {"n": 0}
    inner = api._reconcile_once

    def counted() -> None:
        passes["n"] += 1
        inner()

    api._reconcile_once = counted  # type: ignore[method-assign]

    def raw_ready() -> int:  # the stored status, without a read (reads reconcile themselves)
        return int(api._store["deployments"][(NS, "web")]["status"].get("readyReplicas", 0))

    def eventually(predicate: object, what: str) -> None:
        deadline = time.monotonic() + 5
        while not predicate():  # type: ignore[operator]
            assert time.monotonic() < deadline, what
            time.sleep(0.005)

    api.start()
    try:
        eventually(lambda: passes["n"] >= 3, "the ticker reconciles while pods wait for their ready time")
        assert raw_ready() == 0
        clock.now += 31
        eventually(lambda: raw_ready() == 4, "the ticker made the pods Ready once their time came")
        # The pass that made them Ready may still be settling (a loaded machine): then no more.
        deadline = time.monotonic() + 5
        idle = passes["n"]
        while True:
            time.sleep(0.2)  # 40 ticks
            if passes["n"] == idle:
                break
            assert time.monotonic() < deadline, "an idle cluster keeps running controller passes"
            idle = passes["n"]
        cap["n"] = 2  # an input outside the store: the nodegroup shrank
        eventually(lambda: raw_ready() == 2, "the ticker followed the capacity change")
    finally:
        api.stop()


def test_restart_creates_new_revision_and_rollback_reuses_the_old_replica_set() -> None:
    api, _ = make()
    add_deployment(api, replicas=2)
    assert revisions(api) == {1: 2}
    patch = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "t1"}}}}}
    api.patch("deployments", NS, "web", patch, "application/strategic-merge-patch+json")
    assert revisions(api) == {1: 0, 2: 2}
    dep = api.get("deployments", NS, "web")
    assert dep["metadata"]["generation"] == 2 and dep["status"]["observedGeneration"] == 2
    assert dep["metadata"]["annotations"][REVISION] == "2"
    # Roll back: the template of revision 1 comes back; its ReplicaSet becomes revision 3.
    old = next(
        rs for rs in api.list_objects("replicasets", NS) if rs["metadata"]["annotations"][REVISION] == "1"
    )
    tmpl = old["spec"]["template"]
    tmpl["metadata"]["labels"].pop("pod-template-hash")
    api.patch(
        "deployments",
        NS,
        "web",
        [{"op": "replace", "path": "/spec/template", "value": tmpl}],
        "application/json-patch+json",
    )
    assert revisions(api) == {2: 0, 3: 2}
    assert len(api.list_objects("replicasets", NS)) == 2


def test_rolling_update_keeps_old_pods_until_new_ones_are_ready() -> None:
    api, clock = make(ready_delay=10)
    add_deployment(api, replicas=4)
    clock.now += 10
    assert api.ready_pods(NS, "web") == 4
    api.patch(
        "deployments",
        NS,
        "web",
        {"spec": {"template": {"metadata": {"annotations": {"x": "1"}}}}},
        "application/merge-patch+json",
    )
    # maxUnavailable 1: three old pods keep serving while the new ones start.
    assert api.ready_pods(NS, "web") == 3
    clock.now += 10
    status = api.get("deployments", NS, "web")["status"]
    assert status["updatedReplicas"] == 4 and status["readyReplicas"] == 4 and status["replicas"] == 4


def test_hpa_clamps_replicas_but_leaves_a_deployment_scaled_to_zero() -> None:
    api, _ = make()
    add_deployment(api, replicas=3)
    api.create(
        "horizontalpodautoscalers",
        NS,
        {
            "metadata": {"name": "web-hpa"},
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "web"},
                "minReplicas": 2,
                "maxReplicas": 5,
            },
        },
    )
    api.set_scale(NS, "web", 9)
    assert api.get("deployments", NS, "web")["spec"]["replicas"] == 5
    api.set_scale(NS, "web", 0)
    assert api.get("deployments", NS, "web")["spec"]["replicas"] == 0


def test_validation_and_conflicts() -> None:
    api, _ = make()
    add_deployment(api)
    with pytest.raises(ApiError) as err:
        api.set_scale(NS, "web", -1)
    assert err.value.code == 422
    with pytest.raises(ApiError) as err:
        add_deployment(api)
    assert err.value.code == 409
    stale = api.get("deployments", NS, "web")
    api.set_scale(NS, "web", 2)
    with pytest.raises(ApiError) as err:
        api.replace("deployments", NS, "web", stale)
    assert err.value.code == 409 and err.value.reason == "Conflict"
    with pytest.raises(ApiError) as err:
        api.get("deployments", NS, "nope")
    assert err.value.code == 404


def test_secret_string_data_is_folded_into_base64_data() -> None:
    api, _ = make()
    api.create("secrets", NS, {"metadata": {"name": "s"}, "stringData": {"k": "v1"}})
    assert api.get("secrets", NS, "s")["data"] == {"k": base64.b64encode(b"v1").decode()}
    assert api.secret_value(NS, "s", "k") == "v1"
    with pytest.raises(ApiError):
        api.patch("secrets", NS, "s", {"data": {"k": "not base64!"}}, "application/merge-patch+json")


def test_patch_helpers() -> None:
    assert strategic_merge_patch(
        {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "1"}]},
        {"containers": [{"name": "b", "image": "2"}]},
    ) == {"containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]}
    assert json_patch(
        {"a": {"b": 1}}, [{"op": "add", "path": "/a/c", "value": 2}, {"op": "remove", "path": "/a/b"}]
    ) == {"a": {"c": 2}}
    with pytest.raises(ApiError):
        json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 2}])
    labels = {"app": "web", "tier": "fe"}
    assert label_selector_matches("app=web,tier in (fe, be),!gone", labels)
    assert not label_selector_matches("app!=web", labels)
    assert not label_selector_matches("tier notin (fe)", labels)


def test_real_kubernetes_client_over_http(tmp_path, estate) -> None:
    from kubernetes import client, config

    with FakeKubeApi(estate.primary.cluster.name, capacity_fn=lambda _c: 100) as api:
        seed_site(api, estate, estate.primary, "postgresql://u:pw@db:5432/x")
        kc = tmp_path / "kubeconfig"
        write_kubeconfig(str(kc), [api])
        ac = config.new_client_from_config(config_file=str(kc), context=estate.primary.cluster.name)
        apps, core = client.AppsV1Api(ac), client.CoreV1Api(ac)
        ns = estate.app.namespace
        names = {d.metadata.name for d in apps.list_namespaced_deployment(ns).items}
        assert names == {d.name for d in estate.app.deployments}
        api_dep = estate.app.api.name
        scale = apps.patch_namespaced_deployment_scale(api_dep, ns, {"spec": {"replicas": 7}})
        assert scale.spec.replicas == 7
        assert apps.read_namespaced_deployment(api_dep, ns).status.ready_replicas == 7
        cm = core.read_namespaced_config_map(estate.app.config_map, ns)
        assert cm.data == estate.app.feature_flags
        with pytest.raises(client.ApiException) as err:
            apps.read_namespaced_deployment("nope", ns)
        assert err.value.status == 404
        assert len(core.list_node().items) >= 1
