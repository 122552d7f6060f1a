"""Where the application writes *now*: the heartbeat target that behaves like one more app writer.

:class:`AppDatabase` answers "which database would the application write to at this moment":
the database in the DB secret (``app.dbSecret``) of the site that serves the public name, and
*nothing* while that site's writer deployments are scaled to zero (stop-writes, planned
switchover). So the heartbeat stops when the app stops writing and follows the app to the
promoted database once the secret is repointed and DNS flips — exactly what the RPO definition
needs. It works on any target given two callables: which site serves traffic, and a Kubernetes
adapter per site (``dr.kube.Kube`` or anything with ``get_deployment`` / ``read_secret_key``).

For the sandbox, :func:`sandbox_hooks` builds the measurement hooks from its ``state.json``: the
sandbox resolver says which region (and which ``/health`` URL) serves the public name, and the
kubeconfig has one context per cluster.
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
    from dr.drills.drill_context import DrillContext, MeasurementHooks
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


# ---------------------------------------------------------------------------------------------
# The sandbox (state.json contract of dr.target)
# ---------------------------------------------------------------------------------------------


def _get_json(url: str, timeout: float = 1.0) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        data: dict[str, Any] = json.loads(resp.read())
    return data


class SandboxResolver:
    """Asks the sandbox resolver (``GET <resolver.url>/resolve?name=<record>``) for the public name."""

    def __init__(self, resolver_url: str, record: str, health_path: str) -> None:
        self.url = f"{resolver_url.rstrip('/')}/resolve?name={record}"
        self.health_path = health_path

    def answer(self) -> dict[str, Any]:
        return _get_json(self.url)

    def region(self) -> str:
        region = self.answer().get("region")
        if not region:
            raise LookupError("the sandbox resolver answered without a region")
        return str(region)

    def base_url(self) -> str:
        """The base URL of the region the public name points at (its /health and /write)."""
        health = self.answer().get("health_url")
        if not health:
            raise LookupError("the sandbox resolver answered without a health URL")
        health = str(health)
        return health[: -len(self.health_path)] if health.endswith(self.health_path) else health


def sandbox_hooks(ctx: DrillContext) -> MeasurementHooks:
    """Measurement hooks for ``--target sandbox`` from its state.json (see module doc)."""
    from dr.drills.drill_context import MeasurementHooks

    hooks = MeasurementHooks()
    if ctx.estate is None:
        hooks.notes.append("no estate: nothing to measure on the sandbox")
        return hooks
    try:
        from dr.target import read_sandbox_state

        state = read_sandbox_state()
    except Exception as exc:
        hooks.notes.append(f"sandbox not running: {getattr(exc, 'message', exc)}")
        return hooks
    resolver_url = (state.get("resolver") or {}).get("url")
    if not resolver_url:
        hooks.notes.append("the sandbox state has no resolver URL: RTO and RPO are not measured")
        return hooks
    app = ctx.estate.app
    resolver = SandboxResolver(str(resolver_url), app.record, app.health_path)
    hooks.resolver = resolver.base_url
    kubeconfig = state.get("kubeconfig")
    if not kubeconfig:
        hooks.notes.append(
            "the sandbox state has no kubeconfig: the heartbeat cannot find the app's database"
        )
        return hooks
    kubes: dict[str, Any] = {}
    lock = threading.Lock()

    def kube_for(view: SiteView) -> KubeLike:
        from dr.kube import connect

        with lock:
            if view.region not in kubes:
                kubes[view.region] = connect(
                    view.cluster.name, view.region, kubeconfig=str(kubeconfig), read_only=True
                )
            kube: KubeLike = kubes[view.region]
            return kube

    app_db = AppDatabase(ctx.estate, resolver.region, kube_for)
    hooks.heartbeat_target = app_db
    hooks.rpo_target = app_db.without_writer_check()
    return hooks
