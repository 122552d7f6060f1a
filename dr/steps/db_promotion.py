"""The database side of a failover: wait until the replica has every write (planned), promote
it, and verify the service end to end (the promoted instance writable, the region healthy)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from dr.aws.rds import Rds
from dr.aws.route53 import Route53
from dr.errors import BadInput
from dr.runbook.plan import Operation, Step, StepContext, StepServices
from dr.steps.base import (
    TAG_PROMOTED_AT,
    TAG_PROMOTED_FROM,
    IamRead,
    Settled,
    StepKind,
    clients_of,
    iso,
    utcnow,
)

if TYPE_CHECKING:
    from dr.runbook.asl import AslEmitter
    from dr.runbook.plan import Operation as Op

# Output keys (journaled, read back on --resume).
OUT_ENDPOINT = "endpoint"
OUT_PROMOTED_AT = "promoted_at"
OUT_LAG_AT_PROMOTION = "lag_at_promotion_seconds"
OUT_STATUS_HISTORY = "status_history"
OUT_PROMOTE_IN_FLIGHT = "promote_in_flight"
OUT_WRITES_STOPPED_AT = "writes_stopped_at"
OUT_CAUGHT_UP_BY = "caught_up_by"
OUT_CUTOVER_LSN = "cutover_lsn"
OUT_LAG_AT_CUTOVER = "lag_at_cutover_seconds"
OUT_VERIFIED = "verified"

_TRANSITIONAL = {"modifying", "rebooting", "backing-up", "upgrading", "configuring-enhanced-monitoring"}
# RDS statuses from which a promotion does not recover.
RDS_BROKEN = (
    "failed",
    "incompatible-parameters",
    "incompatible-restore",
    "storage-full",
    "inaccessible-encryption-credentials",
)
# Only strings from DescribeDBInstances (a missing field is an empty list, not a runtime error).
_DB_SELECTOR = {"db.$": "$.DBInstances[0]"}


def db_available_poll(
    em: AslEmitter, states: dict[str, Any], sid: str, op: Op, nxt: str | None, fail: str
) -> str:
    """Poll ``DescribeDBInstances`` until the instance is available and standalone."""
    k = "$.seen." + em.safe(f"{sid}_db")
    return str(
        em.poll(
            states,
            sid,
            "db",
            (
                em.sdk_resource("rds", "DescribeDBInstances"),
                {"DBInstanceIdentifier": op.params["DBInstanceIdentifier"]},
                "rds",
            ),
            {
                "And": [
                    {"Variable": f"{k}.db.DBInstanceStatus", "StringEquals": "available"},
                    {"Variable": f"{k}.db.ReadReplicaSourceDBInstanceIdentifier", "IsPresent": False},
                ]
            },
            None,
            nxt,
            fail,
            selector=_DB_SELECTOR,
        )
    )


class PromoteReplica(StepKind):
    """``PromoteReadReplica`` (with the stack's backup retention: without it RDS gives the new
    primary a 1-day PITR window), tag it (source, time, lag), wait until standalone and available
    — trusting ``available`` only after a transition or two confirmations.

    ``guard``: safe to resume mid-flight (``dr failover``). A resumed run may find the instance
    still a replica but already promoting (status not ``available``, or tagged
    ``dr:promoted-from`` by our action): the action then issues nothing and the wait follows the
    promotion to its end.
    """

    name: ClassVar[str] = "promote-replica"
    outputs: ClassVar[tuple[str, ...]] = (
        OUT_ENDPOINT,
        OUT_PROMOTED_AT,
        OUT_LAG_AT_PROMOTION,
        OUT_STATUS_HISTORY,
        OUT_PROMOTE_IN_FLIGHT,
    )
    # the guard reads the instance's tags (dr:promoted-from: issued by an earlier run)
    reads: ClassVar[tuple[IamRead, ...]] = (
        IamRead("rds:DescribeDBInstances"),
        IamRead("rds:ListTagsForResource"),
    )

    def build(
        self,
        db: str,
        region: str,
        *,
        source: str | None,
        lag_seconds: float | None,
        timeout: float,
        backup_retention_days: int | None,
        guard: bool = True,
        sid: str = "promote-db",
    ) -> Step:
        settled = Settled()

        def check(ctx: StepContext) -> bool:
            inst = Rds(clients_of(ctx), region).describe_instance(db)
            done = not inst.is_replica and inst.status == "available"
            if done:
                ctx.set(OUT_ENDPOINT, inst.endpoint)
            return done

        def promote(ctx: StepContext) -> Any:
            clients = clients_of(ctx)
            rds = Rds(clients, region)
            inst = rds.describe_instance(db)
            if inst.is_replica:
                rds.promote(db, backup_retention_days=backup_retention_days)
                ctx.set(OUT_PROMOTED_AT, iso(utcnow()))
                ctx.set(OUT_LAG_AT_PROMOTION, lag_seconds)
            tags = {
                TAG_PROMOTED_FROM: inst.replica_source or source or "unknown",
                TAG_PROMOTED_AT: iso(utcnow()),
            }
            if lag_seconds is not None:
                tags["dr:lag-at-promotion-seconds"] = f"{lag_seconds:g}"
            Rds(clients, region).add_tags(inst, tags)
            return {"promoted": db, "region": region}

        def guarded(ctx: StepContext) -> Any:
            rds = Rds(clients_of(ctx), region)
            inst = rds.describe_instance(db)
            if inst.is_replica:
                tagged = TAG_PROMOTED_FROM in rds.tags(inst)
                if inst.status != "available" or tagged:
                    # Issued by an earlier (killed) run: never re-issue; tag it if that run could not.
                    if not tagged:
                        tags = {
                            TAG_PROMOTED_FROM: inst.replica_source or "unknown",
                            TAG_PROMOTED_AT: iso(utcnow()),
                        }
                        rds.add_tags(inst, tags)
                    ctx.set(OUT_PROMOTE_IN_FLIGHT, inst.status)
                    return {"promote": "already in progress", "status": inst.status}
            return promote(ctx)

        def wait(ctx: StepContext) -> bool:
            inst = Rds(clients_of(ctx), region).describe_instance(db)
            if inst.status in RDS_BROKEN:
                raise BadInput(
                    f"DB instance {db} in {region} went to {inst.status} while promoting",
                    resource=db,
                    region=region,
                    hint="see the RDS events of the instance",
                )
            transitional = inst.status in _TRANSITIONAL or inst.status != "available"
            ok = settled.observe(
                done=not inst.is_replica and inst.status == "available",
                transitional=transitional,
                label=f"{inst.status}{' (replica)' if inst.is_replica else ''}",
            )
            if ok:
                ctx.set(OUT_ENDPOINT, inst.endpoint)
                ctx.set(OUT_STATUS_HISTORY, settled.history)
            return ok

        params: dict[str, Any] = {"DBInstanceIdentifier": db}
        if backup_retention_days is not None:
            params["BackupRetentionPeriod"] = backup_retention_days
        ops: tuple[Operation, ...] = (
            Operation("rds", "PromoteReadReplica", region, params),
            Operation("rds", "AddTagsToResource", region, {"ResourceName": db}),
        )
        if guard:
            ops = (Operation("rds", "DescribeDBInstances", region, {"DBInstanceIdentifier": db}, False), *ops)
        return Step(
            id=sid,
            title=f"Promote read replica {db} ({region})",
            region=region,
            service="rds",
            changes=f"{db} stops replicating from {source or 'its source'} and becomes a writable primary",
            operations=ops,
            check=check,
            action=guarded if guard else promote,
            wait=wait,
            timeout=timeout,
            estimate=300.0,
            tags={"phase": "database"},
            kind=self,
        )

    def lower(
        self, emitter: AslEmitter, states: dict[str, Any], step: Step, next_name: str | None, fail: str
    ) -> str:
        """Guarded: Describe; when no longer a replica, an execution started with input
        ``{"resume": true}`` waits for the promotion it resumes, any other fails
        ``DrNotAReadReplica`` (the instance may be stale since a failback)."""
        em, sid = emitter, step.id
        op = next(o for o in step.operations if o.action == "PromoteReadReplica")
        tags = any(o.action == "AddTagsToResource" for o in step.operations if o.mutating)

        def block(nxt: str | None) -> str:
            return self._promote(em, states, sid, op, tags, nxt, fail)

        return str(em.sequence(states, step, [block], next_name))

    @staticmethod
    def _promote(
        em: AslEmitter,
        states: dict[str, Any],
        sid: str,
        op: Operation,
        tags: bool,
        next_name: str | None,
        fail: str,
    ) -> str:
        db = str(op.params["DBInstanceIdentifier"])
        key = em.safe(sid)
        describe = em.name(f"{sid}: describe {db}")
        is_replica = em.name(f"{sid}: {db} still a replica?")
        resumed = em.name(f"{sid}: resuming an interrupted failover?")
        resume_flag = em.name(f"{sid}: resume requested?")
        stale = em.name(f"{sid}: {db} is not a read replica")
        promote = em.name(f"{sid}: promote {db}")
        tag = em.name(f"{sid}: tag {db}")
        seen = "$.seen." + em.safe(f"{sid}_promotion")
        wait_start = em.poll(
            states,
            sid,
            "promotion",
            (em.sdk_resource("rds", "DescribeDBInstances"), {"DBInstanceIdentifier": db}, "rds"),
            {
                "And": [
                    {"Variable": seen + ".db.ReadReplicaSourceDBInstanceIdentifier", "IsPresent": False},
                    {"Variable": seen + ".db.DBInstanceStatus", "StringEquals": "available"},
                ]
            },
            {"Or": [{"Variable": seen + ".db.DBInstanceStatus", "StringEquals": s} for s in RDS_BROKEN]},
            next_name,
            fail,
            selector=_DB_SELECTOR,
        )
        em.task(
            states,
            describe,
            em.sdk_resource("rds", "DescribeDBInstances"),
            {"DBInstanceIdentifier": db},
            service="rds",
            read=True,
            result_path=f"$.db.{key}",
            fail=fail,
            result_selector={"instance.$": "$.DBInstances[0]"},
        )
        states[describe]["Next"] = is_replica
        states[is_replica] = {
            "Type": "Choice",
            "Choices": [
                {
                    "Variable": f"$.db.{key}.instance.ReadReplicaSourceDBInstanceIdentifier",
                    "IsPresent": True,
                    "Next": promote,
                }
            ],
            "Default": resumed,
        }
        # Standalone already: an execution resuming an interrupted failover (input {"resume": true})
        # waits for the promotion it started; any other is refused — the instance may be left over
        # from an earlier failover and stale since a failback (DNS must not move to it).
        states[resumed] = {
            "Type": "Choice",
            "Choices": [{"Variable": "$.resume", "IsPresent": True, "Next": resume_flag}],
            "Default": stale,
        }
        states[resume_flag] = {
            "Type": "Choice",
            "Choices": [{"Variable": "$.resume", "BooleanEquals": True, "Next": wait_start}],
            "Default": stale,
        }
        states[stale] = {
            "Type": "Fail",
            "Error": "DrNotAReadReplica",
            "Cause": f"step {sid}: {db} is not a read replica (promoted by an earlier failover, maybe stale "
            "since a failback): run `dr reprotect` first, or resume the interrupted failover "
            '(execution input {"resume": true})',
        }
        em.task(
            states,
            promote,
            em.sdk_resource("rds", "PromoteReadReplica"),
            em.pascal(dict(op.params)),
            service="rds",
            read=False,
            result_path=None,
            fail=fail,
        )
        if tags:
            states[promote]["Next"] = tag
            em.task(
                states,
                tag,
                em.sdk_resource("rds", "AddTagsToResource"),
                {
                    "ResourceName.$": f"$.db.{key}.instance.DBInstanceArn",
                    "Tags": [
                        {
                            "Key": "dr:promoted-from",
                            "Value.$": f"$.db.{key}.instance.ReadReplicaSourceDBInstanceIdentifier",
                        },
                        {"Key": "dr:promoted-at", "Value.$": "$$.State.EnteredTime"},
                        {"Key": "dr:promoted-by", "Value.$": "$$.Execution.Id"},
                    ],
                },
                service="rds",
                read=False,
                result_path=None,
                fail=fail,
            )
            states[tag]["Next"] = wait_start
        else:
            states[promote]["Next"] = wait_start
        return str(describe)


class WalWatch(Protocol):
    """What :class:`ReplicaCaughtUp` polls (:class:`dr.procedures.walpos.CatchUp`)."""

    @property
    def last(self) -> Any: ...

    def poll(self) -> bool | None: ...


class ReplicaCaughtUp(StepKind):
    """Planned mode: wait until the replica has replayed every write made before writes stopped.

    Proven by WAL position only (:mod:`dr.procedures.walpos`: the replica's replay position
    reaches the source's current one and the source stays quiet); the pre-flight refused the
    switchover before writes stopped if the databases could not be read. Never by CloudWatch
    ``ReplicaLag``: on RDS PostgreSQL it is the time since the last replayed commit and grows
    once writes stop. ``caught_up_by`` records ``wal-lsn``.

    ``watch(services)`` opens the WAL comparison of both databases; ``dbs`` are the (identifier,
    region) of the source and the replica (their endpoints and master credentials are read).
    """

    name: ClassVar[str] = "replica-caught-up"
    outputs: ClassVar[tuple[str, ...]] = (
        OUT_WRITES_STOPPED_AT,
        OUT_CAUGHT_UP_BY,
        OUT_CUTOVER_LSN,
        OUT_LAG_AT_CUTOVER,
    )

    def build(
        self,
        db: str,
        region: str,
        *,
        source: tuple[str, str],
        secret_id: str,
        watch: Callable[[StepServices], WalWatch],
        timeout: float,
    ) -> Step:
        watchers: dict[str, WalWatch] = {}

        def check(ctx: StepContext) -> bool:
            inst = Rds(clients_of(ctx), region).find_instance(db)
            return inst is not None and not inst.is_replica  # already promoted: nothing to wait for

        def action(ctx: StepContext) -> Any:
            if ctx.get(OUT_WRITES_STOPPED_AT) is None:
                ctx.set(OUT_WRITES_STOPPED_AT, iso(utcnow()))
            return None

        def watcher(ctx: StepContext) -> WalWatch:
            if ctx.run_id not in watchers:
                watchers[ctx.run_id] = watch(StepServices.of(ctx))
            return watchers[ctx.run_id]

        def wait(ctx: StepContext) -> bool:
            wal = watcher(ctx)
            done = wal.poll()
            if done is None:
                # Unreadable now (the pre-flight read both): retry with a fresh connection next poll.
                # Never CloudWatch ReplicaLag: on RDS PostgreSQL it grows while writes are stopped.
                watchers.pop(ctx.run_id, None)
                return False
            if done and wal.last is not None:
                ctx.set(OUT_CAUGHT_UP_BY, "wal-lsn")
                ctx.set(OUT_CUTOVER_LSN, wal.last.source_text)
                ctx.set(OUT_LAG_AT_CUTOVER, 0.0)
            return done

        return Step(
            id="replica-caught-up",
            title=f"Wait until replica {db} ({region}) has replayed every write made before writes stopped (RPO 0)",
            region=region,
            service="cloudwatch",
            changes="nothing (compares the WAL positions of both databases)",
            operations=(
                # the endpoints and master credentials of both databases (WAL positions over psycopg)
                *(
                    op
                    for ident, where in (source, (db, region))
                    for op in (
                        Operation(
                            "rds", "DescribeDBInstances", where, {"DBInstanceIdentifier": ident}, False
                        ),
                        Operation("secretsmanager", "GetSecretValue", where, {"SecretId": secret_id}, False),
                    )
                ),
            ),
            check=check,
            action=action,
            wait=wait,
            timeout=timeout,
            estimate=5.0,
            tags={"phase": "database"},
            kind=self,
        )

    def lower(
        self, emitter: AslEmitter, states: dict[str, Any], step: Step, next_name: str | None, fail: str
    ) -> str:
        """Step Functions cannot compare WAL positions: each database available (a single read each)."""
        blocks = [
            (lambda nxt, op=op: db_available_poll(emitter, states, step.id, op, nxt, fail))
            for op in step.operations
            if op.action == "DescribeDBInstances"
        ]
        return str(emitter.sequence(states, step, blocks, next_name))


class VerifyService(StepKind):
    """End to end: the name resolves to the target (verify-dns), the DB is writable, health is OK."""

    name: ClassVar[str] = "verify-service"
    outputs: ClassVar[tuple[str, ...]] = (OUT_VERIFIED,)

    def build(self, db: str, region: str, health_check_id: str, *, timeout: float) -> Step:
        def wait(ctx: StepContext) -> bool:
            clients = clients_of(ctx)
            inst = Rds(clients, region).describe_instance(db)
            healthy = Route53(clients).health_status(health_check_id).endpoint_healthy
            ok = not inst.is_replica and inst.status == "available" and healthy
            if ok:
                ctx.set(OUT_VERIFIED, {"db": db, "db_status": inst.status, "health_check": "healthy"})
            return ok

        return Step(
            id="verify-service",
            title=f"Verify: {db} writable and {region} healthy behind the public name",
            region=region,
            service="rds",
            changes="nothing (reads)",
            operations=(
                Operation("rds", "DescribeDBInstances", region, {"DBInstanceIdentifier": db}, False),
                Operation("route53", "GetHealthCheckStatus", None, {"HealthCheckId": health_check_id}, False),
            ),
            wait=wait,
            timeout=timeout,
            estimate=5.0,
            tags={"phase": "verify"},
            kind=self,
        )

    def lower(
        self, emitter: AslEmitter, states: dict[str, Any], step: Step, next_name: str | None, fail: str
    ) -> str:
        from dr.steps.traffic import health_poll

        db, hc = (
            next(o for o in step.operations if o.action == a)
            for a in ("DescribeDBInstances", "GetHealthCheckStatus")
        )
        blocks = [
            lambda nxt: db_available_poll(emitter, states, step.id, db, nxt, fail),
            lambda nxt: health_poll(emitter, states, step.id, hc, nxt, fail),
        ]
        return str(emitter.sequence(states, step, blocks, next_name))
