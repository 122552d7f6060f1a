"""The step catalogue: every kind of recovery step, defined once (:mod:`dr.steps.base`).

Procedures (:mod:`dr.procedures`) compose these steps into plans; :mod:`dr.runbook.asl` compiles
them by asking each step's kind; ``dr iam-policy`` adds each kind's IAM reads to the plan's
operations. :data:`KINDS` lists every kind (the agreement test runs each one).
"""

from __future__ import annotations

from dr.steps.base import StepKind
from dr.steps.db_promotion import PromoteReplica, ReplicaCaughtUp, VerifyService
from dr.steps.db_replica import CreateReplica, MarkSuperseded, MoveAside, ReplicaInSync
from dr.steps.nodegroup_scale import NodegroupScale
from dr.steps.redis_ready import RedisReady
from dr.steps.restore_steps import (
    CleanupRestoredDb,
    CleanupRestoredRedis,
    RestoreDb,
    RestoreRedis,
    RestoreVerdict,
    VerifyRestoredDb,
)
from dr.steps.snapshot_steps import CopySnapshot, CreateSnapshot, DeleteSnapshot
from dr.steps.traffic import MoveRecords, TargetHealthy, VerifyDns
from dr.steps.workload_steps import PatchDbSecret, PodsReady, RestartDeployment, ScaleWorkloads, StopWrites

STOP_WRITES = StopWrites()
REPLICA_CAUGHT_UP = ReplicaCaughtUp()
NODEGROUP_SCALE = NodegroupScale()
SCALE_WORKLOADS = ScaleWorkloads()
PROMOTE_REPLICA = PromoteReplica()
REDIS_READY = RedisReady()
PATCH_DB_SECRET = PatchDbSecret()
RESTART_DEPLOYMENT = RestartDeployment()
PODS_READY = PodsReady()
TARGET_HEALTHY = TargetHealthy()
MOVE_RECORDS = MoveRecords()
VERIFY_DNS = VerifyDns()
VERIFY_SERVICE = VerifyService()
MOVE_ASIDE = MoveAside()
CREATE_REPLICA = CreateReplica()
REPLICA_IN_SYNC = ReplicaInSync()
MARK_SUPERSEDED = MarkSuperseded()
RESTORE_DB = RestoreDb()
VERIFY_RESTORED_DB = VerifyRestoredDb()
RESTORE_VERDICT = RestoreVerdict()
CLEANUP_RESTORED_DB = CleanupRestoredDb()
RESTORE_REDIS = RestoreRedis()
CLEANUP_RESTORED_REDIS = CleanupRestoredRedis()
CREATE_SNAPSHOT = CreateSnapshot()
COPY_SNAPSHOT = CopySnapshot()
DELETE_SNAPSHOT = DeleteSnapshot()

KINDS: tuple[StepKind, ...] = (
    STOP_WRITES,
    REPLICA_CAUGHT_UP,
    NODEGROUP_SCALE,
    SCALE_WORKLOADS,
    PROMOTE_REPLICA,
    REDIS_READY,
    PATCH_DB_SECRET,
    RESTART_DEPLOYMENT,
    PODS_READY,
    TARGET_HEALTHY,
    MOVE_RECORDS,
    VERIFY_DNS,
    VERIFY_SERVICE,
    MOVE_ASIDE,
    CREATE_REPLICA,
    REPLICA_IN_SYNC,
    MARK_SUPERSEDED,
    RESTORE_DB,
    VERIFY_RESTORED_DB,
    RESTORE_VERDICT,
    CLEANUP_RESTORED_DB,
    RESTORE_REDIS,
    CLEANUP_RESTORED_REDIS,
    CREATE_SNAPSHOT,
    COPY_SNAPSHOT,
    DELETE_SNAPSHOT,
)

__all__ = [
    "CLEANUP_RESTORED_DB",
    "CLEANUP_RESTORED_REDIS",
    "COPY_SNAPSHOT",
    "CREATE_REPLICA",
    "CREATE_SNAPSHOT",
    "DELETE_SNAPSHOT",
    "KINDS",
    "MARK_SUPERSEDED",
    "MOVE_ASIDE",
    "MOVE_RECORDS",
    "NODEGROUP_SCALE",
    "PATCH_DB_SECRET",
    "PODS_READY",
    "PROMOTE_REPLICA",
    "REDIS_READY",
    "REPLICA_CAUGHT_UP",
    "REPLICA_IN_SYNC",
    "RESTART_DEPLOYMENT",
    "RESTORE_DB",
    "RESTORE_REDIS",
    "RESTORE_VERDICT",
    "SCALE_WORKLOADS",
    "STOP_WRITES",
    "TARGET_HEALTHY",
    "VERIFY_DNS",
    "VERIFY_RESTORED_DB",
    "VERIFY_SERVICE",
    "StepKind",
]
