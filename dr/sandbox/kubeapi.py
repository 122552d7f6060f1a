"""A fake Kubernetes API server, one per sandbox cluster, that the real ``kubernetes`` client drives.

It serves, over plain HTTP on ``127.0.0.1`` (ephemeral port), the subset of the API the toolkit uses:

* core/v1: namespaces, pods (list with ``labelSelector``/``fieldSelector``, get, patch labels,
  delete), configmaps, secrets, services (get/list/create/replace/patch/delete), events (list;
  the server itself records ``FailedScheduling`` warnings and normal lifecycle events), nodes
  (derived from the cluster's capacity, with conditions that tests can set).
* apps/v1: deployments (incl. the ``scale`` subresource) and replicasets.
* autoscaling/v2: horizontalpodautoscalers. networking.k8s.io/v1: networkpolicies.
* authorization.k8s.io/v1: selfsubjectaccessreviews (``kubectl auth can-i``): allowed, except the
  rules in ``FakeKubeApi.rbac_denied``.

Patches: ``application/merge-patch+json`` (RFC 7386), ``application/strategic-merge-patch+json``
(merge patch, plus lists of objects merged by ``name`` as containers are) and
``application/json-patch+json`` (RFC 6902 add/replace/remove/test). ``PUT`` honours
``metadata.resourceVersion`` (409 Conflict on a stale write), like the real server.

Controllers (run on every request and by a background ticker):

* Deployment → ReplicaSets: one ReplicaSet per distinct pod template (``pod-template-hash``);
  a template change creates a new ReplicaSet with ``deployment.kubernetes.io/revision`` = max + 1,
  and going back to an older template (rollback) re-uses that ReplicaSet and gives it the next
  revision — exactly what ``kubectl rollout history/undo`` see on a real cluster. Rolling update:
  old ReplicaSets keep pods until the new one has enough Ready pods (maxUnavailable 25 %, ≥ 1).
* ReplicaSet → Pods, matching ``spec.replicas``.
* Scheduler: a pod is scheduled only while the cluster has capacity (``capacity_fn(cluster)``
  pods, all namespaces); beyond that it stays ``Pending`` with a ``FailedScheduling`` warning.
  When capacity shrinks, the newest pods are evicted (and recreated Pending).
* Kubelet: a scheduled pod becomes Ready after the latency profile's ``k8s.pod_ready`` delay.
* HPA: keeps a deployment's ``spec.replicas`` within ``[minReplicas, maxReplicas]`` (it does not
  act on a deployment scaled to 0, like the real controller).
* Deployment status (replicas, updated/ready/available/unavailable, observedGeneration,
  Available/Progressing conditions) is derived from the pods, so ``rollout status`` logic is honest.

The in-process API (``ready_pods``, ``get``, ``crash_pod``, ``set_node_condition`` …) is thread-safe
and meant for tests and the sandbox manager. :func:`seed_site` creates one site's objects from
:class:`dr.topology.Estate`. Secret values are never logged.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import logging
import math
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from dr.sandbox.latency import LatencyProfile

if TYPE_CHECKING:
    from dr.topology import Estate, SiteView

log = logging.getLogger(__name__)

REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"

Obj = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


RESOURCES: dict[str, Resource] = {
    r.plural: r
    for r in (
        Resource("", "v1", "namespaces", "Namespace", namespaced=False),
        Resource("", "v1", "nodes", "Node", namespaced=False),
        Resource("", "v1", "pods", "Pod"),
        Resource("", "v1", "configmaps", "ConfigMap"),
        Resource("", "v1", "secrets", "Secret"),
        Resource("", "v1", "services", "Service"),
        Resource("", "v1", "events", "Event"),
        Resource("apps", "v1", "deployments", "Deployment"),
        Resource("apps", "v1", "replicasets", "ReplicaSet"),
        Resource("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler"),
        Resource("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"),
    )
}


class ApiError(Exception):
    """An error the fake server answers with a ``Status`` object."""

    def __init__(self, code: int, reason: str, message: str, kind: str = "", name: str = "") -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.kind, self.name = code, reason, message, kind, name

    def status(self) -> Obj:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": {"name": self.name, "kind": self.kind},
            "code": self.code,
        }


def _now_iso(wall: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if wall is None else wall, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ----------------------------------------------------------------------------------------------
# Patches and selectors
# ----------------------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Merge patch where lists of objects that all carry ``name`` merge by name (containers, ports)."""
    if isinstance(patch, dict):
        if patch.get("$patch") == "replace":
            return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
        out = copy.deepcopy(target) if isinstance(target, dict) else {}
        for key, value in patch.items():
            if key.startswith("$"):
                continue
            if value is None:
                out.pop(key, None)
            else:
                out[key] = strategic_merge_patch(out.get(key), value)
        return out
    if (
        isinstance(patch, list)
        and isinstance(target, list)
        and patch
        and all(isinstance(i, dict) and "name" in i for i in patch)
        and all(isinstance(i, dict) and "name" in i for i in target)
    ):
        merged = [copy.deepcopy(i) for i in target]
        for item in patch:
            idx = next((n for n, cur in enumerate(merged) if cur["name"] == item["name"]), None)
            if item.get("$patch") == "delete":
                if idx is not None:
                    merged.pop(idx)
            elif idx is None:
                merged.append(copy.deepcopy(item))
            else:
                merged[idx] = strategic_merge_patch(merged[idx], item)
        return merged
    return copy.deepcopy(patch)


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, "Invalid", f"json patch path {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(doc: Any, ops: list[Obj]) -> Any:
    """RFC 6902 JSON patch (add, replace, remove, test, copy, move)."""
    out = copy.deepcopy(doc)

    def parent(parts: list[str]) -> tuple[Any, str]:
        cur = out
        for part in parts[:-1]:
            cur = cur[int(part)] if isinstance(cur, list) else cur[part]
        return cur, parts[-1]

    def get(parts: list[str]) -> Any:
        cur = out
        for part in parts:
            cur = cur[int(part)] if isinstance(cur, list) else cur[part]
        return cur

    for op in ops:
        kind, parts = op.get("op"), _pointer(str(op.get("path", "")))
        try:
            if kind == "test":
                if get(parts) != op.get("value"):
                    raise ApiError(422, "Invalid", f"json patch test failed at {op.get('path')}")
                continue
            value = copy.deepcopy(get(_pointer(op["from"]))) if kind in ("copy", "move") else op.get("value")
            if kind == "move":
                p, k = parent(_pointer(op["from"]))
                if isinstance(p, list):
                    p.pop(int(k))
                else:
                    del p[k]
            if not parts:
                out = copy.deepcopy(value)
                continue
            p, k = parent(parts)
            if kind in ("add", "copy", "move"):
                if isinstance(p, list):
                    p.insert(len(p) if k == "-" else int(k), copy.deepcopy(value))
                else:
                    p[k] = copy.deepcopy(value)
            elif kind == "replace":
                if isinstance(p, list):
                    p[int(k)] = copy.deepcopy(value)
                else:
                    if k not in p:
                        raise ApiError(422, "Invalid", f"json patch replace: {op.get('path')} does not exist")
                    p[k] = copy.deepcopy(value)
            elif kind == "remove":
                if isinstance(p, list):
                    p.pop(int(k))
                else:
                    del p[k]
            else:
                raise ApiError(422, "Invalid", f"unsupported json patch op {kind!r}")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ApiError(422, "Invalid", f"json patch {kind} {op.get('path')} failed: {exc}") from None
    return out


_SEL_IN = re.compile(r"^\s*(!?)([\w./-]+)\s*(?:(in|notin)\s*\(([^)]*)\)|(==|=|!=)\s*([\w./-]*))?\s*$")


def _split_selector(selector: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def label_selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """Kubernetes label selector syntax: ``a=b,c!=d,e in (x,y),f notin (z),g,!h``."""
    for term in _split_selector(selector or ""):
        m = _SEL_IN.match(term)
        if not m:
            raise ApiError(400, "BadRequest", f"unable to parse requirement {term!r} in labelSelector")
        neg, key, setop, values, op, value = m.groups()
        if setop:
            allowed = {v.strip() for v in values.split(",") if v.strip()}
            if (setop == "in") != (labels.get(key) in allowed):
                return False
        elif op:
            if (op == "!=") == (labels.get(key) == value):
                return False
        elif bool(neg) == (key in labels):
            return False
    return True


def _dig(obj: Obj, path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def field_selector_matches(selector: str, obj: Obj) -> bool:
    for term in [t for t in (selector or "").split(",") if t.strip()]:
        m = re.match(r"^\s*([\w.]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if not m:
            raise ApiError(400, "BadRequest", f"unable to parse fieldSelector term {term!r}")
        path, op, value = m.groups()
        actual = _dig(obj, path)
        actual = "" if actual is None else str(actual)
        if (op == "!=") == (actual == value):
            return False
    return True


def _pod_ip(name: str) -> str:
    n = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16)
    return f"10.0.{(n >> 8) % 250}.{n % 250 + 2}"


def template_hash(template: Obj) -> str:
    """Stable hash of a pod template (ignoring the hash label itself), like pod-template-hash."""
    clean = copy.deepcopy(template)
    clean.get("metadata", {}).get("labels", {}).pop(HASH_LABEL, None)
    digest = hashlib.sha256(json.dumps(clean, sort_keys=True).encode()).hexdigest()
    return "".join(c for c in digest if c in "bcdfghjklmnpqrstvwxz2456789")[:10] or digest[:10]


# ----------------------------------------------------------------------------------------------
# The cluster state and its controllers
# ----------------------------------------------------------------------------------------------


@dataclass
class _PodState:
    created: float
    ready_delay: float
    scheduled_at: float | None = None
    restarts: int = 0
    crashed_at: float | None = None
    event_warned: bool = False


@dataclass
class FakeKubeApi:
    """One fake cluster: state, controllers, and (after :meth:`start`) an HTTP API on ``url``."""

    cluster: str
    latency: LatencyProfile = field(default_factory=LatencyProfile)
    # Pods the cluster can run (all namespaces); None = unlimited.
    capacity_fn: Callable[[str], int] | None = None
    pods_per_node: int = 4
    clock: Callable[[], float] = time.monotonic
    tick_interval: float = 0.05
    region: str = "local"

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._store: dict[str, dict[tuple[str, str], Obj]] = {p: {} for p in RESOURCES}
        self._pods: dict[tuple[str, str], _PodState] = {}
        self._node_conditions: dict[tuple[str, str], tuple[str, str]] = {}
        self._nodes_key: tuple[Any, ...] | None = None  # what _nodes_controller last built from
        self._rv = 0
        self._seq = 0
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.requests = 0
        # RBAC rules this cluster refuses to the caller: (verb, group, resource, subresource), as a
        # SelfSubjectAccessReview asks them (everything else is allowed, as for a cluster admin).
        self.rbac_denied: set[tuple[str, str, str, str]] = set()
        # Called with (method, path, body) for every write request that reached the server, before
        # it is applied (tests count side effects server-side: a kill -9 can lose a sent request).
        self.on_write: Callable[[str, str, Any], None] | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"fake kube API for {self.cluster} is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def start(self, host: str = "127.0.0.1", port: int = 0) -> FakeKubeApi:
        if self._server is not None:
            return self
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._stop.clear()
        serve = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name=f"kubeapi-{self.cluster}", daemon=True
        )
        tick = threading.Thread(target=self._ticker, name=f"kubeapi-tick-{self.cluster}", daemon=True)
        self._threads = [serve, tick]
        for t in self._threads:
            t.start()
        log.info("fake kube API for %s on %s", self.cluster, self.url)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for t in self._threads:
            t.join(timeout=5)
        self._server = None
        self._threads = []

    def __enter__(self) -> FakeKubeApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _ticker(self) -> None:
        settled: tuple[int, int | None] | None = None
        while not self._stop.wait(self.tick_interval):
            try:
                key = self._inputs()
                if key is not None and key == settled:
                    continue  # nothing a controller reads has changed: an idle cluster costs no CPU
                settled = self._inputs() if self.reconcile() else None
            except Exception:  # a controller bug must not kill the ticker
                log.exception("fake kube API %s: reconcile failed", self.cluster)

    def _inputs(self) -> tuple[int, int | None] | None:
        """What the controllers read besides the clock (the store's revision, the node capacity),
        or None while the clock alone can change the state (a pod scheduled but not yet Ready)."""
        with self._lock:
            now = self.clock()
            if any(st.scheduled_at is not None and not self._is_ready(st, now) for st in self._pods.values()):
                return None
            return (self._rv, self.capacity())

    def kubeconfig_cluster(self) -> Obj:
        """The kubeconfig entries (cluster, user, context) for this API, context named by the cluster."""
        return {
            "cluster": {"name": self.cluster, "cluster": {"server": self.url}},
            "user": {"name": f"{self.cluster}-user", "user": {"token": "sandbox"}},
            "context": {
                "name": self.cluster,
                "context": {"cluster": self.cluster, "user": f"{self.cluster}-user"},
            },
        }

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
            meta.setdefault("creationTimestamp", _now_iso())
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
                self._pods[(namespace, name)] = _PodState(
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

    # -- controllers --------------------------------------------------------------------------------
    def capacity(self) -> int | None:
        return None if self.capacity_fn is None else max(0, int(self.capacity_fn(self.cluster)))

    def reconcile(self) -> bool:
        """Run the controllers until the state settles (at most a few passes; idempotent).

        Returns whether it settled (the last pass changed nothing)."""
        with self._lock:
            for _ in range(6):
                before = self._rv
                self._reconcile_once()
                if self._rv == before:
                    return True
            return False

    def _reconcile_once(self) -> None:
        with self._lock:
            now = self.clock()
            self._hpa_controller()
            for dep in list(self._store["deployments"].values()):
                self._deployment_controller(dep)
            for rs in list(self._store["replicasets"].values()):
                self._replicaset_controller(rs, now)
            self._nodes_controller()
            self._scheduler(now)
            self._kubelet(now)
            for rs in list(self._store["replicasets"].values()):
                self._replicaset_status(rs)
            for dep in list(self._store["deployments"].values()):
                self._deployment_status(dep)

    def _owned(self, plural: str, owner: Obj) -> list[Obj]:
        uid = owner["metadata"]["uid"]
        return [
            o
            for o in self._objects(plural, owner["metadata"].get("namespace"))
            if any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or [])
        ]

    @staticmethod
    def _owner_ref(owner: Obj) -> Obj:
        return {
            "apiVersion": owner["apiVersion"],
            "kind": owner["kind"],
            "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }

    MAX_EVENTS = 2000  # like the API server's event TTL: old events go away

    def _event(self, involved: Obj, reason: str, message: str, type_: str = "Normal") -> None:
        events = self._store["events"]
        if len(events) >= self.MAX_EVENTS:
            for key in list(events)[: len(events) - self.MAX_EVENTS + 1]:
                del events[key]
        ns = involved["metadata"].get("namespace") or "default"
        name = f"{involved['metadata']['name']}.{self._suffix()}{self._suffix()}"
        ts = _now_iso()
        self._put(
            "events",
            {
                "metadata": {"name": name, "namespace": ns},
                "involvedObject": {
                    "kind": involved["kind"],
                    "name": involved["metadata"]["name"],
                    "namespace": ns,
                    "uid": involved["metadata"].get("uid"),
                    "apiVersion": involved["apiVersion"],
                },
                "reason": reason,
                "message": message,
                "type": type_,
                "count": 1,
                "firstTimestamp": ts,
                "lastTimestamp": ts,
                "source": {"component": "sandbox-kube"},
                "reportingComponent": "sandbox-kube",
            },
            new=True,
        )

    def _hpa_controller(self) -> None:
        for hpa in self._store["horizontalpodautoscalers"].values():
            ref = hpa["spec"].get("scaleTargetRef", {})
            if ref.get("kind") != "Deployment":
                continue
            dep = self._store["deployments"].get((hpa["metadata"]["namespace"], ref.get("name")))
            if dep is None:
                continue
            cur = dep["spec"].get("replicas", 1)
            lo, hi = hpa["spec"].get("minReplicas", 1), hpa["spec"]["maxReplicas"]
            want = min(max(cur, lo), hi) if cur > 0 else 0
            status = {"currentReplicas": cur, "desiredReplicas": want}
            if hpa.get("status") != status:
                self._put("horizontalpodautoscalers", {**hpa, "status": status})
            if want != cur:
                new = copy.deepcopy(dep)
                new["spec"]["replicas"] = want
                new["metadata"]["generation"] = int(dep["metadata"].get("generation", 1)) + 1
                self._put("deployments", new)
                self._event(
                    hpa,
                    "SuccessfulRescale",
                    f"New size: {want}; reason: replicas {cur} outside [{lo}, {hi}]",
                )

    def _deployment_controller(self, dep: Obj) -> None:
        spec = dep["spec"]
        desired = int(spec.get("replicas", 1))
        template = spec["template"]
        h = template_hash(template)
        owned = self._owned("replicasets", dep)
        revs = [int(rs["metadata"].get("annotations", {}).get(REVISION, "0")) for rs in owned]
        current = next((rs for rs in owned if rs["metadata"]["labels"].get(HASH_LABEL) == h), None)
        top = max(revs, default=0)
        if current is None:
            tmpl = copy.deepcopy(template)
            tmpl.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
            match = dict(spec["selector"].get("matchLabels", {}))
            match[HASH_LABEL] = h
            name = f"{dep['metadata']['name']}-{h}"
            current = self._put(
                "replicasets",
                {
                    "metadata": {
                        "name": name,
                        "namespace": dep["metadata"]["namespace"],
                        "labels": dict(tmpl["metadata"]["labels"]),
                        "annotations": {REVISION: str(top + 1)},
                        "ownerReferences": [self._owner_ref(dep)],
                    },
                    "spec": {"replicas": 0, "selector": {"matchLabels": match}, "template": tmpl},
                    "status": {"replicas": 0},
                },
                new=True,
            )
            self._event(dep, "ScalingReplicaSet", f"Created new replica set {name!r} (revision {top + 1})")
        elif int(current["metadata"].get("annotations", {}).get(REVISION, "0")) != top:
            new = copy.deepcopy(current)
            new["metadata"].setdefault("annotations", {})[REVISION] = str(top + 1)
            current = self._put("replicasets", new)
        old = [
            rs
            for rs in self._owned("replicasets", dep)
            if rs["metadata"]["uid"] != current["metadata"]["uid"]
        ]
        new_ready = current.get("status", {}).get("readyReplicas", 0) or 0
        max_unavailable = max(1, desired // 4)
        old_allowed = max(0, desired - max_unavailable - new_ready) if desired else 0
        self._scale_rs(current, desired, dep)
        for rs in sorted(old, key=lambda r: -int(r["metadata"].get("annotations", {}).get(REVISION, "0"))):
            have = int(rs["spec"].get("replicas", 0))
            keep = min(have, old_allowed)
            old_allowed -= keep
            self._scale_rs(rs, keep, dep)

    def _scale_rs(self, rs: Obj, replicas: int, dep: Obj) -> None:
        if int(rs["spec"].get("replicas", 0)) == replicas:
            return
        new = copy.deepcopy(rs)
        new["spec"]["replicas"] = replicas
        new["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/desired-replicas"] = str(
            dep["spec"].get("replicas", 1)
        )
        self._put("replicasets", new)
        self._event(dep, "ScalingReplicaSet", f"Scaled replica set {rs['metadata']['name']} to {replicas}")

    def _replicaset_controller(self, rs: Obj, now: float) -> None:
        want = int(rs["spec"].get("replicas", 0))
        pods = self._owned("pods", rs)
        ns = rs["metadata"]["namespace"]
        if len(pods) > want:
            # Delete unscheduled first, then not-ready, then the newest.
            def rank(p: Obj) -> tuple[int, int, float]:
                st = self._pods.get((ns, p["metadata"]["name"]))
                scheduled = st is not None and st.scheduled_at is not None
                return (int(scheduled), int(self._is_ready(st, now)), -(st.created if st else 0.0))

            for pod in sorted(pods, key=rank)[: len(pods) - want]:
                self._delete("pods", ns, pod["metadata"]["name"])
        for _ in range(want - len(pods)):
            tmpl = rs["spec"]["template"]
            name = f"{rs['metadata']['name']}-{self._suffix()}"
            pod_spec = copy.deepcopy(tmpl.get("spec") or {})
            pod = self._put(
                "pods",
                {
                    "metadata": {
                        "name": name,
                        "namespace": ns,
                        "labels": dict(tmpl.get("metadata", {}).get("labels") or {}),
                        "annotations": dict(tmpl.get("metadata", {}).get("annotations") or {}),
                        "ownerReferences": [self._owner_ref(rs)],
                    },
                    "spec": pod_spec,
                    "status": {"phase": "Pending"},
                },
                new=True,
            )
            self._pods[(ns, name)] = _PodState(
                created=now, ready_delay=self.latency.duration("k8s.pod_ready")
            )
            self._event(pod, "SuccessfulCreate", f"Created pod: {name}")

    def _node_names(self) -> list[str]:
        cap = self.capacity()
        count = 3 if cap is None else math.ceil(cap / max(1, self.pods_per_node))
        return [f"ip-10-0-{i // 250}-{10 + i % 250}.{self.cluster}.internal" for i in range(count)]

    def _nodes_controller(self) -> None:
        wanted = self._node_names()

        def inputs() -> tuple[Any, ...]:
            return (
                tuple(wanted),
                tuple(sorted(self._node_conditions.items())),
                tuple(o["metadata"].get("resourceVersion") for o in self._store["nodes"].values()),
            )

        # Unchanged inputs and untouched node objects: nothing to rebuild (a pass runs on every
        # request; a 500-pod test cluster has 125 nodes).
        if inputs() == self._nodes_key:
            return
        for key in [k for k in self._store["nodes"] if k[1] not in wanted]:
            del self._store["nodes"][key]
        for name in wanted:
            conditions = []
            for ctype, default in (
                ("MemoryPressure", "False"),
                ("DiskPressure", "False"),
                ("PIDPressure", "False"),
                ("Ready", "True"),
            ):
                status, reason = self._node_conditions.get((name, ctype), (default, ""))
                conditions.append(
                    {
                        "type": ctype,
                        "status": status,
                        "reason": reason or ("KubeletReady" if ctype == "Ready" else f"KubeletHasNo{ctype}"),
                        "message": reason or "",
                    }
                )
            old = self._store["nodes"].get(("", name))
            node: Obj = {
                "metadata": {
                    "name": name,
                    "labels": {
                        "kubernetes.io/hostname": name,
                        "eks.amazonaws.com/nodegroup": "sandbox",
                        "topology.kubernetes.io/region": self.region,
                    },
                },
                "spec": {},
                "status": {
                    "capacity": {"pods": str(self.pods_per_node)},
                    "allocatable": {"pods": str(self.pods_per_node)},
                    "conditions": conditions,
                },
            }
            if old is not None:
                node["metadata"] = {**old["metadata"], "labels": node["metadata"]["labels"]}
            self._put("nodes", node, new=old is None)
        self._nodes_key = inputs()  # with the node objects as this pass left them

    def _scheduler(self, now: float) -> None:
        cap = self.capacity()
        nodes = self._node_names()
        states = sorted(self._pods.items(), key=lambda kv: kv[1].created)
        scheduled = [k for k, s in states if s.scheduled_at is not None]
        if cap is not None and len(scheduled) > cap:
            for ns, name in scheduled[cap:]:  # newest evicted first
                pod = self._store["pods"].get((ns, name))
                if pod is not None:
                    self._event(pod, "Evicted", "The node was removed: insufficient capacity", "Warning")
                    self._delete("pods", ns, name)
            scheduled = scheduled[:cap]
        used = len(scheduled)
        for key, st in states:
            if st.scheduled_at is not None or key not in self._pods:
                continue
            pod = self._store["pods"].get(key)
            if pod is None:
                continue
            if cap is None or used < cap:
                st.scheduled_at = now
                node = nodes[min(used // max(1, self.pods_per_node), len(nodes) - 1)] if nodes else "node-0"
                new = copy.deepcopy(pod)
                new["spec"]["nodeName"] = node
                self._put("pods", new)
                self._event(pod, "Scheduled", f"Successfully assigned {key[0]}/{key[1]} to {node}")
                used += 1
            elif not st.event_warned:
                st.event_warned = True
                self._event(
                    pod,
                    "FailedScheduling",
                    f"0/{len(nodes)} nodes are available: {len(nodes)} Too many pods. preemption: "
                    f"0/{len(nodes)} nodes are available: no preemption victims found.",
                    "Warning",
                )

    def _is_ready(self, st: _PodState | None, now: float) -> bool:
        if st is None or st.scheduled_at is None:
            return False
        start = st.scheduled_at if st.crashed_at is None else max(st.scheduled_at, st.crashed_at)
        return now >= start + st.ready_delay

    def _kubelet(self, now: float) -> None:
        for (ns, name), st in list(self._pods.items()):
            pod = self._store["pods"].get((ns, name))
            if pod is None:
                continue
            ready = self._is_ready(st, now)
            containers = (pod.get("spec") or {}).get("containers") or [{"name": "app", "image": "unknown"}]
            ts = pod["metadata"]["creationTimestamp"]
            if st.scheduled_at is None:
                status: Obj = {
                    "phase": "Pending",
                    "conditions": [
                        {
                            "type": "PodScheduled",
                            "status": "False",
                            "reason": "Unschedulable",
                            "message": "0 nodes are available: Too many pods.",
                        }
                    ],
                    "qosClass": "BestEffort",
                }
            else:
                state: Obj = (
                    {"running": {"startedAt": ts}}
                    if ready
                    else {
                        "waiting": {"reason": "ContainerCreating" if not st.restarts else "CrashLoopBackOff"}
                    }
                )
                status = {
                    "phase": "Running" if ready or st.restarts else "Pending",
                    "hostIP": "10.0.0.10",
                    "podIP": _pod_ip(name),
                    "startTime": ts,
                    "conditions": [
                        {"type": "PodScheduled", "status": "True"},
                        {"type": "Initialized", "status": "True"},
                        {"type": "ContainersReady", "status": str(ready)},
                        {"type": "Ready", "status": str(ready)},
                    ],
                    "containerStatuses": [
                        {
                            "name": c.get("name", "app"),
                            "image": c.get("image", "unknown"),
                            "imageID": "",
                            "ready": ready,
                            "started": ready,
                            "restartCount": st.restarts,
                            "state": state,
                        }
                        for c in containers
                    ],
                    "qosClass": "BestEffort",
                }
            if pod.get("status") != status:
                self._put("pods", {**pod, "status": status})

    def _replicaset_status(self, rs: Obj) -> None:
        pods = self._owned("pods", rs)
        now = self.clock()
        ready = sum(
            1
            for p in pods
            if self._is_ready(self._pods.get((p["metadata"]["namespace"], p["metadata"]["name"])), now)
        )
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        if rs.get("status") != status:
            self._put("replicasets", {**rs, "status": status})

    def _deployment_status(self, dep: Obj) -> None:
        owned = self._owned("replicasets", dep)
        h = template_hash(dep["spec"]["template"])
        desired = int(dep["spec"].get("replicas", 1))
        total = sum(rs.get("status", {}).get("replicas", 0) for rs in owned)
        ready = sum(rs.get("status", {}).get("readyReplicas", 0) for rs in owned)
        new = next((rs for rs in owned if rs["metadata"]["labels"].get(HASH_LABEL) == h), None)
        updated = new.get("status", {}).get("replicas", 0) if new else 0
        new_ready = new.get("status", {}).get("readyReplicas", 0) if new else 0
        max_unavailable = max(1, desired // 4) if desired else 0
        complete = updated == desired and total == desired and new_ready == desired
        old = dep.get("status", {})
        prev = {c["type"]: c for c in old.get("conditions", [])}

        def cond(ctype: str, ok: bool, reason: str, message: str) -> Obj:
            status = "True" if ok else "False"
            before = prev.get(ctype)
            changed = before is None or before.get("status") != status
            ts = _now_iso() if changed or before is None else before.get("lastTransitionTime", _now_iso())
            return {
                "type": ctype,
                "status": status,
                "reason": reason,
                "message": message,
                "lastUpdateTime": ts,
                "lastTransitionTime": ts,
            }

        name = new["metadata"]["name"] if new else dep["metadata"]["name"]
        available_ok = ready >= desired - max_unavailable
        status: Obj = {
            "observedGeneration": dep["metadata"].get("generation", 1),
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(0, max(desired, total) - ready),
            "conditions": [
                cond(
                    "Available",
                    available_ok,
                    "MinimumReplicasAvailable" if available_ok else "MinimumReplicasUnavailable",
                    "Deployment has minimum availability."
                    if available_ok
                    else "Deployment does not have minimum availability.",
                ),
                cond(
                    "Progressing",
                    True,
                    "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
                    f'ReplicaSet "{name}" has successfully progressed.'
                    if complete
                    else f'ReplicaSet "{name}" is progressing.',
                ),
            ],
        }
        for key in ("readyReplicas", "availableReplicas", "updatedReplicas", "unavailableReplicas"):
            if not status[key]:
                status.pop(key)
        meta = dep["metadata"]
        rev = (new or {}).get("metadata", {}).get("annotations", {}).get(REVISION)
        if rev and (meta.get("annotations") or {}).get(REVISION) != rev:
            meta = {**meta, "annotations": {**(meta.get("annotations") or {}), REVISION: rev}}
        if old != status or meta is not dep["metadata"]:
            self._put("deployments", {**dep, "metadata": meta, "status": status})

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

    def crash_pod(self, namespace: str, name: str) -> None:
        """Simulate a container crash: restartCount+1, not Ready for another ready delay."""
        with self._lock:
            self._get("pods", namespace, name)
            st = self._pods[(namespace, name)]
            st.restarts += 1
            st.crashed_at = self.clock()
            pod = self._store["pods"][(namespace, name)]
            self._event(pod, "BackOff", "Back-off restarting failed container", "Warning")
        self.reconcile()

    def backdate_pods(self, namespace: str, seconds: float) -> None:
        """Make the namespace's pods look ``seconds`` older (creationTimestamp): a cluster that has
        run for a while, for tests that compare pod ages with other resources'."""
        with self._lock:
            for (ns, _name), pod in self._store["pods"].items():
                if ns == namespace:
                    born = datetime.fromisoformat(pod["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
                    pod["metadata"]["creationTimestamp"] = _now_iso(born.timestamp() - seconds)

    def set_node_condition(self, node: str, ctype: str, status: str, reason: str = "") -> None:
        """Set a node condition (e.g. MemoryPressure True) for triage tests and fault drills."""
        with self._lock:
            self._node_conditions[(node, ctype)] = (status, reason)
        self.reconcile()

    def node_names(self) -> list[str]:
        with self._lock:
            return self._node_names()


# ----------------------------------------------------------------------------------------------
# HTTP
# ----------------------------------------------------------------------------------------------

_PATH = re.compile(
    r"^/(?:api/(?P<cv>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+))?(?:/(?P<plural>[^/]+))?(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?/?$"
)


_ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


def _make_handler(api: FakeKubeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "dr-sandbox-kube/1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out as separate writes: without this, Nagle + delayed ACK add 40 ms.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("kubeapi %s: " + format, api.cluster, *args)

        def _send(self, code: int, body: Obj) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if not raw:
                return {}
            try:
                return json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ApiError(400, "BadRequest", f"request body is not JSON: {exc}") from None

        def _route(self, method: str) -> None:
            api.requests += 1
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            try:
                if url.path in ("/healthz", "/livez", "/readyz"):
                    data = b"ok"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if url.path == "/version":
                    self._send(200, {"major": "1", "minor": "31", "gitVersion": "v1.31.0-dr-sandbox"})
                    return
                body = self._body() if method in ("POST", "PUT", "PATCH") else None
                if method == "POST" and url.path.rstrip("/") == _ACCESS_REVIEWS:
                    self._send(201, api.access_review(body))
                    return
                if method != "GET" and api.on_write is not None:
                    api.on_write(method, url.path, body)
                self._send(*self._dispatch(method, url.path, query, body))
            except ApiError as err:
                self._send(err.code, err.status())
            except Exception as exc:  # pragma: no cover - surfaced to the client as a 500
                log.exception("kubeapi %s: %s %s failed", api.cluster, method, url.path)
                self._send(500, ApiError(500, "InternalError", f"internal error: {exc}").status())

        def _dispatch(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Obj]:
            m = _PATH.match(path)
            if not m:
                raise ApiError(404, "NotFound", f"the server could not find the requested resource {path}")
            group = m["group"] or ""
            version = m["cv"] or m["version"]
            ns, plural, name, sub = m["ns"], m["plural"], m["name"], m["sub"]
            if ns is not None and plural is None:  # /api/v1/namespaces/<name>
                plural, name, ns = "namespaces", ns, None
            res = RESOURCES.get(plural or "")
            if res is None or res.group != group or res.version != version:
                raise ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")
            namespace = ns or ""
            if query.get("watch") in ("true", "1"):
                raise ApiError(405, "MethodNotAllowed", "watch is not supported by the sandbox API")
            if sub is not None:
                if plural != "deployments" or sub not in ("scale", "status") or name is None:
                    raise ApiError(404, "NotFound", f"subresource {sub!r} of {plural} is not served")
                if sub == "status":
                    return 200, api.get(plural, namespace, name)
                if method == "GET":
                    return 200, api.get_scale(namespace, name)
                if method == "PUT":
                    return 200, api.set_scale(namespace, name, (body.get("spec") or {}).get("replicas"))
                if method == "PATCH":
                    ctype = self.headers.get("Content-Type", "")
                    scale = api.get_scale(namespace, name)
                    patched = (
                        json_patch(scale, body)
                        if "json-patch" in ctype
                        else merge_patch(scale, body if isinstance(body, dict) else {})
                    )
                    return 200, api.set_scale(namespace, name, patched["spec"].get("replicas"))
                raise ApiError(405, "MethodNotAllowed", f"{method} not allowed on scale")
            if name is None:
                if method == "GET":
                    items = api.list_objects(
                        plural,
                        ns if res.namespaced else None,
                        query.get("labelSelector", ""),
                        query.get("fieldSelector", ""),
                    )
                    return 200, {
                        "kind": f"{res.kind}List",
                        "apiVersion": res.api_version,
                        "metadata": {"resourceVersion": str(api._rv)},
                        "items": items,
                    }
                if method == "POST":
                    if not isinstance(body, dict):
                        raise ApiError(400, "BadRequest", "body must be an object")
                    if res.namespaced and ns is None:
                        raise ApiError(405, "MethodNotAllowed", "create needs a namespace in the path")
                    if query.get("dryRun"):
                        return 201, body
                    return 201, api.create(plural, namespace, body)
                raise ApiError(405, "MethodNotAllowed", f"{method} on a collection is not supported")
            if method == "GET":
                return 200, api.get(plural, namespace, name)
            if query.get("dryRun") and method in ("PUT", "PATCH", "DELETE"):
                return 200, api.get(plural, namespace, name)
            if method == "PUT":
                return 200, api.replace(plural, namespace, name, body)
            if method == "PATCH":
                return 200, api.patch(plural, namespace, name, body, self.headers.get("Content-Type", ""))
            if method == "DELETE":
                obj = api.delete(plural, namespace, name)
                return 200, obj
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_PUT(self) -> None:
            self._route("PUT")

        def do_PATCH(self) -> None:
            self._route("PATCH")

        def do_DELETE(self) -> None:
            self._route("DELETE")

    return Handler


# ----------------------------------------------------------------------------------------------
# Seeding from the topology
# ----------------------------------------------------------------------------------------------


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


def seed_site(api: FakeKubeApi, estate: Estate, view: SiteView, database_url: str) -> None:
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
