"""Kubernetes adapter used by procedures: deployments, rollouts, config, secrets, pods, policies.

:func:`connect` builds a client for a cluster: from the kubeconfig context named like the cluster
(the sandbox writes one per cluster; operators can too), else — real AWS — from EKS
``DescribeCluster`` (endpoint + CA) and an IAM bearer token (see :func:`dr.aws.eks.cluster_token`).

:class:`Kube` wraps the ``kubernetes`` client (imported lazily: ``dr --help`` never loads it). It
uses the client's connection, configuration and authentication (kubeconfig, EKS token refresh,
TLS) but not its generated per-group API classes and pydantic models: objects come back as the
API's JSON (camelCase, what ``kubectl get -o json`` shows). Those modules cost about a second of
imports per process (``core_v1_api`` alone ~0.5 s) and a model validation per object, for the
handful of fields read here.

* every ``ApiException`` becomes a typed :mod:`dr.errors` error naming kind/name/namespace/cluster;
* ``read_only=True`` (``--dry-run``) refuses every write before it is sent;
* secret values are returned as :class:`dr.aws.secretsmanager.SecretValue` and never logged;
* waits poll with adaptive back-off and a timeout (never a fixed sleep).

Rollout undo follows ``kubectl rollout undo``: the ReplicaSets owned by the deployment carry the
``deployment.kubernetes.io/revision`` annotation; the target revision's pod template (minus the
``pod-template-hash`` label) is written back to the deployment with a JSON patch.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dr.aws.secretsmanager import SecretValue
from dr.errors import BadInput, DrError, NotFound, OperationFailed, TimeoutExpired

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.topology import SiteView

log = logging.getLogger(__name__)

REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
REQUEST_TIMEOUT = (5.0, 30.0)


class ReadOnlyKube(DrError):
    """A write to the Kubernetes API was attempted in a dry run."""

    exit_code = 1


# ----------------------------------------------------------------------------------------------
# Result types
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeploymentInfo:
    name: str
    namespace: str
    replicas: int
    ready: int
    updated: int
    available: int
    total: int
    generation: int
    observed_generation: int
    revision: int | None
    images: tuple[str, ...]
    annotations: dict[str, str] = field(default_factory=dict)
    template_annotations: dict[str, str] = field(default_factory=dict)

    @property
    def rolled_out(self) -> bool:
        """``kubectl rollout status`` done: new spec observed, all replicas updated and available."""
        return (
            self.observed_generation >= self.generation
            and self.updated >= self.replicas
            and self.total <= self.updated
            and self.available >= self.updated
            and self.ready >= self.replicas
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "replicas": self.replicas,
            "ready": self.ready,
            "updated": self.updated,
            "available": self.available,
            "total": self.total,
            "revision": self.revision,
            "images": list(self.images),
            "rolled_out": self.rolled_out,
        }


@dataclass(frozen=True)
class Revision:
    revision: int
    replica_set: str
    images: tuple[str, ...]
    restarted_at: str | None
    replicas: int
    current: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "revision": self.revision,
            "replica_set": self.replica_set,
            "images": list(self.images),
            "restarted_at": self.restarted_at,
            "replicas": self.replicas,
            "current": self.current,
        }


@dataclass(frozen=True)
class PodInfo:
    name: str
    namespace: str
    phase: str
    ready: bool
    restarts: int
    node: str | None
    labels: dict[str, str]
    reason: str | None = None
    age_seconds: float | None = None
    created: dt.datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "phase": self.phase,
            "ready": self.ready,
            "restarts": self.restarts,
            "node": self.node,
            "reason": self.reason,
            "labels": dict(self.labels),
        }


@dataclass(frozen=True)
class EventInfo:
    kind: str
    name: str
    reason: str
    message: str
    count: int
    last_seen: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "object": f"{self.kind}/{self.name}",
            "reason": self.reason,
            "message": self.message,
            "count": self.count,
            "last_seen": self.last_seen,
        }


@dataclass(frozen=True)
class NodeInfo:
    name: str
    ready: bool
    pressure: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ready": self.ready, "pressure": list(self.pressure)}


@dataclass(frozen=True)
class HpaInfo:
    name: str
    namespace: str
    deployment: str
    min_replicas: int
    max_replicas: int
    current: int | None
    desired: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "deployment": self.deployment,
            "min": self.min_replicas,
            "max": self.max_replicas,
            "current": self.current,
            "desired": self.desired,
        }


def _g(obj: Any, *path: str, default: Any = None) -> Any:
    """Read a nested field of an API object (JSON dict), tolerating missing levels on the way."""
    cur = obj
    for part in path:
        if not isinstance(cur, dict):
            return default
        cur = cur.get(part)
    return default if cur is None else cur


def _timestamp(value: Any) -> dt.datetime | None:
    """An API timestamp (RFC 3339, ``...Z``) as an aware datetime; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _selector(deployment: Any) -> str:
    """The deployment's ``spec.selector.matchLabels`` as a label selector (``k=v,…``)."""
    labels = _g(deployment, "spec", "selector", "matchLabels", default={}) or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


# ----------------------------------------------------------------------------------------------
# Connecting
# ----------------------------------------------------------------------------------------------


def default_kubeconfig() -> str | None:
    env = os.environ.get("KUBECONFIG")
    if env:
        return env.split(os.pathsep)[0]
    home = Path.home() / ".kube" / "config"
    return str(home) if home.exists() else None


def kubeconfig_contexts(path: str | None) -> list[str]:
    if not path or not Path(path).exists():
        return []
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []
    return [str(c.get("name")) for c in doc.get("contexts") or [] if isinstance(c, dict)]


def connect(
    cluster: str,
    region: str,
    *,
    kubeconfig: str | None = None,
    clients: ClientProvider | None = None,
    read_only: bool = False,
) -> Kube:
    """A :class:`Kube` for ``cluster``: kubeconfig context named ``cluster`` if any, else EKS + IAM."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    path = kubeconfig or default_kubeconfig()
    if cluster in kubeconfig_contexts(path):
        api_client = k8s_config.new_client_from_config(config_file=path, context=cluster)
        source = f"kubeconfig {path} context {cluster}"
    else:
        if clients is None:
            raise BadInput(
                f"no kubeconfig context named {cluster!r} ({path or 'no kubeconfig'}) and no AWS access to "
                "look the cluster up",
                resource=cluster,
                region=region,
                hint=f"run `aws eks update-kubeconfig --name {cluster} --region {region} --alias {cluster}` "
                "or pass --kubeconfig",
            )
        from dr.aws import eks

        info = eks.describe_cluster(clients, region, cluster)
        if info.status not in ("ACTIVE", "UPDATING"):
            raise OperationFailed(
                f"EKS cluster {cluster} in {region} is {info.status}", resource=cluster, region=region
            )
        cfg = k8s.Configuration(host=info.endpoint)
        ca = tempfile.NamedTemporaryFile(prefix=f"dr-{cluster}-ca-", suffix=".pem", delete=False)  # noqa: SIM115
        with ca:
            ca.write(eks.ca_pem(info))
        cfg.ssl_ca_cert = ca.name
        token_state: dict[str, Any] = {"token": None, "at": 0.0}

        def refresh(conf: Any) -> None:
            # Presigned tokens live 15 min server-side; refresh well before.
            if token_state["token"] is None or time.monotonic() - token_state["at"] > 600:
                token_state["token"] = eks.cluster_token(clients, region, cluster)
                token_state["at"] = time.monotonic()
            conf.api_key["BearerToken"] = token_state["token"]

        cfg.api_key_prefix["BearerToken"] = "Bearer"
        cfg.refresh_api_key_hook = refresh  # type: ignore[assignment]
        refresh(cfg)
        api_client = k8s.ApiClient(cfg)
        source = f"EKS {cluster} ({info.endpoint})"
    return Kube(api_client, cluster=cluster, region=region, read_only=read_only, source=source)


def resolve_kubeconfig(target: str, explicit: str | None = None) -> str | None:
    """The kubeconfig for ``target``: ``explicit`` (--kubeconfig), else the sandbox's (its
    state.json) with ``target == "sandbox"``, else $KUBECONFIG / ~/.kube/config (None: EKS + IAM)."""
    if explicit:
        return explicit
    if target == "sandbox":
        from dr.target import resolve_target

        return resolve_target("sandbox").kubeconfig
    return default_kubeconfig()


@dataclass
class KubeFactory:
    """Builds (and caches) one :class:`Kube` per site; read-only in dry runs.

    The one way procedures, commands and drills get Kubernetes clients: steps find it as
    ``StepServices.kube`` (:func:`dr.steps.base.kube_of`)."""

    kubeconfig: str | None = None
    clients: ClientProvider | None = None
    read_only: bool = False
    connect: Callable[..., Kube] | None = None
    _cache: dict[str, Kube] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def for_target(
        cls,
        target: str,
        *,
        kubeconfig: str | None = None,
        clients: ClientProvider | None = None,
        read_only: bool = False,
    ) -> KubeFactory:
        """The factory of a ``--target`` (kubeconfig by :func:`resolve_kubeconfig`)."""
        return cls(kubeconfig=resolve_kubeconfig(target, kubeconfig), clients=clients, read_only=read_only)

    def __call__(self, view: SiteView) -> Kube:
        name = view.cluster.name
        with self._lock:
            return self._get(view, name)

    def _get(self, view: SiteView, name: str) -> Kube:
        if name not in self._cache:
            if self.connect is not None:
                self._cache[name] = self.connect(view)
            else:
                self._cache[name] = connect(
                    name,
                    view.region,
                    kubeconfig=self.kubeconfig,
                    clients=self.clients,
                    read_only=self.read_only,
                )
        return self._cache[name]

    def close(self) -> None:
        for k in self._cache.values():
            k.close()
        self._cache.clear()


# ----------------------------------------------------------------------------------------------
# The adapter
# ----------------------------------------------------------------------------------------------


class Kube:
    """Kubernetes operations on one cluster."""

    def __init__(
        self,
        api_client: Any,
        *,
        cluster: str,
        region: str,
        read_only: bool = False,
        source: str = "",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        self.api_client = api_client
        self.cluster = cluster
        self.region = region
        self.read_only = read_only
        self.source = source
        self.clock = clock
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self.writes: list[str] = []

    def close(self) -> None:
        close = getattr(self.api_client, "close", None)
        if callable(close):
            close()

    # -- plumbing ----------------------------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str | None] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        """One API request through the client's configured connection; the answer's JSON.

        Errors surface as the client's ``ApiException`` (turned into dr errors by :meth:`_errors`).
        """
        from kubernetes.client.exceptions import ApiException

        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        method, url, headers, data, post = self.api_client.param_serialize(
            method,
            path,
            query_params=[(k, v) for k, v in (query or {}).items() if v],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        resp = self.api_client.call_api(method, url, headers, data, post, _request_timeout=REQUEST_TIMEOUT)
        text = (resp.read() or b"").decode("utf-8", "replace")
        if not 200 <= resp.status <= 299:
            raise ApiException.from_response(http_resp=resp, body=text, data=None)
        doc = json.loads(text) if text else {}
        return doc if isinstance(doc, dict) else {}

    @staticmethod
    def _apps(namespace: str, plural: str, name: str = "") -> str:
        return f"/apis/apps/v1/namespaces/{namespace}/{plural}" + (f"/{name}" if name else "")

    @staticmethod
    def _policies(namespace: str, name: str = "") -> str:
        return f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies" + (
            f"/{name}" if name else ""
        )

    @staticmethod
    def _hpas(namespace: str, name: str = "") -> str:
        return f"/apis/autoscaling/v2/namespaces/{namespace}/horizontalpodautoscalers" + (
            f"/{name}" if name else ""
        )

    @staticmethod
    def _core(namespace: str | None, plural: str, name: str = "") -> str:
        ns = f"/namespaces/{namespace}" if namespace else ""
        return f"/api/v1{ns}/{plural}" + (f"/{name}" if name else "")

    def where(self, namespace: str | None = None) -> str:
        ns = f"namespace {namespace} of " if namespace else ""
        return f"{ns}cluster {self.cluster} ({self.region})"

    @contextmanager
    def _errors(self, kind: str, name: str, namespace: str | None, action: str) -> Iterator[None]:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        resource = f"{kind} {name}"
        try:
            yield
        except ApiException as err:
            reason = _status_message(err)
            status = int(err.status or 0)
            where = self.where(namespace)
            if status == 404:
                raise NotFound(
                    f"{resource} not found in {where}",
                    resource=resource,
                    region=self.region,
                    code="NotFound",
                    hint="check the name in the stack files (dr topology) and the namespace",
                ) from None
            if status in (400, 422):
                raise BadInput(
                    f"{action} {resource} in {where} was refused: {reason}",
                    resource=resource,
                    region=self.region,
                    code=str(status),
                ) from None
            if status in (401, 403):
                raise OperationFailed(
                    f"{action} {resource} in {where}: not allowed ({status}): {reason}",
                    resource=resource,
                    region=self.region,
                    code=str(status),
                    hint="check your IAM identity is mapped in the cluster (aws-auth / access entries)",
                ) from None
            raise OperationFailed(
                f"{action} {resource} in {where} failed ({status}): {reason}",
                resource=resource,
                region=self.region,
                code=str(status),
            ) from None
        except HTTPError as err:
            raise OperationFailed(
                f"{action} {resource}: the API of {self.where()} did not answer ({type(err).__name__})",
                resource=resource,
                region=self.region,
                hint="check the cluster endpoint is reachable (VPN / network) and the cluster is ACTIVE",
            ) from None

    def _write(self, what: str) -> None:
        if self.read_only:
            raise ReadOnlyKube(f"dry run: refused to {what} in {self.where()} (a write)", region=self.region)
        self.writes.append(what)
        log.info("k8s %s: %s", self.cluster, what)

    def _wait(
        self,
        predicate: Callable[[], bool],
        *,
        timeout: float,
        what: str,
        first: float = 0.05,
        cap: float = 5.0,
    ) -> None:
        start = self.clock()
        interval = first
        while True:
            if predicate():
                return
            elapsed = self.clock() - start
            if elapsed >= timeout:
                raise TimeoutExpired(
                    f"timed out after {timeout:g}s waiting for {what} in {self.where()}",
                    resource=what,
                    region=self.region,
                    hint="check `dr ops triage` for Pending pods / FailedScheduling events",
                )
            # Adaptive: fast first polls, then grow; never more than 5 % of the time waited so far + 0.5 s.
            pause = min(interval, cap, max(0.5, 0.05 * elapsed), timeout - elapsed)
            self._sleep(max(0.0, pause))
            interval *= 1.6

    # -- deployments ---------------------------------------------------------------------------------
    def _read_deployment(self, namespace: str, name: str) -> Any:
        with self._errors("deployment", name, namespace, "read"):
            return self._request("GET", self._apps(namespace, "deployments", name))

    @staticmethod
    def _info(dep: Any) -> DeploymentInfo:
        status = _g(dep, "status")
        containers = _g(dep, "spec", "template", "spec", "containers", default=[])
        annotations = dict(_g(dep, "metadata", "annotations", default={}) or {})
        rev = annotations.get(REVISION)
        return DeploymentInfo(
            name=_g(dep, "metadata", "name"),
            namespace=_g(dep, "metadata", "namespace"),
            replicas=int(_g(dep, "spec", "replicas", default=1)),
            ready=int(_g(status, "readyReplicas", default=0)),
            updated=int(_g(status, "updatedReplicas", default=0)),
            available=int(_g(status, "availableReplicas", default=0)),
            total=int(_g(status, "replicas", default=0)),
            generation=int(_g(dep, "metadata", "generation", default=0)),
            observed_generation=int(_g(status, "observedGeneration", default=0)),
            revision=int(rev) if rev and rev.isdigit() else None,
            images=tuple(str(_g(c, "image", default="")) for c in containers),
            annotations=annotations,
            template_annotations=dict(
                _g(dep, "spec", "template", "metadata", "annotations", default={}) or {}
            ),
        )

    def get_deployment(self, namespace: str, name: str) -> DeploymentInfo:
        info = self._info(self._read_deployment(namespace, name))
        revisions = self._revisions(namespace, name)
        current = next((r.revision for r in revisions if r.current), None)
        if current is not None and info.revision is None:
            info = DeploymentInfo(**{**info.__dict__, "revision": current})
        return info

    def oldest_pod_created(self, namespace: str, name: str) -> dt.datetime | None:
        """When the oldest pod of the deployment (its selector's pods) was created; None: no pod.

        A pod without a creation time counts as older than anything (``datetime.min``, UTC).
        """
        pods = self.list_pods(namespace, _selector(self._read_deployment(namespace, name)))
        floor = dt.datetime.min.replace(tzinfo=dt.UTC)
        return min((p.created or floor for p in pods), default=None)

    def list_deployments(self, namespace: str) -> list[DeploymentInfo]:
        with self._errors("deployments", "*", namespace, "list"):
            items = self._request("GET", self._apps(namespace, "deployments")).get("items") or []
        return [self._info(d) for d in items]

    def scale_deployment(self, namespace: str, name: str, replicas: int) -> int:
        """Set ``spec.replicas`` through the scale subresource; returns the previous count."""
        if replicas < 0:
            raise BadInput(
                f"deployment {name}: replicas must be 0 or more (got {replicas})",
                resource=f"deployment {name}",
                region=self.region,
                hint="pass --replicas 0 or more",
            )
        with self._errors("deployment", name, namespace, "read scale of"):
            scale = self._request("GET", self._apps(namespace, "deployments", f"{name}/scale"))
        before = int(_g(scale, "spec", "replicas", default=0))
        if before == replicas:
            return before
        self._write(f"scale deployment {namespace}/{name} {before} -> {replicas}")
        with self._errors("deployment", name, namespace, "scale"):
            self._request(
                "PATCH",
                self._apps(namespace, "deployments", f"{name}/scale"),
                body={"spec": {"replicas": replicas}},
                content_type=MERGE,
            )
        return before

    def annotate_deployment(self, namespace: str, name: str, annotations: dict[str, str | None]) -> None:
        """Set (or, with None, remove) deployment annotations — state that must outlive the laptop."""
        self._write(f"annotate deployment {namespace}/{name} {sorted(annotations)}")
        with self._errors("deployment", name, namespace, "annotate"):
            self._request(
                "PATCH",
                self._apps(namespace, "deployments", name),
                body={"metadata": {"annotations": annotations}},
                content_type=MERGE,
            )

    def set_image(self, namespace: str, name: str, image: str) -> str:
        """``kubectl set image``: the deployment's first container runs ``image`` (a new revision);
        returns the container's name."""
        dep = self._read_deployment(namespace, name)
        containers = _g(dep, "spec", "template", "spec", "containers", default=[])
        if not containers:
            raise NotFound(
                f"deployment {name} in {self.where(namespace)} has no container",
                resource=f"deployment {name}",
                region=self.region,
            )
        container = str(containers[0].get("name", ""))
        self._write(f"set image deployment {namespace}/{name} {container}={image}")
        body = {"spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}}
        with self._errors("deployment", name, namespace, "set image of"):
            self._request(
                "PATCH", self._apps(namespace, "deployments", name), body=body, content_type=STRATEGIC
            )
        return container

    def rollout_status(self, namespace: str, name: str) -> DeploymentInfo:
        return self._info(self._read_deployment(namespace, name))

    def wait_rollout(self, namespace: str, name: str, *, timeout: float = 600.0) -> DeploymentInfo:
        """Wait until every replica runs the current template and is Ready (``rollout status``)."""
        last: dict[str, DeploymentInfo] = {}

        def done() -> bool:
            last["info"] = self.rollout_status(namespace, name)
            return last["info"].rolled_out

        try:
            self._wait(done, timeout=timeout, what=f"rollout of deployment {name}")
        except TimeoutExpired as err:
            info = last.get("info")
            if info is None:
                raise
            raise TimeoutExpired(
                f"{err.message} (replicas {info.replicas}, updated {info.updated}, ready {info.ready}, "
                f"old still running {max(0, info.total - info.updated)})",
                resource=err.resource,
                region=err.region,
                hint=err.hint,
            ) from None
        return last["info"]

    def rollout_restart(
        self,
        namespace: str,
        name: str,
        at: dt.datetime | None = None,
        *,
        annotations: dict[str, str] | None = None,
    ) -> str:
        """``kubectl rollout restart``: stamp the pod template; returns the timestamp used.

        ``annotations`` are set on the deployment in the SAME patch, so a marker recording the
        restart (an idempotency check) can never be missing after a restart that happened.
        """
        # Sub-second resolution: two restarts within one second must still change the template.
        stamp = (at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        dep = self._read_deployment(namespace, name)
        if int(_g(dep, "spec", "replicas", default=1)) == 0:
            log.info("deployment %s/%s has 0 replicas; restart only changes the template", namespace, name)
        self._write(f"rollout restart deployment {namespace}/{name}")
        body: dict[str, Any] = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        if annotations:
            body["metadata"] = {"annotations": dict(annotations)}
        with self._errors("deployment", name, namespace, "restart"):
            self._request(
                "PATCH", self._apps(namespace, "deployments", name), body=body, content_type=STRATEGIC
            )
        return stamp

    def _replica_sets(self, namespace: str, name: str) -> tuple[Any, list[Any]]:
        dep = self._read_deployment(namespace, name)
        uid = _g(dep, "metadata", "uid")
        selector = _selector(dep)
        with self._errors("replicasets of deployment", name, namespace, "list"):
            items = (
                self._request(
                    "GET", self._apps(namespace, "replicasets"), query={"labelSelector": selector}
                ).get("items")
                or []
            )
        owned = [
            rs
            for rs in items
            if any(
                _g(r, "uid") == uid and _g(r, "controller")
                for r in _g(rs, "metadata", "ownerReferences", default=[])
            )
        ]
        return dep, owned

    @staticmethod
    def _rs_revision(rs: Any) -> int:
        raw = (_g(rs, "metadata", "annotations", default={}) or {}).get(REVISION, "0")
        return int(raw) if str(raw).isdigit() else 0

    def _revisions(self, namespace: str, name: str) -> list[Revision]:
        dep, owned = self._replica_sets(namespace, name)
        current_tmpl = _strip_hash(_g(dep, "spec", "template", default={}))
        out = []
        for rs in owned:
            tmpl = _g(rs, "spec", "template", default={})
            out.append(
                Revision(
                    revision=self._rs_revision(rs),
                    replica_set=_g(rs, "metadata", "name"),
                    images=tuple(c.get("image", "") for c in (tmpl.get("spec") or {}).get("containers", [])),
                    restarted_at=((tmpl.get("metadata") or {}).get("annotations") or {}).get(RESTARTED_AT),
                    replicas=int(_g(rs, "status", "replicas", default=0)),
                    current=_strip_hash(tmpl) == current_tmpl,
                )
            )
        return sorted(out, key=lambda r: r.revision)

    def rollout_history(self, namespace: str, name: str) -> list[Revision]:
        return self._revisions(namespace, name)

    def rollout_undo(self, namespace: str, name: str, to_revision: int = 0) -> Revision | None:
        """``kubectl rollout undo [--to-revision N]``; returns the revision rolled back to.

        None when the deployment already runs that revision's template (nothing to do, like
        kubectl's "skipped rollback").
        """
        if to_revision < 0:
            raise BadInput(
                f"--to-revision must be 0 (previous) or a positive revision, got {to_revision}",
                resource=f"deployment {name}",
                region=self.region,
            )
        dep, owned = self._replica_sets(namespace, name)
        if _g(dep, "spec", "paused"):
            raise BadInput(
                f"deployment {name} in {self.where(namespace)} is paused; resume it before rolling back",
                resource=f"deployment {name}",
                region=self.region,
            )
        by_rev = {self._rs_revision(rs): rs for rs in owned}
        revisions = sorted(by_rev)
        if to_revision == 0:
            if len(revisions) < 2:
                raise BadInput(
                    f"deployment {name} in {self.where(namespace)} has no previous revision to roll back to "
                    f"(history: {revisions or 'empty'})",
                    resource=f"deployment {name}",
                    region=self.region,
                    hint="see the history with `dr ops history <deployment>`",
                )
            to_revision = revisions[-2]
        target = by_rev.get(to_revision)
        if target is None:
            raise BadInput(
                f"deployment {name} in {self.where(namespace)} has no revision {to_revision} "
                f"(available: {', '.join(map(str, revisions)) or 'none'})",
                resource=f"deployment {name}",
                region=self.region,
                hint="pick one of the listed revisions for --to-revision",
            )
        tmpl = _strip_hash(_g(target, "spec", "template", default={}))
        revision = next(r for r in self._revisions(namespace, name) if r.revision == to_revision)
        if tmpl == _strip_hash(_g(dep, "spec", "template", default={})):
            return None
        self._write(f"rollout undo deployment {namespace}/{name} to revision {to_revision}")
        with self._errors("deployment", name, namespace, "roll back"):
            self._request(
                "PATCH",
                self._apps(namespace, "deployments", name),
                body=[
                    {"op": "test", "path": "/metadata/uid", "value": _g(dep, "metadata", "uid")},
                    {"op": "replace", "path": "/spec/template", "value": tmpl},
                ],
                content_type=JSON_PATCH,
            )
        return revision

    # -- config maps and secrets ------------------------------------------------------------------------
    def get_configmap(self, namespace: str, name: str) -> dict[str, str]:
        with self._errors("configmap", name, namespace, "read"):
            cm = self._request("GET", self._core(namespace, "configmaps", name))
        return dict(_g(cm, "data", default={}) or {})

    def patch_configmap(
        self, namespace: str, name: str, data: dict[str, str | None]
    ) -> dict[str, str | None]:
        """Merge ``data`` into the ConfigMap (None removes a key); returns the previous values."""
        current = self.get_configmap(namespace, name)
        before = {k: current.get(k) for k in data}
        if before == data:
            return before
        self._write(f"patch configmap {namespace}/{name} keys {sorted(data)}")
        with self._errors("configmap", name, namespace, "patch"):
            self._request(
                "PATCH", self._core(namespace, "configmaps", name), body={"data": data}, content_type=MERGE
            )
        return before

    def _read_secret(self, namespace: str, name: str) -> Any:
        with self._errors("secret", name, namespace, "read"):
            return self._request("GET", self._core(namespace, "secrets", name))

    def secret_annotations(self, namespace: str, name: str) -> dict[str, str]:
        """The Secret's annotations (metadata only: no value is decoded)."""
        return dict(_g(self._read_secret(namespace, name), "metadata", "annotations", default={}) or {})

    def read_secret_key(self, namespace: str, name: str, key: str) -> SecretValue:
        secret = self._read_secret(namespace, name)
        data = _g(secret, "data", default={}) or {}
        if key not in data:
            raise NotFound(
                f"secret {name} in {self.where(namespace)} has no key {key!r} (keys: {', '.join(sorted(data))})",
                resource=f"secret {name}",
                region=self.region,
                hint="check app.dbSecret.key in the stack files",
            )
        return SecretValue(base64.b64decode(data[key]).decode())

    def patch_secret_key(
        self,
        namespace: str,
        name: str,
        key: str,
        value: SecretValue,
        *,
        annotations: dict[str, str] | None = None,
    ) -> bool:
        """Set one key of a Secret (base64); False when it already holds ``value``. Never logged.

        ``annotations`` are set in the SAME patch (only when the value changes), so a marker saying
        why it changed can never be missing after a change that happened.
        """
        try:
            if self.read_secret_key(namespace, name, key) == value:
                return False
        except NotFound as err:
            if "has no key" not in err.message:
                raise
        self._write(f"patch secret {namespace}/{name} key {key}")
        encoded = base64.b64encode(value.reveal().encode()).decode()
        body: dict[str, Any] = {"data": {key: encoded}}
        if annotations:
            body["metadata"] = {"annotations": dict(annotations)}
        with self._errors("secret", name, namespace, "patch"):
            self._request("PATCH", self._core(namespace, "secrets", name), body=body, content_type=MERGE)
        return True

    # -- pods, events, nodes ----------------------------------------------------------------------------
    def list_pods(self, namespace: str, label_selector: str = "") -> list[PodInfo]:
        with self._errors("pods", label_selector or "*", namespace, "list"):
            items = (
                self._request(
                    "GET", self._core(namespace, "pods"), query={"labelSelector": label_selector}
                ).get("items")
                or []
            )
        out = []
        now = dt.datetime.now(dt.UTC)
        for p in items:
            statuses = _g(p, "status", "containerStatuses", default=[]) or []
            conditions = {
                _g(c, "type"): _g(c, "status") for c in _g(p, "status", "conditions", default=[]) or []
            }
            reason = None
            for cs in statuses:
                reason = reason or _g(cs, "state", "waiting", "reason")
            if conditions.get("PodScheduled") == "False":
                reason = "Unschedulable"
            created = _timestamp(_g(p, "metadata", "creationTimestamp"))
            out.append(
                PodInfo(
                    name=_g(p, "metadata", "name"),
                    namespace=namespace,
                    phase=str(_g(p, "status", "phase", default="Unknown")),
                    ready=conditions.get("Ready") == "True",
                    restarts=sum(int(_g(cs, "restartCount", default=0)) for cs in statuses),
                    node=_g(p, "spec", "nodeName"),
                    labels=dict(_g(p, "metadata", "labels", default={}) or {}),
                    reason=reason,
                    age_seconds=(now - created).total_seconds() if isinstance(created, dt.datetime) else None,
                    created=created,
                )
            )
        return sorted(out, key=lambda p: p.name)

    def get_pod(self, namespace: str, name: str) -> PodInfo:
        with self._errors("pod", name, namespace, "read"):
            self._request("GET", self._core(namespace, "pods", name))
        return next(p for p in self.list_pods(namespace) if p.name == name)

    def label_pod(self, namespace: str, name: str, labels: dict[str, str]) -> bool:
        """Add labels to a pod; False when it already has them."""
        pod = self.get_pod(namespace, name)
        if all(pod.labels.get(k) == v for k, v in labels.items()):
            return False
        self._write(f"label pod {namespace}/{name} {labels}")
        with self._errors("pod", name, namespace, "label"):
            self._request(
                "PATCH",
                self._core(namespace, "pods", name),
                body={"metadata": {"labels": labels}},
                content_type=MERGE,
            )
        return True

    def ensure_deny_all_policy(self, namespace: str, name: str, match_labels: dict[str, str]) -> bool:
        """Create a NetworkPolicy denying all ingress and egress of pods with ``match_labels``.

        Returns False when a policy of that name already exists (idempotent).
        """
        with self._errors("networkpolicy", name, namespace, "read"):
            try:
                self._request("GET", self._policies(namespace, name))
                return False
            except Exception as err:
                if getattr(err, "status", None) != 404:
                    raise
        self._write(f"create deny-all networkpolicy {namespace}/{name} for {match_labels}")
        body = {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/managed-by": "dr"},
            },
            # No ingress/egress rules + both policy types = everything denied.
            "spec": {"podSelector": {"matchLabels": match_labels}, "policyTypes": ["Ingress", "Egress"]},
        }
        with self._errors("networkpolicy", name, namespace, "create"):
            self._request("POST", self._policies(namespace), body=body)
        return True

    def get_network_policy(self, namespace: str, name: str) -> dict[str, Any]:
        with self._errors("networkpolicy", name, namespace, "read"):
            return self._request("GET", self._policies(namespace, name))

    def warning_events(self, namespace: str, limit: int = 50) -> list[EventInfo]:
        with self._errors("events", "Warning", namespace, "list"):
            items = (
                self._request(
                    "GET", self._core(namespace, "events"), query={"fieldSelector": "type=Warning"}
                ).get("items")
                or []
            )

        def ts(e: Any) -> str:
            value = _g(e, "lastTimestamp") or _g(e, "eventTime") or _g(e, "metadata", "creationTimestamp")
            stamp = _timestamp(value)
            return stamp.isoformat() if stamp is not None else str(value or "")

        events = [
            EventInfo(
                kind=str(_g(e, "involvedObject", "kind", default="")),
                name=str(_g(e, "involvedObject", "name", default="")),
                reason=str(_g(e, "reason", default="")),
                message=str(_g(e, "message", default="")),
                count=int(_g(e, "count", default=1)),
                last_seen=ts(e) or None,
            )
            for e in items
        ]
        return sorted(events, key=lambda e: e.last_seen or "", reverse=True)[:limit]

    def nodes(self) -> list[NodeInfo]:
        with self._errors("nodes", "*", None, "list"):
            items = self._request("GET", self._core(None, "nodes")).get("items") or []
        out = []
        for n in items:
            conds = {_g(c, "type"): _g(c, "status") for c in _g(n, "status", "conditions", default=[]) or []}
            out.append(
                NodeInfo(
                    name=_g(n, "metadata", "name"),
                    ready=conds.get("Ready") == "True",
                    pressure=tuple(
                        sorted(t for t, s in conds.items() if t.endswith("Pressure") and s == "True")
                    ),
                )
            )
        return out

    # -- RBAC ------------------------------------------------------------------------------------------
    def can_i(
        self, verb: str, group: str, resource: str, *, namespace: str | None, subresource: str = ""
    ) -> tuple[bool, str]:
        """``kubectl auth can-i``: a SelfSubjectAccessReview of one verb for this client's identity
        (creates nothing; allowed even in a dry run). Returns (allowed, the authorizer's reason)."""
        attrs = {"verb": verb, "group": group, "resource": resource, "subresource": subresource}
        if namespace:
            attrs["namespace"] = namespace
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attrs},
        }
        what = f"{resource}/{subresource}" if subresource else resource
        with self._errors("selfsubjectaccessreview", f"{verb} {what}", namespace, "create"):
            doc = self._request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", body=body)
        status = doc.get("status") or {}
        return bool(status.get("allowed")) and not status.get("denied"), str(status.get("reason") or "")

    # -- HPA ------------------------------------------------------------------------------------------
    def hpa_for(self, namespace: str, deployment: str) -> HpaInfo | None:
        """The HPA whose scaleTargetRef is the deployment (None when there is none)."""
        with self._errors("horizontalpodautoscalers", "*", namespace, "list"):
            items = self._request("GET", self._hpas(namespace)).get("items") or []
        for h in items:
            ref = _g(h, "spec", "scaleTargetRef")
            if _g(ref, "kind") == "Deployment" and _g(ref, "name") == deployment:
                return HpaInfo(
                    name=_g(h, "metadata", "name"),
                    namespace=namespace,
                    deployment=deployment,
                    min_replicas=int(_g(h, "spec", "minReplicas", default=1)),
                    max_replicas=int(_g(h, "spec", "maxReplicas")),
                    current=_g(h, "status", "currentReplicas"),
                    desired=_g(h, "status", "desiredReplicas"),
                )
        return None

    def patch_hpa(
        self, namespace: str, name: str, *, min_replicas: int | None, max_replicas: int | None
    ) -> None:
        spec: dict[str, int] = {}
        if min_replicas is not None:
            spec["minReplicas"] = min_replicas
        if max_replicas is not None:
            spec["maxReplicas"] = max_replicas
        if not spec:
            return
        self._write(f"patch hpa {namespace}/{name} {spec}")
        with self._errors("horizontalpodautoscaler", name, namespace, "patch"):
            self._request("PATCH", self._hpas(namespace, name), body={"spec": spec}, content_type=MERGE)


def _strip_hash(template: dict[str, Any]) -> dict[str, Any]:
    """A pod template without ``pod-template-hash`` and with empty maps removed (comparable)."""
    tmpl = json.loads(json.dumps(template, default=str))
    labels = (tmpl.get("metadata") or {}).get("labels") or {}
    labels.pop(HASH_LABEL, None)

    def prune(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: prune(v) for k, v in obj.items() if v not in (None, {}, [])}
        if isinstance(obj, list):
            return [prune(v) for v in obj]
        return obj

    return dict(prune(tmpl))


def _status_message(err: Any) -> str:
    body = getattr(err, "body", None)
    if body:
        try:
            return str(json.loads(body).get("message") or body)
        except (ValueError, AttributeError):
            return str(body)[:300]
    return str(getattr(err, "reason", "") or err)
