"""A fake Kubernetes API server, one per sandbox cluster, that the real ``kubernetes`` client drives.

It serves the subset of the API the toolkit uses:

* core/v1: namespaces, pods (list with ``labelSelector``/``fieldSelector``, get, patch labels,
  delete), configmaps, secrets, services (get/list/create/replace/patch/delete), events (list;
  the server itself records ``FailedScheduling`` warnings and normal lifecycle events), nodes
  (derived from the cluster's capacity, with conditions that tests can set).
* apps/v1: deployments (incl. the ``scale`` subresource) and replicasets.
* autoscaling/v2: horizontalpodautoscalers. networking.k8s.io/v1: networkpolicies.
* authorization.k8s.io/v1: selfsubjectaccessreviews (``kubectl auth can-i``): allowed, except the
  rules in ``FakeKubeApi.rbac_denied``.

One module per layer, each importing only those above it in this list:

* :mod:`~dr.sandbox.fakekube.resources` — the served resources, the ``Status`` error, timestamps.
* :mod:`~dr.sandbox.fakekube.patching` — merge, strategic merge and JSON patch (pure functions).
* :mod:`~dr.sandbox.fakekube.label_selectors` — label and field selectors (pure functions).
* :mod:`~dr.sandbox.fakekube.store` — the objects: CRUD, ``resourceVersion`` (409 Conflict on a
  stale ``PUT``, like the real server), validation, the scale subresource.
* :mod:`~dr.sandbox.fakekube.controllers` — deployment, replica set, HPA, nodes, scheduler and
  kubelet, run on every request and by a background ticker.
* :mod:`~dr.sandbox.fakekube.http_api` — :class:`FakeKubeApi`: the cluster served over HTTP.
* :mod:`~dr.sandbox.fakekube.kube_seed` — one site's objects from :class:`dr.topology.Estate`,
  the kubeconfig, and :func:`serve_estate` for tests and demos.

The in-process API (``ready_pods``, ``get``, ``crash_pod``, ``set_node_condition`` …) is thread-safe
and meant for tests and the sandbox manager. Secret values are never logged.
"""

from __future__ import annotations

from dr.sandbox.fakekube.http_api import FakeKubeApi
from dr.sandbox.fakekube.kube_seed import seed_site, serve_estate, write_kubeconfig
from dr.sandbox.fakekube.resources import ApiError

__all__ = ["ApiError", "FakeKubeApi", "seed_site", "serve_estate", "write_kubeconfig"]
