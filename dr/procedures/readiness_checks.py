"""The readiness checks: pure functions from the facts read of both sites (each an
:class:`~dr.procedures.status.Outcome`) to one :class:`Check` — pass / warn / fail and the reason.
A fact that could not be read makes its check fail, saying why. :mod:`dr.procedures.readiness`
reads the facts and runs them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dr.procedures.status import Outcome
    from dr.topology import Estate

PASS, WARN, FAIL = "pass", "warn", "fail"


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


def _unreadable(name: str, outs: dict[str, Outcome]) -> Check | None:
    bad = {side: o.error for side, o in outs.items() if not o.ok}
    if not bad:
        return None
    reason = "; ".join(f"could not read {side}: {err}" for side, err in bad.items())
    return Check(name, FAIL, reason)


def _major(version: str | None) -> str:
    return (version or "").split(".")[0]


def db_checks(p: Outcome, s: Outcome, estate: Estate) -> list[Check]:
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


def cluster_check(p: Outcome, s: Outcome) -> Check:
    err = _unreadable("eks-version", {"primary": p, "secondary": s})
    if err is not None:
        return err
    pv, sv = p.value.version, s.value.version
    if pv == sv:
        return Check("eks-version", PASS, f"both {pv}", pv, sv)
    return Check("eks-version", WARN, f"Kubernetes versions differ: {pv} vs {sv}", pv, sv)


def capacity_check(p: Outcome, s: Outcome, estate: Estate) -> Check:
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


def waf_check(p: Outcome, s: Outcome) -> Check:
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


def images_check(p: Outcome, s: Outcome, estate: Estate) -> Check:
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


def single_writer_check(
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


def _addr(host: str | None, port: int | None) -> str | None:
    if host is None:
        return None
    return f"{host}:{port}" if port else host


def points_at(host: str | None, port: int | None, db: Any) -> bool:
    """Does (host, port) name ``db``'s endpoint? Ports are compared when both are known."""
    if not host or not db.endpoint:
        return False
    return host.lower() == db.endpoint.lower() and (port is None or db.port is None or port == db.port)


def secret_check(dbp: Outcome, dbs: Outcome, kp: Outcome, ks: Outcome, sms: Outcome, estate: Estate) -> Check:
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
    if not points_at(host, port, sdb):
        where = ""
        if dbp.ok and points_at(host, port, dbp.value["db"]):
            where = " (the production database: the DR app would write across regions, and fail with it)"
        return Check(
            "db-secret", FAIL, f"DR secret {name}/{key} points at {actual}, not the DR database {expected}{where}",
            primary_cell, actual,
        )  # fmt: skip
    notes = []
    if sms.ok and sms.value[0] and not points_at(sms.value[0], sms.value[1], sdb):
        notes.append(
            f"Secrets Manager {estate.app.db_secret.secrets_manager_id} in DR points at {_addr(*sms.value)}"
        )
    if dbp.ok and kp.ok and kp.value[0] and dbp.value["db"].endpoint:
        pdb = dbp.value["db"]
        if not points_at(kp.value[0], kp.value[1], pdb):
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


def lag_check(dbs: Outcome, lag: Outcome, estate: Estate) -> Check:
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


def snapshot_check(
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


def certificate_expiry_check(p: Outcome, s: Outcome) -> Check:
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


def redis_check(
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
