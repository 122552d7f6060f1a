"""The object store of the fake Kubernetes API: CRUD, resourceVersion, validation, the scale subresource.

:class:`ObjectStore` holds every object by resource and ``(namespace, name)``, stamps
``metadata.resourceVersion`` from one counter per cluster (a write that changes nothing keeps the
old version), rejects a ``PUT`` with a stale ``resourceVersion`` (409 Conflict) and validates what
the real API server validates for the resources the toolkit writes. The public methods are
thread-safe; after every write they call :meth:`ObjectStore.reconcile`, which the controllers
(:mod:`dr.sandbox.fakekube.controllers`) override. Secret values are never logged.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dr.sandbox.fakekube.label_selectors import field_selector_matches, label_selector_matches
from dr.sandbox.fakekube.patching import json_patch, merge_patch, strategic_merge_patch
from dr.sandbox.fakekube.resources import RESOURCES, ApiError, Obj, now_iso
from dr.sandbox.latency import LatencyProfile


@dataclass
class PodState:
    created: float
    ready_delay: float
    scheduled_at: float | None = None
    restarts: int = 0
    crashed_at: float | None = None
    event_warned: bool = False


@dataclass
class ObjectStore:
    """One cluster's objects and the API's CRUD over them (no controllers: see :meth:`reconcile`)."""

    cluster: str
    latency: LatencyProfile = field(default_factory=LatencyProfile)
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._store: dict[str, dict[tuple[str, str], Obj]] = {p: {} for p in RESOURCES}
        self._pods: dict[tuple[str, str], PodState] = {}
        self._rv = 0
        self._seq = 0
        self.requests = 0
        # RBAC rules this cluster refuses to the caller: (verb, group, resource, subresource), as a
        # SelfSubjectAccessReview asks them (everything else is allowed, as for a cluster admin).
        self.rbac_denied: set[tuple[str, str, str, str]] = set()
        # Called with (method, path, body) for every write request that reached the server, before
        # it is applied (tests count side effects server-side: a kill -9 can lose a sent request).
        self.on_write: Callable[[str, str, Any], None] | None = None

    def reconcile(self) -> bool:
        """Bring derived state up to date after a write; the bare store derives nothing.

        Returns whether the state settled."""
        return True

    # -- storage primitives (callers hold the lock) -----------------------------------------------
    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _suffix(self) -> str:
        self._seq += 1
        return hashlib.sha1(f"{self.cluster}/{self._seq}".encode()).hexdigest()[:5]

    def _put(self, plural: str, obj: Obj, *, new: bool = False) -> Obj:
        res = RESOURCES[plural]
        meta = obj.setdefault("metadata", {})
        key = (meta.get("namespace", "") if res.namespaced else "", meta["name"])
        old = self._store[plural].get(key)
        obj["kind"], obj["apiVersion"] = res.kind, res.api_version
        if new or old is None:
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now_iso())
            meta.setdefault("generation", 1)
        if old is not None and old == {
            **obj,
            "metadata": {**meta, "resourceVersion": old["metadata"].get("resourceVersion")},
        }:
            return old
        meta["resourceVersion"] = self._next_rv()
        self._store[plural][key] = obj
        return obj

    def _objects(self, plural: str, namespace: str | None = None) -> list[Obj]:
        return [o for (ns, _), o in self._store[plural].items() if namespace in (None, ns)]

    def _get(self, plural: str, namespace: str, name: str) -> Obj:
        res = RESOURCES[plural]
        obj = self._store[plural].get((namespace if res.namespaced else "", name))
        if obj is None:
            where = f' in namespace "{namespace}"' if res.namespaced and namespace else ""
            raise ApiError(
                404, "NotFound", f'{plural}.{res.group or "core"} "{name}" not found{where}', plural, name
            )
        return obj

    def _delete(self, plural: str, namespace: str, name: str) -> Obj:
        obj = self._get(plural, namespace, name)
        res = RESOURCES[plural]
        del self._store[plural][(namespace if res.namespaced else "", name)]
        if plural == "pods":
            self._pods.pop((namespace, name), None)
        return obj

    # -- public, thread-safe CRUD (the HTTP layer uses these too) ---------------------------------
    def list_objects(
        self,
        plural: str,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[Obj]:
        self.reconcile()
        with self._lock:
            out = [
                copy.deepcopy(o)
                for o in self._objects(plural, namespace)
                if label_selector_matches(label_selector, o["metadata"].get("labels") or {})
                and field_selector_matches(field_selector, o)
            ]
        return sorted(out, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))

    def get(self, plural: str, namespace: str, name: str) -> Obj:
        self.reconcile()
        with self._lock:
            return copy.deepcopy(self._get(plural, namespace, name))

    def create(self, plural: str, namespace: str, body: Obj) -> Obj:
        res = RESOURCES.get(plural)
        if res is None:
            raise ApiError(404, "NotFound", f"the server could not find the requested resource ({plural})")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            with self._lock:
                meta["name"] = meta["generateName"] + self._suffix()
        name = meta.get("name")
        if not name:
            raise ApiError(422, "Invalid", f"{res.kind}: metadata.name: Required value", res.kind)
        if res.namespaced:
            meta["namespace"] = namespace
        for k in ("resourceVersion", "uid", "creationTimestamp", "generation"):
            meta.pop(k, None)
        self._validate(plural, obj)
        with self._lock:
            if res.namespaced and ("", namespace) not in self._store["namespaces"]:
                raise ApiError(
                    404, "NotFound", f'namespaces "{namespace}" not found', "namespaces", namespace
                )
            if (namespace if res.namespaced else "", name) in self._store[plural]:
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{plural}.{res.group or "core"} "{name}" already exists',
                    plural,
                    name,
                )
            if plural == "secrets":
                self._normalise_secret(obj)
            if plural == "namespaces":
                obj.setdefault("status", {"phase": "Active"})
            out = self._put(plural, obj, new=True)
            if plural == "pods":
                self._pods[(namespace, name)] = PodState(
                    created=self.clock(), ready_delay=self.latency.duration("k8s.pod_ready")
                )
            result = copy.deepcopy(out)
        self.reconcile()
        return result

    def replace(self, plural: str, namespace: str, name: str, body: Obj) -> Obj:
        obj = copy.deepcopy(body)
        with self._lock:
            old = self._get(plural, namespace, name)
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {plural} "{name}": the object has been modified; '
                    "please apply your changes to the latest version and try again",
                    plural,
                    name,
                )
            self._store_update(plural, old, obj)
            result = copy.deepcopy(self._get(plural, namespace, name))
        self.reconcile()
        return self.get(plural, namespace, name) if plural in ("deployments", "pods") else result

    def patch(self, plural: str, namespace: str, name: str, body: Any, content_type: str) -> Obj:
        with self._lock:
            old = self._get(plural, namespace, name)
            if "json-patch" in content_type:
                if not isinstance(body, list):
                    raise ApiError(400, "BadRequest", "json patch body must be a list of operations")
                new = json_patch(old, body)
            elif "merge-patch" in content_type and "strategic" not in content_type:
                new = merge_patch(old, body)
            elif "strategic-merge-patch" in content_type:
                new = strategic_merge_patch(old, body)
            else:
                raise ApiError(
                    415, "UnsupportedMediaType", f"unsupported patch content type {content_type!r}"
                )
            self._store_update(plural, old, new)
        self.reconcile()
        return self.get(plural, namespace, name)

    def delete(self, plural: str, namespace: str, name: str) -> Obj:
        with self._lock:
            obj = copy.deepcopy(self._delete(plural, namespace, name))
            if plural == "namespaces":
                for p, res in RESOURCES.items():
                    if res.namespaced:
                        for key in [k for k in self._store[p] if k[0] == name]:
                            self._delete(p, name, key[1])
            if plural == "deployments":
                self._cascade(obj)
        self.reconcile()
        return obj

    def _cascade(self, owner: Obj) -> None:
        uid = owner["metadata"]["uid"]
        for plural in ("replicasets", "pods"):
            for o in list(self._store[plural].values()):
                if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or []):
                    self._delete(plural, o["metadata"]["namespace"], o["metadata"]["name"])
                    self._cascade(o)

    def _store_update(self, plural: str, old: Obj, new: Obj) -> None:
        meta = new.setdefault("metadata", {})
        for k in ("name", "namespace", "uid", "creationTimestamp", "ownerReferences"):
            if k in old["metadata"] and k not in ("ownerReferences",):
                meta[k] = old["metadata"][k]
        if new["metadata"].get("name") != old["metadata"]["name"]:
            raise ApiError(400, "BadRequest", "metadata.name cannot be changed")
        if plural not in ("pods", "replicasets", "nodes", "events") and "status" in old:
            new["status"] = old["status"]  # status is a subresource: PUT/PATCH of the object ignore it
        if plural == "secrets":
            self._normalise_secret(new)
        self._validate(plural, new)
        if plural in ("deployments", "replicasets", "horizontalpodautoscalers", "networkpolicies"):
            gen = int(old["metadata"].get("generation", 1))
            meta["generation"] = gen + 1 if new.get("spec") != old.get("spec") else gen
        self._put(plural, new)

    @staticmethod
    def _normalise_secret(obj: Obj) -> None:
        """``stringData`` is write-only: fold it into base64 ``data`` like the API server does."""
        string_data = obj.pop("stringData", None) or {}
        data = obj.setdefault("data", {}) or {}
        for k, v in string_data.items():
            data[k] = base64.b64encode(str(v).encode()).decode()
        for k, v in data.items():
            try:
                base64.b64decode(v, validate=True)
            except (ValueError, TypeError):
                raise ApiError(
                    422,
                    "Invalid",
                    f"Secret data[{k}]: illegal base64 data",
                    "Secret",
                    obj["metadata"]["name"],
                ) from None
        obj["data"] = data
        obj.setdefault("type", "Opaque")

    @staticmethod
    def _validate(plural: str, obj: Obj) -> None:
        name = obj["metadata"].get("name", "")
        spec = obj.get("spec") or {}
        if plural in ("deployments", "replicasets"):
            replicas = spec.get("replicas", 1)
            if not isinstance(replicas, int) or replicas < 0:
                raise ApiError(
                    422,
                    "Invalid",
                    f'{plural} "{name}" is invalid: spec.replicas: Invalid value: {replicas}: '
                    "must be greater than or equal to 0",
                    plural,
                    name,
                )
            if plural == "deployments" and not (spec.get("template") and spec.get("selector")):
                raise ApiError(
                    422, "Invalid", f'deployment "{name}": spec.template and spec.selector are required'
                )
        if plural == "horizontalpodautoscalers":
            lo, hi = spec.get("minReplicas", 1), spec.get("maxReplicas")
            if not isinstance(hi, int) or hi < 1 or not isinstance(lo, int) or lo < 1 or lo > hi:
                raise ApiError(
                    422,
                    "Invalid",
                    f'horizontalpodautoscalers "{name}" is invalid: need 1 <= minReplicas ({lo}) <= maxReplicas ({hi})',
                    plural,
                    name,
                )

    # -- scale subresource -------------------------------------------------------------------------
    def get_scale(self, namespace: str, name: str) -> Obj:
        dep = self.get("deployments", namespace, name)
        sel = ",".join(f"{k}={v}" for k, v in sorted(dep["spec"]["selector"].get("matchLabels", {}).items()))
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": dep["metadata"]["uid"],
                "resourceVersion": dep["metadata"]["resourceVersion"],
                "creationTimestamp": dep["metadata"]["creationTimestamp"],
            },
            "spec": {"replicas": dep["spec"].get("replicas", 1)},
            "status": {"replicas": dep.get("status", {}).get("replicas", 0), "selector": sel},
        }

    def set_scale(self, namespace: str, name: str, replicas: Any) -> Obj:
        self.patch(
            "deployments", namespace, name, {"spec": {"replicas": replicas}}, "application/merge-patch+json"
        )
        return self.get_scale(namespace, name)

    # -- in-process helpers for tests and the sandbox manager ----------------------------------------
    def access_review(self, body: Any) -> Obj:
        """The answer to a SelfSubjectAccessReview (``kubectl auth can-i``) for ``rbac_denied``."""
        if not isinstance(body, dict) or body.get("kind") != "SelfSubjectAccessReview":
            raise ApiError(400, "BadRequest", "expected a SelfSubjectAccessReview")
        attrs = (body.get("spec") or {}).get("resourceAttributes") or {}
        rule = tuple(str(attrs.get(k) or "") for k in ("verb", "group", "resource", "subresource"))
        denied = rule in self.rbac_denied
        status: Obj = {"allowed": not denied}
        if denied:
            status.update(denied=True, reason=f"sandbox RBAC denies {' '.join(rule).strip()}")
        else:
            status["reason"] = "sandbox: the caller is a cluster admin"
        return {**body, "status": status}

    def ready_pods(self, namespace: str, deployment: str) -> int:
        """Ready pods of the deployment (all its ReplicaSets)."""
        dep = self.get("deployments", namespace, deployment)
        return int(dep.get("status", {}).get("readyReplicas", 0) or 0)

    def pods(self, namespace: str, label_selector: str = "") -> list[Obj]:
        return self.list_objects("pods", namespace, label_selector)

    def secret_value(self, namespace: str, name: str, key: str) -> str:
        """Decoded value of a secret key (for the sandbox's /health; never log it)."""
        data = self.get("secrets", namespace, name).get("data") or {}
        if key not in data:
            raise KeyError(f"secret {namespace}/{name} has no key {key!r}")
        return base64.b64decode(data[key]).decode()
