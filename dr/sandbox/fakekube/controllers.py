"""The controllers of the fake Kubernetes API: deployment, replica set, HPA, nodes, scheduler, kubelet.

They run on every request (each read and write calls :meth:`Controllers.reconcile`) and from the
server's background ticker, until the state settles:

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
* Nodes: derived from the capacity (``pods_per_node`` pods each), with conditions tests can set.
* Deployment status (replicas, updated/ready/available/unavailable, observedGeneration,
  Available/Progressing conditions) is derived from the pods, so ``rollout status`` logic is honest.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dr.sandbox.fakekube.resources import Obj, now_iso
from dr.sandbox.fakekube.store import ObjectStore, PodState

REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"


def _pod_ip(name: str) -> str:
    n = int(hashlib.sha1(name.encode()).hexdigest()[:8], 16)
    return f"10.0.{(n >> 8) % 250}.{n % 250 + 2}"


def template_hash(template: Obj) -> str:
    """Stable hash of a pod template (ignoring the hash label itself), like pod-template-hash."""
    clean = copy.deepcopy(template)
    clean.get("metadata", {}).get("labels", {}).pop(HASH_LABEL, None)
    digest = hashlib.sha256(json.dumps(clean, sort_keys=True).encode()).hexdigest()
    return "".join(c for c in digest if c in "bcdfghjklmnpqrstvwxz2456789")[:10] or digest[:10]


@dataclass
class Controllers(ObjectStore):
    """The object store with the controllers that derive ReplicaSets, Pods, Nodes and statuses."""

    # Pods the cluster can run (all namespaces); None = unlimited.
    capacity_fn: Callable[[str], int] | None = None
    pods_per_node: int = 4
    region: str = "local"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._node_conditions: dict[tuple[str, str], tuple[str, str]] = {}
        self._nodes_key: tuple[Any, ...] | None = None  # what _nodes_controller last built from

    # -- controllers --------------------------------------------------------------------------------
    def _inputs(self) -> tuple[int, int | None] | None:
        """What the controllers read besides the clock (the store's revision, the node capacity),
        or None while the clock alone can change the state (a pod scheduled but not yet Ready)."""
        with self._lock:
            now = self.clock()
            if any(st.scheduled_at is not None and not self._is_ready(st, now) for st in self._pods.values()):
                return None
            return (self._rv, self.capacity())

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
        ts = now_iso()
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
            self._pods[(ns, name)] = PodState(created=now, ready_delay=self.latency.duration("k8s.pod_ready"))
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

    def _is_ready(self, st: PodState | None, now: float) -> bool:
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
            ts = now_iso() if changed or before is None else before.get("lastTransitionTime", now_iso())
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

    # -- in-process faults for tests and drills -------------------------------------------------------
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
                    pod["metadata"]["creationTimestamp"] = now_iso(born.timestamp() - seconds)

    def set_node_condition(self, node: str, ctype: str, status: str, reason: str = "") -> None:
        """Set a node condition (e.g. MemoryPressure True) for triage tests and fault drills."""
        with self._lock:
            self._node_conditions[(node, ctype)] = (status, reason)
        self.reconcile()

    def node_names(self) -> list[str]:
        with self._lock:
            return self._node_names()
