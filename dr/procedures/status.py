"""`dr status`: which region serves the public name, and the health of each region's pieces.

Per region (probed in parallel): EKS cluster, nodegroup capacity, API pods of the traffic-serving
deployment, database (writer / replica, status, ``ReplicaLag``), Redis, ALB target health, the
Route53 health check of the site's failover record, and WAF (web ACL + IP set). Globally: the
active region (Route53 failover evaluation of :func:`dr.steps.dns_records.read_state`) and what the
public name resolves to.

Every probe degrades on its own: a probe that fails reports its error; a region whose AWS endpoint
does not answer (connection refused / dropped / timed out) is marked *unreachable* and the other
region still answers. The whole report is read-only.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dr.errors import AccessDenied, CredentialsError, DrError

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.kube import KubeFactory
    from dr.steps.dns_records import DnsState
    from dr.topology import Estate, SiteView

OK, WARN, FAIL, ERROR, UNREACHABLE = "ok", "warn", "fail", "error", "unreachable"
_ORDER = [OK, WARN, ERROR, FAIL, UNREACHABLE]
PROBES = ("cluster", "nodegroup", "api_pods", "database", "redis", "alb_targets", "health_check", "waf")
AWS_PROBES = ("cluster", "nodegroup", "database", "redis", "alb_targets", "waf")


def worst(states: list[str]) -> str:
    return max(states, key=_ORDER.index, default=OK)


# ---------------------------------------------------------------------------------------------
# Running independent reads in parallel, each one failing on its own
# ---------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """The result of one read: a value, or an error (``unreachable`` when the endpoint did not answer)."""

    value: Any = None
    error: str | None = None
    unreachable: bool = False
    denied: str | None = None  # the IAM action refused (AccessDenied) and where, "?" when AWS did not say

    @property
    def ok(self) -> bool:
        return self.error is None


def _denied(err: AccessDenied) -> str:
    """``iam-action in region`` of a refused probe (what a partial report lists)."""
    return (err.iam_action or "?") + (f" in {err.region}" if err.region else "")


def attempt(fn: Callable[[], Any]) -> Outcome:
    """Run ``fn``; map endpoint errors to ``unreachable``, DrErrors and anything else to ``error``.

    A :class:`~dr.errors.CredentialsError` (no, expired or unknown credentials; unknown profile;
    SSO session expired) is raised, not reported: it is the operator's setup, every probe would
    fail the same way, and a report of "unknown" everywhere would hide it. An AccessDenied is
    reported on its probe with the IAM action (``denied``)."""
    from dr.aws.session import aws_setup_error, endpoint_error_types

    try:
        return Outcome(fn())
    except endpoint_error_types() as exc:
        return Outcome(error=f"endpoint did not answer: {type(exc).__name__}: {exc}", unreachable=True)
    except CredentialsError:
        raise
    except AccessDenied as err:
        return Outcome(error=err.message, denied=_denied(err))
    except DrError as err:
        return Outcome(error=err.message)
    except Exception as exc:  # one probe must never break the report
        mapped = aws_setup_error(exc)
        if isinstance(mapped, CredentialsError):
            raise mapped from None
        if isinstance(mapped, AccessDenied):
            return Outcome(error=mapped.message, denied=_denied(mapped))
        return Outcome(error=f"{type(exc).__name__}: {exc}")


def gather(jobs: dict[str, Callable[[], Any]], *, workers: int = 16) -> dict[str, Outcome]:
    """Run every job concurrently; returns an Outcome per key (never raises)."""
    if not jobs:
        return {}
    with ThreadPoolExecutor(
        max_workers=max(1, min(workers, len(jobs))), thread_name_prefix="dr-probe"
    ) as pool:
        futures = {key: pool.submit(attempt, fn) for key, fn in jobs.items()}
        return {key: future.result() for key, future in futures.items()}


# ---------------------------------------------------------------------------------------------
# Result types
# ---------------------------------------------------------------------------------------------


@dataclass
class Probe:
    name: str
    state: str
    summary: str
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "summary": self.summary, **self.detail, "error": self.error}


@dataclass
class RegionStatus:
    region: str
    site: str
    role: str  # the role the stack files declare: primary | standby
    serving: bool
    probes: dict[str, Probe]
    unreachable: bool = False
    error: str | None = None

    @property
    def state(self) -> str:
        if self.unreachable:
            return UNREACHABLE
        # one endpoint not answering degrades the region (error); it is not a lost region
        return worst([ERROR if p.state == UNREACHABLE else p.state for p in self.probes.values()])

    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "site": self.site,
            "role": self.role,
            "serving": self.serving,
            "state": self.state,
            "reachable": not self.unreachable,
            "error": self.error,
            **{name: self.probes[name].to_dict() for name in PROBES if name in self.probes},
        }


@dataclass
class Resolution:
    """What the public name resolves to, and which region that is."""

    name: str
    answer: list[str] | None
    region: str | None
    source: str
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "answer": self.answer,
            "region": self.region,
            "source": self.source,
            "error": self.error,
        }


@dataclass
class StatusReport:
    app: str
    record: str
    generated_at: dt.datetime
    active_region: str | None
    regions: list[RegionStatus]
    resolves_to: Resolution
    dns: dict[str, Any] | None
    dns_error: str | None = None
    notes: list[str] = field(default_factory=list)
    # IAM actions a probe was refused (AccessDenied): the report is partial; `dr status` exits 3.
    denied: list[str] = field(default_factory=list)
    # The continuous-readiness alarms in the DR region (see readiness_alarms_summary).
    readiness: dict[str, Any] | None = None

    def region(self, name: str) -> RegionStatus:
        return next(r for r in self.regions if r.region == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "record": self.record,
            "generated_at": self.generated_at.isoformat(),
            "active_region": self.active_region,
            "resolves_to": self.resolves_to.to_dict(),
            "regions": {r.region: r.to_dict() for r in self.regions},
            "dns": self.dns,
            "dns_error": self.dns_error,
            "denied": list(self.denied),
            "notes": self.notes,
            "readiness": self.readiness,
        }


# A resolver for the public name: returns (answer values, region) — the CLI picks one per target.
Resolver = Callable[[], tuple[list[str], str | None]]


# ---------------------------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------------------------


def _site_jobs(
    estate: Estate, view: SiteView, clients: ClientProvider, kube: KubeFactory | None
) -> dict[str, Callable[[], Any]]:
    from dr.aws import cloudwatch, eks, elbv2, wafv2
    from dr.aws.elasticache import ElastiCache
    from dr.aws.rds import Rds

    region, app = view.region, estate.app

    def database() -> dict[str, Any]:
        db = Rds(clients, region).describe_instance(view.database.identifier)
        lag, lag_error = None, None
        if db.is_replica:  # CloudWatch failing must not hide the database's role and status
            got = attempt(lambda: cloudwatch.replica_lag(clients, region, db.identifier))
            lag, lag_error = got.value, got.error
        return {"db": db, "lag": lag, "lag_error": lag_error}

    def pods() -> Any:
        if kube is None:
            raise DrError("no Kubernetes access configured")
        return kube(view).rollout_status(app.namespace, app.api.name)

    def waf() -> dict[str, Any]:
        acl = wafv2.find_web_acl(clients, region, view.edge.web_acl_name)
        ip_set = wafv2.get_ip_set(clients, region, view.edge.ip_set_name)
        return {"acl": acl, "ip_set": ip_set}

    return {
        "cluster": lambda: eks.describe_cluster(clients, region, view.cluster.name),
        "nodegroup": lambda: eks.describe_nodegroup(
            clients, region, view.cluster.name, view.cluster.nodegroup.name
        ),
        "api_pods": pods,
        "database": database,
        "redis": lambda: ElastiCache(clients, region).describe_replication_group(
            view.cache.replication_group_id
        ),
        "alb_targets": lambda: elbv2.target_health(clients, region, view.edge.target_group_name),
        "waf": waf,
    }


def _probe(name: str, out: Outcome, fn: Callable[[Any], Probe]) -> Probe:
    if not out.ok:
        return Probe(
            name,
            UNREACHABLE if out.unreachable else ERROR,
            "unreachable" if out.unreachable else "error",
            error=out.error,
        )
    try:
        return fn(out.value)
    except Exception as exc:  # a malformed answer is reported, not raised
        return Probe(name, ERROR, "error", error=f"{type(exc).__name__}: {exc}")


def _cluster(info: Any) -> Probe:
    state = OK if info.status == "ACTIVE" else (WARN if info.status in ("UPDATING", "CREATING") else FAIL)
    return Probe(
        "cluster", state, info.status, {"name": info.name, "status": info.status, "version": info.version}
    )


def _nodegroup(info: Any) -> Probe:
    s = info.scaling
    state = OK if info.status == "ACTIVE" else (WARN if info.status in ("UPDATING", "CREATING") else FAIL)
    return Probe(
        "nodegroup",
        state,
        f"{s.min_size}/{s.desired_size}/{s.max_size} {info.status}",
        {
            "name": info.name,
            "status": info.status,
            "min": s.min_size,
            "desired": s.desired_size,
            "max": s.max_size,
            "instance_types": list(info.instance_types),
            "health_issues": list(info.health_issues),
        },
    )


def _pods(info: Any, serving: bool) -> Probe:
    ready, desired = info.ready, info.replicas
    if desired == 0:
        state = FAIL if serving else WARN
    elif ready == 0:
        state = FAIL
    elif ready < desired:
        state = WARN
    else:
        state = OK
    return Probe(
        "api_pods",
        state,
        f"{ready}/{desired} ready",
        {"deployment": info.name, "ready": ready, "desired": desired, "images": list(info.images)},
    )


def _two_writers_note(views: list[SiteView], results: dict[str, Any], active: str | None) -> list[str]:
    """Both databases writable (the old primary back standalone after a failover): name the one
    Route53 does not serve and what settles it (`dr readiness` checks its writers: single-writer)."""
    dbs = {v.region: results[f"{v.region}:database"] for v in views if f"{v.region}:database" in results}
    writers = {r: o.value["db"] for r, o in dbs.items() if o.ok and not o.value["db"].is_replica}
    if len(writers) < 2 or active is None:
        return []
    stale = next((r for r in writers if r != active), None)
    if stale is None:
        return []
    return [
        f"two writable databases: {writers[stale].identifier} in {stale} is not served by Route53 — "
        f"writes there diverge (split brain); `dr readiness` checks its writers, `dr ops stop-writes "
        f"--region {stale}` stops them, `dr reprotect --region {stale}` makes it a replica again"
    ]


def _database(value: dict[str, Any], rpo: float) -> Probe:
    db, lag = value["db"], value["lag"]
    role = "replica" if db.is_replica else "writer"
    lag_s = None if lag is None else float(lag.value)
    if db.status == "available":
        state = OK
    elif db.status in (
        "failed",
        "stopped",
        "storage-full",
        "incompatible-parameters",
        "inaccessible-encryption-credentials",
    ):
        state = FAIL
    else:
        state = WARN
    if state == OK and db.is_replica and (lag_s is None or lag_s > rpo):
        state = WARN
    summary = f"{role} {db.status}"
    if db.is_replica:
        summary += f", lag {lag_s:g}s" if lag_s is not None else ", lag unknown"
    return Probe(
        "database",
        state,
        summary,
        error=value.get("lag_error"),
        detail={
            "identifier": db.identifier,
            "role": role,
            "status": db.status,
            "replica_lag_seconds": lag_s,
            "rpo_seconds": rpo,
            "engine_version": db.engine_version,
            "multi_az": db.multi_az,
            "endpoint": db.endpoint,
        },
    )


def _redis(rg: Any) -> Probe:
    state = OK if rg.status == "available" else (FAIL if rg.status in ("create-failed", "deleting") else WARN)
    return Probe(
        "redis",
        state,
        rg.status,
        {"identifier": rg.identifier, "status": rg.status, "nodes": rg.num_cache_clusters},
    )


def _targets(tg: Any, serving: bool) -> Probe:
    total, healthy = len(tg.targets), tg.healthy
    if total == 0:
        state = WARN
    elif healthy == 0:
        state = FAIL if serving else WARN
    elif healthy < total:
        state = WARN
    else:
        state = OK
    return Probe(
        "alb_targets",
        state,
        f"{healthy}/{total} healthy",
        {"target_group": tg.name, "healthy": healthy, "total": total},
    )


def _waf(value: dict[str, Any]) -> Probe:
    acl, ip_set = value["acl"], value["ip_set"]
    entries = len(ip_set.addresses)
    state = OK if acl is not None else FAIL
    summary = f"{acl.name if acl else 'NO WEB ACL'}, {entries} blocked"
    return Probe(
        "waf",
        state,
        summary,
        {"web_acl": acl.name if acl else None, "ip_set": ip_set.name, "ip_set_entries": entries},
    )


def _health_check(dns: DnsState | None, dns_error: str | None, region: str) -> Probe:
    if dns is None:
        return Probe("health_check", ERROR, "error", error=dns_error or "Route53 state unknown")
    rec = dns.by_region(region)
    if rec is None:
        return Probe("health_check", FAIL, "no failover record", {"failover": None})
    check = rec.check
    detail: dict[str, Any] = {
        "failover": rec.role,
        "id": check.id if check else None,
        "name": check.name if check else None,
        "endpoint_healthy": rec.endpoint_healthy,
        "route53_healthy": rec.healthy,
        "inverted": check.inverted if check else None,
        "disabled": check.disabled if check else None,
    }
    if check is None:
        return Probe("health_check", WARN, f"{rec.role}, no health check", detail)
    flags = [f for f in ("inverted", "disabled") if getattr(check, f)]
    summary = ("healthy" if rec.healthy else "UNHEALTHY") + (f" ({', '.join(flags)})" if flags else "")
    # Unhealthy where traffic goes: an outage. Unhealthy on the passive side (e.g. a warm standby
    # whose database is a read-only replica): DNS could not fail over to it as it is — a warning.
    state = OK if rec.healthy else (FAIL if dns.active_region == region else WARN)
    return Probe("health_check", state, f"{rec.role} {summary}", detail)


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


def _readiness_alarms(clients: ClientProvider, estate: Estate) -> list[Any]:
    from dr.procedures.readiness_metrics import readiness_alarms

    return readiness_alarms(clients, estate)


def readiness_alarms_summary(out: Outcome, estate: Estate) -> dict[str, Any]:
    """State of the readiness alarms in the DR region (DescribeAlarms), as CloudWatch reports it."""
    region = estate.secondary.region
    if not out.ok:
        return {"region": region, "error": out.error, "alarms": [], "firing": [], "counts": {}}
    alarms = [a.to_dict() for a in out.value]
    counts: dict[str, int] = {}
    for a in alarms:
        counts[a["state"]] = counts.get(a["state"], 0) + 1
    return {
        "region": region,
        "error": None,
        "alarms": alarms,
        "firing": [a["name"] for a in alarms if a["state"] == "ALARM"],
        "counts": counts,
    }


def collect_status(
    estate: Estate,
    clients: ClientProvider,
    kube: KubeFactory | None,
    *,
    resolver: Resolver | None = None,
    now: dt.datetime | None = None,
    workers: int = 16,
) -> StatusReport:
    """Probe both regions and Route53 in parallel; never raises for one probe's failure."""
    from dr.steps.dns_records import read_state

    views = [estate.primary, estate.secondary]
    jobs: dict[str, Callable[[], Any]] = {"dns": lambda: read_state(clients, estate)}
    if resolver is not None:
        jobs["resolve"] = resolver
    for view in views:
        for name, fn in _site_jobs(estate, view, clients, kube).items():
            jobs[f"{view.region}:{name}"] = fn
    jobs["readiness_alarms"] = functools.partial(_readiness_alarms, clients, estate)
    results = gather(jobs, workers=workers)

    dns_out = results["dns"]
    dns: DnsState | None = dns_out.value if dns_out.ok else None
    active = dns.active_region if dns is not None else None
    notes = list(dns.notes) if dns is not None else []
    if dns is None:
        notes.append(f"Route53 did not answer: {dns_out.error}")

    resolution = Resolution(estate.app.record, None, None, "route53:TestDNSAnswer")
    if resolver is not None:
        res = results["resolve"]
        resolution.source = "resolver"
        if res.ok:
            resolution.answer, resolution.region = list(res.value[0]), res.value[1]
        else:
            resolution.error = res.error
    elif dns is not None:
        resolution.answer, resolution.region = dns.answer, dns.answer_region
        if dns.answer is None:
            resolution.error = "TestDNSAnswer is not available"
    if active is None and resolution.region:
        active = resolution.region
        notes.append(f"active region taken from what {estate.app.record} resolves to (Route53 unreadable)")
    elif resolution.region and active and resolution.region != active:
        notes.append(
            f"{estate.app.record} resolves to {resolution.region} but Route53 failover selects {active} "
            "(resolver caches for the record's TTL)"
        )

    rpo = estate.app.objectives.rpo_seconds
    regions: list[RegionStatus] = []
    for view in views:
        r = view.region
        serving = active == r
        out = {name: results[f"{r}:{name}"] for name in PROBES if f"{r}:{name}" in results}
        probes = {
            "cluster": _probe("cluster", out["cluster"], _cluster),
            "nodegroup": _probe("nodegroup", out["nodegroup"], _nodegroup),
            "api_pods": _probe("api_pods", out["api_pods"], functools.partial(_pods, serving=serving)),
            "database": _probe("database", out["database"], lambda v: _database(v, rpo)),
            "redis": _probe("redis", out["redis"], _redis),
            "alb_targets": _probe(
                "alb_targets", out["alb_targets"], functools.partial(_targets, serving=serving)
            ),
            "health_check": _health_check(dns, dns_out.error, r),
            "waf": _probe("waf", out["waf"], _waf),
        }
        # The region is unreachable when none of its AWS endpoints answered (one timeout is a
        # degraded probe, not a lost region).
        aws = [o for name, o in out.items() if name in AWS_PROBES]
        lost = [o for o in aws if o.unreachable]
        gone = bool(aws) and len(lost) == len(aws)
        regions.append(
            RegionStatus(
                region=r,
                site=view.site.name,
                role=view.role,
                serving=serving,
                probes=probes,
                unreachable=gone,
                error=lost[0].error if lost else None,
            )
        )
        if gone:
            notes.append(f"{r} is unreachable (no AWS endpoint answered): {lost[0].error}")
        elif lost:
            notes.append(f"{r}: {len(lost)} of {len(aws)} AWS probes did not answer: {lost[0].error}")
    notes += _two_writers_note(views, results, active)
    # The readiness alarms are an extra: a policy without cloudwatch:DescribeAlarms shows them as
    # unreadable (readiness.error) rather than making the whole report partial.
    denied = sorted({o.denied for k, o in results.items() if o.denied and k != "readiness_alarms"})
    if denied:
        notes.append(
            f"access denied for {', '.join(denied)}: this report is partial; "
            "`dr iam-policy --procedure failover` prints the policy that grants every read it makes"
        )
    return StatusReport(
        app=estate.app.name,
        record=estate.app.record,
        generated_at=now or dt.datetime.now(dt.UTC),
        active_region=active,
        regions=regions,
        resolves_to=resolution,
        dns=dns.to_dict() if dns is not None else None,
        dns_error=None if dns_out.ok else dns_out.error,
        notes=notes,
        denied=denied,
        readiness=readiness_alarms_summary(results["readiness_alarms"], estate),
    )
