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
from dr.steps.ops_security_steps import (
    DenyAllPolicy,
    K8sSecretPassword,
    LabelPod,
    RdsMasterPassword,
    SecretReplicaWait,
    StorePassword,
    WafIpSet,
)
from dr.steps.ops_workload_steps import (
    NodegroupResize,
    PatchFlags,
    PatchHpa,
    RestartForConfig,
    ResumeWrites,
    RollbackDeployment,
    RolloutWait,
    ScaleDeployment,
)
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
ROLLOUT_WAIT = RolloutWait()
SCALE_DEPLOYMENT = ScaleDeployment()
PATCH_HPA = PatchHpa()
ROLLBACK_DEPLOYMENT = RollbackDeployment()
PATCH_FLAGS = PatchFlags()
RESTART_FOR_CONFIG = RestartForConfig()
RESUME_WRITES = ResumeWrites()
NODEGROUP_RESIZE = NodegroupResize()
WAF_IP_SET = WafIpSet()
DENY_ALL_POLICY = DenyAllPolicy()
LABEL_POD = LabelPod()
RDS_MASTER_PASSWORD = RdsMasterPassword()
STORE_PASSWORD = StorePassword()
SECRET_REPLICA_WAIT = SecretReplicaWait()
K8S_SECRET_PASSWORD = K8sSecretPassword()

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
    ROLLOUT_WAIT,
    SCALE_DEPLOYMENT,
    PATCH_HPA,
    ROLLBACK_DEPLOYMENT,
    PATCH_FLAGS,
    RESTART_FOR_CONFIG,
    RESUME_WRITES,
    NODEGROUP_RESIZE,
    WAF_IP_SET,
    DENY_ALL_POLICY,
    LABEL_POD,
    RDS_MASTER_PASSWORD,
    STORE_PASSWORD,
    SECRET_REPLICA_WAIT,
    K8S_SECRET_PASSWORD,
)

__all__ = [
    "CLEANUP_RESTORED_DB",
    "CLEANUP_RESTORED_REDIS",
    "COPY_SNAPSHOT",
    "CREATE_REPLICA",
    "CREATE_SNAPSHOT",
    "DELETE_SNAPSHOT",
    "DENY_ALL_POLICY",
    "K8S_SECRET_PASSWORD",
    "KINDS",
    "LABEL_POD",
    "MARK_SUPERSEDED",
    "MOVE_ASIDE",
    "MOVE_RECORDS",
    "NODEGROUP_RESIZE",
    "NODEGROUP_SCALE",
    "PATCH_DB_SECRET",
    "PATCH_FLAGS",
    "PATCH_HPA",
    "PODS_READY",
    "PROMOTE_REPLICA",
    "RDS_MASTER_PASSWORD",
    "REDIS_READY",
    "REPLICA_CAUGHT_UP",
    "REPLICA_IN_SYNC",
    "RESTART_DEPLOYMENT",
    "RESTART_FOR_CONFIG",
    "RESTORE_DB",
    "RESTORE_REDIS",
    "RESTORE_VERDICT",
    "RESUME_WRITES",
    "ROLLBACK_DEPLOYMENT",
    "ROLLOUT_WAIT",
    "SCALE_DEPLOYMENT",
    "SCALE_WORKLOADS",
    "SECRET_REPLICA_WAIT",
    "STOP_WRITES",
    "STORE_PASSWORD",
    "TARGET_HEALTHY",
    "VERIFY_DNS",
    "VERIFY_RESTORED_DB",
    "VERIFY_SERVICE",
    "WAF_IP_SET",
    "StepKind",
]
