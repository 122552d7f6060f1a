"""Least-privilege IAM policies per procedure (``dr iam-policy --procedure …``).

Actions come from three sources:

* the plan's declared :class:`~dr.runbook.plan.Operation` s — ``failover``, ``failback`` and
  ``reprotect`` build their plans from the topology alone (:func:`static_plans`; failover in both
  modes, with :func:`dr.procedures.stepfunctions.static_preflight`), as ``restore`` and
  ``snapshot`` build every shape of theirs in both regions (their ``iam_plans``) and ``ops`` a
  step of every kind its commands run (:func:`ops_plans`);
* what each step's kind (:mod:`dr.steps`) reads beyond its operations (``StepKind.iam_reads``:
  its check, action and wait), and what the procedure's pre-flight gates read (``PREFLIGHT_READS``
  beside each ``preflight``; for ``ops`` also what its reports read, :func:`ops_reads`);
* the run machinery (DynamoDB lock, S3 journal mirror), and for ``drill`` what its actions and
  probes declare where they register (:func:`declare_needs`, installed by
  :mod:`dr.drills.drill_iam`).

Kubernetes operations are not IAM actions (they are authorised by the cluster's RBAC): the policy
has ``eks:DescribeCluster`` for connecting; :func:`kubernetes_verbs` lists what RBAC must allow.

Resources are ARNs built from the topology (region, identifiers, names) and the account id. Where
a name is only known at run time (hosted zone id without ``zone_id``, health check ids, snapshot
names, KMS key ids) the ARN keeps its type and region and wildcards only the id; a restore's target
is named by the operator, so ``restore`` gets ``db:*`` / ``replicationgroup:*`` plus an explicit
Deny on deleting or modifying the estate's own databases and Redis groups. Actions without
resource-level permissions (:data:`NO_RESOURCE_LEVEL`) get ``"*"``. :data:`DEPENDENT` adds what AWS
authorises alongside a call (tags on create, KMS grants for encrypted copies/replicas/restores).

How well each procedure is verified (tests/unit/procedures/test_iam.py, test_iam_procedures.py):
every procedure runs end to end in moto with every AWS call recorded; each call must be allowed on
its real ARN (rebuilt in the test, independently of this module) and every granted action must be
used, except the per-procedure :data:`CONDITIONAL_PATHS` (paths a short run does not take, each
with its reason) and the :data:`DEPENDENT` actions of calls that were made. ``failover`` runs
planned and unplanned; ``failback`` re-protects and fails back; ``snapshot`` creates, copies,
lists and prunes (RDS and Redis); ``restore`` runs PITR with ``--verify --cleanup``, a snapshot
restore and a Redis restore; ``ops`` runs triage, nodegroup scaling, WAF block/unblock/list,
rotate-db-secret and cert check; ``drill`` runs the AWS faults (``rds-reboot-failover``,
``redis-primary-failure`` — moto lacks TestFailover, so only the call is checked) and the probes.
``drill`` covers a drill's own faults and probes; a scenario whose actions run a procedure
(failover, failback, restore-pitr) needs that procedure's policy as well.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, cast

from dr.errors import BadInput, ConfigError
from dr.runbook.lock import lock_region
from dr.steps.ops_workload_steps import OpsKind
from dr.steps.redis_ready import RedisReady
from dr.steps.restore_steps import CleanupRestoredDb
from dr.steps.traffic import MoveRecords

if TYPE_CHECKING:
    from dr.runbook.plan import Plan
    from dr.topology import Estate, SiteView

PROCEDURES = ("failover", "failback", "reprotect", "drill", "snapshot", "restore", "ops")
Where = Literal["target", "source", "both", "global"]


@dataclass(frozen=True)
class Need:
    """One IAM action a procedure needs, in a region role (``target`` = the surviving site)."""

    action: str  # "rds:PromoteReadReplica"
    where: Where = "target"


# The run machinery: the lock (DynamoDB, target region) and the journal mirror (S3, target region).
# Only failover and failback take the lock (snapshot/restore/ops run without it; drills pass it to
# the failover/failback actions they run, whose own policies cover it).
_RUN = [
    Need("dynamodb:GetItem"),
    Need("dynamodb:PutItem"),
    Need("dynamodb:UpdateItem"),
    Need("dynamodb:DeleteItem"),
    Need("s3:PutObject"),
]
_LOCK_PATHS = {
    "dynamodb:UpdateItem": "renewing the lock's lease, on runs longer than the lease",
    "dynamodb:GetItem": "reading the holder when another run holds the lock",
}
# The conditional paths of the failover's steps, as their kinds declare them.
_REDIS_PATHS = dict(RedisReady.conditional)
_REDIS_KMS_PATHS = {a: _REDIS_PATHS.pop(a) for a in ("kms:DescribeKey", "kms:CreateGrant")}
_FAILOVER_PATHS = {**_REDIS_PATHS, **MoveRecords.conditional, **_LOCK_PATHS}
# Granted, but only used on paths a short run on a healthy estate does not take (action -> when).
# The tests (tests/unit/procedures/test_iam*.py) run each procedure end to end in moto and require
# every other granted action to be called.
CONDITIONAL_PATHS: dict[str, dict[str, str]] = {
    "failover": {**_FAILOVER_PATHS, **_REDIS_KMS_PATHS},
    "failback": {**_FAILOVER_PATHS, "kms:CreateGrant": _REDIS_KMS_PATHS["kms:CreateGrant"]},
    "reprotect": {
        "eks:DescribeCluster": "connecting to a cluster that has no kubeconfig context (EKS endpoint + token)",
        "elasticache:DescribeSnapshots": _FAILOVER_PATHS["elasticache:DescribeSnapshots"],
        "elasticache:CreateReplicationGroup": _FAILOVER_PATHS["elasticache:CreateReplicationGroup"],
        **_LOCK_PATHS,
    },
    "snapshot": {},
    "restore": dict(CleanupRestoredDb.conditional),
    "ops": {**OpsKind.conditional, **_LOCK_PATHS},
    "drill": {
        "eks:DescribeCluster": "connecting to a cluster that has no kubeconfig context (EKS endpoint + token)",
    },
}
CONDITIONAL = frozenset(CONDITIONAL_PATHS["failover"])
CONDITIONAL_BY_PROCEDURE = {k: frozenset(v) for k, v in CONDITIONAL_PATHS.items()}

# Actions AWS authorises *alongside* a call we make (the Service Authorization Reference's
# "dependent actions"): never called by the toolkit, required by the call. Tags on create need
# AddTagsToResource; encrypting a copy, replica or restore with a customer key needs the key's
# grant and description.
_KMS_USE = ("kms:CreateGrant", "kms:DescribeKey")
DEPENDENT: dict[str, tuple[str, ...]] = {
    "rds:CreateDBSnapshot": ("rds:AddTagsToResource",),
    "rds:CopyDBSnapshot": ("rds:AddTagsToResource", *_KMS_USE),
    "rds:CreateDBInstanceReadReplica": ("rds:AddTagsToResource", *_KMS_USE),
    "rds:RestoreDBInstanceToPointInTime": ("rds:AddTagsToResource", *_KMS_USE),
    "rds:RestoreDBInstanceFromDBSnapshot": ("rds:AddTagsToResource", *_KMS_USE),
}
IMPLIED = frozenset(a for deps in DEPENDENT.values() for a in deps)

# Calls whose service encrypts or decrypts with the estate's customer-managed key on the caller's
# behalf (the Secrets Manager secrets and the SSE-KMS journal bucket use the site's data key,
# ``alias/<site>-data``): the caller needs these KMS actions too, or AWS answers AccessDenied.
# The key policy only delegates to IAM, so the identity policy must carry them. They are granted
# only through that service (``kms:ViaService``) and, when the key's id is unknown (it is created
# by Pulumi; the CLI knows only the alias), only on the key that alias names
# (``kms:ResourceAliases``); with the key ARN known (the Pulumi-deployed state machine role), on
# that key alone.
VIA_KMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "secretsmanager:GetSecretValue": ("secretsmanager", ("kms:Decrypt",)),
    "secretsmanager:PutSecretValue": ("secretsmanager", ("kms:GenerateDataKey",)),
    "s3:PutObject": ("s3", ("kms:GenerateDataKey",)),
}

# Procedures whose needs are declared by an upper layer, beside the code that calls AWS:
# ``drill`` — each drill action and probe declares the IAM actions it calls where it registers
# (dr.drills.registry); dr.drills.drill_iam.install() puts their union here. An action that runs
# a procedure (failover, failback, restore-pitr …) needs that procedure's policy as well.
_DECLARED: dict[str, Callable[[], Iterable[Need]]] = {}


def declare_needs(procedure: str, needs: Callable[[], Iterable[Need]]) -> None:
    """``procedure``'s needs come from ``needs()`` (asked each time a policy is built)."""
    _DECLARED[procedure] = needs


def _declared(procedure: str) -> list[Need]:
    if procedure not in _DECLARED:
        raise ConfigError(
            f"the IAM needs of {procedure!r} are declared by its providers and were not installed",
            resource=procedure,
            hint="call dr.drills.drill_iam.install() before building the drill policy",
        )
    return list(_DECLARED[procedure]())


# Actions AWS offers no resource-level permission for: granted on "*".
NO_RESOURCE_LEVEL = frozenset(
    {
        "cloudwatch:GetMetricStatistics",
        "route53:ListHostedZonesByName",
        "route53:TestDNSAnswer",
        "elasticloadbalancing:DescribeTargetGroups",
        "elasticloadbalancing:DescribeTargetHealth",
        "acm:ListCertificates",
        "wafv2:ListIPSets",
        "ec2:DescribeSecurityGroups",
    }
)


# ---------------------------------------------------------------------------------------------
# Resources
# ---------------------------------------------------------------------------------------------


def _site(estate: Estate, region: str) -> SiteView:
    return estate.primary if estate.primary.region == region else estate.secondary


def _rds(action: str, r: str, a: str, estate: Estate, procedure: str | None) -> list[str]:
    site = _site(estate, r)
    name = action.split(":", 1)[1]
    ident = site.database.identifier
    # a failback renames the old primary <identifier>-old-<created> (or, when it cannot, names its
    # new replica <identifier>-failback[-N])
    dbs = (
        [f"arn:aws:rds:{r}:{a}:db:*"]
        if procedure == "restore"
        else [
            f"arn:aws:rds:{r}:{a}:db:{ident}",
            f"arn:aws:rds:{r}:{a}:db:{ident}-failback*",
            f"arn:aws:rds:{r}:{a}:db:{ident}-old-*",
        ]
    )
    snapshots = [f"arn:aws:rds:{r}:{a}:snapshot:*"]
    if name == "DescribeDBSubnetGroups":  # failback asks for the estate's group by name
        return [f"arn:aws:rds:{r}:{a}:subgrp:{estate.db_subnet_group(site)}"]
    if name in ("DescribeDBSnapshots", "CreateDBSnapshot", "CopyDBSnapshot", "DeleteDBSnapshot"):
        return snapshots + dbs
    backups = [f"arn:aws:rds:{r}:{a}:auto-backup:*"]  # DBInstanceAutomatedBackupsArn
    if name == "DescribeDBInstanceAutomatedBackups":
        return backups + dbs
    if name.startswith("Restore"):
        groups = ("subgrp", "pg", "og")
        return snapshots + dbs + backups + [f"arn:aws:rds:{r}:{a}:{g}:*" for g in groups]
    if name == "CreateDBInstanceReadReplica":
        return [*dbs, f"arn:aws:rds:{r}:{a}:subgrp:{estate.db_subnet_group(site)}"]
    if name == "AddTagsToResource" and procedure == "snapshot":
        return snapshots
    return dbs


def _elasticache(action: str, r: str, a: str, estate: Estate, procedure: str | None) -> list[str]:
    name = action.split(":", 1)[1]
    site = _site(estate, r)
    group = "*" if procedure == "restore" else site.cache.replication_group_id
    rg = f"arn:aws:elasticache:{r}:{a}:replicationgroup:{group}"
    if name == "DescribeCacheClusters":
        return [
            f"arn:aws:elasticache:{r}:{a}:cluster:{group}-*"
            if group != "*"
            else f"arn:aws:elasticache:{r}:{a}:cluster:*"
        ]
    if name == "CreateReplicationGroup":
        return [
            rg,
            f"arn:aws:elasticache:{r}:{a}:cluster:{group}-*"
            if group != "*"
            else f"arn:aws:elasticache:{r}:{a}:cluster:*",
            f"arn:aws:elasticache:{r}:{a}:snapshot:*",
            f"arn:aws:elasticache:{r}:{a}:subnetgroup:{estate.cache_subnet_group(site)}",
            f"arn:aws:elasticache:{r}:{a}:parametergroup:*",
            f"arn:aws:elasticache:{r}:{a}:securitygroup:*",
        ]
    if name in ("DescribeSnapshots", "CreateSnapshot", "DeleteSnapshot"):
        return [f"arn:aws:elasticache:{r}:{a}:snapshot:*", rg]
    return [rg]


def resources_for(
    action: str,
    region: str | None,
    estate: Estate,
    account: str,
    *,
    zone_id: str | None = None,
    procedure: str | None = None,
) -> list[str]:
    """ARNs ``action`` is granted on in ``region`` (``["*"]`` for actions without resource-level permissions)."""
    service, name = action.split(":", 1)
    r, a = region or "us-east-1", account
    if action in NO_RESOURCE_LEVEL:
        return ["*"]
    if service == "rds":
        return _rds(action, r, a, estate, procedure)
    if service == "eks":
        cluster = _site(estate, r).cluster
        if name == "DescribeCluster":
            return [f"arn:aws:eks:{r}:{a}:cluster/{cluster.name}"]
        return [f"arn:aws:eks:{r}:{a}:nodegroup/{cluster.name}/{cluster.nodegroup.name}/*"]
    if service == "elasticache":
        return _elasticache(action, r, a, estate, procedure)
    if service == "route53":
        zone = f"arn:aws:route53:::hostedzone/{zone_id or '*'}"
        if name in ("ChangeResourceRecordSets", "ListResourceRecordSets"):
            return [zone]
        if name in ("GetHealthCheck", "GetHealthCheckStatus", "UpdateHealthCheck"):
            return ["arn:aws:route53:::healthcheck/*"]
        if name == "GetChange":
            return ["arn:aws:route53:::change/*"]
        if name == "ListTagsForResource":
            return [zone, "arn:aws:route53:::healthcheck/*"]
        return ["*"]
    if service == "secretsmanager":
        sid = estate.app.db_secret.secrets_manager_id
        out = [f"arn:aws:secretsmanager:{r}:{a}:secret:{sid}-*"]
        if procedure == "ops" and name == "GetSecretValue":
            # rotate-db-secret on an instance whose password RDS manages: RDS's own secret
            out.append(f"arn:aws:secretsmanager:{r}:{a}:secret:rds!db-*")
        return out
    if service == "dynamodb":
        return [f"arn:aws:dynamodb:{r}:{a}:table/{estate.lock_table}"]
    if service == "s3":
        return [f"arn:aws:s3:::{estate.journal_bucket(r)}/*"]
    if service == "kms":
        return [f"arn:aws:kms:{r}:{a}:key/*"]
    if service == "wafv2":
        return [f"arn:aws:wafv2:{r}:{a}:regional/ipset/{_site(estate, r).edge.ip_set_name}/*"]
    if service == "cloudwatch" and name == "DescribeAlarms":
        return [f"arn:aws:cloudwatch:{r}:{a}:alarm:*"]
    if service == "acm" and name == "DescribeCertificate":
        return [f"arn:aws:acm:{r}:{a}:certificate/*"]
    return ["*"]


def kms_via_statements(
    pairs: Iterable[tuple[str, str | None]],
    estate: Estate,
    account: str,
    *,
    sid: str,
    keys: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """The KMS statements the :data:`VIA_KMS` calls among ``pairs`` (action, region) need: one per
    (service, region), on the site's data key (``keys[region]`` when its ARN is known, else any key
    whose alias is the site's) and only through that service in that region."""
    acts: dict[tuple[str, str], set[str]] = defaultdict(set)
    for action, region in pairs:
        via = VIA_KMS.get(action)
        if via is not None and region is not None:
            acts[(via[0], region)].update(via[1])
    out = []
    for (service, region), actions in sorted(acts.items()):
        key = (keys or {}).get(region)
        condition: dict[str, dict[str, str]] = {
            "StringEquals": {"kms:ViaService": f"{service}.{region}.amazonaws.com"}
        }
        if key is None:
            condition["ForAnyValue:StringEquals"] = {
                "kms:ResourceAliases": estate.kms_alias(_site(estate, region))
            }
        out.append(
            {
                "Sid": f"{sid}KmsVia{service.capitalize()}{region.replace('-', '').capitalize()}",
                "Effect": "Allow",
                "Action": sorted(actions),
                "Resource": key or f"arn:aws:kms:{region}:{account}:key/*",
                "Condition": condition,
            }
        )
    return out


def _denied(estate: Estate, procedure: str, account: str) -> list[dict[str, Any]]:
    """Explicit denies: a restore's cleanup may delete what it restored, never the estate's own."""
    if procedure != "restore":
        return []
    views = (estate.primary, estate.secondary)
    return [
        {
            "Sid": "RestoreNeverDeletesTheEstate",
            "Effect": "Deny",
            "Action": ["rds:DeleteDBInstance", "rds:ModifyDBInstance", "elasticache:DeleteReplicationGroup"],
            "Resource": sorted(
                [f"arn:aws:rds:{v.region}:{account}:db:{v.database.identifier}" for v in views]
                + [
                    f"arn:aws:elasticache:{v.region}:{account}:replicationgroup:{v.cache.replication_group_id}"
                    for v in views
                ]
            ),
        }
    ]


# ---------------------------------------------------------------------------------------------
# Actions per procedure
# ---------------------------------------------------------------------------------------------


def failover_plans(estate: Estate, target: SiteView) -> list[Plan]:
    """The failover's plans (unplanned and planned) built from the topology alone."""
    from dr.procedures.failover import failover_plan
    from dr.procedures.stepfunctions import static_preflight

    pre = static_preflight(estate, target, zone_id="ZONE", health_check_id="HEALTHCHECK")
    return [failover_plan(estate, pre), failover_plan(estate, replace(pre, mode="planned"))]


def static_plans(estate: Estate, procedure: str, target: SiteView) -> list[Plan]:
    """The plans of ``procedure`` built from the topology alone (no API call): failover's two
    modes; failback's to ``target`` (a planned failover behind a new replica, an old primary in
    its way); reprotect's of the standby ``target`` (replaced, its Redis waited for)."""
    if procedure == "failover":
        return failover_plans(estate, target)
    from dr.aws.rds import DbInstance
    from dr.procedures.failover_gates import RedisReadiness
    from dr.procedures.stepfunctions import static_preflight

    source = estate.other(target)
    db = source.database.identifier
    source_db = DbInstance(
        identifier=db,
        region=source.region,
        arn=f"arn:aws:rds:{source.region}:000000000000:db:{db}",
        status="available",
        engine="postgres",
        engine_version="-",
        instance_class=source.database.instance_class,
        multi_az=source.database.multi_az,
        encrypted=True,
        kms_key_id=None,
        endpoint=None,
        port=None,
        replica_source=None,
        replicas=(),
        latest_restorable_time=None,
        backup_retention_days=source.database.backup_retention_days,
        created=None,
        subnet_group=None,
        security_groups=(),
        parameter_group=None,
        deletion_protection=False,
    )
    ident = target.database.identifier
    redis = RedisReadiness(target.cache.replication_group_id, target.region, None, "wait")
    if procedure == "failback":
        from dr.procedures.failback import FailbackPreflight, failback_plan

        pre = static_preflight(estate, target, zone_id="ZONE", health_check_id="HEALTHCHECK")
        fb = FailbackPreflight(
            source=source,
            target=target,
            source_db=source_db,
            replica_id=ident,
            replica_exists=False,
            renamed=False,
            kms_key="KMS",
            redis=redis,
            failover=replace(pre, mode="planned"),
            max_lag_seconds=0.0,
            aside_id=f"{ident}-old",
        )
        return [failback_plan(estate, fb)]
    from dr.procedures.reprotect import ReprotectPreflight, reprotect_plan

    rp = ReprotectPreflight(
        source=source,
        target=target,
        source_db=source_db,
        replica_id=ident,
        existing=None,
        aside_id=f"{ident}-old",
        kms_key="KMS",
        max_lag_seconds=0.0,
        redis=redis,
    )
    return [reprotect_plan(estate, rp)]


def cli_plans(estate: Estate, procedure: str) -> list[Plan]:
    """Every shape of the ``restore`` or ``snapshot`` plans, in both regions, from the topology alone."""
    from dr.procedures import restore, snapshot

    build = restore.iam_plans if procedure == "restore" else snapshot.iam_plans
    return [plan for view in (estate.primary, estate.secondary) for plan in build(estate, view)]


def preflight_reads(procedure: str) -> list[tuple[str, str]]:
    """(action, where) the pre-flight gates of ``procedure`` read (failover, failback, reprotect,
    restore, snapshot)."""
    from dr.procedures import failback, failover_gates, reprotect, restore, snapshot

    if procedure in ("restore", "snapshot"):
        return list((restore if procedure == "restore" else snapshot).PREFLIGHT_READS)
    if procedure == "failover":
        return list(failover_gates.PREFLIGHT_READS)
    if procedure == "failback":
        return [*failover_gates.PREFLIGHT_READS, *failback.PREFLIGHT_READS]
    return list(reprotect.PREFLIGHT_READS)


def ops_plans(estate: Estate) -> list[Plan]:
    """Every step ``dr ops`` runs, built from the topology (:func:`dr.procedures.ops.static_plans`)."""
    from dr.procedures.ops import static_plans as ops_static_plans

    return ops_static_plans(estate)


def ops_reads() -> list[tuple[str, str]]:
    """(action, where) ``dr ops`` reads outside its steps: the commands' pre-flights, the reports
    (``dr ops triage``, ``dr ops cert check``)."""
    from dr.procedures import ops, ops_security, ops_triage

    return [
        *ops.PREFLIGHT_READS,
        *ops_security.PREFLIGHT_READS,
        *ops_security.CERT_READS,
        *ops_triage.TRIAGE_READS,
    ]


def _from_kinds(plans: Iterable[Plan]) -> list[tuple[str, str | None]]:
    """What the plans' steps read beyond their operations, as their kinds declare it."""
    return [pair for plan in plans for s in plan.steps if s.kind is not None for pair in s.kind.iam_reads(s)]


def _from_plans(plans: Iterable[Plan]) -> list[tuple[str, str | None]]:
    return [(op.iam_action, op.region) for plan in plans for op in plan.operations() if op.service != "k8s"]


def needed(estate: Estate, procedure: str, target: SiteView) -> list[tuple[str, str | None]]:
    """(action, region) pairs ``procedure`` needs (region None: global service)."""
    if procedure not in PROCEDURES:
        raise BadInput(
            f"unknown procedure {procedure!r}", resource=procedure, hint=f"one of {', '.join(PROCEDURES)}"
        )
    source = estate.other(target)
    regions: dict[str, list[str | None]] = {
        "target": [target.region],
        "source": [source.region],
        "both": [target.region, source.region],
        "global": [None],
    }
    out: list[tuple[str, str | None]] = []
    untouched: list[tuple[str, str | None]] = []  # no dependent actions
    needs: list[Need]
    if procedure in ("failover", "failback", "reprotect"):
        # The plan's steps (their operations and their kinds' reads) and the gates' reads.
        if procedure == "failback":
            # Failback is a failover to the primary site, behind a new replica in the other region.
            target, source = source, target
            regions = {
                "target": [target.region],
                "source": [source.region],
                "both": [target.region, source.region],
                "global": [None],
            }
        plans = static_plans(estate, procedure, target)
        out += _from_plans(plans) + _from_kinds(plans)
        needs = [Need(a, cast("Where", w)) for a, w in preflight_reads(procedure)]
        if procedure == "reprotect":
            # The run lock and its journal mirror are in the lock table's DR copy (dr.runbook.lock).
            out += [(n.action, lock_region(estate)) for n in _RUN]
        else:
            needs += _RUN
        if procedure != "failover":
            # a cross-region replica is also authorised on the source instance (RDS calls the
            # source region for it)
            untouched.append(("rds:CreateDBInstanceReadReplica", source.region))
    elif procedure in ("restore", "snapshot"):
        # Every command takes --region (--to): its plans' steps in both regions, the reads before them.
        plans = cli_plans(estate, procedure)
        out += _from_plans(plans) + _from_kinds(plans)
        needs = [Need(a, cast("Where", w)) for a, w in preflight_reads(procedure)]
    elif procedure == "ops":
        # The steps of every ops command (their operations and their kinds' reads), what the
        # commands read before their steps and what the reports read; the plans run under the lock.
        plans = ops_plans(estate)
        out += _from_plans(plans) + _from_kinds(plans)
        needs = [*(Need(a, cast("Where", w)) for a, w in ops_reads()), *_RUN]
    elif procedure == "drill":
        needs = _declared(procedure)
    else:  # pragma: no cover - PROCEDURES is checked above
        raise AssertionError(procedure)
    for need in needs:
        out += [(need.action, r) for r in regions[need.where]]
    out += [(dep, region) for action, region in list(out) for dep in DEPENDENT.get(action, ())]
    return list(dict.fromkeys(out + untouched))


def policy(
    estate: Estate,
    procedure: str,
    *,
    account_id: str,
    target: SiteView | None = None,
    zone_id: str | None = None,
) -> dict[str, Any]:
    """The IAM policy document ``procedure`` needs (one statement per service and resource set)."""
    if not (account_id.isdigit() and len(account_id) == 12):
        raise BadInput(
            f"account id {account_id!r} is not a 12-digit AWS account id",
            resource="--account-id",
            hint="pass --account-id 123456789012, or omit it to ask STS (GetCallerIdentity)",
        )
    view = target or estate.secondary
    grants: dict[tuple[str, tuple[str, ...]], set[str]] = defaultdict(set)
    pairs = needed(estate, procedure, view)
    for action, region in pairs:
        res = tuple(
            sorted(
                set(resources_for(action, region, estate, account_id, zone_id=zone_id, procedure=procedure))
            )
        )
        grants[(action.split(":", 1)[0], res)].add(action)
    # merge statements of one service with the same actions over several resource sets
    by_actions: dict[tuple[str, tuple[str, ...]], set[str]] = defaultdict(set)
    for (service, arns), acts in grants.items():
        by_actions[(service, tuple(sorted(acts)))].update(arns)
    statements = []
    for i, ((service, actions), resources) in enumerate(sorted(by_actions.items())):
        statements.append(
            {
                "Sid": f"{procedure.capitalize()}{service.capitalize().replace('-', '')}{i}",
                "Effect": "Allow",
                "Action": list(actions),
                "Resource": sorted(resources) if "*" not in resources else "*",
            }
        )
    via = kms_via_statements(pairs, estate, account_id, sid=procedure.capitalize())
    return {"Version": "2012-10-17", "Statement": statements + via + _denied(estate, procedure, account_id)}


def kubernetes_verbs(estate: Estate, procedure: str) -> list[dict[str, Any]]:
    """What the cluster's RBAC must allow (Kubernetes operations of the plan; not IAM)."""
    if procedure == "reprotect":  # the standby's pods, in whichever region is the standby
        from dr.procedures.failover import standby_pods_steps
        from dr.runbook.plan import Plan

        plans = [
            Plan("reprotect-pods", standby_pods_steps(estate, v, v.database.identifier, after=(), timeout=1))
            for v in (estate.primary, estate.secondary)
        ]
    elif procedure in ("failover", "failback"):
        plans = failover_plans(estate, estate.secondary if procedure == "failover" else estate.primary)
    elif procedure == "ops":  # a step of every kind the ops commands run, in each site
        plans = ops_plans(estate)
    else:
        return []
    seen: dict[str, set[str]] = defaultdict(set)
    for plan in plans:
        for op in plan.operations():
            if op.service == "k8s":
                seen[op.action].add(str(op.region))
    return [{"operation": k, "regions": sorted(v)} for k, v in sorted(seen.items())]


# What the cluster's RBAC must allow for each Kubernetes operation of a plan (what dr.kube sends):
# (verb, API group, resource, subresource). Scaling reads the scale subresource before patching
# it; an HPA is found by listing the namespace's HPAs.
Rule = tuple[str, str, str, str]
RBAC: dict[str, tuple[Rule, ...]] = {
    "GetDeployment": (("get", "apps", "deployments", ""),),
    "ListDeployments": (("list", "apps", "deployments", ""),),
    "PatchDeployment": (("get", "apps", "deployments", ""), ("patch", "apps", "deployments", "")),
    "PatchDeploymentScale": (
        ("get", "apps", "deployments", "scale"),
        ("patch", "apps", "deployments", "scale"),
    ),
    "PatchHorizontalPodAutoscaler": (
        ("list", "autoscaling", "horizontalpodautoscalers", ""),
        ("patch", "autoscaling", "horizontalpodautoscalers", ""),
    ),
    "GetSecret": (("get", "", "secrets", ""),),
    "PatchSecret": (("get", "", "secrets", ""), ("patch", "", "secrets", "")),
    "ListPods": (("list", "", "pods", ""),),
    "PatchPod": (("patch", "", "pods", ""),),
    "PatchConfigMap": (("get", "", "configmaps", ""), ("patch", "", "configmaps", "")),
    "CreateNetworkPolicy": (("create", "networking.k8s.io", "networkpolicies", ""),),
}
# The reads of `dr status` / `dr readiness` (deployments, the DB secret), in every cluster.
_STATUS_K8S = ("ListDeployments", "GetDeployment", "GetSecret")


def rbac_rules(estate: Estate, procedures: Iterable[str] = PROCEDURES) -> dict[str, dict[Rule, list[str]]]:
    """Per region: each RBAC rule the procedures' Kubernetes operations need, and which procedures
    (``status`` for the reads of dr status/readiness) need it."""
    out: dict[str, dict[Rule, list[str]]] = {
        v.region: defaultdict(list) for v in (estate.primary, estate.secondary)
    }
    for region in out:
        for op in _STATUS_K8S:
            for rule in RBAC[op]:
                out[region][rule].append("status")
    for procedure in procedures:
        for entry in kubernetes_verbs(estate, procedure):
            for region in entry["regions"]:
                for rule in RBAC.get(entry["operation"], ()):
                    if procedure not in out[region][rule]:
                        out[region][rule].append(procedure)
    return {region: dict(rules) for region, rules in out.items()}


def allows(doc: dict[str, Any], action: str, arn: str, context: dict[str, Any] | None = None) -> bool:
    """Does ``doc`` allow ``action`` on ``arn``? IAM wildcard matching; an explicit Deny wins.
    A statement with a ``Condition`` applies only when ``context`` (the request's condition keys,
    e.g. ``kms:ViaService``) satisfies it (:func:`dr.procedures.policy_eval.evaluate`)."""
    from dr.procedures.policy_eval import ALLOWED, evaluate

    return evaluate([doc], action, arn, context) == ALLOWED


def _task_actions(defn: dict[str, Any]) -> list[str]:
    out: list[str] = []

    def walk(block: dict[str, Any]) -> None:
        for st in block.get("States", {}).values():
            res = str(st.get("Resource", ""))
            if res.startswith("arn:aws:states:::aws-sdk:"):
                service, action = res.split(":")[-2:]
                out.append(f"{service}:{action[:1].upper()}{action[1:]}")
            elif res.startswith("arn:aws:states:::dynamodb:"):
                action = res.split(":")[-1]
                out.append(f"dynamodb:{action[:1].upper()}{action[1:]}")
            elif res == "arn:aws:states:::eks:call":
                # Authorised by the cluster (access entry / RBAC); connecting needs the cluster read.
                out.append("eks:DescribeCluster")
            for branch in st.get("Branches", []):
                walk(branch)

    walk(defn)
    return out


def definition_policy(
    defn: dict[str, Any],
    estate: Estate,
    *,
    account_id: str,
    region: str,
    zone_id: str | None = None,
    kms_key_arn: str | None = None,
) -> dict[str, Any]:
    """The policy a Step Functions role needs to run ``defn`` in ``region``: exactly the actions
    its Tasks call, on the topology's ARNs — plus the KMS actions of the calls that use the site's
    data key (``kms_key_arn`` when known, else the key its alias names)."""
    grants: dict[str, set[str]] = defaultdict(set)
    for action in sorted(set(_task_actions(defn))):
        where = None if action.startswith("route53:") else region
        grants[action].update(resources_for(action, where, estate, account_id, zone_id=zone_id))
    by_res: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for action, res in grants.items():
        by_res[tuple(sorted(res))].append(action)
    statements = [
        {
            "Sid": f"Failover{i}",
            "Effect": "Allow",
            "Action": sorted(actions),
            "Resource": list(res) if "*" not in res else "*",
        }
        for i, (res, actions) in enumerate(sorted(by_res.items()))
    ]
    statements += kms_via_statements(
        [(a, region) for a in grants],
        estate,
        account_id,
        sid="Failover",
        keys={region: kms_key_arn} if kms_key_arn else None,
    )
    return {"Version": "2012-10-17", "Statement": statements}
