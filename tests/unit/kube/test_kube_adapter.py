"""dr.kube against the fake API server, driven by the real kubernetes client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dr import kube
from dr.aws.secretsmanager import SecretValue
from dr.errors import BadInput, NotFound, TimeoutExpired
from dr.sandbox.fakekube import FakeKubeApi, serve_estate
from dr.sandbox.latency import LatencyProfile, profile


@pytest.fixture
def cluster(request, tmp_path: Path, estate) -> Iterator[tuple[FakeKubeApi, kube.Kube]]:
    marker = request.node.get_closest_marker("latency")
    latency = profile(marker.args[0]) if marker else LatencyProfile()
    cap_marker = request.node.get_closest_marker("capacity")
    capacity = cap_marker.args[0] if cap_marker else 100
    kc = tmp_path / "kubeconfig"
    with serve_estate(estate, str(kc), latency=latency, capacity_fn=lambda _c: capacity) as apis:
        name = estate.primary.cluster.name
        k = kube.connect(name, estate.primary.region, kubeconfig=str(kc))
        yield apis[name], k
        k.close()


@pytest.fixture
def ns(estate) -> str:
    return estate.app.namespace


@pytest.fixture
def api_name(estate) -> str:
    return estate.app.api.name


def test_scale_returns_previous_and_waits_for_ready_pods(cluster, ns, api_name) -> None:
    fake, k = cluster
    assert k.scale_deployment(ns, api_name, 9) == 6
    info = k.wait_rollout(ns, api_name, timeout=10)
    assert info.replicas == 9 and info.ready == 9 and info.rolled_out
    assert fake.ready_pods(ns, api_name) == 9
    assert k.scale_deployment(ns, api_name, 9) == 9  # idempotent: no write
    assert k.writes == [f"scale deployment {ns}/{api_name} 6 -> 9"]


@pytest.mark.parametrize("latency", ["fast", "none"])
def test_restart_makes_a_new_revision_and_rollout_completes(tmp_path, estate, latency) -> None:
    kc = tmp_path / "kc"
    with serve_estate(estate, str(kc), latency=profile(latency), capacity_fn=lambda _c: 100) as apis:
        name, ns, dep = estate.primary.cluster.name, estate.app.namespace, estate.app.api.name
        k = kube.connect(name, estate.primary.region, kubeconfig=str(kc))
        assert k.get_deployment(ns, dep).revision == 1
        k.rollout_restart(ns, dep)
        if latency == "fast":
            # Right after the restart the new pods are not Ready yet: the rollout is not done.
            assert not k.rollout_status(ns, dep).rolled_out
        info = k.wait_rollout(ns, dep, timeout=10)
        assert info.rolled_out and info.ready == 6
        history = k.rollout_history(ns, dep)
        assert [r.revision for r in history] == [1, 2]
        assert history[-1].current and history[-1].restarted_at is not None
        assert apis[name].ready_pods(ns, dep) == 6


@pytest.mark.capacity(4)
def test_wait_times_out_when_pods_cannot_be_scheduled(cluster, ns, api_name) -> None:
    _, k = cluster
    k.scale_deployment(ns, api_name, 3)  # 3 api + 2 workers > 4
    with pytest.raises(TimeoutExpired) as err:
        k.wait_rollout(ns, api_name, timeout=0.5)
    assert "ready 2" in err.value.message or "ready" in err.value.message
    pending = [p for p in k.list_pods(ns) if p.phase == "Pending" and p.reason == "Unschedulable"]
    assert pending
    assert any(e.reason == "FailedScheduling" for e in k.warning_events(ns))


def test_undo_goes_back_to_previous_then_to_a_given_revision(cluster, ns, api_name) -> None:
    _, k = cluster
    k.rollout_restart(ns, api_name)
    k.wait_rollout(ns, api_name, timeout=10)
    back = k.rollout_undo(ns, api_name)
    assert back is not None and back.revision == 1
    k.wait_rollout(ns, api_name, timeout=10)
    history = k.rollout_history(ns, api_name)
    assert [r.revision for r in history] == [2, 3]
    assert history[-1].restarted_at is None and history[-1].current  # revision 1's template, renumbered
    again = k.rollout_undo(ns, api_name, to_revision=2)
    assert again is not None and again.restarted_at is not None
    with pytest.raises(BadInput) as err:
        k.rollout_undo(ns, api_name, to_revision=42)
    assert "no revision 42" in err.value.message and err.value.exit_code == 2


def test_undo_without_history_is_bad_input(cluster, ns, api_name) -> None:
    _, k = cluster
    with pytest.raises(BadInput, match="no previous revision"):
        k.rollout_undo(ns, api_name)


def test_not_found_names_kind_namespace_and_cluster(cluster, ns, estate) -> None:
    _, k = cluster
    with pytest.raises(NotFound) as err:
        k.get_deployment(ns, "ghost")
    msg = err.value.message
    assert "deployment ghost" in msg and ns in msg and estate.primary.cluster.name in msg
    assert err.value.exit_code == 2


def test_read_only_refuses_every_write(tmp_path, estate) -> None:
    kc = tmp_path / "kc"
    with serve_estate(estate, str(kc)) as apis:
        name, ns, dep = estate.primary.cluster.name, estate.app.namespace, estate.app.api.name
        k = kube.connect(name, estate.primary.region, kubeconfig=str(kc), read_only=True)
        for write in (
            lambda: k.scale_deployment(ns, dep, 2),
            lambda: k.rollout_restart(ns, dep),
            lambda: k.patch_configmap(ns, estate.app.config_map, {"maintenance-mode": "true"}),
            lambda: k.patch_secret_key(ns, estate.app.db_secret.name, "database-url", SecretValue("x")),
        ):
            with pytest.raises(kube.ReadOnlyKube):
                write()
        assert apis[name].get("deployments", ns, dep)["spec"]["replicas"] == 6
        assert k.get_deployment(ns, dep).replicas == 6  # reads still work


def test_configmap_secret_label_policy_hpa_nodes(cluster, ns, api_name, estate) -> None:
    fake, k = cluster
    before = k.patch_configmap(ns, estate.app.config_map, {"maintenance-mode": "true"})
    assert before == {"maintenance-mode": "false"}
    assert k.get_configmap(ns, estate.app.config_map)["maintenance-mode"] == "true"

    secret = estate.app.db_secret
    why = {"example/changed-for": "db@1"}
    assert k.patch_secret_key(
        ns, secret.name, secret.key, SecretValue("postgresql://u:new@h/db"), annotations=why
    )
    assert k.secret_annotations(ns, secret.name) == why  # set with the value, in one patch
    # Unchanged value: nothing written, not even the annotations.
    again = {"example/changed-for": "db@2"}
    assert not k.patch_secret_key(
        ns, secret.name, secret.key, SecretValue("postgresql://u:new@h/db"), annotations=again
    )
    assert k.secret_annotations(ns, secret.name) == why
    assert fake.secret_value(ns, secret.name, secret.key) == "postgresql://u:new@h/db"
    assert "new" not in repr(k.read_secret_key(ns, secret.name, secret.key))

    pod = k.list_pods(ns, f"app={api_name}")[0]
    assert k.label_pod(ns, pod.name, {"security": "quarantine"})
    assert not k.label_pod(ns, pod.name, {"security": "quarantine"})
    assert k.ensure_deny_all_policy(ns, "quarantine", {"security": "quarantine"})
    assert not k.ensure_deny_all_policy(ns, "quarantine", {"security": "quarantine"})
    pol = k.get_network_policy(ns, "quarantine")
    assert pol["spec"]["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in pol["spec"]

    hpa = k.hpa_for(ns, api_name)
    assert hpa is not None and (hpa.min_replicas, hpa.max_replicas) == (6, 20)
    k.patch_hpa(ns, hpa.name, min_replicas=2, max_replicas=30)
    assert k.hpa_for(ns, api_name).max_replicas == 30  # type: ignore[union-attr]

    node = fake.node_names()[0]
    fake.set_node_condition(node, "MemoryPressure", "True", "low memory")
    pressured = [n for n in k.nodes() if n.pressure]
    assert [(n.name, n.pressure) for n in pressured] == [(node, ("MemoryPressure",))]


def test_crashed_pod_shows_restarts(cluster, ns, api_name) -> None:
    fake, k = cluster
    pod = k.list_pods(ns, f"app={api_name}")[0]
    fake.crash_pod(ns, pod.name)
    fake.crash_pod(ns, pod.name)
    again = next(p for p in k.list_pods(ns) if p.name == pod.name)
    assert again.restarts == 2
    assert any(e.reason == "BackOff" for e in k.warning_events(ns))


def test_connect_without_context_or_aws_is_bad_input(tmp_path) -> None:
    with pytest.raises(BadInput, match="no kubeconfig context"):
        kube.connect("nowhere", "us-west-2", kubeconfig=str(tmp_path / "missing"))


def test_restart_sets_its_marker_annotation_in_the_same_call(cluster, ns, api_name) -> None:
    _fake, k = cluster
    before = k.get_deployment(ns, api_name)
    assert "example.com/marker" not in before.annotations
    k.rollout_restart(ns, api_name, annotations={"example.com/marker": "m1"})
    after = k.get_deployment(ns, api_name)
    assert after.annotations.get("example.com/marker") == "m1"
    assert after.revision == before.revision + 1


def test_the_adapter_loads_no_generated_api_class_or_model(tmp_path: Path, estate) -> None:
    """Reads and writes go through the client's connection as JSON: the generated per-group API
    classes and pydantic models (about a second of imports per `dr` process; core/v1 alone was on
    a failover's critical path) are never imported. A fresh interpreter, every kind of call."""
    import subprocess
    import sys

    kc = tmp_path / "kubeconfig"
    ns, name = estate.app.namespace, estate.app.api.name
    with serve_estate(estate, str(kc)):
        code = (
            "import sys\n"
            "from dr import kube\n"
            "from dr.aws.secretsmanager import SecretValue\n"
            f"k = kube.connect({estate.primary.cluster.name!r}, 'r', kubeconfig={str(kc)!r})\n"
            f"ns, name = {ns!r}, {name!r}\n"
            "k.get_deployment(ns, name); k.list_deployments(ns); k.scale_deployment(ns, name, 3)\n"
            "k.rollout_restart(ns, name); k.rollout_history(ns, name); k.list_pods(ns); k.nodes()\n"
            "k.warning_events(ns); k.hpa_for(ns, name); k.ensure_deny_all_policy(ns, 'p', {'a': 'b'})\n"
            f"k.patch_secret_key(ns, {estate.app.db_secret.name!r}, 'x', SecretValue('v'))\n"
            "loaded = sorted(m for m in sys.modules if m.startswith(('kubernetes.client.api.', 'kubernetes.client.models.')))\n"
            "print(len(loaded), loaded[:5])\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "0 []"
