"""Whole-region failover (``dr failover --to secondary``) as one plan on the runbook engine.

The runbook's "Multi-Region Failover" flips DNS first and promotes the database afterwards, so
for minutes the public name points at a region whose database is read-only. This plan does the
opposite: DNS is flipped only after the target database is writable, the target's pods run the
new connection string and are Ready, and the target's Route53 health check is healthy.

Steps (``source`` = the region losing traffic, ``target`` = the surviving region)::

    planned only:  stop-<writer>… ─► replica-caught-up ─┐
    scale-nodegroup ─────────────────────────────┐      ▼
    scale-workloads ──────────────┐              │   promote-db ─► patch-db-secret
    redis-ready ──────────────────┼──────────────┼──────────┐           │
                                  ▼              │          │           ▼
                             restart-<dep>… ◄────┼──────────┼─── (after the secret)
                                  │              ▼          │
                                  └────────► pods-ready     │
                                                 ▼          ▼
                                            target-healthy ◄┘
                                                 ▼
                                  route-traffic (Route53, records method) ─► verify-dns ─► verify-service

* **planned** — the source region works: stop writes there (scale every writer to 0, recording
  its count), wait until the replica's lag is 0, then promote: RPO 0.
* **unplanned** — the source region is gone: no call goes to it (every step calls the target
  region or Route53); the lag gate is informational (RPO = the lag at the time of the loss).

Every step reads real state in ``check()`` and its action re-reads before acting, so a killed run
resumed with ``--resume`` repeats no side effect (e.g. a promotion already in flight is not
re-issued; a deployment already restarted for this promotion is not restarted again).

The pre-flight gates are in :mod:`dr.procedures.failover_gates`; the steps are the catalogue's
kinds (:mod:`dr.steps`); this module composes them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

# The gates live in failover_gates; their names stay importable from here.
from dr.procedures.failover_gates import FailoverPreflight, production_nodegroup, source_ref
from dr.procedures.walpos import CatchUp, DbRef
from dr.runbook.plan import Plan, Step, StepServices
from dr.steps import (
    MOVE_RECORDS,
    NODEGROUP_SCALE,
    PATCH_DB_SECRET,
    PODS_READY,
    PROMOTE_REPLICA,
    REDIS_READY,
    REPLICA_CAUGHT_UP,
    RESTART_DEPLOYMENT,
    SCALE_WORKLOADS,
    STOP_WRITES,
    TARGET_HEALTHY,
    VERIFY_DNS,
    VERIFY_SERVICE,
)

# Defined with their steps in the catalogue; imported from here by other procedures and drills.

if TYPE_CHECKING:
    from dr.topology import Estate, SiteView


# ---------------------------------------------------------------------------------------------
# Step helpers (the steps themselves are the catalogue's kinds, dr/steps)
# ---------------------------------------------------------------------------------------------


def _after(step: Step, depends_on: tuple[str, ...]) -> Step:
    return replace(step, depends_on=depends_on)


def _wal_watch(estate: Estate, pre: FailoverPreflight) -> Callable[[StepServices], CatchUp]:
    """How ``replica-caught-up`` compares the WAL positions of both databases (a fresh
    :class:`CatchUp` per run, connected with the run's ``pg_connect``)."""
    source, replica = source_ref(pre), DbRef(pre.db, pre.target.region)

    def watch(services: StepServices) -> CatchUp:
        return CatchUp(
            services.aws(),
            source=source,
            replica=replica,
            secret_id=estate.app.db_secret.secrets_manager_id,
            db_name=estate.app.database.db_name,
            connect=services.pg_connect,
        )

    return watch


# The drills' repoint-app composes these three (dr.procedures.drill_providers).
def secret_step(estate: Estate, target: SiteView, db: str, *, depends_on: tuple[str, ...]) -> Step:
    return _after(PATCH_DB_SECRET.build(estate, target, db), depends_on)


def restart_step(
    estate: Estate,
    target: SiteView,
    db: str,
    deployment: str,
    *,
    depends_on: tuple[str, ...],
    policy: Literal["on-change", "always"] | None = None,
) -> Step:
    return _after(RESTART_DEPLOYMENT.build(estate, target, db, deployment, policy=policy), depends_on)


def pods_ready_step(
    estate: Estate,
    target: SiteView,
    counts: Mapping[str, int | None],
    *,
    depends_on: tuple[str, ...],
    timeout: float,
    sid: str = "pods-ready",
) -> Step:
    return _after(PODS_READY.build(estate, target, counts, timeout=timeout, sid=sid), depends_on)


def standby_pods_steps(
    estate: Estate,
    standby: SiteView,
    db: str,
    *,
    after: tuple[str, ...],
    timeout: float,
    restart_prefix: str = "restart-",
    ready_id: str = "standby-pods-ready",
) -> list[Step]:
    """Restart the pods of a region not serving traffic that are older than ``db`` (they may hold
    connections to the instance it replaced: renamed, standalone, writable), then wait until they
    are Ready — before any outage or write pause needs them (reprotect; failback before it stops
    writes), so no restart is left on a critical path."""
    restarts = [
        _after(
            RESTART_DEPLOYMENT.build(
                estate, standby, db, d.name, policy="on-change", sid=f"{restart_prefix}{d.name}"
            ),
            after,
        )
        for d in estate.app.deployments
    ]
    ready = PODS_READY.build(
        estate, standby, {d.name: None for d in estate.app.deployments}, timeout=timeout, sid=ready_id
    )
    return [*restarts, _after(ready, tuple(r.id for r in restarts))]


# ---------------------------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------------------------


def production_counts(estate: Estate) -> dict[str, int]:
    return {d.name: d.replicas for d in estate.app.deployments}


def failover_steps(
    estate: Estate,
    pre: FailoverPreflight,
    *,
    timeout: float = 1800.0,
    prefix: str = "",
    after: tuple[str, ...] = (),
) -> list[Step]:
    """The failover's steps (ids prefixed with ``prefix``; roots depend on ``after``).

    ``failback`` reuses this with source and target swapped behind its re-protect steps.
    """
    target, source, db = pre.target, pre.source, pre.db
    counts = production_counts(estate)
    hpa_min = estate.app.hpa.min_replicas if estate.app.hpa else None
    steps: list[Step] = []

    promote_deps: tuple[str, ...] = ()
    if pre.mode == "planned":
        stops = [
            replace(
                STOP_WRITES.build(source, estate.app.namespace, d.name, timeout=timeout),
                tags={"phase": "stop-writes"},
            )
            for d in estate.app.writers
        ]
        src = source_ref(pre)
        caught_up = REPLICA_CAUGHT_UP.build(
            db,
            target.region,
            source=(src.identifier, src.region),
            secret_id=estate.app.db_secret.secrets_manager_id,
            watch=_wal_watch(estate, pre),
            timeout=timeout,
        )
        steps += [*stops, _after(caught_up, tuple(s.id for s in stops))]
        promote_deps = (caught_up.id,)
    nodegroup = NODEGROUP_SCALE.build(target, production_nodegroup(estate), timeout=timeout)
    workloads = SCALE_WORKLOADS.build(
        estate,
        target,
        counts,
        hpa_min,
        sid="scale-workloads",
        title=f"Scale deployments in {target.cluster.name} ({target.region}) to production replicas",
    )
    promote = PROMOTE_REPLICA.build(
        db,
        target.region,
        source=pre.promote.source,
        lag_seconds=pre.promote.lag_seconds,
        timeout=timeout,
        backup_retention_days=target.database.backup_retention_days,
    )
    redis = REDIS_READY.build(
        estate, target, action=pre.redis.action, snapshot=pre.redis.snapshot, timeout=timeout
    )
    secret = PATCH_DB_SECRET.build(estate, target, db)
    restarts = [
        _after(RESTART_DEPLOYMENT.build(estate, target, db, name), (secret.id, workloads.id))
        for name in counts
    ]
    pods = PODS_READY.build(estate, target, counts, timeout=timeout)
    healthy = TARGET_HEALTHY.build(target.region, pre.health_check_id, timeout=timeout)
    route = MOVE_RECORDS.build(estate, pre.dns, timeout=timeout)
    verify_dns = VERIFY_DNS.build(estate, pre.dns.before.name, pre.dns.target_region, timeout=timeout)
    verify = VERIFY_SERVICE.build(db, target.region, pre.health_check_id, timeout=timeout)
    steps += [
        nodegroup,
        workloads,
        _after(promote, promote_deps),
        redis,
        _after(secret, (promote.id,)),
        *restarts,
        _after(pods, (*(r.id for r in restarts), nodegroup.id)),
        _after(healthy, (pods.id, promote.id, redis.id)),
        # DNS moves only once the database is writable, the pods Ready and the target healthy
        _after(route, (healthy.id, promote.id, pods.id, secret.id)),
        _after(verify_dns, (route.id,)),
        _after(verify, (verify_dns.id,)),
    ]

    if prefix or after:
        steps = [
            replace(
                s,
                id=prefix + s.id,
                depends_on=tuple(prefix + d for d in s.depends_on) if s.depends_on else after,
            )
            for s in steps
        ]
    return steps


def failover_plan(estate: Estate, pre: FailoverPreflight, *, timeout: float = 1800.0) -> Plan:
    """The plan of ``dr failover`` (see the module docstring for the DAG)."""
    steps = failover_steps(estate, pre, timeout=timeout)
    return Plan(
        "failover",
        steps,
        f"{pre.mode} failover {pre.source.region} -> {pre.target.region}: promote {pre.db}, scale "
        f"{pre.target.cluster.name}, then (only when writable, Ready and healthy) move {estate.app.record}",
    )
