"""`dr readiness`: is the DR region ready to take production? A diff of the two sites.

What AWS's Route 53 ARC readiness checks did, for this estate: each check compares what the
primary and the DR region *actually run* (read from AWS and the clusters, not from the stack files)
and says pass / warn / fail with the reason:

* database: engine + version, instance class, Multi-AZ, storage encryption, parameter group family
* EKS version; node capacity: DR nodegroup max ≥ primary desired, and DR max × pods per node holds
  the production replicas of every deployment
* WAF: the blocked-address IP sets are identical in both regions
* container images: each deployment runs the same images in both clusters
* single writer: at most one writable database; after a failover left two (the old primary came
  back standalone), no writer may run beside the one Route53 does not serve (split brain). The
  served side is judged on the database its application really uses: the standalone instance its
  DB secret points at (a restored instance after a repoint or ``dr failover --db``)
* DB secret: the DR cluster's secret key exists and points at the DR database (host:port only;
  the value is never printed)
* replication: the DR database is a replica and its ``ReplicaLag`` is within the RPO budget
* recovery points: age of the newest snapshot in the DR region, or of the newest restorable time of
  the primary's automated backups replicated there (warn > 24 h, fail > 7 days by default)
* certificates: ACM certificates covering the public name in both regions (warn < 30 days)

Every read runs in parallel and fails on its own (a check that cannot be read fails, saying why).
Read-only. The checks are in :mod:`dr.procedures.readiness_checks`, the reads in
:mod:`dr.procedures.readiness_reads`; this module runs both and builds the report.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dr.errors import DrError
from dr.procedures.readiness_checks import (
    FAIL,
    PASS,
    WARN,
    Check,
    capacity_check,
    certificate_expiry_check,
    cluster_check,
    db_checks,
    images_check,
    lag_check,
    redis_check,
    secret_check,
    single_writer_check,
    snapshot_check,
    waf_check,
)
from dr.procedures.readiness_reads import redis_jobs, serving_dbs, site_jobs
from dr.procedures.status import Outcome, gather

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.kube import KubeFactory
    from dr.topology import Estate

_ORDER = [PASS, WARN, FAIL]
SNAPSHOT_WARN = dt.timedelta(hours=24)
SNAPSHOT_FAIL = dt.timedelta(days=7)
CERT_WARN_DAYS = 30


@dataclass
class ReadinessReport:
    app: str
    primary_region: str
    secondary_region: str
    generated_at: dt.datetime
    checks: list[Check]
    settings: dict[str, Any] = field(default_factory=dict)
    # reads IAM refused ("iam-action in region"): the report is partial, the command exits 3
    denied: list[str] = field(default_factory=list)
    # Numbers behind the checks (``replica_lag_seconds``, ``recovery_point_age_seconds``): published
    # as metrics by `dr readiness --publish` (dr/procedures/readiness_metrics.py).
    facts: dict[str, float] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return max((c.status for c in self.checks), key=_ORDER.index, default=PASS)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    @property
    def exit_code(self) -> int:
        if self.denied:
            return 3
        return 1 if self.failed else 0

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def to_dict(self) -> dict[str, Any]:
        counts = {s: sum(1 for c in self.checks if c.status == s) for s in _ORDER}
        return {
            "app": self.app,
            "primary_region": self.primary_region,
            "secondary_region": self.secondary_region,
            "generated_at": self.generated_at.isoformat(),
            "status": self.status,
            "counts": counts,
            "settings": self.settings,
            "facts": self.facts,
            "checks": [c.to_dict() for c in self.checks],
            "denied": list(self.denied),
        }


def single_writer(estate: Estate, clients: ClientProvider, kube: KubeFactory | None) -> Check:
    """The ``single-writer`` check alone (what a drill checks once it ended): both databases, both
    sites' deployments and DB secrets, and the region Route53 serves, read in parallel; the served
    side is judged on the database really serving it (:func:`serving_database`)."""
    from dr.steps.dns_records import read_state

    jobs: dict[str, Callable[[], Any]] = {
        "serving": lambda: read_state(clients, estate, use_test_dns=False).active_region
    }
    for side, view in (("primary", estate.primary), ("secondary", estate.secondary)):
        site = site_jobs(estate, view, clients, kube)
        for name in ("db", "deployments", "k8s_secret"):
            jobs[f"{side}:{name}"] = site[name]
    r = gather(jobs, workers=7)
    sides = ("primary", "secondary")
    dbs = serving_dbs(
        estate,
        clients,
        {s: r[f"{s}:db"] for s in sides},
        {s: r[f"{s}:k8s_secret"] for s in sides},
        r["serving"],
    )
    return single_writer_check(dbs, {s: r[f"{s}:deployments"] for s in sides}, r["serving"], estate)


def _facts(r: dict[str, Outcome], now: dt.datetime) -> dict[str, float]:
    """The numbers the metrics carry: replica lag, age of the newest DR recovery point."""
    out: dict[str, float] = {}
    lag = r["lag"]
    if lag.ok and lag.value is not None:
        out["replica_lag_seconds"] = float(lag.value.value)
    snap = r["snapshot"]
    if snap.ok and snap.value is not None and snap.value.created is not None:
        out["recovery_point_age_seconds"] = max((now - snap.value.created).total_seconds(), 0.0)
    return out


def check_readiness(
    estate: Estate,
    clients: ClientProvider,
    kube: KubeFactory | None,
    *,
    now: dt.datetime | None = None,
    snapshot_warn: dt.timedelta = SNAPSHOT_WARN,
    snapshot_fail: dt.timedelta = SNAPSHOT_FAIL,
    cert_warn_days: int = CERT_WARN_DAYS,
    workers: int = 16,
) -> ReadinessReport:
    """Read both sites in parallel and compare them; never raises for one read's failure."""
    from dr.aws import cloudwatch
    from dr.aws.rds import Rds
    from dr.procedures.ops_security import cert_check
    from dr.steps.dns_records import read_state

    now = now or dt.datetime.now(dt.UTC)
    p, s = estate.primary, estate.secondary
    db_ids = {p.database.identifier, s.database.identifier}

    def newest_snapshot() -> Any:
        """The DR region's newest recovery point: a snapshot of the estate's databases, or the
        newest restorable time of the primary's automated backups replicated there."""
        rds = Rds(clients, s.region)
        points: list[Any] = [
            x
            for x in rds.list_snapshots()
            if x.instance in db_ids and x.status == "available" and x.created is not None
        ]
        with contextlib.suppress(DrError):  # not allowed or not offered here: snapshots alone decide
            points += [
                b
                for b in rds.replicated_backups(p.region)
                if b.instance in db_ids and b.status in ("replicating", "active") and b.latest is not None
            ]
        epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
        return max(points, key=lambda x: x.created or epoch) if points else None

    jobs: dict[str, Callable[[], Any]] = {}
    for side, view in (("p", p), ("s", s)):
        for name, fn in site_jobs(estate, view, clients, kube).items():
            # Secrets Manager is read in the DR region only (the db-secret check): the scheduled
            # readiness role may read that secret alone, and a read of the primary's would be denied.
            if not (side == "p" and name == "sm_secret"):
                jobs[f"{side}:{name}"] = fn
        jobs[f"{side}:certs"] = functools.partial(
            cert_check, clients, estate, [view], warn_days=cert_warn_days, now=now
        )
    jobs["lag"] = lambda: cloudwatch.replica_lag(clients, s.region, s.database.identifier, now=now)
    jobs["snapshot"] = newest_snapshot
    jobs["serving"] = lambda: read_state(clients, estate, use_test_dns=False).active_region
    jobs.update(redis_jobs(clients, estate))
    r = gather(jobs, workers=workers)

    checks = db_checks(r["p:db"], r["s:db"], estate)
    checks += [
        cluster_check(r["p:cluster"], r["s:cluster"]),
        capacity_check(r["p:nodegroup"], r["s:nodegroup"], estate),
        waf_check(r["p:ip_set"], r["s:ip_set"]),
        images_check(r["p:deployments"], r["s:deployments"], estate),
        single_writer_check(
            serving_dbs(
                estate,
                clients,
                {"primary": r["p:db"], "secondary": r["s:db"]},
                {"primary": r["p:k8s_secret"], "secondary": r["s:k8s_secret"]},
                r["serving"],
            ),
            {"primary": r["p:deployments"], "secondary": r["s:deployments"]},
            r["serving"],
            estate,
        ),
        secret_check(r["p:db"], r["s:db"], r["p:k8s_secret"], r["s:k8s_secret"], r["s:sm_secret"], estate),
        lag_check(r["s:db"], r["lag"], estate),
        snapshot_check(r["snapshot"], now, snapshot_warn, snapshot_fail, s.region),
        certificate_expiry_check(r["p:certs"], r["s:certs"]),
        redis_check(r["p:redis"], r["s:redis"], r["redis_snapshot"], now, estate, snapshot_fail),
    ]
    return ReadinessReport(
        app=estate.app.name,
        primary_region=p.region,
        secondary_region=s.region,
        generated_at=now,
        checks=checks,
        settings={
            "rpo_seconds": estate.app.objectives.rpo_seconds,
            "snapshot_warn_seconds": snapshot_warn.total_seconds(),
            "snapshot_fail_seconds": snapshot_fail.total_seconds(),
            "cert_warn_days": cert_warn_days,
        },
        denied=sorted({o.denied for o in r.values() if o.denied}),
        facts=_facts(r, now),
    )
