"""The HTTP face of the fake Kubernetes API: :class:`FakeKubeApi` serves a cluster to the real client.

It serves, over plain HTTP on ``127.0.0.1`` (ephemeral port), the paths of the resources in
:data:`dr.sandbox.fakekube.resources.RESOURCES` (list with ``labelSelector``/``fieldSelector``,
get, create, replace, patch, delete; ``dryRun``), the ``scale`` and ``status`` subresources of
deployments, ``selfsubjectaccessreviews`` (``kubectl auth can-i``), ``/version`` and the health
paths. Errors are ``Status`` objects. Watches are not served (405).
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from dr.sandbox.fakekube.controllers import Controllers
from dr.sandbox.fakekube.patching import json_patch, merge_patch
from dr.sandbox.fakekube.resources import RESOURCES, ApiError, Obj
from dr.sandbox.fakekube.store import ObjectStore

log = logging.getLogger(__name__)


@dataclass
class FakeKubeApi(Controllers):
    """One fake cluster: state, controllers, and (after :meth:`start`) an HTTP API on ``url``."""

    tick_interval: float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

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
        handler = make_handler(self)
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


_PATH = re.compile(
    r"^/(?:api/(?P<cv>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+))?(?:/(?P<plural>[^/]+))?(?:/(?P<name>[^/]+))?(?:/(?P<sub>[^/]+))?/?$"
)


_ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


def make_handler(api: ObjectStore) -> type[BaseHTTPRequestHandler]:
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
