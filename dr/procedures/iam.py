"""Least-privilege IAM policies per procedure (``dr iam-policy --procedure …``).

Actions come from two sources:

* the plan's declared :class:`~dr.runbook.plan.Operation` s (``failover`` builds its plans from the
  topology alone — both modes — with :func:`dr.procedures.stepfunctions.static_preflight`), and
* the reads its pre-flight, checks and waits make, and the run machinery (DynamoDB lock, S3 journal
  mirror), listed here per procedure.

Kubernetes operations are not IAM actions (they are authorised by the cluster's RBAC): the policy
has ``eks:DescribeCluster`` for connecting; :func:`kubernetes_verbs` lists what RBAC must allow.

Resources are ARNs built from the topology (region, identifiers, names) and the account id. Where
a name is only known at run time (hosted zone id without ``zone_id``, health check ids, snapshot
names) the ARN keeps its type and region and wildcards only the id. Actions without resource-level
permissions (``cloudwatch:GetMetricStatistics``, ``route53:ListHostedZonesByName``,
``route53:TestDNSAnswer``) get ``"*"``.

How well each procedure is verified (tests/unit/procedures/test_iam.py): ``failover`` (planned and
unplanned) runs end to end in moto with every call recorded — every call is covered and every
granted action is used, except the Redis-restore path's actions (listed in :data:`CONDITIONAL`).
The others are catalogues read from their code, checked for coverage of their declared plan
operations only (see docs/stepfunctions-iam-fleets.md).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from dr.errors import BadInput

if TYPE_CHECKING:
    from dr.runbook.plan import Plan
    from dr.topology import Estate, SiteView

PROCEDURES = ("failover", "failback", "drill", "snapshot", "restore", "ops")
Where = Literal["target", "source", "both", "global"]


@dataclass(frozen=True)
class Need:
    """One IAM action a procedure needs, in a region role (``target`` = the surviving site)."""

    action: str  # "rds:PromoteReadReplica"
    where: Where = "target"


# Reads of the failover's pre-flight/checks/waits (beyond the plan's declared operations).
_FAILOVER_READS = [
    Need("eks:DescribeCluster"),
    Need("eks:DescribeNodegroup"),
    Need("rds:DescribeDBInstances"),
    Need("rds:ListTagsForResource"),
    Need("cloudwatch:GetMetricStatistics"),
    Need("elasticache:DescribeReplicationGroups"),
    Need("route53:ListHostedZonesByName", "global"),
    Need("route53:ListResourceRecordSets", "global"),
    Need("route53:GetHealthCheck", "global"),
    Need("route53:GetHealthCheckStatus", "global"),
    Need("route53:ListTagsForResource", "global"),
    Need("route53:TestDNSAnswer", "global"),
    Need("route53:GetChange", "global"),
    Need("secretsmanager:GetSecretValue"),
]
# Only on paths a short run on a healthy estate does not take (the target's Redis group is missing
# and is restored from its newest snapshot; health-check inversions): granted, not always used.
CONDITIONAL = frozenset(
    {
        "elasticache:DescribeSnapshots",
        "elasticache:CreateReplicationGroup",
        "route53:UpdateHealthCheck",
        # the lock: renewing the lease on runs longer than it (UpdateItem), reading the holder
        # when the lock is held by someone else (GetItem)
        "dynamodb:UpdateItem",
        "dynamodb:GetItem",
    }
)
_REDIS_RESTORE = [Need("elasticache:DescribeSnapshots"), Need("elasticache:CreateReplicationGroup")]
# The run machinery: the lock (DynamoDB, target region) and the journal mirror (S3, target region).
_RUN = [
    Need("dynamodb:GetItem"),
    Need("dynamodb:PutItem"),
    Need("dynamodb:UpdateItem"),
    Need("dynamodb:DeleteItem"),
    Need("s3:PutObject"),
]

# Catalogues (read from the procedures' code; not executed end to end in the tests).
_CATALOGUE: dict[str, list[Need]] = {
    "snapshot": [
        Need("rds:DescribeDBInstances", "both"),
        Need("rds:DescribeDBSnapshots", "both"),
        Need("rds:CreateDBSnapshot", "source"),
        Need("rds:CopyDBSnapshot", "target"),
        Need("rds:DeleteDBSnapshot", "both"),
        Need("rds:AddTagsToResource", "both"),
        Need("rds:ListTagsForResource", "both"),
        Need("kms:DescribeKey", "both"),
        Need("kms:CreateGrant", "target"),
        Need("elasticache:DescribeSnapshots", "both"),
        Need("elasticache:CreateSnapshot", "both"),
        Need("elasticache:DeleteSnapshot", "both"),
    ],
    "restore": [
        Need("rds:DescribeDBInstances", "target"),
        Need("rds:DescribeDBSnapshots", "target"),
        Need("rds:RestoreDBInstanceFromDBSnapshot", "target"),
        Need("rds:RestoreDBInstanceToPointInTime", "target"),
        Need("rds:DeleteDBInstance", "target"),
        Need("rds:ModifyDBInstance", "target"),
        Need("rds:AddTagsToResource", "target"),
        Need("rds:ListTagsForResource", "target"),
        Need("elasticache:DescribeReplicationGroups", "target"),
        Need("elasticache:DescribeSnapshots", "target"),
        Need("secretsmanager:GetSecretValue", "target"),
    ],
    "drill": [
        Need("rds:DescribeDBInstances", "both"),
        Need("rds:RebootDBInstance", "source"),
        Need("rds:ListTagsForResource", "both"),
        Need("cloudwatch:GetMetricStatistics", "both"),
        Need("eks:DescribeCluster", "both"),
        Need("route53:ListHostedZonesByName", "global"),
        Need("route53:ListResourceRecordSets", "global"),
        Need("route53:GetHealthCheck", "global"),
        Need("route53:GetHealthCheckStatus", "global"),
        Need("route53:TestDNSAnswer", "global"),
    ],
    "ops": [
        Need("eks:DescribeCluster", "both"),
        Need("eks:DescribeNodegroup", "both"),
        Need("eks:UpdateNodegroupConfig", "both"),
        Need("rds:DescribeDBInstances", "both"),
        Need("secretsmanager:GetSecretValue", "both"),
        Need("secretsmanager:PutSecretValue", "both"),
        Need("wafv2:GetIPSet", "both"),
        Need("wafv2:UpdateIPSet", "both"),
        Need("wafv2:ListIPSets", "both"),
        Need("cloudwatch:GetMetricStatistics", "both"),
    ],
}


# ---------------------------------------------------------------------------------------------
# Resources
# ---------------------------------------------------------------------------------------------


def _site(estate: Estate, region: str) -> SiteView:
    return estate.primary if estate.primary.region == region else estate.secondary


def resources_for(
    action: str, region: str | None, estate: Estate, account: str, *, zone_id: str | None = None
) -> list[str]:
    """ARNs ``action`` is granted on in ``region`` (``["*"]`` for actions without resource-level permissions)."""
    service, name = action.split(":", 1)
    r, a = region or "us-east-1", account
    if service == "rds":
        site = _site(estate, r)
        if "Snapshot" in name or name.startswith("Restore"):
            out = [f"arn:aws:rds:{r}:{a}:snapshot:*", f"arn:aws:rds:{r}:{a}:db:{site.database.identifier}*"]
            if name.startswith("Restore"):
                out += [
                    f"arn:aws:rds:{r}:{a}:subgrp:*",
                    f"arn:aws:rds:{r}:{a}:pg:*",
                    f"arn:aws:rds:{r}:{a}:og:*",
                ]
            return out
        return [f"arn:aws:rds:{r}:{a}:db:{site.database.identifier}"]
    if service == "eks":
        cluster = _site(estate, r).cluster
        if name == "DescribeCluster":
            return [f"arn:aws:eks:{r}:{a}:cluster/{cluster.name}"]
        return [f"arn:aws:eks:{r}:{a}:nodegroup/{cluster.name}/{cluster.nodegroup.name}/*"]
    if service == "elasticache":
        group = _site(estate, r).cache.replication_group_id
        if name == "DescribeReplicationGroups":
            return [f"arn:aws:elasticache:{r}:{a}:replicationgroup:{group}"]
        if name == "CreateReplicationGroup":
            return [
                f"arn:aws:elasticache:{r}:{a}:replicationgroup:{group}",
                f"arn:aws:elasticache:{r}:{a}:cluster:{group}-*",
                f"arn:aws:elasticache:{r}:{a}:snapshot:*",
                f"arn:aws:elasticache:{r}:{a}:subnetgroup:{estate.cache_subnet_group(_site(estate, r))}",
                f"arn:aws:elasticache:{r}:{a}:parametergroup:*",
                f"arn:aws:elasticache:{r}:{a}:securitygroup:*",
            ]
        return [
            f"arn:aws:elasticache:{r}:{a}:snapshot:*",
            f"arn:aws:elasticache:{r}:{a}:replicationgroup:{group}",
        ]
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
        return [
            f"arn:aws:secretsmanager:{r}:{a}:secret:{sid}-*",
            f"arn:aws:secretsmanager:{r}:{a}:secret:rds!*",
        ]
    if service == "dynamodb":
        return [f"arn:aws:dynamodb:{r}:{a}:table/{estate.lock_table}"]
    if service == "s3":
        return [f"arn:aws:s3:::{estate.journal_bucket(r)}/*"]
    if service == "kms":
        return [f"arn:aws:kms:{r}:{a}:key/*"]
    if service == "wafv2":
        return [f"arn:aws:wafv2:{r}:{a}:regional/ipset/*", f"arn:aws:wafv2:{r}:{a}:regional/webacl/*"]
    return ["*"]


# ---------------------------------------------------------------------------------------------
# Actions per procedure
# ---------------------------------------------------------------------------------------------


def failover_plans(estate: Estate, target: SiteView) -> list[Plan]:
    """The failover's plans (unplanned and planned) built from the topology alone."""
    from dr.procedures.failover import failover_plan
    from dr.procedures.stepfunctions import static_preflight

    pre = static_preflight(estate, target, zone_id="ZONE", health_check_id="HEALTHCHECK")
    return [failover_plan(estate, pre), failover_plan(estate, replace(pre, mode="planned"))]


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
    needs: list[Need]
    if procedure in ("failover", "failback"):
        if procedure == "failback":
            # Failback is a failover to the primary site, behind a new replica in the other region.
            target, source = source, target
            regions = {
                "target": [target.region],
                "source": [source.region],
                "both": [target.region, source.region],
                "global": [None],
            }
            out += [
                ("rds:CreateDBInstanceReadReplica", source.region),
                ("rds:DescribeDBInstances", source.region),
            ]
        out += _from_plans(failover_plans(estate, target))
        needs = [*_FAILOVER_READS, *_REDIS_RESTORE, *_RUN, Need("eks:DescribeCluster", "source")]
        out.append(("route53:UpdateHealthCheck", None))
    else:
        needs = [*_CATALOGUE[procedure], *_RUN]
    for need in needs:
        out += [(need.action, r) for r in regions[need.where]]
    return out


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
    for action, region in needed(estate, procedure, view):
        res = tuple(sorted(set(resources_for(action, region, estate, account_id, zone_id=zone_id))))
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
    return {"Version": "2012-10-17", "Statement": statements}


def kubernetes_verbs(estate: Estate, procedure: str) -> list[dict[str, Any]]:
    """What the cluster's RBAC must allow (Kubernetes operations of the plan; not IAM)."""
    if procedure not in ("failover", "failback"):
        return []
    target = estate.secondary if procedure == "failover" else estate.primary
    seen: dict[str, set[str]] = defaultdict(set)
    for plan in failover_plans(estate, target):
        for op in plan.operations():
            if op.service == "k8s":
                seen[op.action].add(str(op.region))
    return [{"operation": k, "regions": sorted(v)} for k, v in sorted(seen.items())]


def allows(doc: dict[str, Any], action: str, arn: str) -> bool:
    """Does ``doc`` allow ``action`` on ``arn`` (IAM wildcard matching; Allow statements only)?"""
    import fnmatch

    for st in doc["Statement"]:
        if st.get("Effect") != "Allow":
            continue
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
        if any(fnmatch.fnmatchcase(action, a) for a in actions) and any(
            fnmatch.fnmatchcase(arn, r) for r in resources
        ):
            return True
    return False


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
    defn: dict[str, Any], estate: Estate, *, account_id: str, region: str, zone_id: str | None = None
) -> dict[str, Any]:
    """The policy a Step Functions role needs to run ``defn`` in ``region``: exactly the actions
    its Tasks call, on the topology's ARNs."""
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
    return {"Version": "2012-10-17", "Statement": statements}
