"""The fake Kubernetes API over HTTP, driven by the real ``kubernetes`` client."""

from __future__ import annotations

import pytest

from dr.sandbox.fakekube import FakeKubeApi, seed_site, write_kubeconfig


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
