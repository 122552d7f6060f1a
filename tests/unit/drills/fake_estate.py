"""A two-region estate in memory, and every provider the shipped scenarios use, implemented on it
for a drill target of its own (``unit``) — so the shipped YAML runs unchanged through the runner.

The fake keeps what the post-drill invariants look at: which region Route53 serves, each site's
database role (``writer`` or ``replica`` of the other site, or of a restored instance), the
restored instances a site's application was failed over onto, whether a region is up, the image
the API runs, the writers' replica counts and whether the data is corrupt. Its actions follow the
real procedures' gates where they matter to rollbacks: a failback on an estate that is not failed
over raises ``NothingToUndo`` (``dr failback``'s NotFailedOver), a reprotect of a standby that is
already a replica changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dr.drills import registry
from dr.drills.drill_context import DrillContext
from dr.drills.invariants import EstateFacts, Invariant
from dr.errors import GateRefused

TARGET = "unit"
SITES = ("primary", "secondary")


def other(site: str) -> str:
    return "secondary" if site == "primary" else "primary"


@dataclass
class FakeEstate:
    serving: str = "primary"
    roles: dict[str, str] = field(default_factory=lambda: {"primary": "writer", "secondary": "replica"})
    up: dict[str, bool] = field(default_factory=lambda: {"primary": True, "secondary": True})
    image: str = "good"
    writers: dict[str, int] = field(default_factory=lambda: {"primary": 2, "secondary": 0})
    corrupt: bool = False
    # restored instance -> its site (standalone, writable); site -> the restored instance its app
    # was failed over or repointed onto; replica site -> the restored instance it replicates from
    restored: dict[str, str] = field(default_factory=dict)
    uses: dict[str, str] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)
    # faults of the test: provider name -> "before" (refused, nothing changed) | "after" (did its
    # change, then raised), on its first call only; probe names (``provider`` or ``provider:site``) that read as broken
    fail: dict[str, str] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)
    _saved_writers: dict[str, int] = field(default_factory=dict)

    @classmethod
    def failed_over(cls) -> FakeEstate:
        """After an unplanned failover: DR serves, the old primary came back standalone."""
        return cls(serving="secondary", roles={"primary": "writer", "secondary": "writer"})

    def snapshot(self) -> tuple[Any, ...]:
        return (
            self.serving,
            dict(self.roles),
            dict(self.up),
            self.image,
            dict(self.writers),
            self.corrupt,
            dict(self.uses),
            dict(self.source),
        )

    def database(self, site: str) -> str:
        """The database the site serves from (what the estate check judges): the restored instance
        its application was failed over or repointed onto, else its own."""
        return self.uses.get(site, site)

    def writable(self) -> list[str]:
        """The writable databases the estate check sees (one per site)."""
        dbs = [self.database(s) for s in SITES]
        return [d for d in dbs if d in self.restored or self.roles[d] == "writer"]

    def replicates_from(self, site: str) -> str | None:
        """The database the site's own database replicates from (None: it is not a replica)."""
        if self.roles[site] != "replica":
            return None
        return self.source.get(site, other(site))

    # -- the estate check (dr.drills.invariants) ------------------------------------------------
    def facts(self, ctx: DrillContext, intended: str | None) -> EstateFacts:
        out = []
        writable = self.writable()
        readable = all(self.up.values())
        out.append(
            Invariant(
                "single-writer", readable and len(writable) <= 1, f"writable: {', '.join(writable) or 'none'}"
            )
        )
        want = intended or self.serving
        if intended:
            out.append(Invariant("dns-on-intended-region", self.serving == want, f"serving {self.serving}"))
        standby, db = other(want), self.database(want)
        replicating = db in writable and self.replicates_from(standby) == db
        out.append(Invariant("replica-replicating", replicating, f"{standby} is {self.roles[standby]}"))
        return EstateFacts(self.serving, out)

    # -- actions ----------------------------------------------------------------------------------
    def _gate(self, name: str) -> None:
        """Each fault fires once: the first call of that provider."""
        self.calls.append(name)
        if self.fail.get(name) == "before":
            del self.fail[name]
            raise GateRefused(f"{name} refused by the test (nothing changed)")

    def _after(self, name: str) -> None:
        if self.fail.get(name) == "after":
            del self.fail[name]
            raise RuntimeError(f"{name} failed after its change (test)")

    def failover(
        self, ctx: DrillContext, to: str = "secondary", db_from: str | None = None, **_: Any
    ) -> dict[str, Any]:
        self._gate("failover")
        if db_from is not None:  # onto the restored instance: the site's own replica is not promoted
            self.uses[to] = ctx.outputs[db_from]
        else:
            self.roles[to] = "writer"
        self.writers[other(to)] = 0
        self.writers[to] = 2
        self.serving = to
        self._after("failover")
        return {"active_region": to}

    def failback(self, **_: Any) -> dict[str, Any]:
        self._gate("failback")
        if self.serving == "primary" and self.roles["primary"] == "writer":
            raise registry.NothingToUndo("app is not failed over: Route53 serves the primary region")
        self.roles["primary"] = "writer"  # re-protected, then promoted
        self.writers.update(primary=2, secondary=0)
        self.serving = "primary"
        self._after("failback")
        return {"active_region": "primary"}

    def reprotect(self, ctx: DrillContext, db_from: str | None = None, **_: Any) -> dict[str, Any]:
        self._gate("reprotect")
        standby = other(self.serving)
        src = ctx.outputs[db_from] if db_from is not None else self.serving
        if self.replicates_from(standby) == src:
            return {"skipped": f"{standby} already replicates from {src}"}
        self.roles[standby] = "replica"
        if src in self.restored:
            self.source[standby] = src
        else:
            self.source.pop(standby, None)
        self._after("reprotect")
        return {"reprotected": standby}

    def region_loss(self, site: str = "primary", **_: Any) -> None:
        self._gate("region-loss")
        self.up[site] = False
        self._after("region-loss")

    def region_restore(self, site: str = "primary", **_: Any) -> None:
        self._gate("region-restore")
        self.up[site] = True

    def deploy(self, image: str = "", **_: Any) -> None:
        self._gate("deploy")
        self.image = "broken"
        self._after("deploy")

    def rollback_deploy(self, **_: Any) -> dict[str, Any]:
        self._gate("rollback-deploy")
        if self.image == "good":
            return {"skipped": "already on the previous images"}
        self.image = "good"
        self._after("rollback-deploy")
        return {"rolled_back": True}

    def corrupt_data(self, **_: Any) -> None:
        self._gate("corrupt-data")
        self.corrupt = True

    def scale(self, site: str = "primary", replicas: Any = 0, **_: Any) -> None:
        self._gate("scale-deployment")
        if replicas == 0:
            self._saved_writers[site] = self.writers[site]
            self.writers[site] = 0
        elif replicas == "previous":
            self.writers[site] = self._saved_writers.get(site, self.writers[site])
        self._after("scale-deployment")

    def restore_pitr(self, ctx: DrillContext, site: str = "primary", **_: Any) -> dict[str, Any]:
        self._gate("restore-pitr")
        name = f"{site}-pitr"
        self.restored[name] = site
        ctx.outputs["restored_db"] = name
        return {"restored_db": name}

    def repoint(self, ctx: DrillContext, site: str = "primary", database_from: str = "", **_: Any) -> None:
        self._gate("repoint-app")
        self.uses[site] = ctx.outputs[database_from]
        self.corrupt = False

    def noop(self, name: str) -> Callable[..., None]:
        def act(ctx: DrillContext, **_: Any) -> None:
            self._gate(name)
            self._after(name)

        return act

    # -- probes -----------------------------------------------------------------------------------
    def _probe(self, name: str, site: str | None, value: Any) -> Any:
        if name in self.broken or f"{name}:{site}" in self.broken:
            return False if isinstance(value, bool) else 999.0
        return value

    def endpoint(self, **_: Any) -> bool:
        s = self.serving
        return bool(
            self._probe(
                "endpoint", None, self.up[s] and self.database(s) in self.writable() and self.image == "good"
            )
        )

    def replica_lag(self, site: str = "secondary", **_: Any) -> float:
        return float(self._probe("replica-lag", site, 0.0))

    def dns_points_to(self, site: str = "primary", **_: Any) -> bool:
        return bool(self._probe("dns-points-to", site, self.serving == site))

    def db_writable(self, site: str = "primary", **_: Any) -> bool:
        return bool(self._probe("db-writable", site, self.up[site] and self.roles[site] == "writer"))

    def pods_ready(self, site: str = "primary", **_: Any) -> bool:
        return bool(self._probe("pods-ready", site, self.image == "good"))

    def data_intact(self, site: str = "primary", **_: Any) -> bool:
        # a restored instance holds the rows as they were before the corruption
        return bool(self._probe("data-intact", site, not self.corrupt or site in self.uses))

    def restored_to_point(self, site: str = "secondary", **_: Any) -> bool:
        return bool(self._probe("restored-to-point", site, site in self.uses))

    # -- registration ----------------------------------------------------------------------------
    def providers(self) -> dict[tuple[registry.Kind, str], Callable[..., Any]]:
        def bind(fn: Callable[..., Any]) -> Callable[..., Any]:
            return lambda ctx, **kw: fn(**kw)

        actions: dict[str, Callable[..., Any]] = {
            "failover": self.failover,
            "failback": bind(self.failback),
            "reprotect": self.reprotect,
            "region-loss": bind(self.region_loss),
            "region-restore": bind(self.region_restore),
            "deploy": bind(self.deploy),
            "rollback-deploy": bind(self.rollback_deploy),
            "corrupt-data": bind(self.corrupt_data),
            "scale-deployment": bind(self.scale),
            "restore-pitr": self.restore_pitr,
            "wait-replicated-backups": self.noop("wait-replicated-backups"),
            "repoint-app": self.repoint,
            "rds-reboot-failover": self.noop("rds-reboot-failover"),
            "redis-primary-failure": self.noop("redis-primary-failure"),
        }
        probes: dict[str, Callable[..., Any]] = {
            "endpoint": bind(self.endpoint),
            "replica-lag": bind(self.replica_lag),
            "dns-points-to": bind(self.dns_points_to),
            "db-writable": bind(self.db_writable),
            "pods-ready": bind(self.pods_ready),
            "data-intact": bind(self.data_intact),
            "restored-to-point": bind(self.restored_to_point),
        }
        out: dict[tuple[registry.Kind, str], Callable[..., Any]] = {}
        out.update({("action", n): f for n, f in actions.items()})
        out.update({("probe", n): f for n, f in probes.items()})
        return out


def install(estate: FakeEstate) -> Iterator[None]:
    """Register ``estate``'s providers for target ``unit`` (removed afterwards)."""
    for (kind, name), fn in estate.providers().items():
        prov = registry.get(kind, name)
        assert prov is not None, f"{kind} {name} is not registered"
        prov.impls[TARGET] = fn
    try:
        yield
    finally:
        for kind, name in estate.providers():
            registry.unregister(kind, name, TARGET)
