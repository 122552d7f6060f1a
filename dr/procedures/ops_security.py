"""Security operations of the runbooks: WAF block/unblock, pod quarantine, DB secret rotation, certs.

The steps are kinds of the catalogue (:mod:`dr.steps.ops_security_steps`). Rotation never lets
the secret out: the new password lives in a :class:`~dr.steps.ops_security_steps.Rotation` held by
the steps — not in step outputs (journaled), not in operation params (printed by dry runs), not in
log lines. AWS calls carrying it are recorded without it (the session drops ``*Password`` /
``SecretString`` params).
"""

from __future__ import annotations

import datetime as dt
import secrets
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dr.aws.secretsmanager import SecretValue
from dr.errors import BadInput, OperationFailed
from dr.runbook.plan import Plan, Step
from dr.steps import (
    DENY_ALL_POLICY,
    K8S_SECRET_PASSWORD,
    LABEL_POD,
    RDS_MASTER_PASSWORD,
    RESTART_FOR_CONFIG,
    SECRET_REPLICA_WAIT,
    STORE_PASSWORD,
    WAF_IP_SET,
)
from dr.steps.ops_security_steps import Rotation

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.kube import Kube
    from dr.topology import Estate, SiteView

QUARANTINE_LABEL = ("security", "quarantine")
QUARANTINE_POLICY = "dr-quarantine-deny-all"
CERT_WARN_DAYS = 30
# (IAM action, where) :func:`cert_check` reads (``dr ops cert check``, triage's certificates).
CERT_READS: tuple[tuple[str, str], ...] = (
    ("acm:ListCertificates", "both"),
    ("acm:DescribeCertificate", "both"),
)
# (IAM action, where) the pre-flights of waf_plan, waf_status and rotation_plan read before any step.
PREFLIGHT_READS: tuple[tuple[str, str], ...] = (
    ("wafv2:ListIPSets", "both"),  # an IP set's id, by name
    ("wafv2:GetIPSet", "both"),
    ("rds:DescribeDBInstances", "both"),  # the writer to rotate
    ("secretsmanager:DescribeSecret", "both"),  # a replica copy is not written
)
# RDS master passwords: printable ASCII except '/', '"', '@' and space; 8-128 chars (PostgreSQL).
# We use URL-unreserved characters only, so the password sits in the DB URL unescaped (~238 bits).
_PASSWORD_ALPHABET = string.ascii_letters + string.digits + "-_~."
PASSWORD_LENGTH = 40


# ----------------------------------------------------------------------------------------------
# WAF
# ----------------------------------------------------------------------------------------------


def waf_plan(
    clients: ClientProvider, estate: Estate, sites: list[SiteView], cidrs: list[str], *, block: bool
) -> tuple[Plan, dict[str, Any]]:
    """Add (block) or remove (unblock) CIDRs in each site's WAF IP set; validated before anything.

    Pre-flight (exit 2, nothing changed): every CIDR parses, each IP set exists, and its IP version
    matches every CIDR.
    """
    from dr.aws import wafv2

    nets = wafv2.parse_cidrs(cidrs)
    for view in sites:
        current = wafv2.get_ip_set(clients, view.region, view.edge.ip_set_name)
        wrong = [n for n in nets if (n.version == 4) != (current.version == "IPV4")]
        if wrong:
            raise BadInput(
                f"WAF IP set {current.name!r} in {view.region} holds {current.version} addresses; "
                f"{', '.join(map(str, wrong))} {'is' if len(wrong) == 1 else 'are'} IPv{wrong[0].version}",
                resource=current.name,
                region=view.region,
                hint="block IPv4 and IPv6 addresses in an IP set of the matching version",
            )
    verb = "block" if block else "unblock"
    steps = [WAF_IP_SET.build(view, nets, block=block) for view in sites]
    report = {"action": verb, "cidrs": [str(n) for n in nets], "regions": [v.region for v in sites]}
    return Plan(f"ops-waf-{verb}", steps, f"WAF {verb} in {', '.join(v.region for v in sites)}"), report


def waf_status(clients: ClientProvider, sites: list[SiteView]) -> list[dict[str, Any]]:
    from dr.aws import wafv2

    return [wafv2.get_ip_set(clients, v.region, v.edge.ip_set_name).to_dict() for v in sites]


# ----------------------------------------------------------------------------------------------
# Quarantine
# ----------------------------------------------------------------------------------------------


def quarantine_plan(kube: Kube, estate: Estate, view: SiteView, pod: str) -> tuple[Plan, dict[str, Any]]:
    """Label the pod ``security=quarantine`` and make sure a deny-all NetworkPolicy selects that label."""
    ns = estate.app.namespace
    info = kube.get_pod(ns, pod)  # NotFound (exit 2) names the pod, namespace and cluster
    policy_step = DENY_ALL_POLICY.build(view, ns, QUARANTINE_POLICY, QUARANTINE_LABEL)
    pod_step = LABEL_POD.build(view, ns, pod, QUARANTINE_LABEL)
    pod_step.depends_on = (policy_step.id,)
    steps = [policy_step, pod_step]
    report = {
        "pod": pod,
        "namespace": ns,
        "cluster": view.cluster.name,
        "region": view.region,
        "phase": info.phase,
    }
    return Plan("ops-quarantine", steps, f"Quarantine pod {pod} in {view.cluster.name}"), report


# ----------------------------------------------------------------------------------------------
# DB secret rotation
# ----------------------------------------------------------------------------------------------


def new_password(length: int = PASSWORD_LENGTH) -> SecretValue:
    """A strong random password RDS accepts (no '/', '"', '@' or spaces)."""
    while True:
        value = "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(length))
        if (
            any(c.isdigit() for c in value)
            and any(c.isupper() for c in value)
            and any(c.islower() for c in value)
        ):
            return SecretValue(value)


def writable_site(estate: Estate, which: str) -> SiteView:
    from dr.procedures.ops import resolve_sites

    sites = resolve_sites(estate, which)
    if len(sites) != 1:
        raise BadInput(
            "--region must name the one site whose database is writable (primary or secondary)",
            hint="use --region primary (or secondary after a failover)",
        )
    return sites[0]


@dataclass(frozen=True)
class RotationPreflight:
    db: str
    db_region: str
    secret_id: str
    secret_regions: tuple[str, ...]
    clusters: tuple[str, ...]
    # RDS manages the master password (ManageMasterUserPassword): rotated by RDS, copied from its secret.
    managed_secret: bool = False
    # Copies of the app's secret that are replicas of a multi-region secret (updated by Secrets Manager).
    replica_regions: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "db": self.db,
            "db_region": self.db_region,
            "secrets_manager_id": self.secret_id,
            "secret_regions": list(self.secret_regions),
            "clusters": list(self.clusters),
            "managed_secret": self.managed_secret,
            "replica_regions": list(self.replica_regions),
        }


def rotation_plan(
    clients: ClientProvider,
    estate: Estate,
    db_site: SiteView,
    *,
    password: SecretValue | None = None,
    restart: bool = True,
    timeout: float = 900.0,
) -> tuple[Plan, RotationPreflight]:
    """Rotate the DB master password everywhere it lives.

    1. The database. An instance whose password the estate owns gets ``ModifyDBInstance
       MasterUserPassword`` (after step 2). One whose password RDS manages in Secrets Manager
       (``ManageMasterUserPassword``) refuses that (InvalidParameterCombination): RDS rotates it
       (``RotateMasterUserPassword``), and the new password is read from RDS's secret.
    2. Secrets Manager: the app's JSON secret gets the new ``password`` (other keys kept) in every
       region where it is writable. A copy that is a replica of a multi-region secret is written by
       Secrets Manager itself: the plan waits until it holds the new password.
    3. Kubernetes (both clusters): the DB Secret's URL gets the new password; then a rolling
       restart of every deployment so pods reconnect with it.
    """
    from dr.aws import rds as rds_api
    from dr.aws import secretsmanager as sm

    app = estate.app
    sites = [estate.primary, estate.secondary]
    secret_id = app.db_secret.secrets_manager_id
    db = db_site.database.identifier
    inst = rds_api.Rds(clients, db_site.region).describe_instance(db)
    if inst.is_replica:
        raise BadInput(
            f"DB instance {db} in {db_site.region} is a read replica; its master password comes from its source",
            resource=db,
            region=db_site.region,
            hint="rotate on the writable site (--region primary, or secondary after a promotion)",
        )
    if inst.status not in ("available", "backing-up", "storage-optimization"):
        raise OperationFailed(
            f"DB instance {db} in {db_site.region} is {inst.status}; RDS refuses a modification now",
            resource=db,
            region=db_site.region,
            hint="wait until it is available",
        )
    managed = inst.master_user_secret_arn
    if managed and password is not None:
        raise BadInput(
            f"the master password of {db} ({db_site.region}) is managed by RDS in Secrets Manager: "
            "RDS generates the new one, a given password cannot be set",
            resource=db,
            region=db_site.region,
            hint="rotate without a password",
        )
    # NotFound (exit 2) before anything changes; a replica copy is written by Secrets Manager.
    owner = {view.region: sm.primary_region(clients, view.region, secret_id) for view in sites}
    writable = [v for v in sites if owner[v.region] == v.region]
    replicas = [v for v in sites if owner[v.region] != v.region]
    rot = Rotation(db, db_site.region, secret_id, password or new_password(), managed)
    rds_step = RDS_MASTER_PASSWORD.build(rot, timeout=timeout)
    steps: list[Step] = []
    if managed:
        steps.append(rds_step)
    sm_ids = []
    for view in writable:
        store = STORE_PASSWORD.build(rot, view)
        store.depends_on = (rds_step.id,) if managed else ()
        sm_ids.append(store.id)
        steps.append(store)
    for view in replicas:
        copy = SECRET_REPLICA_WAIT.build(rot, view, source=owner[view.region], timeout=timeout)
        copy.depends_on = tuple(sm_ids)
        steps.append(copy)
        sm_ids.append(copy.id)
    if not managed:
        rds_step.depends_on = tuple(sm_ids)
        steps.append(rds_step)
    k8s_after = tuple(sm_ids) if managed else (rds_step.id,)
    ns, secret = app.namespace, app.db_secret
    for view in sites:
        patch = K8S_SECRET_PASSWORD.build(rot, view, ns, secret.name, secret.key)
        patch.depends_on = k8s_after
        steps.append(patch)
        if not restart:
            continue
        for dep in app.deployments:
            restart_step = RESTART_FOR_CONFIG.build(view, ns, dep.name, reason="secret", timeout=timeout)
            restart_step.depends_on = (patch.id,)
            steps.append(restart_step)
    pre = RotationPreflight(
        db=db,
        db_region=db_site.region,
        secret_id=secret_id,
        secret_regions=tuple(v.region for v in sites),
        clusters=tuple(v.cluster.name for v in sites),
        managed_secret=bool(managed),
        replica_regions=tuple(v.region for v in replicas),
    )
    return Plan("ops-rotate-db-secret", steps, f"Rotate the master password of {db} ({db_site.region})"), pre


# ----------------------------------------------------------------------------------------------
# Certificates
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertCheck:
    name: str
    certificates: tuple[dict[str, Any], ...]
    warnings: tuple[str, ...]
    expired: bool

    @property
    def exit_code(self) -> int:
        return 1 if self.expired else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "certificates": list(self.certificates),
            "warnings": list(self.warnings),
            "expired": self.expired,
            "ok": not self.expired and not self.warnings,
        }


def cert_check(
    clients: ClientProvider,
    estate: Estate,
    sites: list[SiteView],
    *,
    warn_days: int = CERT_WARN_DAYS,
    now: dt.datetime | None = None,
) -> CertCheck:
    """ACM status and days to expiry of the certificates covering ``app.record`` in each region."""
    from dr.aws import acm

    now = now or dt.datetime.now(dt.UTC)
    name = estate.app.record
    certs: list[dict[str, Any]] = []
    warnings: list[str] = []
    expired = False
    for view in sites:
        wanted = view.edge.certificate_domain or name
        found = acm.certificates_for(clients, view.region, wanted)
        if not found:
            warnings.append(f"no ACM certificate covers {wanted} in {view.region}")
        for cert in found:
            row = cert.to_dict(now)
            days = cert.days_left(now)
            if cert.status == "EXPIRED" or (days is not None and days <= 0):
                expired = True
                row["verdict"] = "expired"
                warnings.append(f"{cert.domain} ({view.region}) has EXPIRED — renew it now")
            elif cert.status != "ISSUED":
                row["verdict"] = "not-issued"
                warnings.append(f"{cert.domain} ({view.region}) is {cert.status}")
            elif days is not None and days < warn_days:
                row["verdict"] = "expiring"
                warnings.append(f"{cert.domain} ({view.region}) expires in {days:.0f} days (< {warn_days})")
            else:
                row["verdict"] = "ok"
            certs.append(row)
    return CertCheck(name=name, certificates=tuple(certs), warnings=tuple(warnings), expired=expired)
