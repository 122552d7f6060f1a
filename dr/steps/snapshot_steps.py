"""Manual snapshots of the estate's databases (RDS) and caches (ElastiCache Redis): create one,
copy an RDS snapshot to the other region, delete an old one.

Snapshots are taken only from the dr CLI: none of these kinds is exported to Step Functions
(``exportable = False``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from dr.aws.elasticache import CacheSnapshot, ElastiCache
from dr.aws.rds import DbSnapshot, Rds
from dr.errors import OperationFailed
from dr.runbook.plan import Operation, Step, StepContext
from dr.steps.base import TAG_CREATED_BY, IamRead, Settled, StepKind, clients_of

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider

SnapshotKind = Literal["rds", "redis"]

# Output keys (journaled): the snapshot created, and the ARN of a copy.
OUT_SNAPSHOT_ID = "snapshot_id"
OUT_SNAPSHOT_ARN = "snapshot_arn"

_FAILED = {"failed", "incompatible-restore", "incompatible-parameters", "error"}

_RDS_SNAPSHOT_READ = IamRead("rds:DescribeDBSnapshots")
_CACHE_SNAPSHOT_READ = IamRead("elasticache:DescribeSnapshots")


def find_snapshot(
    clients: ClientProvider, region: str, kind: SnapshotKind, name: str
) -> DbSnapshot | CacheSnapshot | None:
    if kind == "rds":
        return Rds(clients, region).find_snapshot(name)
    return ElastiCache(clients, region).find_snapshot(name)


def kind_word(kind: SnapshotKind) -> str:
    return "DB snapshot" if kind == "rds" else "Redis snapshot"


def _wait_available(
    clients: ClientProvider, region: str, kind: SnapshotKind, name: str, settled: Settled
) -> bool:
    snap = find_snapshot(clients, region, kind, name)
    if snap is None:
        # Just created: eventual consistency may hide it for a moment; keep polling.
        return settled.observe(done=False, transitional=False, label="absent")
    if snap.status in _FAILED:
        raise OperationFailed(
            f"{kind_word(kind)} {name} in {region} is {snap.status}",
            resource=name,
            region=region,
            hint="inspect it in the console; delete it and create a new one",
        )
    # A snapshot that did not exist before the action cannot be stale: one "available" suffices.
    settled.observe(
        done=snap.status == "available", transitional=snap.status != "available", label=snap.status
    )
    return snap.status == "available"


def _kind_of(step: Step) -> SnapshotKind:
    return "rds" if step.service == "rds" else "redis"


class CreateSnapshot(StepKind):
    """A manual snapshot ``planned`` of ``source`` (a DB instance, or a Redis replication group),
    waited until available. ``snapshot_id`` records the name (a resumed run keeps it)."""

    name: ClassVar[str] = "create-snapshot"
    outputs: ClassVar[tuple[str, ...]] = (OUT_SNAPSHOT_ID,)
    exportable: ClassVar[bool] = False
    # the snapshot (check, wait) and its source (action): per kind of snapshot
    reads_by_kind: ClassVar[dict[SnapshotKind, tuple[IamRead, ...]]] = {
        "rds": (_RDS_SNAPSHOT_READ, IamRead("rds:DescribeDBInstances")),
        "redis": (
            _CACHE_SNAPSHOT_READ,
            IamRead("elasticache:DescribeReplicationGroups"),
            IamRead("elasticache:DescribeCacheClusters"),  # the group's first member
        ),
    }

    def iam_reads(self, step: Step) -> tuple[tuple[str, str | None], ...]:
        return tuple((r.action, step.region) for r in self.reads_by_kind[_kind_of(step)])

    def build(self, region: str, *, kind: SnapshotKind, source: str, planned: str, timeout: float) -> Step:
        settled = Settled()

        def snap_id(ctx: StepContext) -> str:
            return str(ctx.get(OUT_SNAPSHOT_ID) or planned)

        def check(ctx: StepContext) -> bool:
            snap = find_snapshot(clients_of(ctx), region, kind, snap_id(ctx))
            if snap is not None:
                ctx.set(OUT_SNAPSHOT_ID, snap.identifier)
            return snap is not None and snap.status == "available"

        def action(ctx: StepContext) -> Any:
            clients = clients_of(ctx)
            sid = snap_id(ctx)
            ctx.set(OUT_SNAPSHOT_ID, sid)
            if find_snapshot(clients, region, kind, sid) is not None:
                return None  # created by an interrupted run: only wait for it
            if kind == "rds":
                rds = Rds(clients, region)
                rds.describe_instance(source)  # NotFound names the instance and region
                return rds.create_snapshot(source, sid, tags={TAG_CREATED_BY: "dr-toolkit"}).to_dict()
            cache = ElastiCache(clients, region)
            cache.describe_replication_group(source)
            return cache.create_snapshot(source, sid).to_dict()

        def wait(ctx: StepContext) -> bool:
            return _wait_available(clients_of(ctx), region, kind, snap_id(ctx), settled)

        op = (
            Operation(
                "rds",
                "CreateDBSnapshot",
                region,
                {"DBInstanceIdentifier": source, "DBSnapshotIdentifier": planned},
            )
            if kind == "rds"
            else Operation(
                "elasticache",
                "CreateSnapshot",
                region,
                {"ReplicationGroupId": source, "SnapshotName": planned},
            )
        )
        return Step(
            id="create-snapshot",
            title=f"Snapshot {source} as {planned}",
            region=region,
            service="rds" if kind == "rds" else "elasticache",
            changes=f"new manual {kind_word(kind)} {planned} of {source} in {region}",
            operations=(op,),
            check=check,
            action=action,
            wait=wait,
            timeout=timeout,
            estimate=300.0 if kind == "rds" else 120.0,
            tags={"kind": kind, "snapshot": planned, "source": source},
            kind=self,
        )


class CopySnapshot(StepKind):
    """A cross-region copy of RDS snapshot ``source`` into ``region`` as ``target`` (encrypted with
    ``kms_key_id``, a key of ``region``), waited until available."""

    name: ClassVar[str] = "copy-snapshot"
    outputs: ClassVar[tuple[str, ...]] = (OUT_SNAPSHOT_ARN,)
    reads: ClassVar[tuple[IamRead, ...]] = (_RDS_SNAPSHOT_READ,)
    exportable: ClassVar[bool] = False

    def build(
        self, region: str, *, source: DbSnapshot, target: str, kms_key_id: str | None, timeout: float
    ) -> Step:
        settled = Settled()

        def check(ctx: StepContext) -> bool:
            snap = Rds(clients_of(ctx), region).find_snapshot(target)
            return snap is not None and snap.status == "available"

        def action(ctx: StepContext) -> Any:
            rds = Rds(clients_of(ctx), region)
            if rds.find_snapshot(target) is not None:
                return None
            copied = rds.copy_snapshot_from(
                source, target, kms_key_id=kms_key_id, tags={TAG_CREATED_BY: "dr-toolkit"}
            )
            ctx.set(OUT_SNAPSHOT_ARN, copied.arn)
            return copied.to_dict()

        def wait(ctx: StepContext) -> bool:
            return _wait_available(clients_of(ctx), region, "rds", target, settled)

        params: dict[str, Any] = {
            "SourceDBSnapshotIdentifier": source.arn,
            "TargetDBSnapshotIdentifier": target,
            "SourceRegion": source.region,
        }
        if kms_key_id:
            params["KmsKeyId"] = kms_key_id
        return Step(
            id="copy-snapshot",
            title=f"Copy {source.identifier} {source.region} → {region} as {target}",
            region=region,
            service="rds",
            changes=f"new DB snapshot {target} in {region}" + (" (KMS re-encrypted)" if kms_key_id else ""),
            operations=(Operation("rds", "CopyDBSnapshot", region, params),),
            check=check,
            action=action,
            wait=wait,
            timeout=timeout,
            estimate=900.0,
            tags={"kind": "rds", "snapshot": target},
            kind=self,
        )


class DeleteSnapshot(StepKind):
    """Delete manual snapshot ``name`` (idempotent: already absent → skipped)."""

    name: ClassVar[str] = "delete-snapshot"
    exportable: ClassVar[bool] = False

    def iam_reads(self, step: Step) -> tuple[tuple[str, str | None], ...]:
        read = _RDS_SNAPSHOT_READ if _kind_of(step) == "rds" else _CACHE_SNAPSHOT_READ
        return ((read.action, step.region),)

    def build(self, region: str, *, kind: SnapshotKind, name: str, timeout: float) -> Step:
        def check(ctx: StepContext) -> bool:
            return find_snapshot(clients_of(ctx), region, kind, name) is None

        def action(ctx: StepContext) -> Any:
            if kind == "rds":
                Rds(clients_of(ctx), region).delete_snapshot(name)
            else:
                ElastiCache(clients_of(ctx), region).delete_snapshot(name)
            return {"deleted": name, "region": region}

        def wait(ctx: StepContext) -> bool:
            snap = find_snapshot(clients_of(ctx), region, kind, name)
            return snap is None or snap.status == "deleted"

        op = (
            Operation("rds", "DeleteDBSnapshot", region, {"DBSnapshotIdentifier": name})
            if kind == "rds"
            else Operation("elasticache", "DeleteSnapshot", region, {"SnapshotName": name})
        )
        return Step(
            id=f"delete-{kind}-{region}-{name}",
            title=f"Delete {kind_word(kind)} {name} ({region})",
            region=region,
            service="rds" if kind == "rds" else "elasticache",
            changes=f"deletes {kind_word(kind)} {name} in {region}",
            operations=(op,),
            check=check,
            action=action,
            wait=wait,
            timeout=timeout,
            estimate=5.0,
            tags={"kind": kind, "snapshot": name},
            kind=self,
        )
