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
Read-only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from dr.errors import DrError
from dr.procedures.status import Outcome, gather

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.kube import KubeFactory
    from dr.topology import Estate, SiteView

PASS, WARN, FAIL = "pass", "warn", "fail"
_ORDER = [PASS, WARN, FAIL]
SNAPSHOT_WARN = dt.timedelta(hours=24)
SNAPSHOT_FAIL = dt.timedelta(days=7)
CERT_WARN_DAYS = 30


@dataclass
class Check:
    name: str
    status: str
    reason: str
    primary: Any = None
    secondary: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "reason": self.reason,
            "primary": self.primary,
            "secondary": self.secondary,
        }


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


# ---------------------------------------------------------------------------------------------
# Reading facts
# ---------------------------------------------------------------------------------------------


def parameter_group_family(clients: ClientProvider, region: str, name: str) -> str | None:
    """The family (e.g. ``postgres15``) of DB parameter group ``name``."""
    from dr.aws.rds import aws_errors

    with aws_errors(resource=f"DB parameter group {name}", region=region, action="describe"):
        raw = clients.client("rds", region).describe_db_parameter_groups(DBParameterGroupName=name)
    groups = raw.get("DBParameterGroups") or []
    return str(groups[0].get("DBParameterGroupFamily")) if groups else None


def secret_host(value: str) -> tuple[str | None, int | None]:
    """Host and port a DB secret points at: a URL (postgresql://…) or a JSON document with ``host``.

    Only host and port leave this function — never the user, password or the whole value.
    """
    text = value.strip()
    if "://" in text:
        try:
            parts = urlsplit(text)
            return parts.hostname, parts.port
        except ValueError:
            return None, None
    try:
        doc = json.loads(text)
    except ValueError:
        return None, None
    if isinstance(doc, dict) and doc.get("host"):
        port = doc.get("port")
        return str(doc["host"]), int(port) if isinstance(port, (int, str)) and str(port).isdigit() else None
    return None, None


def serving_database(
    own: Any, secret: tuple[str | None, int | None], instances: Callable[[], list[Any]]
) -> Any:
    """The database really serving a site Route53 serves: the standalone instance its DB secret
    points at — the restored instance a repoint (``dr restore pitr`` then the app's secret) or a
    ``dr failover --db`` moved the application onto — else ``own`` (the stack files' instance, or
    None when it is gone). ``secret``: the host and port of the site's DB secret; ``instances``
    lists the region's instances, called only when the secret points elsewhere than ``own``."""
    host, port = secret
    if not host or (own is not None and _points_at(host, port, own)):
        return own
    for inst in instances():
        if not inst.is_replica and _points_at(host, port, inst):
            return inst
    return own


def _serving_dbs(
    estate: Estate,
    clients: ClientProvider,
    dbs: dict[str, Outcome],
    secrets: dict[str, Outcome],
    serving: Outcome,
) -> dict[str, Outcome]:
    """``dbs`` (side -> the stack files' instance) with the side Route53 serves judged on the
    database really serving it (:func:`serving_database`). A secret that cannot be read leaves the
    stack files' instance (the db-secret check reports the secret)."""
    from dr.aws.rds import Rds
    from dr.procedures.status import attempt

    views = {"primary": estate.primary, "secondary": estate.secondary}
    side = next((s for s, v in views.items() if serving.ok and v.region == serving.value), None)
    if side is None or not dbs[side].ok or not secrets[side].ok:
        return dbs
    own, rds = dbs[side].value["db"], Rds(clients, views[side].region)
    found = attempt(lambda: serving_database(own, secrets[side].value, rds.list_instances))
    if found.ok and (found.value is own or found.value is None):
        return dbs
    return {**dbs, side: found if not found.ok else Outcome({"db": found.value})}


def _site_jobs(
    estate: Estate, view: SiteView, clients: ClientProvider, kube: KubeFactory | None
) -> dict[str, Callable[[], Any]]:
    from dr.aws import eks, wafv2
    from dr.aws.rds import Rds
    from dr.aws.secretsmanager import get_secret

    region, app = view.region, estate.app

    def db() -> dict[str, Any]:
        inst = Rds(clients, region).describe_instance(view.database.identifier)
        family = (
            parameter_group_family(clients, region, inst.parameter_group) if inst.parameter_group else None
        )
        return {"db": inst, "family": family}

    def need_kube() -> KubeFactory:
        if kube is None:
            raise DrError("no Kubernetes access configured")
        return kube

    def deployments() -> dict[str, Any]:
        return {d.name: d for d in need_kube()(view).list_deployments(app.namespace)}

    def k8s_secret() -> tuple[str | None, int | None]:
        value = need_kube()(view).read_secret_key(app.namespace, app.db_secret.name, app.db_secret.key)
        return secret_host(value.reveal())

    def sm_secret() -> tuple[str | None, int | None]:
        return secret_host(get_secret(clients, region, app.db_secret.secrets_manager_id).value.reveal())

    return {
        "db": db,
        "cluster": lambda: eks.describe_cluster(clients, region, view.cluster.name),
        "nodegroup": lambda: eks.describe_nodegroup(
            clients, region, view.cluster.name, view.cluster.nodegroup.name
        ),
        "ip_set": lambda: wafv2.get_ip_set(clients, region, view.edge.ip_set_name),
        "deployments": deployments,
        "k8s_secret": k8s_secret,
        "sm_secret": sm_secret,
    }


# ---------------------------------------------------------------------------------------------
# Checks (pure functions of the facts)
# ---------------------------------------------------------------------------------------------


def _unreadable(name: str, outs: dict[str, Outcome]) -> Check | None:
    bad = {side: o.error for side, o in outs.items() if not o.ok}
    if not bad:
        return None
    reason = "; ".join(f"could not read {side}: {err}" for side, err in bad.items())
    return Check(name, FAIL, reason)


def _major(version: str | None) -> str:
    return (version or "").split(".")[0]


def _db_checks(p: Outcome, s: Outcome, estate: Estate) -> list[Check]:
    names = ["db-engine", "db-instance-class", "db-multi-az", "db-encryption", "db-parameter-group"]
    err = _unreadable("db", {"primary": p, "secondary": s})
    if err is not None:
        return [Check(n, FAIL, err.reason) for n in names]
    pdb, sdb = p.value["db"], s.value["db"]
    out: list[Check] = []

    pe, se = f"{pdb.engine} {pdb.engine_version}", f"{sdb.engine} {sdb.engine_version}"
    if pdb.engine != sdb.engine:
        out.append(Check("db-engine", FAIL, f"engines differ: {pdb.engine} vs {sdb.engine}", pe, se))
    elif _major(pdb.engine_version) != _major(sdb.engine_version):
        out.append(Check("db-engine", FAIL, "major versions differ", pe, se))
    elif pdb.engine_version != sdb.engine_version:
        out.append(Check("db-engine", WARN, "minor versions differ (same major)", pe, se))
    else:
        out.append(Check("db-engine", PASS, "same engine and version", pe, se))

    if pdb.instance_class == sdb.instance_class:
        out.append(
            Check("db-instance-class", PASS, "same instance class", pdb.instance_class, sdb.instance_class)
        )
    else:
        out.append(
            Check(
                "db-instance-class",
                FAIL,
                f"DR runs {sdb.instance_class}, production {pdb.instance_class}: after promotion the DR "
                "database would not carry production load the same way",
                pdb.instance_class,
                sdb.instance_class,
            )
        )

    if pdb.multi_az and sdb.multi_az:
        out.append(Check("db-multi-az", PASS, "Multi-AZ in both regions", True, True))
    elif pdb.multi_az and not sdb.multi_az:
        out.append(
            Check(
                "db-multi-az",
                FAIL,
                "production is Multi-AZ, DR is single-AZ (no AZ redundancy after failover)",
                True,
                False,
            )
        )
    else:
        out.append(
            Check("db-multi-az", WARN, "production database is not Multi-AZ", pdb.multi_az, sdb.multi_az)
        )

    if pdb.encrypted and sdb.encrypted:
        out.append(Check("db-encryption", PASS, "storage encrypted in both regions", True, True))
    else:
        who = [side for side, db in (("production", pdb), ("DR", sdb)) if not db.encrypted]
        out.append(
            Check(
                "db-encryption",
                FAIL,
                f"storage not encrypted in {' and '.join(who)}",
                pdb.encrypted,
                sdb.encrypted,
            )
        )

    pf, sf = p.value["family"], s.value["family"]
    if pf is None or sf is None:
        out.append(
            Check(
                "db-parameter-group",
                WARN,
                "parameter group family unknown (no custom parameter group)",
                pf,
                sf,
            )
        )
    elif pf != sf:
        out.append(
            Check("db-parameter-group", FAIL, f"parameter group families differ: {pf} vs {sf}", pf, sf)
        )
    elif pf != estate.parameter_group_family:
        out.append(
            Check(
                "db-parameter-group",
                WARN,
                f"both {pf}, but engineVersion {estate.app.database.engine_version} needs "
                f"{estate.parameter_group_family}",
                pf,
                sf,
            )
        )
    else:
        out.append(Check("db-parameter-group", PASS, f"same family {pf}", pf, sf))
    return out


def _cluster_check(p: Outcome, s: Outcome) -> Check:
    err = _unreadable("eks-version", {"primary": p, "secondary": s})
    if err is not None:
        return err
    pv, sv = p.value.version, s.value.version
    if pv == sv:
        return Check("eks-version", PASS, f"both {pv}", pv, sv)
    return Check("eks-version", WARN, f"Kubernetes versions differ: {pv} vs {sv}", pv, sv)


def _capacity_check(p: Outcome, s: Outcome, estate: Estate) -> Check:
    err = _unreadable("node-capacity", {"primary": p, "secondary": s})
    if err is not None:
        return err
    pn, sn = p.value, s.value
    ppn = estate.secondary.cluster.nodegroup.pods_per_node
    pods_needed = sum(estate.replica_count(estate.primary, d) for d in estate.app.deployments)
    pods_possible = sn.scaling.max_size * ppn
    primary_cell = f"desired {pn.scaling.desired_size} ({', '.join(pn.instance_types) or '?'})"
    secondary_cell = f"max {sn.scaling.max_size} × {ppn} pods/node ({', '.join(sn.instance_types) or '?'})"
    problems = []
    if sn.scaling.max_size < pn.scaling.desired_size:
        problems.append(
            f"DR nodegroup max {sn.scaling.max_size} < production desired {pn.scaling.desired_size} nodes"
        )
    if pods_possible < pods_needed:
        problems.append(
            f"DR can run at most {pods_possible} pods ({sn.scaling.max_size} nodes × {ppn}), production needs {pods_needed}"
        )
    if problems:
        return Check("node-capacity", FAIL, "; ".join(problems), primary_cell, secondary_cell)
    if set(pn.instance_types) != set(sn.instance_types):
        return Check(
            "node-capacity",
            WARN,
            f"enough nodes, but instance types differ ({', '.join(pn.instance_types)} vs {', '.join(sn.instance_types)})",
            primary_cell,
            secondary_cell,
        )
    return Check(
        "node-capacity",
        PASS,
        f"DR can scale to {sn.scaling.max_size} nodes / {pods_possible} pods (production: "
        f"{pn.scaling.desired_size} nodes, {pods_needed} pods)",
        primary_cell,
        secondary_cell,
    )


def _few(items: list[str], limit: int = 5) -> str:
    return ", ".join(items[:limit]) + (f" … (+{len(items) - limit})" if len(items) > limit else "")


def _waf_check(p: Outcome, s: Outcome) -> Check:
    import ipaddress

    err = _unreadable("waf-ip-set", {"primary": p, "secondary": s})
    if err is not None:
        return err

    def norm(addresses: tuple[str, ...]) -> set[str]:
        out = set()
        for a in addresses:
            try:
                out.add(ipaddress.ip_network(a, strict=False).with_prefixlen)
            except ValueError:
                out.add(a)
        return out

    pa, sa = norm(p.value.addresses), norm(s.value.addresses)
    cells = (f"{len(pa)} entries", f"{len(sa)} entries")
    if pa == sa:
        return Check("waf-ip-set", PASS, f"identical ({len(pa)} blocked entries)", *cells)
    only_p, only_s = sorted(pa - sa), sorted(sa - pa)
    parts = []
    if only_p:
        parts.append(f"only in production: {_few(only_p)}")
    if only_s:
        parts.append(f"only in DR: {_few(only_s)}")
    return Check("waf-ip-set", FAIL, "blocked addresses differ — " + "; ".join(parts), *cells)


def _images_check(p: Outcome, s: Outcome, estate: Estate) -> Check:
    err = _unreadable("container-images", {"primary": p, "secondary": s})
    if err is not None:
        return err
    pi = {name: d.images for name, d in p.value.items()}
    si = {name: d.images for name, d in s.value.items()}
    diffs, missing = [], []
    for dep in estate.app.deployments:
        a, b = pi.get(dep.name), si.get(dep.name)
        if a is None or b is None:
            missing.append(f"{dep.name} missing in {'production' if a is None else 'DR'}")
        elif sorted(a) != sorted(b):
            diffs.append(f"{dep.name}: {', '.join(a)} vs {', '.join(b)}")
    cell_p = {d: list(v) for d, v in sorted(pi.items())}
    cell_s = {d: list(v) for d, v in sorted(si.items())}
    if diffs or missing:
        return Check("container-images", FAIL, "; ".join(missing + diffs), cell_p, cell_s)
    return Check(
        "container-images",
        PASS,
        f"{len(estate.app.deployments)} deployment(s) run the same images",
        cell_p,
        cell_s,
    )


def _single_writer_check(
    dbs: dict[str, Outcome], deployments: dict[str, Outcome], serving: Outcome, estate: Estate
) -> Check:
    """At most one writable database — or, when a failover left two (the old primary came back
    standalone), no writer running beside the one Route53 does not serve (split brain: its writes
    diverge and are lost when reprotect or failback moves that instance aside)."""
    name = "single-writer"
    views = {"primary": estate.primary, "secondary": estate.secondary}
    err = _unreadable(name, dbs)
    if err is not None:
        return err
    writable = {side: dbs[side].value["db"] for side in views if not dbs[side].value["db"].is_replica}
    cells = {side: {"db": dbs[side].value["db"].identifier, "writable": side in writable} for side in views}
    if len(writable) < 2:
        where = (
            ", ".join(f"{db.identifier} ({views[side].region})" for side, db in writable.items()) or "none"
        )
        return Check(name, PASS, f"one writable database: {where}", cells["primary"], cells["secondary"])
    if not serving.ok:
        return Check(
            name,
            FAIL,
            "both databases are writable and Route53 could not be read to tell which one serves: "
            f"{serving.error}",
            cells["primary"],
            cells["secondary"],
        )
    stale = next((side for side in views if views[side].region != serving.value), "primary")
    view, db = views[stale], writable[stale]
    deps = deployments[stale]
    writer_names = {d.name for d in estate.app.writers}
    running = {
        n: d.replicas for n, d in (deps.value if deps.ok else {}).items() if n in writer_names and d.replicas
    }
    cells[stale]["writers"] = running if deps.ok else None
    served = next(side for side in views if side != stale)
    moved = writable[served].identifier != views[served].database.identifier
    db_opt = f" --db {writable[served].identifier}" if moved else ""
    fix = f"`dr reprotect --region {view.region}{db_opt}` makes it a replica of the serving database again"
    if not deps.ok:
        return Check(
            name,
            FAIL,
            f"{db.identifier} in {view.region} is writable but Route53 serves {serving.value}, and its "
            f"writers could not be read ({deps.error}); stop them (`dr ops stop-writes --region "
            f"{view.region}`), then {fix}",
            cells["primary"],
            cells["secondary"],
        )
    if running:
        pods = ", ".join(f"{n} ({r})" for n, r in sorted(running.items()))
        return Check(
            name,
            FAIL,
            f"split brain: {db.identifier} in {view.region} is writable but Route53 serves "
            f"{serving.value}, and writers run there ({pods}) — what they write diverges and is lost "
            f"when the instance is moved aside. Stop them: `dr ops stop-writes --region {view.region}`; "
            f"then {fix}",
            cells["primary"],
            cells["secondary"],
        )
    return Check(
        name,
        WARN,
        f"{db.identifier} in {view.region} is writable but Route53 serves {serving.value} (no writer runs "
        f"there); {fix}",
        cells["primary"],
        cells["secondary"],
    )


def single_writer(estate: Estate, clients: ClientProvider, kube: KubeFactory | None) -> Check:
    """The ``single-writer`` check alone (what a drill checks once it ended): both databases, both
    sites' deployments and DB secrets, and the region Route53 serves, read in parallel; the served
    side is judged on the database really serving it (:func:`serving_database`)."""
    from dr.procedures.dns import read_state

    jobs: dict[str, Callable[[], Any]] = {
        "serving": lambda: read_state(clients, estate, use_test_dns=False).active_region
    }
    for side, view in (("primary", estate.primary), ("secondary", estate.secondary)):
        site = _site_jobs(estate, view, clients, kube)
        for name in ("db", "deployments", "k8s_secret"):
            jobs[f"{side}:{name}"] = site[name]
    r = gather(jobs, workers=7)
    sides = ("primary", "secondary")
    dbs = _serving_dbs(
        estate,
        clients,
        {s: r[f"{s}:db"] for s in sides},
        {s: r[f"{s}:k8s_secret"] for s in sides},
        r["serving"],
    )
    return _single_writer_check(dbs, {s: r[f"{s}:deployments"] for s in sides}, r["serving"], estate)


def _addr(host: str | None, port: int | None) -> str | None:
    if host is None:
        return None
    return f"{host}:{port}" if port else host


def _points_at(host: str | None, port: int | None, db: Any) -> bool:
    """Does (host, port) name ``db``'s endpoint? Ports are compared when both are known."""
    if not host or not db.endpoint:
        return False
    return host.lower() == db.endpoint.lower() and (port is None or db.port is None or port == db.port)


def _secret_check(
    dbp: Outcome, dbs: Outcome, kp: Outcome, ks: Outcome, sms: Outcome, estate: Estate
) -> Check:
    name, key = estate.app.db_secret.name, estate.app.db_secret.key
    if not ks.ok:
        return Check("db-secret", FAIL, f"DR secret {name}/{key}: {ks.error}")
    if not dbs.ok:
        return Check("db-secret", FAIL, f"could not read the DR database: {dbs.error}")
    sdb = dbs.value["db"]
    host, port = ks.value
    expected = _addr(sdb.endpoint, sdb.port)
    primary_cell = None
    if kp.ok and kp.value[0]:
        primary_cell = _addr(*kp.value)
    if host is None:
        return Check(
            "db-secret", FAIL, f"DR secret {name}/{key} holds no database URL/host", primary_cell, None
        )
    actual = _addr(host, port)
    if sdb.endpoint is None:
        return Check("db-secret", WARN, "the DR database reports no endpoint yet", primary_cell, actual)
    if not _points_at(host, port, sdb):
        where = ""
        if dbp.ok and _points_at(host, port, dbp.value["db"]):
            where = " (the production database: the DR app would write across regions, and fail with it)"
        return Check(
            "db-secret", FAIL, f"DR secret {name}/{key} points at {actual}, not the DR database {expected}{where}",
            primary_cell, actual,
        )  # fmt: skip
    notes = []
    if sms.ok and sms.value[0] and not _points_at(sms.value[0], sms.value[1], sdb):
        notes.append(
            f"Secrets Manager {estate.app.db_secret.secrets_manager_id} in DR points at {_addr(*sms.value)}"
        )
    if dbp.ok and kp.ok and kp.value[0] and dbp.value["db"].endpoint:
        pdb = dbp.value["db"]
        if not _points_at(kp.value[0], kp.value[1], pdb):
            notes.append(
                f"production secret points at {primary_cell}, not the production database {_addr(pdb.endpoint, pdb.port)}"
            )
    if notes:
        return Check(
            "db-secret",
            WARN,
            "DR secret points at the DR database; but " + "; ".join(notes),
            primary_cell,
            actual,
        )
    return Check("db-secret", PASS, f"DR secret {name}/{key} points at the DR database", primary_cell, actual)


def _lag_check(dbs: Outcome, lag: Outcome, estate: Estate) -> Check:
    budget = estate.app.objectives.rpo_seconds
    if not dbs.ok:
        return Check("replica-lag", FAIL, f"could not read the DR database: {dbs.error}", None, None)
    sdb = dbs.value["db"]
    if not sdb.is_replica:
        return Check(
            "replica-lag", FAIL, f"DR database {sdb.identifier} is not a read replica (promoted?): nothing "
            "replicates to DR — `dr reprotect` makes it a replica of the serving database again",
            f"budget {budget:g}s", "not a replica",
        )  # fmt: skip
    if not lag.ok:
        return Check(
            "replica-lag", FAIL, f"could not read ReplicaLag: {lag.error}", f"budget {budget:g}s", None
        )
    if lag.value is None:
        return Check(
            "replica-lag", WARN, "no ReplicaLag datapoint in the last 10 minutes", f"budget {budget:g}s", None
        )
    value = float(lag.value.value)
    cell = f"{value:g}s"
    if value > budget:
        return Check(
            "replica-lag",
            FAIL,
            f"replica lag {value:g}s exceeds the RPO budget of {budget:g}s",
            f"budget {budget:g}s",
            cell,
        )
    return Check(
        "replica-lag",
        PASS,
        f"replica lag {value:g}s within the RPO budget of {budget:g}s",
        f"budget {budget:g}s",
        cell,
    )


def _snapshot_check(
    snaps: Outcome, now: dt.datetime, warn: dt.timedelta, fail: dt.timedelta, region: str
) -> Check:
    from dr.procedures.support import human_age

    if not snaps.ok:
        return Check("snapshot-age", FAIL, f"could not list snapshots in {region}: {snaps.error}")
    newest = snaps.value
    if newest is None:
        return Check(
            "snapshot-age",
            FAIL,
            f"no recovery point of the estate's databases in {region} (no snapshot, no replicated automated "
            f"backups): take a snapshot and copy it there (`dr snapshot create --yes`, then `dr snapshot copy "
            f"--snapshot <id> --to {region} --yes`), or deploy the DR stack's backup replication (pulumi up)",
            None,
            None,
        )
    age = now - newest.created
    cell = f"{newest.identifier} ({human_age(age)} old)"
    if age > fail:
        return Check(
            "snapshot-age",
            FAIL,
            f"newest recovery point in {region} is {human_age(age)} old (> {human_age(fail)})",
            None,
            cell,
        )
    if age > warn:
        return Check(
            "snapshot-age",
            WARN,
            f"newest recovery point in {region} is {human_age(age)} old (> {human_age(warn)})",
            None,
            cell,
        )
    return Check(
        "snapshot-age", PASS, f"newest recovery point in {region} is {human_age(age)} old", None, cell
    )


def _cert_check(p: Outcome, s: Outcome) -> Check:
    cells: list[str | None] = []
    worst, reasons = PASS, []
    for side, out in (("production", p), ("DR", s)):
        if not out.ok:
            cells.append(None)
            worst = FAIL
            reasons.append(f"could not read {side} certificates: {out.error}")
            continue
        result = out.value
        certs = result.certificates
        days = [c["days_left"] for c in certs if c.get("days_left") is not None]
        cells.append(f"{len(certs)} cert(s), min {min(days):.0f} days" if days else f"{len(certs)} cert(s)")
        if result.expired:
            worst = FAIL
        elif result.warnings and worst == PASS:
            worst = WARN
        reasons += list(result.warnings)
    reason = "; ".join(reasons) or "certificates valid in both regions"
    return Check("certificate-expiry", worst, reason, cells[0], cells[1])


def _redis_jobs(clients: ClientProvider, estate: Estate) -> dict[str, Callable[[], Any]]:
    from dr.aws.elasticache import ElastiCache
    from dr.procedures.failover import estate_cache_groups, newest_cache_snapshot

    def group(view: SiteView) -> Any:
        return ElastiCache(clients, view.region).find_replication_group(view.cache.replication_group_id)

    s = estate.secondary
    return {
        "p:redis": lambda: group(estate.primary),
        "s:redis": lambda: group(s),
        "redis_snapshot": lambda: newest_cache_snapshot(clients, s.region, estate_cache_groups(estate)),
    }


def _redis_check(
    p: Outcome, s: Outcome, snap: Outcome, now: dt.datetime, estate: Estate, fail: dt.timedelta
) -> Check:
    """The DR Redis group can take production: it exists, is encrypted like production (TLS, at
    rest) — or, when it does not exist, a snapshot of the estate's groups in DR no older than
    ``fail`` can seed it."""
    from dr.procedures.support import human_age

    region, gid = estate.secondary.region, estate.secondary.cache.replication_group_id
    snap_cell = None
    if snap.ok and snap.value is not None and snap.value.created is not None:
        snap_cell = f"{snap.value.identifier} ({human_age(now - snap.value.created)} old)"

    def cell(out: Outcome) -> str | None:
        if not out.ok or out.value is None:
            return None
        g = out.value
        return f"{g.status}, TLS {'on' if g.transit_encryption else 'off'}, at rest {'on' if g.at_rest_encryption else 'off'}"

    if not s.ok:
        return Check("redis", FAIL, f"could not read Redis {gid} in {region}: {s.error}", cell(p), None)
    if s.value is None:
        if not snap.ok:
            return Check(
                "redis", FAIL, f"Redis {gid} does not exist in {region}; snapshots unreadable: {snap.error}"
            )
        if snap.value is None:
            return Check(
                "redis", FAIL, f"Redis {gid} does not exist in {region} and no snapshot of the estate's groups "
                f"is there to restore it from: deploy the DR stack (pulumi up)", cell(p), None,
            )  # fmt: skip
        created = snap.value.created
        if created is not None and now - created > fail:
            return Check(
                "redis", FAIL, f"Redis {gid} does not exist in {region} and the newest estate snapshot there is "
                f"{human_age(now - created)} old (> {human_age(fail)})", cell(p), snap_cell,
            )  # fmt: skip
        return Check(
            "redis", WARN, f"Redis {gid} does not exist in {region}: a failover restores it from "
            f"{snap_cell or snap.value.identifier}", cell(p), snap_cell,
        )  # fmt: skip
    g = s.value
    missing = [
        what
        for what, dr_on, prod_on in (
            (
                "TLS in transit",
                g.transit_encryption,
                p.ok and p.value is not None and p.value.transit_encryption,
            ),
            (
                "encryption at rest",
                g.at_rest_encryption,
                p.ok and p.value is not None and p.value.at_rest_encryption,
            ),
        )
        if prod_on and not dr_on
    ]
    if missing:
        return Check(
            "redis", FAIL, f"Redis {gid} in {region} lacks {' and '.join(missing)} that production has",
            cell(p), cell(s),
        )  # fmt: skip
    if g.status != "available":
        return Check("redis", WARN, f"Redis {gid} in {region} is {g.status}", cell(p), cell(s))
    return Check(
        "redis", PASS, f"Redis {gid} available in {region}, encrypted like production", cell(p), cell(s)
    )


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


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


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
    from dr.procedures.dns import read_state
    from dr.procedures.ops_security import cert_check

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
        for name, fn in _site_jobs(estate, view, clients, kube).items():
            jobs[f"{side}:{name}"] = fn
        jobs[f"{side}:certs"] = functools.partial(
            cert_check, clients, estate, [view], warn_days=cert_warn_days, now=now
        )
    jobs["lag"] = lambda: cloudwatch.replica_lag(clients, s.region, s.database.identifier, now=now)
    jobs["snapshot"] = newest_snapshot
    jobs["serving"] = lambda: read_state(clients, estate, use_test_dns=False).active_region
    jobs.update(_redis_jobs(clients, estate))
    r = gather(jobs, workers=workers)

    checks = _db_checks(r["p:db"], r["s:db"], estate)
    checks += [
        _cluster_check(r["p:cluster"], r["s:cluster"]),
        _capacity_check(r["p:nodegroup"], r["s:nodegroup"], estate),
        _waf_check(r["p:ip_set"], r["s:ip_set"]),
        _images_check(r["p:deployments"], r["s:deployments"], estate),
        _single_writer_check(
            _serving_dbs(
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
        _secret_check(r["p:db"], r["s:db"], r["p:k8s_secret"], r["s:k8s_secret"], r["s:sm_secret"], estate),
        _lag_check(r["s:db"], r["lag"], estate),
        _snapshot_check(r["snapshot"], now, snapshot_warn, snapshot_fail, s.region),
        _cert_check(r["p:certs"], r["s:certs"]),
        _redis_check(r["p:redis"], r["s:redis"], r["redis_snapshot"], now, estate, snapshot_fail),
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
