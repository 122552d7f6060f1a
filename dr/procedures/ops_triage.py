"""`dr ops triage`: what the runbooks tell on-call to look at first, in one report.

Per site: deployments, pods and restarts, warning events, node pressure, HPA, ALB target health,
RDS status / connections / replica lag, Redis status, CloudWatch alarms in ALARM, and certificate
expiry. Each section is collected on its own: a failing one reports its error and the others
still run (triage must work in the middle of an outage, when half the estate does not answer).
Missing or expired credentials are raised, not reported per section (every section would fail the
same way); a section IAM refused names the action (``denied``) and the command exits 3 after it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.kube import KubeFactory
    from dr.topology import Estate, SiteView

OK, WARN, FAIL, ERROR = "ok", "warn", "fail", "error"

# (IAM action, where) the report reads in each site's region (``dr iam-policy --procedure ops``);
# the certificates section is :data:`dr.procedures.ops_security.CERT_READS`, the clusters are
# reached as the ops steps' kinds declare (``eks:DescribeCluster``).
TRIAGE_READS: tuple[tuple[str, str], ...] = (
    ("elasticloadbalancing:DescribeTargetGroups", "both"),  # ALB targets: the group by name
    ("elasticloadbalancing:DescribeTargetHealth", "both"),
    ("rds:DescribeDBInstances", "both"),
    ("cloudwatch:GetMetricStatistics", "both"),  # connections, replica lag
    ("elasticache:DescribeReplicationGroups", "both"),
    ("elasticache:DescribeCacheClusters", "both"),
    ("cloudwatch:DescribeAlarms", "both"),
)
RESTART_WARN = 3


@dataclass
class Section:
    name: str
    region: str
    status: str = OK
    summary: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    error: str | None = None
    denied: str | None = None  # the IAM action refused, and where (see dr.procedures.status)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "region": self.region,
            "status": self.status,
            "summary": self.summary,
            "columns": self.columns,
            "rows": self.rows,
            "error": self.error,
            "denied": self.denied,
        }


@dataclass
class TriageReport:
    app: str
    generated_at: dt.datetime
    sections: list[Section]

    @property
    def status(self) -> str:
        order = [OK, WARN, ERROR, FAIL]
        return max((s.status for s in self.sections), key=order.index, default=OK)

    @property
    def denied(self) -> list[str]:
        return sorted({s.denied for s in self.sections if s.denied})

    def to_dict(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "generated_at": self.generated_at.isoformat(),
            "status": self.status,
            "sections": [s.to_dict() for s in self.sections],
            "denied": self.denied,
        }

    def markdown(self) -> str:
        """A Markdown summary to paste into the incident channel."""
        icon = {OK: "✅", WARN: "⚠️", FAIL: "❌", ERROR: "❓"}
        lines = [
            f"## Triage — {self.app} — {self.generated_at.strftime('%Y-%m-%d %H:%M UTC')}",
            "",
            f"Overall: {icon[self.status]} **{self.status.upper()}**",
            "",
        ]
        for s in self.sections:
            lines.append(f"### {icon.get(s.status, '')} {s.name} ({s.region}) — {s.summary or s.status}")
            if s.error:
                lines.append(f"_could not collect: {s.error}_")
            if s.rows:
                lines.append("")
                lines.append("| " + " | ".join(s.columns) + " |")
                lines.append("|" + "---|" * len(s.columns))
                for row in s.rows[:30]:
                    cells = ["" if v is None else str(v).replace("|", "\\|").replace("\n", " ") for v in row]
                    lines.append("| " + " | ".join(cells) + " |")
                if len(s.rows) > 30:
                    lines.append(f"_… {len(s.rows) - 30} more_")
            lines.append("")
        return "\n".join(lines)


def _collect(name: str, region: str, fn: Callable[[Section], None]) -> Section:
    from dr.procedures.status import attempt

    section = Section(name=name, region=region)
    out = attempt(lambda: fn(section))  # a section never breaks the whole triage (but credentials do)
    if not out.ok:
        section.status, section.error, section.denied = ERROR, out.error, out.denied
    return section


def _site_sections(
    estate: Estate, view: SiteView, clients: ClientProvider, kube: KubeFactory
) -> list[tuple[str, str, Callable[[Section], None]]]:
    app, region, ns = estate.app, view.region, estate.app.namespace

    def deployments(s: Section) -> None:
        k = kube(view)
        s.columns = ["deployment", "replicas", "ready", "updated", "revision", "images"]
        bad = []
        for dep in app.deployments:
            info = k.get_deployment(ns, dep.name)
            s.rows.append(
                [dep.name, info.replicas, info.ready, info.updated, info.revision, ", ".join(info.images)]
            )
            if info.ready < info.replicas:
                bad.append(f"{dep.name} {info.ready}/{info.replicas} ready")
        api = k.get_deployment(ns, app.api.name)
        if api.replicas > 0 and api.ready == 0:
            s.status = FAIL
        elif bad:
            s.status = WARN
        s.summary = "; ".join(bad) or "all replicas ready"

    def pods(s: Section) -> None:
        items = kube(view).list_pods(ns)
        s.columns = ["pod", "phase", "ready", "restarts", "reason", "node"]
        not_ready = [p for p in items if not p.ready]
        restarting = [p for p in items if p.restarts >= RESTART_WARN]
        for p in sorted(items, key=lambda p: (p.ready, -p.restarts, p.name)):
            s.rows.append([p.name, p.phase, p.ready, p.restarts, p.reason, p.node])
        if not_ready or restarting:
            s.status = WARN
        s.summary = (
            f"{len(items) - len(not_ready)}/{len(items)} ready, "
            f"{sum(p.restarts for p in items)} restarts"
            + (f", {len(restarting)} pod(s) with >= {RESTART_WARN} restarts" if restarting else "")
        )

    def events(s: Section) -> None:
        items = kube(view).warning_events(ns, limit=20)
        s.columns = ["last seen", "object", "reason", "count", "message"]
        s.rows = [[e.last_seen, f"{e.kind}/{e.name}", e.reason, e.count, e.message] for e in items]
        s.status = WARN if items else OK
        reasons = sorted({e.reason for e in items})
        s.summary = f"{len(items)} warning event(s)" + (f": {', '.join(reasons)}" if reasons else "")

    def nodes(s: Section) -> None:
        items = kube(view).nodes()
        s.columns = ["node", "ready", "pressure"]
        s.rows = [[n.name, n.ready, ", ".join(n.pressure) or "-"] for n in items]
        bad = [n for n in items if not n.ready or n.pressure]
        s.status = FAIL if not items else (WARN if bad else OK)
        s.summary = f"{len(items)} node(s), {len(bad)} not ready or under pressure"

    def hpa(s: Section) -> None:
        k = kube(view)
        s.columns = ["hpa", "deployment", "min", "max", "current", "desired"]
        at_max = []
        for dep in app.deployments:
            h = k.hpa_for(ns, dep.name)
            if h is None:
                continue
            s.rows.append([h.name, dep.name, h.min_replicas, h.max_replicas, h.current, h.desired])
            if h.current is not None and h.current >= h.max_replicas:
                at_max.append(h.name)
        s.status = WARN if at_max else OK
        s.summary = f"at max: {', '.join(at_max)}" if at_max else f"{len(s.rows)} HPA(s) within bounds"

    def targets(s: Section) -> None:
        from dr.aws.elbv2 import target_health

        tg = target_health(clients, region, view.edge.target_group_name)
        s.columns = ["target", "port", "state", "reason"]
        s.rows = [[t.target, t.port, t.state, t.reason] for t in tg.targets]
        s.status = (
            FAIL
            if tg.healthy == 0 and view.role == "primary"
            else (WARN if tg.healthy < len(tg.targets) else OK)
        )
        s.summary = f"{tg.healthy}/{len(tg.targets)} healthy in {tg.name}"

    def database(s: Section) -> None:
        from dr.aws import cloudwatch
        from dr.aws.rds import Rds

        db = Rds(clients, region).describe_instance(view.database.identifier)
        s.columns = ["instance", "status", "role", "multi-az", "connections", "replica lag (s)"]
        conns = cloudwatch.latest_metric(
            clients,
            region,
            namespace="AWS/RDS",
            metric="DatabaseConnections",
            dimensions={"DBInstanceIdentifier": db.identifier},
        )
        lag = cloudwatch.replica_lag(clients, region, db.identifier) if db.is_replica else None
        s.rows = [
            [
                db.identifier,
                db.status,
                "replica" if db.is_replica else "primary",
                db.multi_az,
                None if conns is None else int(conns.value),
                None if lag is None else lag.value,
            ]
        ]
        budget = estate.app.objectives.rpo_seconds
        if db.status != "available":
            s.status = (
                FAIL
                if db.status in ("failed", "stopped", "storage-full", "incompatible-parameters")
                else WARN
            )
        elif lag is not None and lag.value > budget:
            s.status = WARN
        s.summary = f"{db.status}" + (f", lag {lag.value:g}s (budget {budget:g}s)" if lag is not None else "")

    def cache(s: Section) -> None:
        from dr.aws.elasticache import ElastiCache

        rg = ElastiCache(clients, region).describe_replication_group(view.cache.replication_group_id)
        s.columns = ["replication group", "status", "nodes", "failover", "endpoint"]
        s.rows = [
            [rg.identifier, rg.status, rg.num_cache_clusters, rg.automatic_failover, rg.primary_endpoint]
        ]
        s.status = OK if rg.status == "available" else WARN
        s.summary = rg.status

    def alarms(s: Section) -> None:
        from dr.aws.cloudwatch import alarms_in_state

        items = alarms_in_state(clients, region)
        s.columns = ["alarm", "since", "metric", "reason"]
        s.rows = [
            [a.name, a.updated.isoformat() if a.updated else None, a.metric, a.reason] for a in items[:20]
        ]
        s.status = WARN if items else OK
        s.summary = f"{len(items)} alarm(s) in ALARM"

    def certs(s: Section) -> None:
        from dr.procedures.ops_security import cert_check

        result = cert_check(clients, estate, [view])
        s.columns = ["domain", "status", "days left", "verdict"]
        s.rows = [[c["domain"], c["status"], c["days_left"], c["verdict"]] for c in result.certificates]
        s.status = FAIL if result.expired else (WARN if result.warnings else OK)
        s.summary = "; ".join(result.warnings) or "valid"

    return [
        ("Deployments", region, deployments),
        ("Pods", region, pods),
        ("Warning events", region, events),
        ("Nodes", region, nodes),
        ("HPA", region, hpa),
        ("ALB targets", region, targets),
        ("RDS", region, database),
        ("Redis", region, cache),
        ("CloudWatch alarms", region, alarms),
        ("Certificates", region, certs),
    ]


def triage(
    estate: Estate,
    sites: list[SiteView],
    clients: ClientProvider,
    kube: KubeFactory,
    *,
    now: dt.datetime | None = None,
    workers: int = 8,
) -> TriageReport:
    """Collect every section for every site, in parallel; never raises for a section's failure."""
    jobs = [job for view in sites for job in _site_sections(estate, view, clients, kube)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        sections = list(pool.map(lambda j: _collect(*j), jobs))
    return TriageReport(app=estate.app.name, generated_at=now or dt.datetime.now(dt.UTC), sections=sections)
