"""The target's Redis replication group available: waited for, or restored from the newest
snapshot of one of the estate's groups (encrypted like the stack declares it)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from dr.aws.elasticache import CacheSnapshot, ElastiCache, ReplicationGroup
from dr.errors import GateRefused, from_client_error
from dr.runbook.plan import Operation, Step, StepContext
from dr.steps.base import IamRead, Settled, StepKind, clients_of

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.runbook.asl import AslEmitter
    from dr.topology import Estate, SiteView

# Output keys (journaled): which snapshot a restore used, and how the group was created.
OUT_RESTORED_FROM = "redis_restored_from"
OUT_RESTORE = "redis_restore"


def estate_cache_groups(estate: Estate) -> tuple[str, ...]:
    """The estate's Redis replication groups (both sites): the only sources a restore may use."""
    return tuple(dict.fromkeys(v.cache.replication_group_id for v in (estate.primary, estate.secondary)))


def newest_cache_snapshot(
    clients: ClientProvider, region: str, groups: tuple[str, ...]
) -> CacheSnapshot | None:
    """The newest available snapshot in ``region`` of one of ``groups`` — never another
    application's cache that happens to share the region."""
    # All snapshots, filtered here: DescribeSnapshots(ReplicationGroupId=…) fails once the group
    # is gone, while its snapshots (the ones a restore needs) remain.
    snaps = [
        s
        for s in ElastiCache(clients, region).list_snapshots()
        if s.status == "available" and s.source in groups
    ]
    dated = [s for s in snaps if s.created is not None]
    if dated:
        return max(dated, key=lambda s: s.created or dt.datetime.min.replace(tzinfo=dt.UTC))
    return snaps[-1] if snaps else None


def group_status(clients: ClientProvider, region: str, group_id: str) -> str | None:
    """Status of a Redis replication group, None when it does not exist (one DescribeReplicationGroups).

    (``ElastiCache.describe_replication_group`` also reads a member cluster, which may not exist.)
    """
    from dr.aws.session import client_error_type

    client_error = client_error_type()
    try:
        raw = clients.client("elasticache", region).describe_replication_groups(ReplicationGroupId=group_id)
    except client_error as err:
        code = str(getattr(err, "response", {}).get("Error", {}).get("Code", ""))
        if "NotFound" in code:
            return None
        raise from_client_error(
            err, resource=f"Redis replication group {group_id}", region=region, action="describe"
        ) from None
    groups = raw.get("ReplicationGroups") or []
    return str(groups[0].get("Status", "unknown")) if groups else None


def cache_template(
    clients: ClientProvider, estate: Estate, target: SiteView, *, kms_key: str | None = None
) -> ReplicationGroup:
    """The group the stack files declare for ``target`` (dr/infra/cache.py): what a restore creates.

    TLS in transit and KMS at rest with the site's key (``alias/<site>-data``, resolved to its ARN
    in ``target.region``); no AUTH token (the Pulumi group declares none)."""
    from dr.aws.kms import key_arn

    spec = target.cache
    kms = kms_key or key_arn(clients, target.region, estate.kms_alias(target))
    if kms is None:
        raise GateRefused(
            f"KMS key {estate.kms_alias(target)} does not exist (or is disabled) in {target.region}: a Redis "
            f"group restored there would not be encrypted at rest like {spec.replication_group_id}",
            resource=estate.kms_alias(target),
            region=target.region,
            hint=f"deploy stack {target.stack} (pulumi up) to create the key",
        )
    return ReplicationGroup(
        identifier=spec.replication_group_id,
        region=target.region,
        status="-",
        node_type=spec.node_type,
        num_cache_clusters=spec.num_cache_clusters,
        automatic_failover=None,
        multi_az=None,
        primary_endpoint=None,
        arn=None,
        subnet_group=estate.cache_subnet_group(target),
        engine_version=spec.engine_version,
        transit_encryption=True,
        at_rest_encryption=True,
        kms_key_id=kms,
        port=spec.port,
    )


_MISSING = "the target's Redis group is missing: restored from its newest snapshot"


class RedisReady(StepKind):
    """Target Redis available: use the group if it is; else restore the newest snapshot into it."""

    name: ClassVar[str] = "redis-ready"
    outputs: ClassVar[tuple[str, ...]] = (OUT_RESTORED_FROM, OUT_RESTORE)
    reads: ClassVar[tuple[IamRead, ...]] = (
        IamRead("elasticache:DescribeReplicationGroups"),
        IamRead("elasticache:DescribeSnapshots"),  # the newest snapshot (restore)
        IamRead("elasticache:CreateReplicationGroup"),  # declared only when the plan restores
        IamRead("kms:DescribeKey"),  # the site key a restore is encrypted with
        IamRead("kms:CreateGrant"),  # ElastiCache's grant on that key, for the caller
    )
    conditional: ClassVar[dict[str, str]] = {
        "elasticache:DescribeSnapshots": _MISSING,
        "elasticache:CreateReplicationGroup": _MISSING,
        "kms:DescribeKey": "the target's Redis group is missing: the site key its restore is encrypted with",
        "kms:CreateGrant": "the target's Redis group is missing: ElastiCache's grant on the site key",
    }

    def build(
        self,
        estate: Estate,
        target: SiteView,
        *,
        action: Literal["none", "wait", "restore"],
        snapshot: str | None,
        timeout: float,
        sid: str = "redis-ready",
        phase: str = "cache",
    ) -> Step:
        region, group_id = target.region, target.cache.replication_group_id
        restore = action == "restore"
        settled = Settled()

        def check(ctx: StepContext) -> bool:
            return group_status(clients_of(ctx), region, group_id) == "available"

        def act(ctx: StepContext) -> Any:
            ec = ElastiCache(clients_of(ctx), region)
            if group_status(clients_of(ctx), region, group_id) is not None:
                return {"restore": None}  # exists (e.g. still creating from an earlier run): just wait
            groups = estate_cache_groups(estate)
            snap = ec.find_snapshot(snapshot) if snapshot else None
            if snap is not None and snap.source not in groups:
                snap = None  # the planned name now belongs to another group's snapshot
            snap = snap or newest_cache_snapshot(clients_of(ctx), region, groups)
            if snap is None:
                raise GateRefused(
                    f"no Redis snapshot of {', '.join(groups)} in {region} to restore {group_id} from",
                    resource=group_id,
                    region=region,
                )
            like = cache_template(clients_of(ctx), estate, target)
            ec.restore_replication_group(snap, group_id, like=like)
            done = {
                "restore": snap.identifier,
                "snapshot_of": snap.source,
                "snapshot_created": snap.created.isoformat() if snap.created else None,
                "transit_encryption": like.transit_encryption,
                "at_rest_encryption": like.at_rest_encryption,
                "kms_key_id": like.kms_key_id,
                "engine_version": like.engine_version,
                "port": like.port,
            }
            ctx.set(OUT_RESTORED_FROM, snap.identifier)
            ctx.set(OUT_RESTORE, done)  # the journal says what was restored, and how
            return done

        def wait(ctx: StepContext) -> bool:
            status = group_status(clients_of(ctx), region, group_id) or "missing"
            return settled.observe(
                done=status == "available", transitional=status not in ("available", "missing"), label=status
            )

        ops: list[Operation] = [
            Operation(
                "elasticache", "DescribeReplicationGroups", region, {"ReplicationGroupId": group_id}, False
            )
        ]
        if restore:
            ops.append(
                Operation(
                    "elasticache",
                    "CreateReplicationGroup",
                    region,
                    {
                        "ReplicationGroupId": group_id,
                        "SnapshotName": snapshot,
                        "TransitEncryptionEnabled": True,
                        "AtRestEncryptionEnabled": True,
                        "KmsKeyId": estate.kms_alias(target),
                        "EngineVersion": target.cache.engine_version,
                        "Port": target.cache.port,
                    },
                )
            )
        return Step(
            id=sid,
            title=f"Redis {group_id} available in {region}"
            + (f" (restore from {snapshot})" if restore else ""),
            region=region,
            service="elasticache",
            changes=f"create {group_id} from snapshot {snapshot}" if restore else "none",
            operations=tuple(ops),
            check=check,
            action=act,
            wait=wait,
            timeout=timeout,
            estimate=450.0 if restore else 1.0,
            tags={"phase": phase},
            kind=self,
        )

    def lower(
        self, emitter: AslEmitter, states: dict[str, Any], step: Step, next_name: str | None, fail: str
    ) -> str:
        em, sid = emitter, step.id
        create = next((op for op in step.operations if op.action == "CreateReplicationGroup"), None)
        describe = next(op for op in step.operations if op.action == "DescribeReplicationGroups")
        group = describe.params["ReplicationGroupId"]
        k = "$.seen." + em.safe(f"{sid}_cache")

        def poll(nxt: str | None, failed: dict[str, Any] | None) -> str:
            return str(
                em.poll(
                    states,
                    sid,
                    "cache",
                    (
                        em.sdk_resource("elasticache", "DescribeReplicationGroups"),
                        {"ReplicationGroupId": group},
                        "elasticache",
                    ),
                    {"Variable": f"{k}.group.Status", "StringEquals": "available"},
                    failed,
                    nxt,
                    fail,
                    selector={"group.$": "$.ReplicationGroups[0]"},
                )
            )

        if create is None:  # it exists (or is being created): wait until available
            return str(em.sequence(states, step, [lambda nxt: poll(nxt, None)], next_name))

        def restore(nxt: str | None, op: Operation = create) -> str:
            params = dict(op.params)
            params.setdefault("ReplicationGroupDescription", "restored by dr-toolkit (Step Functions)")
            name = em.name(f"{sid}: {op.service} {op.action}")
            em.sdk_task(states, name, op, params, sid=sid, fail=fail)
            waiter = poll(nxt, {"Variable": f"{k}.group.Status", "StringEquals": "create-failed"})
            em.chain(states, [name], waiter)
            return str(name)

        return str(em.sequence(states, step, [restore], next_name))
