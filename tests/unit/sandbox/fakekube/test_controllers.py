"""The fake Kubernetes API's controllers: rollout history, capacity, readiness, the ticker, HPA."""

from __future__ import annotations

from dr.sandbox.fakekube import FakeKubeApi
from dr.sandbox.fakekube.controllers import REVISION
from dr.sandbox.latency import LatencyProfile
from tests.unit.sandbox.fakekube.cluster_helpers import NS, Clock, add_deployment, make


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
