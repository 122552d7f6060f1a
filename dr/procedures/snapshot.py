"""Snapshots of the estate's databases (RDS) and caches (ElastiCache Redis).

* :func:`create_plan` — a manual snapshot with a sortable name, waited until available.
* :func:`copy_plan` — cross-region copy of an RDS snapshot, encrypted with the destination
  region's KMS key (ElastiCache cannot copy across regions: refused with the alternatives).
* :func:`list_snapshots` — both regions, both kinds, as rows for a table.
* :func:`prune_plan` — delete old manual snapshots: never the newest ``keep_last`` per source,
  never automated snapshots.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from dr.aws.elasticache import CacheSnapshot, ElastiCache
from dr.aws.kms import key_arn
from dr.aws.rds import DbSnapshot, Rds
from dr.errors import BadInput, NotFound
from dr.procedures.support import (
    SNAPSHOT_PREFIX,
    check_cache_identifier,
    check_rds_identifier,
    human_age,
    snapshot_name,
    utcnow,
)
from dr.runbook.plan import Plan, Step
from dr.steps import COPY_SNAPSHOT, CREATE_SNAPSHOT, DELETE_SNAPSHOT
from dr.steps.snapshot_steps import kind_word

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.topology import Estate, SiteView

Kind = Literal["rds", "redis"]
Snapshot = DbSnapshot | CacheSnapshot

# The IAM actions the reads before a plan make (:func:`resolve_copy`, :func:`list_snapshots`,
# :func:`prune_candidates`) beyond the plans' steps (which their kinds declare,
# :mod:`dr.steps.snapshot_steps`). Every command takes --region/--to: both regions.
PREFLIGHT_READS: tuple[tuple[str, str], ...] = (
    ("rds:DescribeDBSnapshots", "both"),  # the snapshot copied; list; prune's candidates
    ("rds:DescribeDBInstances", "both"),  # copy: the destination DB's KMS key
    ("kms:DescribeKey", "both"),  # copy: the destination region's data key
    ("elasticache:DescribeSnapshots", "both"),  # list; prune's candidates
)


def _source_of(view: SiteView, kind: Kind) -> str:
    return view.database.identifier if kind == "rds" else view.cache.replication_group_id


# ---------------------------------------------------------------------------------------------
# create
# ---------------------------------------------------------------------------------------------


def create_plan(
    estate: Estate,
    view: SiteView,
    *,
    kind: Kind = "rds",
    source: str | None = None,
    name: str | None = None,
    timeout: float = 3600.0,
) -> Plan:
    """Plan: create one manual snapshot of ``source`` (default: the site's DB / cache) and wait."""
    region = view.region
    src = source or _source_of(view, kind)
    if kind == "rds":
        check_rds_identifier(src, region=region, what="source DB instance")
    else:
        check_cache_identifier(src, region=region, what="source replication group")
    planned = name or snapshot_name()
    if kind == "rds":
        check_rds_identifier(planned, region=region, what="snapshot")
    step = CREATE_SNAPSHOT.build(region, kind=kind, source=src, planned=planned, timeout=timeout)
    return Plan("snapshot-create", [step], f"Manual {kind_word(kind)} of {src} in {region}")


# ---------------------------------------------------------------------------------------------
# copy
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CopyRequest:
    source: DbSnapshot
    destination_region: str
    target: str
    kms_key_id: str | None


def resolve_copy(
    clients: ClientProvider,
    estate: Estate,
    *,
    snapshot: str,
    source_view: SiteView,
    dest_view: SiteView,
    target: str | None,
    kms_key: str | None,
    kind: Kind = "rds",
) -> CopyRequest:
    """Validate a copy request (read-only): snapshot exists and is available, a KMS key exists."""
    if kind == "redis":
        raise BadInput(
            f"Redis snapshot {snapshot} in {source_view.region} cannot be copied to "
            f"{dest_view.region}: ElastiCache copies snapshots only within a region",
            resource=snapshot,
            region=source_view.region,
            hint="export it to S3 (elasticache copy-snapshot --target-bucket) and seed a new group from "
            "the RDB file in the other region, or use an ElastiCache Global Datastore",
        )
    src_region, dst_region = source_view.region, dest_view.region
    if src_region == dst_region:
        raise BadInput(
            f"snapshot {snapshot}: source and destination are both {src_region}",
            resource=snapshot,
            region=src_region,
            hint="pass --to the other region of the estate (copy is cross-region)",
        )
    src = Rds(clients, src_region).find_snapshot(snapshot)
    if src is None:
        raise NotFound(
            f"DB snapshot {snapshot} not found in {src_region}",
            resource=snapshot,
            region=src_region,
            hint=f"list snapshots with `dr snapshot list`; pass --region if it lives in {dst_region}",
        )
    if src.status != "available":
        raise BadInput(
            f"DB snapshot {snapshot} in {src_region} is {src.status}, not available",
            resource=snapshot,
            region=src_region,
            hint="wait for it to become available, then copy",
        )
    name = target or snapshot
    check_rds_identifier(name, region=dst_region, what="target snapshot")
    key = None
    if kms_key:
        key = key_arn(clients, dst_region, kms_key)
        if key is None:
            raise NotFound(
                f"KMS key {kms_key} not found in {dst_region}",
                resource=kms_key,
                region=dst_region,
                hint="pass a key (alias, id or ARN) that exists in the destination region",
            )
    elif src.encrypted:
        # The site's data key, else the key the DR database uses, else the AWS-managed RDS key of
        # the destination (exists in every region) — each verified to exist *there*.
        dr_db = Rds(clients, dst_region).find_instance(dest_view.database.identifier)
        candidates = [estate.kms_alias(dest_view)]
        if dr_db is not None and dr_db.encrypted and dr_db.kms_key_id:
            candidates.append(dr_db.kms_key_id)
        candidates.append("alias/aws/rds")
        for candidate in candidates:
            key = key_arn(clients, dst_region, candidate)
            if key is not None:
                break
        if key is None:
            raise BadInput(
                f"DB snapshot {snapshot} is encrypted but none of the KMS keys {', '.join(candidates)} "
                f"exists in {dst_region}",
                resource=snapshot,
                region=dst_region,
                hint=f"pass --kms-key with a key of {dst_region}: a KMS key never leaves its region",
            )
    return CopyRequest(src, dst_region, name, key)


def copy_plan(request: CopyRequest, *, timeout: float = 7200.0) -> Plan:
    """Plan: copy ``request.source`` to the destination region and wait until available."""
    src, region, target = request.source, request.destination_region, request.target
    step = COPY_SNAPSHOT.build(
        region, source=src, target=target, kms_key_id=request.kms_key_id, timeout=timeout
    )
    return Plan("snapshot-copy", [step], f"Cross-region copy of {src.identifier} to {region}")


# ---------------------------------------------------------------------------------------------
# list
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotRow:
    id: str
    kind: str
    region: str
    source: str
    type: str
    status: str
    created: dt.datetime | None
    age: str
    size_gb: int | None
    encrypted: bool
    copied_from: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "region": self.region,
            "source": self.source,
            "type": self.type,
            "status": self.status,
            "created": self.created,
            "age": self.age,
            "size_gb": self.size_gb,
            "encrypted": self.encrypted,
            "copied_from": self.copied_from,
        }


def _row(snap: Snapshot, now: dt.datetime) -> SnapshotRow:
    if isinstance(snap, DbSnapshot):
        stype, source, copied = snap.snapshot_type, snap.instance, snap.source_snapshot
    else:
        stype, source, copied = snap.snapshot_source, snap.source, None
    return SnapshotRow(
        id=snap.identifier,
        kind=snap.kind,
        region=snap.region,
        source=source,
        type=stype,
        status=snap.status,
        created=snap.created,
        age=human_age(now - snap.created) if snap.created else "-",
        size_gb=snap.size_gb,
        encrypted=snap.encrypted,
        copied_from=copied,
    )


def _estate_snapshots(
    clients: ClientProvider, estate: Estate, regions: list[str], kinds: list[Kind]
) -> list[Snapshot]:
    """Snapshots of the estate's DBs and caches (copies keep the source instance id) in ``regions``."""
    db_ids = {estate.primary.database.identifier, estate.secondary.database.identifier}
    cache_ids = {estate.primary.cache.replication_group_id, estate.secondary.cache.replication_group_id}
    out: list[Snapshot] = []
    for region in regions:
        if "rds" in kinds:
            out += [s for s in Rds(clients, region).list_snapshots() if s.instance in db_ids]
        if "redis" in kinds:
            out += [s for s in ElastiCache(clients, region).list_snapshots() if s.source in cache_ids]
    return out


def list_snapshots(
    clients: ClientProvider, estate: Estate, *, regions: list[str], kinds: list[Kind]
) -> list[SnapshotRow]:
    """Rows for ``dr snapshot list``, newest first."""
    now = utcnow()
    rows = [_row(s, now) for s in _estate_snapshots(clients, estate, regions, kinds)]
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    return sorted(rows, key=lambda r: (r.created or epoch, r.id), reverse=True)


# ---------------------------------------------------------------------------------------------
# prune
# ---------------------------------------------------------------------------------------------


def select_prunable(
    snapshots: list[Snapshot],
    *,
    keep_last: int | None,
    older_than: dt.timedelta | None,
    now: dt.datetime,
    prefix: str | None = None,
) -> list[Snapshot]:
    """Manual snapshots to delete: per (kind, region, source) never the newest ``keep_last``;
    only those older than ``older_than`` when given. Automated snapshots are never returned."""
    if keep_last is None and older_than is None:
        raise BadInput(
            "prune needs --keep-last N and/or --older-than DURATION",
            hint="e.g. `dr snapshot prune --keep-last 7` or `--older-than 30d`",
        )
    if keep_last is not None and keep_last < 1:
        raise BadInput(
            f"--keep-last {keep_last}: keep at least the newest snapshot",
            resource="--keep-last",
            hint="use --keep-last 1 or more",
        )
    epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
    groups: dict[tuple[str, str, str], list[Snapshot]] = {}
    for snap in snapshots:
        if snap.automated:
            continue
        if prefix and not snap.identifier.startswith(prefix):
            continue
        source = snap.instance if isinstance(snap, DbSnapshot) else snap.source
        groups.setdefault((snap.kind, snap.region, source), []).append(snap)
    out: list[Snapshot] = []
    for items in groups.values():
        items.sort(key=lambda s: (s.created or epoch, s.identifier), reverse=True)
        keep = keep_last if keep_last is not None else 1
        for snap in items[keep:]:
            if snap.status not in ("available", "failed"):
                continue  # creating / copying: never delete in flight
            if older_than is not None and (snap.created is None or now - snap.created < older_than):
                continue
            out.append(snap)
    return sorted(out, key=lambda s: (s.region, s.kind, s.created or epoch, s.identifier))


def prune_plan(candidates: list[Snapshot], *, timeout: float = 900.0) -> Plan:
    """Plan: delete each candidate (one step each, idempotent: absent → skipped)."""
    steps: list[Step] = []
    for snap in candidates:
        kind: Kind = "rds" if isinstance(snap, DbSnapshot) else "redis"
        steps.append(DELETE_SNAPSHOT.build(snap.region, kind=kind, name=snap.identifier, timeout=timeout))
    return Plan("snapshot-prune", steps, f"Delete {len(steps)} old manual snapshot(s)")


def prune_candidates(
    clients: ClientProvider,
    estate: Estate,
    *,
    regions: list[str],
    kinds: list[Kind],
    keep_last: int | None,
    older_than: dt.timedelta | None,
    prefix: str | None = SNAPSHOT_PREFIX,
) -> list[Snapshot]:
    """Read both regions and select what ``prune`` would delete (read-only)."""
    snaps = _estate_snapshots(clients, estate, regions, kinds)
    return select_prunable(snaps, keep_last=keep_last, older_than=older_than, now=utcnow(), prefix=prefix)


def iam_plans(estate: Estate, view: SiteView) -> list[Plan]:
    """Every shape of snapshot plan in ``view``'s region, built from the topology alone (no API
    call; placeholders for what the reads before the plan find): create (RDS and Redis), a copy
    from the other site into this region, prune (one of each). ``dr iam-policy`` derives from them."""
    region, other = view.region, estate.other(view)
    name = snapshot_name()
    src = DbSnapshot(
        name, other.region, "", other.database.identifier, "available", "manual", None, None, True, None
    )
    cache = CacheSnapshot(
        name, region, view.cache.replication_group_id, "available", "manual", None, None, None
    )
    return [
        create_plan(estate, view, kind="rds", name=name),
        create_plan(estate, view, kind="redis", name=name),
        copy_plan(CopyRequest(src, region, name, "KMS")),
        prune_plan([replace(src, region=region), cache]),
    ]
