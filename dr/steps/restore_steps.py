"""Restores and restore testing: a new RDS instance (point in time, replicated backups or a
snapshot) or Redis group (a snapshot), its SQL verification, the verdict, and the cleanup.

Restores run only from the dr CLI (and drills): none of these kinds is exported to Step Functions
(``exportable = False``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from dr.aws.elasticache import CacheSnapshot, ElastiCache, ReplicationGroup
from dr.aws.rds import DbInstance, DbSnapshot, Rds, ReplicatedBackups
from dr.errors import BadInput, VerificationFailed
from dr.runbook.plan import Operation, Step, StepContext
from dr.steps.base import TAG_CREATED_BY, IamRead, Settled, StepKind, clients_of, iso

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider

# Output keys (journaled): the restored endpoint, and the verification's results.
OUT_ENDPOINT = "endpoint"
OUT_PORT = "port"
OUT_CHECKS = "checks"
OUT_VERIFY_ERROR = "verify_error"

_FAILED = {"failed", "incompatible-restore", "incompatible-parameters", "create-failed", "restore-failed"}


class RestoreDb(StepKind):
    """A new DB instance ``target``: point-in-time restore of ``template`` (or of ``backups``,
    automated backups replicated into the region, with ``settings``), or from ``snapshot``."""

    name: ClassVar[str] = "restore-db"
    outputs: ClassVar[tuple[str, ...]] = (OUT_ENDPOINT, OUT_PORT)
    reads: ClassVar[tuple[IamRead, ...]] = (IamRead("rds:DescribeDBInstances"),)
    exportable: ClassVar[bool] = False

    def build(
        self,
        region: str,
        target: str,
        *,
        source: str,
        restore_time: dt.datetime | None,
        template: DbInstance | None,
        snapshot: DbSnapshot | None = None,
        backups: ReplicatedBackups | None = None,
        settings: dict[str, Any] | None = None,
        tags: dict[str, str],
        timeout: float,
    ) -> Step:
        settled = Settled()
        pitr = snapshot is None

        def exists(ctx: StepContext) -> DbInstance | None:
            return Rds(clients_of(ctx), region).find_instance(target)

        def check(ctx: StepContext) -> bool:
            inst = exists(ctx)
            if inst is not None and inst.status == "available":
                ctx.set(OUT_ENDPOINT, inst.endpoint)
                return True
            return False

        def action(ctx: StepContext) -> Any:
            if exists(ctx) is not None:
                return None  # an interrupted run already asked for it
            rds = Rds(clients_of(ctx), region)
            if backups is not None:
                done = rds.restore_from_automated_backups(
                    backups, target, restore_time=restore_time, settings=settings or {}, tags=tags
                )
            elif pitr:
                assert template is not None
                done = rds.restore_to_time(template, target, restore_time=restore_time, tags=tags)
            else:
                assert snapshot is not None
                done = rds.restore_from_snapshot(snapshot, target, like=template, tags=tags)
            return done.to_dict()

        def wait(ctx: StepContext) -> bool:
            inst = exists(ctx)
            if inst is None:
                return False
            if inst.status in _FAILED:
                raise VerificationFailed(
                    f"restored DB instance {target} in {region} is {inst.status}",
                    resource=target,
                    region=region,
                )
            settled.observe(
                done=inst.status == "available", transitional=inst.status != "available", label=inst.status
            )
            if inst.status == "available" and inst.endpoint:
                ctx.set(OUT_ENDPOINT, inst.endpoint)
                ctx.set(OUT_PORT, inst.port)
                return True
            return False

        if pitr:
            source_key, source_value = "SourceDBInstanceIdentifier", source
            if backups is not None:
                source_key, source_value = "SourceDBInstanceAutomatedBackupsArn", backups.arn
            params: dict[str, Any] = {
                source_key: source_value,
                "TargetDBInstanceIdentifier": target,
                "RestoreTime": iso(restore_time),
            }
            op = Operation("rds", "RestoreDBInstanceToPointInTime", region, params)
        else:
            assert snapshot is not None
            params = {"DBSnapshotIdentifier": snapshot.identifier, "DBInstanceIdentifier": target}
            op = Operation("rds", "RestoreDBInstanceFromDBSnapshot", region, params)
        if settings is not None:
            params.update(settings)
        elif template is not None:
            params.update(
                {
                    "DBInstanceClass": template.instance_class,
                    "MultiAZ": template.multi_az,
                    "DBSubnetGroupName": template.subnet_group,
                    "DBParameterGroupName": template.parameter_group,
                    "VpcSecurityGroupIds": list(template.security_groups),
                }
            )
        what = (
            f"PITR of {source}{' (replicated backups)' if backups else ''} at {iso(restore_time)}"
            if pitr
            else f"snapshot {params['DBSnapshotIdentifier']}"
        )
        return Step(
            id="restore",
            title=f"Restore {target} from {what}",
            region=region,
            service="rds",
            changes=f"new DB instance {target} in {region}",
            operations=(op,),
            check=check,
            action=action,
            wait=wait,
            timeout=timeout,
            estimate=1200.0,
            kind=self,
        )


class CheckOutcome(Protocol):
    """One SQL check's result (:class:`dr.procedures.pg_session.CheckResult`)."""

    @property
    def name(self) -> str: ...

    @property
    def ok(self) -> bool: ...

    @property
    def detail(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


class VerifyRestoredDb(StepKind):
    """Read-only SQL checks on the restored instance as its master user. A failure (to connect, or
    a check) is recorded (``verify_error``), not raised: ``--cleanup`` must still delete the
    instance; the verdict step fails the run.

    ``credentials(clients)`` reads the master user and password (Secrets Manager ``secret_id``),
    ``connect(**dsn)`` opens the connection, ``run(conn)`` runs the checks (:mod:`dr.procedures.pg_session`).
    """

    name: ClassVar[str] = "verify-restored-db"
    outputs: ClassVar[tuple[str, ...]] = (OUT_CHECKS, OUT_VERIFY_ERROR)
    reads: ClassVar[tuple[IamRead, ...]] = (IamRead("rds:DescribeDBInstances"),)
    exportable: ClassVar[bool] = False

    def build(
        self,
        region: str,
        target: str,
        *,
        secret_id: str | None,
        db_name: str | None,
        checks: int,
        credentials: Callable[[ClientProvider], tuple[str, str]],
        connect: Callable[..., Any],
        run: Callable[[Any], Sequence[CheckOutcome]],
    ) -> Step:
        def action(ctx: StepContext) -> Any:
            clients = clients_of(ctx)
            inst = Rds(clients, region).describe_instance(target)
            if not inst.endpoint:
                raise VerificationFailed(
                    f"restored DB instance {target} in {region} has no endpoint yet",
                    resource=target,
                    region=region,
                )
            user, password = credentials(clients)
            try:
                conn = connect(
                    host=inst.endpoint,
                    port=inst.port or 5432,
                    dbname=db_name,
                    user=user,
                    password=password,
                    connect_timeout=10,
                    sslmode="prefer",
                )
            except Exception as exc:
                ctx.set(
                    OUT_VERIFY_ERROR,
                    f"cannot connect to restored DB instance {target} in {region} ({inst.endpoint}:{inst.port}): "
                    f"{type(exc).__name__} — check the security groups allow this host, or run the "
                    "verification from inside the VPC",
                )
                return None
            try:
                results = run(conn)
            finally:
                conn.close()
            ctx.set(OUT_CHECKS, [r.to_dict() for r in results])
            failed = [r for r in results if not r.ok]
            if failed:
                ctx.set(
                    OUT_VERIFY_ERROR,
                    f"restored DB instance {target} in {region} failed {len(failed)} of {len(results)} check(s): "
                    + "; ".join(f"{r.name}: {r.detail}" for r in failed),
                )
            return None

        return Step(
            id="verify",
            title=f"Verify {target} ({checks} check(s))",
            region=region,
            service="local",
            changes="none (read-only SQL checks)",
            operations=(
                Operation(
                    "secretsmanager", "GetSecretValue", region, {"SecretId": secret_id}, mutating=False
                ),
            ),
            action=action,
            timeout=300.0,
            estimate=5.0,
            kind=self,
        )


class RestoreVerdict(StepKind):
    """Fails the run (exit 1) when the verification recorded an error — after ``--cleanup`` had
    its chance. No AWS call."""

    name: ClassVar[str] = "restore-verdict"
    exportable: ClassVar[bool] = False

    def build(self, region: str, target: str) -> Step:
        def action(ctx: StepContext) -> Any:
            error = ctx.get(OUT_VERIFY_ERROR)
            if error:
                raise VerificationFailed(str(error), resource=target, region=region)
            return ctx.get(OUT_CHECKS)

        return Step(
            id="verdict",
            title=f"Verdict on {target}",
            region=region,
            service="local",
            changes="none",
            action=action,
            timeout=10.0,
            estimate=0.1,
            kind=self,
        )


class CleanupRestoredDb(StepKind):
    """Delete the restored DB instance (no final snapshot) — only one tagged ``dr:created-by``
    dr-toolkit; deletion protection it inherited is lifted first."""

    name: ClassVar[str] = "cleanup-restored-db"
    reads: ClassVar[tuple[IamRead, ...]] = (
        IamRead("rds:DescribeDBInstances"),
        IamRead("rds:ListTagsForResource"),  # deletes only what the toolkit tagged
    )
    conditional: ClassVar[dict[str, str]] = {
        "rds:ModifyDBInstance": "--cleanup of a restored instance that inherited deletion protection "
        "(lifted first; only instances tagged dr:created-by=dr-toolkit)",
    }
    exportable: ClassVar[bool] = False

    def build(self, region: str, target: str) -> Step:
        def check(ctx: StepContext) -> bool:
            return Rds(clients_of(ctx), region).find_instance(target) is None

        def action(ctx: StepContext) -> Any:
            rds = Rds(clients_of(ctx), region)
            tags = rds.tags(rds.describe_instance(target))
            if tags.get(TAG_CREATED_BY) != "dr-toolkit":
                raise BadInput(
                    f"refusing to delete DB instance {target} in {region}: it was not created by dr-toolkit "
                    f"(tag {TAG_CREATED_BY} missing)",
                    resource=target,
                    region=region,
                )
            rds.delete_instance(target, lift_protection=True)
            return None

        def wait(ctx: StepContext) -> bool:
            inst = Rds(clients_of(ctx), region).find_instance(target)
            return inst is None or inst.status == "deleted"

        return Step(
            id="cleanup",
            title=f"Delete restored {target}",
            region=region,
            service="rds",
            changes=f"deletes DB instance {target} in {region} (no final snapshot)",
            operations=(
                Operation(
                    "rds",
                    "ModifyDBInstance",
                    region,
                    {"DBInstanceIdentifier": target, "DeletionProtection": False},
                ),
                Operation(
                    "rds",
                    "DeleteDBInstance",
                    region,
                    {"DBInstanceIdentifier": target, "SkipFinalSnapshot": True},
                ),
            ),
            check=check,
            action=action,
            wait=wait,
            timeout=3600.0,
            estimate=600.0,
            kind=self,
        )


# Reading a replication group reads its first member cluster too (ElastiCache.describe_replication_group).
_GROUP_READS = (
    IamRead("elasticache:DescribeReplicationGroups"),
    IamRead("elasticache:DescribeCacheClusters"),
)


def _find_group(ctx: StepContext, region: str, group_id: str) -> ReplicationGroup | None:
    return ElastiCache(clients_of(ctx), region).find_replication_group(group_id)


class RestoreRedis(StepKind):
    """A new Redis replication group ``target`` from ``snapshot``, like ``like`` (the snapshot's
    group, or the site's)."""

    name: ClassVar[str] = "restore-redis"
    outputs: ClassVar[tuple[str, ...]] = (OUT_ENDPOINT,)
    reads: ClassVar[tuple[IamRead, ...]] = _GROUP_READS
    exportable: ClassVar[bool] = False

    def build(
        self,
        region: str,
        target: str,
        *,
        snapshot: CacheSnapshot,
        like: ReplicationGroup | None,
        timeout: float,
    ) -> Step:
        def check(ctx: StepContext) -> bool:
            group = _find_group(ctx, region, target)
            return group is not None and group.status == "available"

        def action(ctx: StepContext) -> Any:
            if _find_group(ctx, region, target) is not None:
                return None
            ElastiCache(clients_of(ctx), region).restore_replication_group(snapshot, target, like=like)
            return {"replication_group": target}

        def wait(ctx: StepContext) -> bool:
            group = _find_group(ctx, region, target)
            if group is not None and group.status in {"create-failed"}:
                raise VerificationFailed(
                    f"Redis group {target} in {region} is {group.status}", resource=target, region=region
                )
            if group is not None and group.status == "available":
                ctx.set(OUT_ENDPOINT, group.primary_endpoint)
                return True
            return False

        return Step(
            id="restore",
            title=f"Restore Redis {target} from snapshot {snapshot.identifier}",
            region=region,
            service="elasticache",
            changes=f"new Redis replication group {target} in {region}",
            operations=(
                Operation(
                    "elasticache",
                    "CreateReplicationGroup",
                    region,
                    {"ReplicationGroupId": target, "SnapshotName": snapshot.identifier},
                ),
            ),
            check=check,
            action=action,
            wait=wait,
            timeout=timeout,
            estimate=900.0,
            kind=self,
        )


class CleanupRestoredRedis(StepKind):
    """Delete the restored Redis replication group."""

    name: ClassVar[str] = "cleanup-restored-redis"
    reads: ClassVar[tuple[IamRead, ...]] = _GROUP_READS
    exportable: ClassVar[bool] = False

    def build(self, region: str, target: str, *, timeout: float) -> Step:
        def check(ctx: StepContext) -> bool:
            return _find_group(ctx, region, target) is None

        def action(ctx: StepContext) -> Any:
            ElastiCache(clients_of(ctx), region).delete_replication_group(target)
            return None

        def wait(ctx: StepContext) -> bool:
            group = _find_group(ctx, region, target)
            return group is None or group.status == "deleted"

        return Step(
            id="cleanup",
            title=f"Delete restored Redis {target}",
            region=region,
            service="elasticache",
            changes=f"deletes replication group {target} in {region}",
            operations=(
                Operation("elasticache", "DeleteReplicationGroup", region, {"ReplicationGroupId": target}),
            ),
            check=check,
            action=action,
            wait=wait,
            timeout=timeout,
            estimate=300.0,
            kind=self,
        )
