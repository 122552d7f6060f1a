"""`dr doctor`: the preflight before a game day or on the first day with an account. Read-only.

For the estate of the stack files it checks, in parallel, and says what to do for each failure:

* **identity** — STS ``GetCallerIdentity`` in each region of the stack files (a region the account
  has not enabled refuses the credentials there while the other accepts them);
* **region** — each region is enabled for the account (EC2 ``DescribeRegions`` with
  ``AllRegions``; a denied call is *could not check*, a warning);
* **resource** — everything the topology names exists: RDS instances, ElastiCache groups, EKS
  clusters and nodegroups, ALBs and target groups, WAF web ACLs and IP sets, the DB secret, the
  Route53 zone, the failover records and their health checks;
* **iam** — each procedure's needs (the actions and ARNs `dr iam-policy` computes) simulated for
  the caller's principal with ``iam:SimulatePrincipalPolicy`` (an assumed-role session is
  simulated as its role). Where the endpoint lacks the simulator (moto) the principal's identity
  policies are read and evaluated locally (:mod:`dr.procedures.policy_eval`) — the report says
  which was used;
* **kubernetes** — each cluster answers (kubeconfig context, else EKS endpoint + IAM token) and its
  RBAC allows every verb the procedures send (SelfSubjectAccessReview, ``kubectl auth can-i``);
* **state** — the lock table (DynamoDB) and the journal bucket (S3) of each region answer;
* **drift** — what is deployed matches the stack files (engine major version, instance class,
  Multi-AZ, replica source, EKS version, nodegroup bounds, Redis node type): warnings.

Exit 0 when nothing fails (warnings allowed), 1 otherwise; credentials that no region accepts are a
setup error (exit 2) raised before any check, as for every command.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dr.errors import AccessDenied, CredentialsError, DrError, NotFound, OperationFailed

if TYPE_CHECKING:
    from dr.aws.identity import Identity
    from dr.aws.session import ClientProvider
    from dr.kube import KubeFactory
    from dr.topology import Estate, SiteView

PASS, WARN, FAIL = "pass", "warn", "fail"
_ORDER = [PASS, WARN, FAIL]
AREAS = ("identity", "region", "resource", "iam", "kubernetes", "state", "drift")
# A concrete stand-in for the wildcard part of a granted ARN (snapshot:*, secret:<id>-*, key/*):
# the simulator is asked about a resource such an ARN names, as AWS would evaluate a real one.
SAMPLE = "dr-doctor"
Command = Callable[..., str]


def _default_command(*args: str) -> str:
    return " ".join(["dr", *args])


@dataclass
class Check:
    area: str
    name: str
    status: str
    detail: str
    fix: str | None = None
    region: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "area": self.area,
            "name": self.name,
            "region": self.region,
            "status": self.status,
            "detail": self.detail,
            "fix": self.fix,
            **({"data": self.data} if self.data else {}),
        }


@dataclass
class DoctorReport:
    app: str
    primary_region: str
    secondary_region: str
    generated_at: dt.datetime
    identity: dict[str, Any] | None
    iam_source: str | None
    checks: list[Check]

    @property
    def counts(self) -> dict[str, int]:
        return {s: sum(1 for c in self.checks if c.status == s) for s in _ORDER}

    @property
    def status(self) -> str:
        """The worst status of any check (pass when there is none)."""
        counts = self.counts
        return next((s for s in reversed(_ORDER) if counts[s]), PASS)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    @property
    def exit_code(self) -> int:
        """1 when a check failed; warnings alone exit 0."""
        return int(bool(self.counts[FAIL]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "primary_region": self.primary_region,
            "secondary_region": self.secondary_region,
            "generated_at": self.generated_at.isoformat(),
            "identity": self.identity,
            "iam_source": self.iam_source,
            "status": self.status,
            "counts": self.counts,
            "checks": [c.to_dict() for c in self.checks],
        }


# ---------------------------------------------------------------------------------------------
# Running reads in parallel, keeping each one's error
# ---------------------------------------------------------------------------------------------


@dataclass
class Got:
    value: Any = None
    error: DrError | None = None
    unreachable: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def _try(fn: Callable[[], Any]) -> Got:
    """Run one read, keeping its error for its check (one failing read never breaks the report;
    :func:`run_doctor` raises a credentials error only when no region accepts the credentials)."""
    from dr.aws.session import aws_setup_error, endpoint_error_types

    try:
        return Got(fn())
    except endpoint_error_types() as exc:
        return Got(
            error=OperationFailed(f"the AWS endpoint did not answer ({type(exc).__name__})"), unreachable=True
        )
    except DrError as err:
        return Got(error=err)
    except Exception as exc:
        mapped = aws_setup_error(exc)
        if mapped is None:
            mapped = OperationFailed(f"{type(exc).__name__}: {exc}")
        return Got(error=mapped)


def _gather(jobs: dict[str, Callable[[], Any]], workers: int = 12) -> dict[str, Got]:
    if not jobs:
        return {}
    with ThreadPoolExecutor(max_workers=min(workers, len(jobs)), thread_name_prefix="dr-doctor") as pool:
        futures = {key: pool.submit(_try, fn) for key, fn in jobs.items()}
        return {key: f.result() for key, f in futures.items()}


def _raise_credentials(got: Got) -> None:
    if isinstance(got.error, CredentialsError):
        raise got.error


# ---------------------------------------------------------------------------------------------
# Identity and regions
# ---------------------------------------------------------------------------------------------


def _identity_checks(estate: Estate, ids: dict[str, Got]) -> list[Check]:
    checks = []
    for region, got in ids.items():
        if got.ok:
            ident: Identity = got.value
            checks.append(
                Check(
                    "identity",
                    "sts caller identity",
                    PASS,
                    f"{ident.arn} (account {ident.account})",
                    region=region,
                )
            )
        elif isinstance(got.error, CredentialsError):
            checks.append(
                Check(
                    "identity",
                    "sts caller identity",
                    FAIL,
                    f"{region} does not accept the credentials that the other region accepts "
                    f"({got.error.code}): {region} is most likely not enabled for this account",
                    fix=f"enable {region} (`aws account enable-region --region-name {region}`, or AWS "
                    "console → Account → AWS Regions), or fix the region in the stack files",
                    region=region,
                )
            )
        else:
            checks.append(_failed("identity", "sts caller identity", region, got))
    return checks


_OPT_IN_OK = ("opt-in-not-required", "opted-in")


def _region_checks(estate: Estate, got: Got | None) -> list[Check]:
    regions = estate.regions
    if got is None:
        return [
            Check(
                "region", "region enabled", WARN, "could not check: no region accepted the STS call", region=r
            )
            for r in regions
        ]
    if not got.ok:
        if isinstance(got.error, AccessDenied):
            return [
                Check(
                    "region",
                    "region enabled",
                    WARN,
                    f"could not check: {got.error.iam_action or 'ec2:DescribeRegions'} is denied",
                    fix="grant ec2:DescribeRegions to check it, or check the region in the AWS console "
                    "(Account → AWS Regions)",
                    region=r,
                )
                for r in regions
            ]
        return [_failed("region", "region enabled", r, got) for r in regions]
    checks = []
    for region in regions:
        status = got.value.get(region)
        if status in _OPT_IN_OK:
            checks.append(Check("region", "region enabled", PASS, status, region=region))
        elif status is None:
            checks.append(
                Check(
                    "region",
                    "region enabled",
                    FAIL,
                    f"{region} is not a region of this account's partition",
                    fix="fix the region in the stack files (`dr topology show`)",
                    region=region,
                )
            )
        else:
            checks.append(
                Check(
                    "region",
                    "region enabled",
                    FAIL,
                    f"{region} is an opt-in region this account has not enabled ({status})",
                    fix=f"`aws account enable-region --region-name {region}` (or AWS console → Account "
                    "→ AWS Regions), then wait until it is ENABLED",
                    region=region,
                )
            )
    return checks


# ---------------------------------------------------------------------------------------------
# Resources
# ---------------------------------------------------------------------------------------------


def _failed(area: str, name: str, region: str | None, got: Got, *, missing_fix: str | None = None) -> Check:
    """The check of a read that failed: missing (fail), denied (warn: could not check), other (fail)."""
    err = got.error
    assert err is not None
    if isinstance(err, AccessDenied):
        return Check(
            area,
            name,
            WARN,
            f"could not check: {err.iam_action or 'the call'} is denied",
            fix=err.hint,
            region=region,
        )
    if isinstance(err, NotFound):
        return Check(area, name, FAIL, err.message, fix=missing_fix or err.hint, region=region)
    if got.unreachable:
        return Check(
            area,
            name,
            FAIL,
            err.message,
            fix="check the network path to AWS (proxy, VPN); a region down is `dr failover --mode unplanned`",
            region=region,
        )
    return Check(area, name, FAIL, err.message, fix=err.hint, region=region)


def _site_jobs(estate: Estate, view: SiteView, clients: ClientProvider) -> dict[str, Callable[[], Any]]:
    from dr.aws import eks, elbv2, wafv2
    from dr.aws.elasticache import ElastiCache
    from dr.aws.rds import Rds
    from dr.aws.secretsmanager import get_secret
    from dr.aws.stores import probe_bucket, probe_lock_table

    r, s = view.region, view.site

    def web_acl() -> Any:
        acl = wafv2.find_web_acl(clients, r, s.edge.web_acl_name)
        if acl is None:
            raise NotFound(
                f"WAF web ACL {s.edge.web_acl_name} not found in {r}", resource=s.edge.web_acl_name, region=r
            )
        return acl

    def secret() -> str:
        return get_secret(clients, r, estate.app.db_secret.secrets_manager_id).arn  # the value is dropped

    return {
        "database": lambda: Rds(clients, r).describe_instance(s.database.identifier),
        "redis": lambda: ElastiCache(clients, r).describe_replication_group(s.cache.replication_group_id),
        "cluster": lambda: eks.describe_cluster(clients, r, s.cluster.name),
        "nodegroup": lambda: eks.describe_nodegroup(clients, r, s.cluster.name, s.cluster.nodegroup.name),
        "alb": lambda: elbv2.load_balancer(clients, r, s.edge.alb_name),
        "target_group": lambda: elbv2.target_group_arn(clients, r, s.edge.target_group_name),
        "web_acl": web_acl,
        "ip_set": lambda: wafv2.get_ip_set(clients, r, s.edge.ip_set_name),
        "secret": secret,
        "lock_table": lambda: probe_lock_table(clients, r, estate.lock_table),
        "journal_bucket": lambda: probe_bucket(clients, r, estate.journal_bucket(r)),
    }


def _resource_checks(estate: Estate, view: SiteView, got: dict[str, Got]) -> list[Check]:
    s, r = view.site, view.region
    deploy = f"deploy it (`pulumi up --stack {view.stack}`) or fix the name in {estate.stack_dir}/Pulumi.{view.stack}.yaml"
    # key of _site_jobs -> (area, what, the stack-file key naming it)
    # fmt: off
    names = {
        "database": ("resource", f"RDS instance {s.database.identifier}", "site.database.identifier"),
        "redis": ("resource", f"ElastiCache group {s.cache.replication_group_id}", "site.cache.replicationGroupId"),
        "cluster": ("resource", f"EKS cluster {s.cluster.name}", "site.cluster.name"),
        "nodegroup": ("resource", f"EKS nodegroup {s.cluster.name}/{s.cluster.nodegroup.name}", "site.cluster.nodegroup.name"),
        "alb": ("resource", f"ALB {s.edge.alb_name}", "site.edge.albName"),
        "target_group": ("resource", f"target group {s.edge.target_group_name}", "site.edge.targetGroupName"),
        "web_acl": ("resource", f"WAF web ACL {s.edge.web_acl_name}", "site.edge.webAclName"),
        "ip_set": ("resource", f"WAF IP set {s.edge.ip_set_name}", "site.edge.ipSetName"),
        "secret": ("resource", f"secret {estate.app.db_secret.secrets_manager_id}", "app.dbSecret.secretsManagerId"),
        "lock_table": ("state", f"lock table {estate.lock_table}", "app.lockTable"),
        "journal_bucket": ("state", f"journal bucket {estate.journal_bucket(r)}", "app.journalBucketPrefix"),
    }
    # fmt: on
    checks = []
    for key, (area, name, config_key) in names.items():
        out = got[key]
        if not out.ok:
            fix = deploy.replace("the name", config_key)
            checks.append(_failed(area, name, r, out, missing_fix=fix))
            continue
        checks.append(Check(area, name, PASS, _found(key, out.value), region=r))
    return checks


def _found(key: str, value: Any) -> str:
    if key == "database":
        return f"{'replica' if value.is_replica else 'writer'} {value.status}"
    if key in ("redis", "cluster", "nodegroup"):
        return f"exists ({value.status})"
    if key == "alb":
        return f"exists ({value.state})"
    if key == "journal_bucket":
        return (
            "exists and answers"
            if value == "ok"
            else "exists (HeadBucket denied: the journal needs only s3:PutObject)"
        )
    if key == "lock_table":
        return "exists and answers (GetItem)"
    return "exists"


def _dns_checks(estate: Estate, got: Got) -> list[Check]:
    app = estate.app
    if not got.ok:
        return [_failed("resource", f"Route53 {app.record}", None, got)]
    dns = got.value
    checks = [Check("resource", f"Route53 zone {dns.zone.name}", PASS, f"exists ({dns.zone.id})")]
    for view, role in ((estate.primary, "PRIMARY"), (estate.secondary, "SECONDARY")):
        rec = dns.by_region(view.region)
        name = f"Route53 {role} record {app.record}"
        if rec is None:
            checks.append(
                Check(
                    "resource",
                    name,
                    FAIL,
                    f"no failover record of {app.record} points at {view.region}",
                    fix=f"deploy the dns component (`pulumi up --stack {view.stack}`)",
                    region=view.region,
                )
            )
            continue
        checks.append(Check("resource", name, PASS, f"{rec.role} → {rec.record.target}", region=view.region))
        hc_name = f"Route53 health check {estate.health_check_ref(view)}"
        if rec.check is None:
            checks.append(
                Check(
                    "resource",
                    hc_name,
                    FAIL,
                    f"the {rec.role} record has no health check: Route53 cannot fail over from it",
                    fix=f"deploy the dns component (`pulumi up --stack {view.stack}`)",
                    region=view.region,
                )
            )
        else:
            flags = [f for f in ("inverted", "disabled") if getattr(rec.check, f)]
            status, detail = (
                (WARN, f"{rec.check.id} is {', '.join(flags)}")
                if flags
                else (PASS, f"exists ({rec.check.id})")
            )
            fix = "`dr dns failback` or `dr dns status` (a game-day leftover)" if flags else None
            checks.append(Check("resource", hc_name, status, detail, fix=fix, region=view.region))
    return checks


# ---------------------------------------------------------------------------------------------
# Drift: stack files vs what is deployed (warnings)
# ---------------------------------------------------------------------------------------------


def _drift_checks(estate: Estate, got: dict[str, dict[str, Got]]) -> list[Check]:
    checks: list[Check] = []
    reconcile = "make them agree: change the stack file and `pulumi up`, or after a failover `dr reconcile`"

    def compare(view: SiteView, name: str, declared: Any, deployed: Any, fix: str = reconcile) -> None:
        if deployed is None:
            return
        ok = declared == deployed
        checks.append(
            Check(
                "drift",
                name,
                PASS if ok else WARN,
                f"{deployed}" if ok else f"stack file says {declared}, deployed is {deployed}",
                fix=None if ok else fix,
                region=view.region,
            )
        )

    dbs: dict[str, Any] = {}
    for view in (estate.primary, estate.secondary):
        g = got.get(view.region, {})
        db, rg, cl, ng = (
            g[k].value if k in g and g[k].ok else None for k in ("database", "redis", "cluster", "nodegroup")
        )
        if db is not None:
            dbs[view.region] = db
            major = (db.engine_version or "").split(".", 1)[0] or None
            compare(
                view,
                f"{view.database.identifier} engine major version",
                estate.app.database.major_version,
                major,
            )
            compare(
                view,
                f"{view.database.identifier} instance class",
                view.database.instance_class,
                db.instance_class,
            )
            compare(view, f"{view.database.identifier} Multi-AZ", view.database.multi_az, db.multi_az)
        if cl is not None:
            compare(view, f"{view.cluster.name} Kubernetes version", view.cluster.version, cl.version)
        if ng is not None:
            decl = view.cluster.nodegroup
            compare(
                view,
                f"{view.cluster.name}/{decl.name} min/max",
                f"{decl.min_size}/{decl.max_size}",
                f"{ng.scaling.min_size}/{ng.scaling.max_size}",
            )
        if rg is not None:
            compare(view, f"{view.cache.replication_group_id} node type", view.cache.node_type, rg.node_type)
    checks += _replication_check(estate, dbs)
    return checks


def _replication_check(estate: Estate, dbs: dict[str, Any]) -> list[Check]:
    p, s = estate.primary, estate.secondary
    pdb, sdb = dbs.get(p.region), dbs.get(s.region)
    if pdb is None or sdb is None:
        return []
    name = f"{s.database.identifier} replica source"
    if sdb.is_replica and p.database.identifier in str(sdb.replica_source) and not pdb.is_replica:
        return [Check("drift", name, PASS, f"replica of {sdb.replica_source}", region=s.region)]
    if pdb.is_replica and s.database.identifier in str(pdb.replica_source):
        detail = f"roles are swapped: {s.region} serves the writer, {p.region} replicates from it (after a failover)"
        fix = "to stay: `dr reconcile` so the stack files declare it; to go back: `dr failback`"
    elif not sdb.is_replica and not pdb.is_replica:
        detail = "both databases are writers: DR has no replica to promote (split brain after a failover?)"
        fix = f"`dr readiness` (single-writer); `dr reprotect --region {s.region}` makes the standby a replica again"
    else:
        detail = (
            f"{s.database.identifier} replicates from {sdb.replica_source}, not from {p.database.identifier}"
        )
        fix = f"`dr reprotect --region {s.region}`, or fix the identifiers in the stack files"
    return [Check("drift", name, WARN, detail, fix=fix, region=s.region)]


# ---------------------------------------------------------------------------------------------
# IAM: each procedure's needs, simulated for the caller's principal
# ---------------------------------------------------------------------------------------------


def concrete(arn: str) -> str:
    """A resource the granted ARN pattern names (``*`` itself stays: no resource-level permission)."""
    return arn if arn == "*" else arn.replace("*", SAMPLE)


def iam_needs(estate: Estate, account: str) -> dict[str, list[tuple[str, str]]]:
    """Per procedure: the (action, resource) pairs its `dr iam-policy` policy grants (default target)."""
    from dr.procedures.iam import PROCEDURES, needed, resources_for

    target = estate.secondary
    out: dict[str, list[tuple[str, str]]] = {}
    for procedure in PROCEDURES:
        pairs: list[tuple[str, str]] = []
        for action, region in needed(estate, procedure, target):
            for arn in resources_for(action, region, estate, account, procedure=procedure):
                pairs.append((action, concrete(arn)))
        out[procedure] = list(dict.fromkeys(pairs))
    return out


@dataclass
class IamResult:
    source: str  # "iam:SimulatePrincipalPolicy" | "local evaluation of the principal's policies"
    principal: str
    decisions: dict[tuple[str, str], str]


def simulate_needs(
    clients: ClientProvider, identity: Identity, needs: dict[str, list[tuple[str, str]]]
) -> IamResult:
    from dr.aws.identity import (
        SimulationUnavailable,
        principal_arn,
        principal_policies,
        role_arn_with_path,
        simulate,
    )

    principal = principal_arn(identity.arn)
    if principal is None:
        raise DrError(
            f"{identity.arn} is not an IAM role or user: its permissions cannot be simulated",
            hint="run dr doctor with the role the operators use (e.g. `--profile` of an SSO permission set)",
        )
    principal = role_arn_with_path(clients, principal)
    pairs = sorted({pair for pairs in needs.values() for pair in pairs})
    by_resource: dict[str, list[str]] = defaultdict(list)
    for action, resource in pairs:
        by_resource[resource].append(action)
    decisions: dict[tuple[str, str], str] = {}
    try:
        for resource, actions in sorted(by_resource.items()):
            asked = {a.lower(): a for a in actions}  # IAM action names are case-insensitive
            for d in simulate(clients, principal, actions, [resource]):
                decisions[(asked.get(d.action.lower(), d.action), resource)] = d.decision
        return IamResult("iam:SimulatePrincipalPolicy", principal, decisions)
    except SimulationUnavailable:
        from dr.procedures.policy_eval import evaluate

        docs = principal_policies(clients, principal)
        decisions = {(a, r): evaluate(docs, a, r) for a, r in pairs}
        return IamResult(
            "local evaluation of the principal's policies (this endpoint lacks SimulatePrincipalPolicy)",
            principal,
            decisions,
        )


def _iam_checks(needs: dict[str, list[tuple[str, str]]], got: Got | None, command: Command) -> list[Check]:
    if got is None:
        return [Check("iam", "iam policy", WARN, "could not check: no region accepted the STS call")]
    if not got.ok:
        err = got.error
        assert err is not None
        if isinstance(err, AccessDenied):
            detail = f"could not simulate: {err.iam_action or 'the call'} is denied"
            fix: str | None = (
                "grant iam:SimulatePrincipalPolicy (and iam:GetRole) on your role to check it, or compare "
                "your policies with `dr iam-policy --procedure P` by hand"
            )
        else:
            detail, fix = f"could not simulate: {err.message}", err.hint
        return [Check("iam", f"iam {p}", WARN, detail, fix=fix) for p in needs]
    result: IamResult = got.value
    checks = []
    for procedure, pairs in needs.items():
        missing = [(a, r) for a, r in pairs if result.decisions.get((a, r), "implicitDeny") != "allowed"]
        policy_cmd = command("iam-policy", "--procedure", procedure)
        if not missing:
            checks.append(
                Check("iam", f"iam {procedure}", PASS, f"{len(pairs)} action/resource pairs allowed")
            )
            continue
        actions = sorted({a for a, _ in missing})
        denied = sorted({a for a, r in missing if result.decisions.get((a, r)) == "explicitDeny"})
        detail = f"missing {len(actions)} action(s): {', '.join(actions)}"
        if denied:
            detail += f" (explicitly denied: {', '.join(denied)})"
        checks.append(
            Check(
                "iam",
                f"iam {procedure}",
                FAIL,
                detail,
                fix=f"attach the policy `{policy_cmd}` prints to {result.principal}",
                data={
                    "missing": [
                        {"action": a, "resource": r, "decision": result.decisions.get((a, r), "implicitDeny")}
                        for a, r in missing
                    ]
                },
            )
        )
    return checks


# ---------------------------------------------------------------------------------------------
# Kubernetes: connection and RBAC
# ---------------------------------------------------------------------------------------------


def _kube_job(
    estate: Estate, view: SiteView, kube: KubeFactory, rules: dict[Any, list[str]]
) -> Callable[[], Any]:
    def job() -> dict[Any, tuple[bool, str]]:
        client = kube(view)
        ns = estate.app.namespace
        return {
            rule: client.can_i(rule[0], rule[1], rule[2], namespace=ns, subresource=rule[3]) for rule in rules
        }

    return job


def _rule_text(rule: tuple[str, str, str, str]) -> str:
    verb, group, resource, sub = rule
    what = f"{resource}/{sub}" if sub else resource
    return f"{verb} {group + '/' if group else ''}{what}"


def _kube_checks(estate: Estate, view: SiteView, rules: dict[Any, list[str]], got: Got | None) -> list[Check]:
    name = f"cluster {view.cluster.name}"
    if got is None:
        return [
            Check(
                "kubernetes", name, WARN, "not checked: no Kubernetes access configured", region=view.region
            )
        ]
    if not got.ok:
        check = _failed("kubernetes", name, view.region, got)
        if check.status == FAIL and not check.fix:
            check.fix = (
                f"`aws eks update-kubeconfig --name {view.cluster.name} --region {view.region} --alias "
                f"{view.cluster.name}`, and an EKS access entry for your role"
            )
        return [check]
    answers: dict[Any, tuple[bool, str]] = got.value
    denied = [rule for rule, (allowed, _) in answers.items() if not allowed]
    if not denied:
        return [
            Check(
                "kubernetes",
                name,
                PASS,
                f"connected; RBAC allows all {len(answers)} verbs in {estate.app.namespace}",
                region=view.region,
            )
        ]
    procs = sorted({p for rule in denied for p in rules[rule]})
    return [
        Check(
            "kubernetes",
            name,
            FAIL,
            f"RBAC denies in namespace {estate.app.namespace}: {', '.join(_rule_text(r) for r in denied)} "
            f"(needed by {', '.join(procs)})",
            fix=f"grant them to your identity in {view.cluster.name}: a Role/RoleBinding in "
            f"{estate.app.namespace}, or an EKS access entry with AmazonEKSEditPolicy",
            region=view.region,
            data={"denied": [_rule_text(r) for r in denied]},
        )
    ]


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


def run_doctor(
    estate: Estate,
    clients: ClientProvider,
    kube: KubeFactory | None,
    *,
    command: Command = _default_command,
    now: dt.datetime | None = None,
) -> DoctorReport:
    """Every check, in parallel where independent. Read-only. See the module docstring."""
    from dr.aws.identity import caller_identity, region_opt_in
    from dr.procedures.iam import rbac_rules
    from dr.steps.dns_records import read_state

    views = (estate.primary, estate.secondary)
    ids = _gather({v.region: functools.partial(caller_identity, clients, v.region) for v in views})
    if not any(g.ok for g in ids.values()):
        for g in ids.values():
            _raise_credentials(g)  # no region accepts them: the operator's setup (exit 2)
    usable = [v for v in views if ids[v.region].ok]
    identity: Identity | None = ids[usable[0].region].value if usable else None

    jobs: dict[str, Callable[[], Any]] = {}
    needs: dict[str, list[tuple[str, str]]] = {}
    rules = rbac_rules(estate)
    if identity is not None:
        home = usable[0].region
        jobs["regions"] = lambda: region_opt_in(clients, home, estate.regions)
        jobs["dns"] = lambda: read_state(clients, estate, use_test_dns=False)
        needs = iam_needs(estate, identity.account)
        jobs["iam"] = lambda: simulate_needs(clients, identity, needs)
    for view in usable:
        for key, fn in _site_jobs(estate, view, clients).items():
            jobs[f"{view.region}:{key}"] = fn
        if kube is not None:
            jobs[f"{view.region}:kube"] = _kube_job(estate, view, kube, rules[view.region])
    got = _gather(jobs)

    checks = _identity_checks(estate, ids)
    checks += _region_checks(estate, got.get("regions"))
    for view in usable:
        site = {k.split(":", 1)[1]: g for k, g in got.items() if k.startswith(f"{view.region}:")}
        checks += _resource_checks(estate, view, site)
    if "dns" in got:
        checks += _dns_checks(estate, got["dns"])
    if identity is not None:
        checks += _iam_checks(needs, got.get("iam"), command)
    for view in usable:
        checks += _kube_checks(estate, view, rules[view.region], got.get(f"{view.region}:kube"))
    per_region = {
        v.region: {k.split(":", 1)[1]: g for k, g in got.items() if k.startswith(f"{v.region}:")}
        for v in usable
    }
    checks += _drift_checks(estate, per_region)
    order = {a: i for i, a in enumerate(AREAS)}
    checks.sort(key=lambda c: order[c.area])
    iam = got.get("iam")
    return DoctorReport(
        app=estate.app.name,
        primary_region=estate.primary.region,
        secondary_region=estate.secondary.region,
        generated_at=now or dt.datetime.now(dt.UTC),
        identity=identity.to_dict() if identity else None,
        iam_source=iam.value.source if iam is not None and iam.ok else None,
        checks=checks,
    )
