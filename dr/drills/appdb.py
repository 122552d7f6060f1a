"""Where the application writes *now*: the heartbeat target that behaves like one more app writer.

:class:`AppDatabase` answers "which database would the application write to at this moment":
the database in the DB secret (``app.dbSecret``) of the site that serves the public name, and
*nothing* while that site's writer deployments are scaled to zero (stop-writes, planned
switchover). So the heartbeat stops when the app stops writing and follows the app to the
promoted database once the secret is repointed and DNS flips — exactly what the RPO definition
needs. It works on any target given two callables: which site serves traffic, and a Kubernetes
adapter per site (``dr.kube.Kube`` or anything with ``get_deployment`` / ``read_secret_key``).
The sandbox's measurement hooks (:mod:`dr.sandbox.drill_adapter`) build one.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from dr.drills.heartbeat import HeartbeatTarget, display_conninfo

if TYPE_CHECKING:
    from dr.topology import Estate, SiteView


class KubeLike(Protocol):
    def get_deployment(self, namespace: str, name: str) -> Any: ...

    def read_secret_key(self, namespace: str, name: str, key: str) -> Any: ...


class AppDatabase:
    """Callable heartbeat target: the serving site's DB secret, None while its writers are at 0."""

    def __init__(
        self,
        estate: Estate,
        site_fn: Callable[[], str],
        kube_for: Callable[[SiteView], KubeLike],
        *,
        require_writers: bool = True,
        cache_seconds: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.estate = estate
        self.site_fn = site_fn
        self.kube_for = kube_for
        self.require_writers = require_writers
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._cached: tuple[float, HeartbeatTarget | None] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> HeartbeatTarget | None:
        with self._lock:
            now = self.clock()
            if self._cached is not None and now - self._cached[0] < self.cache_seconds:
                return self._cached[1]
            target = self._lookup()
            self._cached = (now, target)
            return target

    def _lookup(self) -> HeartbeatTarget | None:
        app = self.estate.app
        view = self.estate.site(self.site_fn())
        kube = self.kube_for(view)
        if self.require_writers and app.writers:
            replicas = [kube.get_deployment(app.namespace, d.name).replicas for d in app.writers]
            if all(r == 0 for r in replicas):
                return None  # the application is not writing (stop-writes)
        secret = kube.read_secret_key(app.namespace, app.db_secret.name, app.db_secret.key)
        url = secret.reveal() if hasattr(secret, "reveal") else str(secret)
        return HeartbeatTarget.from_conninfo(url, label=display_conninfo(url))

    def without_writer_check(self) -> AppDatabase:
        """The same lookup ignoring the writers (to read heartbeats back after recovery)."""
        return AppDatabase(
            self.estate,
            self.site_fn,
            self.kube_for,
            require_writers=False,
            cache_seconds=0.0,
            clock=self.clock,
        )
