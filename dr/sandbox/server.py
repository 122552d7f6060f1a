"""moto's own server, in-process, on 127.0.0.1 with ephemeral ports, wrapped in a WSGI middleware.

:class:`MotoServer` builds moto's WSGI application (``DomainDispatcherApplication(create_backend_app)``,
exactly what ``moto_server`` and ``ThreadedMotoServer`` serve), lets the caller wrap it (the
realism layer, :mod:`dr.sandbox.fakeaws`), and serves the result with werkzeug's threaded server on:

* one **main** port for every region (``url``; ``state.json``'s ``aws_endpoint``), and
* one port **per region** (``region_urls``; ``state.json``'s ``aws_endpoints``). Closing a region's
  port (:meth:`MotoServer.set_region_listening`) makes that region's endpoint refuse connections,
  which botocore reports as ``EndpointConnectionError`` — what a dead region looks like.

moto keeps its state in process-global backends: one sandbox per process, and never together with
``mock_aws`` in the same process (``mock_aws`` resets those backends when it starts).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Middleware = Callable[[WSGIApp], WSGIApp]

HOST = "127.0.0.1"


def moto_app() -> WSGIApp:
    """moto's server-mode WSGI application (all services, dispatched by SigV4 credential scope)."""
    import os

    # The estate uses no AMIs; loading moto's default AMI catalogue costs seconds per region.
    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    from dr.aws.session import cache_moto_partitions, share_loader_process_wide

    share_loader_process_wide()  # moto's internal boto3 sessions parse each model once
    cache_moto_partitions()
    from moto.server import DomainDispatcherApplication, create_backend_app

    app: WSGIApp = DomainDispatcherApplication(create_backend_app)
    return app


class _Listener:
    """One werkzeug threaded server in a daemon thread."""

    def __init__(self, app: WSGIApp, port: int = 0, name: str = "moto") -> None:
        from moto.moto_server.werkzeug_app import MotoRequestHandler
        from werkzeug.serving import make_server

        self.server = make_server(HOST, port, app, threaded=True, request_handler=MotoRequestHandler)
        self.server.daemon_threads = True  # type: ignore[attr-defined]
        self.port: int = int(self.server.server_address[1])
        # poll 0.1 s (werkzeug's default 0.5 s): stop() waits for the loop to notice the shutdown
        self.thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"sandbox-{name}",
            daemon=True,
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class MotoServer:
    """moto in server mode, in this process, behind ``middleware`` (default: none)."""

    def __init__(
        self,
        *,
        middleware: Middleware | None = None,
        regions: Iterable[str] = (),
        port: int = 0,
    ) -> None:
        inner = moto_app()
        self.app: WSGIApp = middleware(inner) if middleware else inner
        self._regions = list(dict.fromkeys(regions))
        self._port = port
        self._main: _Listener | None = None
        self._region_listeners: dict[str, _Listener | None] = {}
        self._region_ports: dict[str, int] = {}
        self._lock = threading.Lock()

    def start(self) -> MotoServer:
        self._main = _Listener(self.app, self._port, "moto")
        for region in self._regions:
            listener = _Listener(self.app, 0, f"moto-{region}")
            self._region_listeners[region] = listener
            self._region_ports[region] = listener.port
        return self

    def stop(self) -> None:
        with self._lock:
            for region, listener in list(self._region_listeners.items()):
                if listener is not None:
                    listener.stop()
                self._region_listeners[region] = None
            if self._main is not None:
                self._main.stop()
                self._main = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._main is None:
            raise RuntimeError("MotoServer is not started")
        return self._main.port

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def region_urls(self) -> dict[str, str]:
        return {region: f"http://{HOST}:{port}" for region, port in self._region_ports.items()}

    def region_listening(self, region: str) -> bool:
        return self._region_listeners.get(region) is not None

    def set_region_listening(self, region: str, listening: bool) -> None:
        """Close (connection refused) or reopen (same port) the endpoint of one region."""
        if region not in self._region_ports:
            raise KeyError(f"no per-region endpoint for {region!r}; known: {sorted(self._region_ports)}")
        with self._lock:
            current = self._region_listeners.get(region)
            if listening and current is None:
                self._region_listeners[region] = _Listener(
                    self.app, self._region_ports[region], f"moto-{region}"
                )
            elif not listening and current is not None:
                current.stop()
                self._region_listeners[region] = None
