"""Re-protect: a new cross-region read replica of the serving database (the old instance in its
way renamed aside, never deleted), waited for until in sync; the instance a failback leaves
behind tagged stale."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from dr.aws import ec2
from dr.aws.calls import aws_errors
from dr.aws.cloudwatch import replica_lag
from dr.aws.rds import DbInstance, Rds
from dr.errors import BadInput, GateRefused
from dr.runbook.plan import Operation, Step, StepContext
from dr.steps.base import (
    TAG_CREATED_BY,
    TAG_RUN_ID,
    TAG_SUPERSEDED_BY,
    IamRead,
    Settled,
    StepKind,
    clients_of,
)
from dr.topology import DB_LOG_EXPORTS, DB_PERFORMANCE_INSIGHTS_RETENTION_DAYS, DB_STORAGE_TYPE

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.topology import Estate, SiteView

_TRANSITIONAL = {"creating", "modifying", "backing-up", "configuring-enhanced-monitoring", "rebooting"}
# Output keys (journaled): ``<command>_replica`` / ``<command>_target`` name the new replica and
# its stack, ``<command>_aside`` the instance renamed out of its way (command: failback, reprotect).
OUT_REPLICA = "_replica"
OUT_TARGET = "_target"
OUT_ASIDE = "_aside"
OUT_REPLICA_LAG = "replica_lag_seconds"


def is_replica_of(inst: DbInstance, source: DbInstance) -> bool:
    src = inst.replica_source or ""
    return bool(src) and (
        src == source.arn or src.endswith(f":db:{source.identifier}") or src == source.identifier
    )


@dataclass(frozen=True)
class ReplicaPlacement:
    """Where a re-created replica goes: the estate's DB subnet group and security group(s) of
    its region (as the Pulumi program names them), never RDS's defaults."""

    subnet_group: str
    vpc_id: str
    security_groups: tuple[str, ...]


def replica_placement(clients: ClientProvider, estate: Estate, target: SiteView) -> ReplicaPlacement:
    """The subnet group and security groups of ``target``'s database, or BadInput (exit 2).

    Without ``DBSubnetGroupName`` RDS creates the instance outside the estate's VPC; without
    ``VpcSecurityGroupIds`` it gets the VPC's default security group and the app cannot reach it
    once it is promoted. Both are refused rather than left to RDS's defaults.
    """
    region, group = target.region, estate.db_subnet_group(target)
    vpc = Rds(clients, region).subnet_group_vpc(group)
    if vpc is None:
        raise BadInput(
            f"DB subnet group {group} not found in {region}: a replica created without it would be "
            "placed outside the estate's VPC",
            resource=group,
            region=region,
            hint=f"deploy the network and database of stack {target.stack} (pulumi up --stack "
            f"{target.stack}), then retry",
        )
    name = estate.db_security_group(target)
    groups = ec2.security_groups_named(clients, region, name, vpc)
    if not groups:
        raise BadInput(
            f"no security group tagged Name={name} in VPC {vpc} ({region}): a replica created without "
            "it would get the VPC's default security group, which the app cannot reach",
            resource=name,
            region=region,
            hint=f"deploy the network of stack {target.stack} (pulumi up --stack {target.stack}), then retry",
        )
    return ReplicaPlacement(group, vpc, tuple(groups))


class ReplicaSpec(Protocol):
    """What creating a cross-region replica needs (a failback's or a reprotect's preflight)."""

    target: SiteView
    source_db: DbInstance
    replica_id: str
    kms_key: str | None
    max_lag_seconds: float


class CreateReplica(StepKind):
    """``CreateDBInstanceReadReplica`` of the serving instance in the standby's region, in the
    estate's subnet group and security group, then wait until it is available."""

    name: ClassVar[str] = "create-replica"
    outputs: ClassVar[tuple[str, ...]] = (OUT_REPLICA, OUT_TARGET)
    # Authorised alongside CreateDBInstanceReadReplica (never called by the step): its tags on
    # create, and the region's data key the replica is encrypted with.
    reads: ClassVar[tuple[IamRead, ...]] = (
        IamRead("rds:AddTagsToResource"),
        IamRead("kms:CreateGrant"),
        IamRead("kms:DescribeKey"),
    )
    conditional: ClassVar[dict[str, str]] = {
        "rds:AddTagsToResource": "dependent action of CreateDBInstanceReadReplica: its tags on create",
        "kms:CreateGrant": "dependent action of CreateDBInstanceReadReplica: the encrypted replica's key",
        "kms:DescribeKey": "dependent action of CreateDBInstanceReadReplica: the encrypted replica's key",
    }

    def build(
        self,
        estate: Estate,
        pre: ReplicaSpec,
        *,
        timeout: float,
        command: str = "failback",
    ) -> Step:
        """``CreateDBInstanceReadReplica`` of ``pre.source_db`` in ``pre.target``'s region, then wait
        until it is available; the journal's outputs ``<command>_replica`` / ``<command>_target``
        name it for ``--resume``."""
        target, src, ident = pre.target, pre.source_db, pre.replica_id
        region = target.region
        settled = Settled()

        def current(ctx: StepContext) -> DbInstance | None:
            return Rds(clients_of(ctx), region).find_instance(ident)

        def remember(ctx: StepContext) -> None:
            if ctx.get(f"{command}{OUT_REPLICA}") != ident:
                ctx.set(f"{command}{OUT_REPLICA}", ident)
                ctx.set(f"{command}{OUT_TARGET}", target.stack)

        def check(ctx: StepContext) -> bool:
            inst = current(ctx)
            done = inst is not None and is_replica_of(inst, src) and inst.status == "available"
            if done and not ctx.dry_run:
                remember(ctx)
            return done

        def action(ctx: StepContext) -> Any:
            remember(ctx)
            inst = current(ctx)
            if inst is not None:
                if not is_replica_of(inst, src):
                    raise BadInput(
                        f"{ident} in {region} exists and is not a replica of {src.identifier}",
                        resource=ident,
                        region=region,
                        hint=f"re-run the {command}: it moves that instance out of the way or picks another identifier",
                    )
                return {"create": None}  # created by an earlier run: wait for it
            kwargs: dict[str, Any] = {
                "DBInstanceIdentifier": ident,
                "SourceDBInstanceIdentifier": src.arn,
                "SourceRegion": src.region,
                "DBInstanceClass": target.database.instance_class,
                "MultiAZ": target.database.multi_az,
                "CopyTagsToSnapshot": True,
                "Tags": [
                    {"Key": TAG_CREATED_BY, "Value": f"dr {command}"},
                    {"Key": TAG_RUN_ID, "Value": ctx.run_id},
                ],
            }
            if pre.kms_key:
                kwargs["KmsKeyId"] = pre.kms_key
                kwargs["PerformanceInsightsKMSKeyId"] = pre.kms_key
            place = replica_placement(clients_of(ctx), estate, target)
            kwargs["DBSubnetGroupName"] = place.subnet_group
            kwargs["VpcSecurityGroupIds"] = list(place.security_groups)
            # After a failback this instance is production: what its stack declares for every instance.
            kwargs.update(
                DeletionProtection=target.database.deletion_protection,
                StorageType=DB_STORAGE_TYPE,
                EnableCloudwatchLogsExports=list(DB_LOG_EXPORTS),
                EnablePerformanceInsights=True,
                PerformanceInsightsRetentionPeriod=DB_PERFORMANCE_INSIGHTS_RETENTION_DAYS,
                PubliclyAccessible=False,
                Port=estate.app.database.port,
            )
            client = clients_of(ctx).client("rds", region)
            with aws_errors(
                resource=f"DB instance {ident} (replica of {src.arn})", region=region, action="create"
            ):
                client.create_db_instance_read_replica(**kwargs)
            return {"create": ident}

        def wait(ctx: StepContext) -> bool:
            inst = current(ctx)
            status = inst.status if inst else "missing"
            return settled.observe(
                done=inst is not None and status == "available" and is_replica_of(inst, src),
                transitional=status in _TRANSITIONAL,
                label=status,
            )

        return Step(
            id="create-replica",
            title=f"Re-protect: create read replica {ident} in {region} of {src.identifier} ({src.region})",
            region=region,
            service="rds",
            changes=f"new DB instance {ident} replicating from {src.arn}"
            + (f" (encrypted with {estate.kms_alias(target)})" if pre.kms_key else ""),
            operations=(
                Operation("rds", "DescribeDBInstances", region, {"DBInstanceIdentifier": ident}, False),
                Operation(
                    "rds",
                    "DescribeDBSubnetGroups",
                    region,
                    {"DBSubnetGroupName": estate.db_subnet_group(target)},
                    False,
                ),
                Operation(
                    "ec2",
                    "DescribeSecurityGroups",
                    region,
                    {"Filters": [{"Name": "tag:Name", "Values": [estate.db_security_group(target)]}]},
                    False,
                ),
                Operation(
                    "rds",
                    "CreateDBInstanceReadReplica",
                    region,
                    {
                        "DBInstanceIdentifier": ident,
                        "SourceDBInstanceIdentifier": src.arn,
                        "SourceRegion": src.region,
                        "KmsKeyId": pre.kms_key or "-",
                        "DBSubnetGroupName": estate.db_subnet_group(target),
                        "VpcSecurityGroupIds": f"tag:Name={estate.db_security_group(target)}",
                        "DeletionProtection": target.database.deletion_protection,
                    },
                ),
            ),
            check=check,
            action=action,
            wait=wait,
            timeout=timeout,
            estimate=1200.0,
            tags={"phase": "re-protect"},
            kind=self,
        )


class MoveAside(StepKind):
    """Rename the instance holding the new replica's identifier (tagged superseded first)."""

    name: ClassVar[str] = "move-aside"
    outputs: ClassVar[tuple[str, ...]] = (OUT_ASIDE,)

    def build(self, pre: ReplicaSpec, aside: str, *, timeout: float, command: str) -> Step:
        """Rename the instance holding the new replica's identifier to ``aside`` (once; tagged
        ``dr:superseded-by=<run id>`` first; never deleted). The journal's output ``<command>_aside``
        names it for ``--resume``."""
        region, ident, src = pre.target.region, pre.replica_id, pre.source_db

        def in_the_way(ctx: StepContext) -> DbInstance | None:
            found = Rds(clients_of(ctx), region).find_instance(ident)
            return None if found is None or is_replica_of(found, src) else found

        def check(ctx: StepContext) -> bool:
            return in_the_way(ctx) is None

        def action(ctx: StepContext) -> Any:
            clients = clients_of(ctx)
            found = in_the_way(ctx)
            if found is None or Rds(clients, region).find_instance(aside) is not None:
                return {"renamed": None}  # done (or in flight) by an earlier run
            if found.status != "available":
                raise GateRefused(
                    f"{ident} in {region} is {found.status}: it must be available to be renamed",
                    resource=ident,
                    region=region,
                    hint="wait until it is available, then --resume",
                )
            ctx.set(f"{command}{OUT_ASIDE}", aside)
            Rds(clients, region).add_tags(found, {TAG_SUPERSEDED_BY: ctx.run_id})
            with aws_errors(resource=f"DB instance {ident}", region=region, action=f"rename to {aside}"):
                clients.client("rds", region).modify_db_instance(
                    DBInstanceIdentifier=ident, NewDBInstanceIdentifier=aside, ApplyImmediately=True
                )
            return {"renamed": {"from": ident, "to": aside}}

        def wait(ctx: StepContext) -> bool:
            # The identifier is free and the instance answers under its new name (it may still be
            # rebooting there: the new replica does not need it).
            return in_the_way(ctx) is None and Rds(clients_of(ctx), region).find_instance(aside) is not None

        return Step(
            id="move-aside",
            title=f"Rename {ident} ({region}) to {aside}, out of the way of the new replica",
            region=region,
            service="rds",
            changes=f"DB instance {ident} renamed {aside} (kept; tag {TAG_SUPERSEDED_BY})",
            operations=(
                Operation("rds", "DescribeDBInstances", region, {"DBInstanceIdentifier": ident}, False),
                Operation(
                    "rds", "AddTagsToResource", region, {"ResourceName": ident, "Tag": TAG_SUPERSEDED_BY}
                ),
                Operation(
                    "rds",
                    "ModifyDBInstance",
                    region,
                    {
                        "DBInstanceIdentifier": ident,
                        "NewDBInstanceIdentifier": aside,
                        "ApplyImmediately": True,
                    },
                ),
            ),
            check=check,
            action=action,
            wait=wait,
            timeout=timeout,
            estimate=120.0,
            tags={"phase": "re-protect"},
            kind=self,
        )


class MarkSuperseded(StepKind):
    """Tag the instance a failback left behind ``dr:superseded-by``: stale until reprotect."""

    name: ClassVar[str] = "mark-superseded"

    def build(self, db: DbInstance) -> Step:
        """Tag the instance the failback left behind (``dr:superseded-by=<run id>``): it stopped
        serving and is stale from now on, so a later ``dr failover`` refuses to promote-and-serve it
        until ``dr reprotect`` has rebuilt the standby (an instance promoted by ``dr promote`` a moment
        ago, without the tag, is still taken over by a failover)."""

        def check(ctx: StepContext) -> bool:
            return Rds(clients_of(ctx), db.region).tags(db).get(TAG_SUPERSEDED_BY) == ctx.run_id

        def action(ctx: StepContext) -> Any:
            Rds(clients_of(ctx), db.region).add_tags(db, {TAG_SUPERSEDED_BY: ctx.run_id})
            return {"tagged": db.identifier}

        return Step(
            id="mark-superseded",
            title=f"Mark {db.identifier} ({db.region}) superseded: stale from now on, until dr reprotect",
            region=db.region,
            service="rds",
            changes=f"tag {TAG_SUPERSEDED_BY} on {db.identifier}",
            operations=(
                Operation("rds", "ListTagsForResource", db.region, {"ResourceName": db.arn}, False),
                Operation(
                    "rds", "AddTagsToResource", db.region, {"ResourceName": db.arn, "Tag": TAG_SUPERSEDED_BY}
                ),
            ),
            check=check,
            action=action,
            estimate=1.0,
            tags={"phase": "standby"},
            kind=self,
        )


class ReplicaInSync(StepKind):
    """Wait until the new replica's CloudWatch ``ReplicaLag`` is within the budget."""

    name: ClassVar[str] = "replica-in-sync"
    outputs: ClassVar[tuple[str, ...]] = (OUT_REPLICA_LAG,)
    reads: ClassVar[tuple[IamRead, ...]] = (IamRead("rds:DescribeDBInstances"),)

    def build(self, pre: ReplicaSpec, *, timeout: float, promoted_is_done: bool = True) -> Step:
        """Wait until the new replica's ``ReplicaLag`` is within the budget. ``promoted_is_done``: a
        failback resumed after its promotion has nothing to wait for."""
        region, ident, budget = pre.target.region, pre.replica_id, pre.max_lag_seconds

        def check(ctx: StepContext) -> bool:
            inst = Rds(clients_of(ctx), region).find_instance(ident)
            return inst is not None and not inst.is_replica  # promoted already (resumed run)

        def wait(ctx: StepContext) -> bool:
            point = replica_lag(clients_of(ctx), region, ident)
            if point is None:
                return False
            ctx.set(OUT_REPLICA_LAG, point.value)
            return point.value <= budget

        return Step(
            id="replica-in-sync",
            title=f"Wait until {ident} ({region}) lags at most {budget:g}s",
            region=region,
            service="cloudwatch",
            changes="nothing (waits for AWS/RDS ReplicaLag)",
            operations=(
                Operation(
                    "cloudwatch",
                    "GetMetricStatistics",
                    region,
                    {"MetricName": "ReplicaLag", "DBInstanceIdentifier": ident},
                    False,
                ),
            ),
            check=check if promoted_is_done else None,
            wait=wait,
            timeout=timeout,
            estimate=120.0,
            tags={"phase": "re-protect"},
            kind=self,
        )
