"""Security operations of the runbooks: WAF block/unblock, pod quarantine, DB secret rotation, certs.

Rotation never lets the secret out: the new password lives in a :class:`SecretValue` held by the
plan's closures — not in step outputs (journaled), not in operation params (printed by dry runs),
not in log lines. AWS calls carrying it are recorded without it (the session drops ``*Password`` /
``SecretString`` params).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from dr.aws.secretsmanager import SecretValue
from dr.errors import BadInput, OperationFailed
from dr.runbook.plan import Operation, Plan, Step, StepContext
from dr.steps.base import clients_of, kube_of

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.kube import Kube
    from dr.topology import Estate, SiteView

QUARANTINE_LABEL = ("security", "quarantine")
QUARANTINE_POLICY = "dr-quarantine-deny-all"
CERT_WARN_DAYS = 30
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
    steps = []
    for view in sites:
        name, region = view.edge.ip_set_name, view.region

        def check(ctx: StepContext, name: str = name, region: str = region) -> bool:
            change = wafv2.change_ip_set(
                clients_of(ctx),
                region,
                name,
                add=nets if block else (),
                remove=() if block else nets,
                dry_run=True,
            )
            return not change.added and not change.removed

        def action(ctx: StepContext, name: str = name, region: str = region) -> None:
            change = wafv2.change_ip_set(
                clients_of(ctx), region, name, add=nets if block else (), remove=() if block else nets
            )
            ctx.set(f"waf-{region}", change.to_dict())

        steps.append(
            Step(
                id=f"waf-{verb}-{view.site.name}",
                title=f"WAF {verb} {', '.join(map(str, nets))} in IP set {name} ({region})",
                region=region,
                service="wafv2",
                changes=f"IP set {name}: {'add' if block else 'remove'} {', '.join(map(str, nets))}; other entries kept",
                operations=(
                    Operation(
                        "wafv2", "GetIPSet", region, {"Name": name, "Scope": "REGIONAL"}, mutating=False
                    ),
                    Operation(
                        "wafv2",
                        "UpdateIPSet",
                        region,
                        {"Name": name, "Scope": "REGIONAL", "Addresses": [str(n) for n in nets]},
                    ),
                ),
                check=check,
                action=action,
                estimate=1.0,
            )
        )
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
    key, value = QUARANTINE_LABEL

    def label_check(ctx: StepContext) -> bool:
        return kube_of(ctx, view).get_pod(ns, pod).labels.get(key) == value

    def label_action(ctx: StepContext) -> None:
        kube_of(ctx, view).label_pod(ns, pod, {key: value})

    def policy_check(ctx: StepContext) -> bool:
        try:
            pol = kube_of(ctx, view).get_network_policy(ns, QUARANTINE_POLICY)
        except BadInput:  # NotFound
            return False
        return bool(pol.get("spec", {}).get("podSelector", {}).get("matchLabels") == {key: value})

    def policy_action(ctx: StepContext) -> None:
        kube_of(ctx, view).ensure_deny_all_policy(ns, QUARANTINE_POLICY, {key: value})

    steps = [
        Step(
            id="deny-all-policy",
            title=f"NetworkPolicy {QUARANTINE_POLICY}: deny all traffic of pods labelled {key}={value} ({view.region})",
            region=view.region,
            service="k8s",
            changes=f"networkpolicy {ns}/{QUARANTINE_POLICY} (ingress and egress denied)",
            operations=(Operation("k8s", "CreateNetworkPolicy", view.region, {"name": QUARANTINE_POLICY}),),
            check=policy_check,
            action=policy_action,
            estimate=0.5,
        ),
        Step(
            id="label-pod",
            title=f"Label pod {pod} {key}={value} ({view.region})",
            region=view.region,
            service="k8s",
            changes=f"pod {ns}/{pod}: label {key}={value} (isolated by the policy, kept for forensics)",
            depends_on=("deny-all-policy",),
            operations=(Operation("k8s", "PatchPod", view.region, {"name": pod, "labels": {key: value}}),),
            check=label_check,
            action=label_action,
            estimate=0.5,
        ),
    ]
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


def with_password(url: SecretValue, password: SecretValue) -> SecretValue:
    """The database URL with its password replaced (user, host, port, db and query kept)."""
    parts = urlsplit(url.reveal())
    if not parts.hostname or parts.username is None:
        raise BadInput(
            "the DB secret's URL has no user@host part; cannot rotate its password",
            hint="fix the secret to the form postgresql://user:password@host:5432/db",
        )
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    netloc = f"{quote(parts.username, safe='')}:{quote(password.reveal(), safe='')}@{host}"
    return SecretValue(urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment)))


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
    from dr.procedures.support import Settled

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
    new = password or new_password()

    def current(ctx: StepContext) -> SecretValue:
        """The password the database has (or is about to have) after this rotation."""
        if not managed:
            return new
        data = sm.get_secret(clients_of(ctx), db_site.region, managed).value.json()
        return SecretValue(str(data.get("password") or ""))

    def holds_new(ctx: StepContext, region: str) -> bool:
        data = sm.get_secret(clients_of(ctx), region, secret_id).value.json()
        return bool(data.get("password")) and data.get("password") == current(ctx).reveal()

    steps: list[Step] = []
    settled = Settled()

    def rds_wait(ctx: StepContext) -> bool:
        status = rds_api.Rds(clients_of(ctx), db_site.region).describe_instance(db).status
        return settled.observe(
            done=status == "available" and (not managed or rds_rotated(ctx)),
            transitional=status in ("modifying", "resetting-master-credentials"),
            label=status,
        )

    def rds_rotated(ctx: StepContext) -> bool:
        before = ctx.get("managed-version-before")
        return (
            before is not None
            and sm.get_secret(clients_of(ctx), db_site.region, managed or "").version_id != before
        )

    rds_step = Step(
        id="rds-master-password",
        title=(
            f"RDS rotates the managed master password of {db} ({db_site.region}); the old one stops working"
            if managed
            else f"Set the master password of {db} ({db_site.region}); the old one stops working"
        ),
        region=db_site.region,
        service="rds",
        changes=f"DB instance {db}: "
        + ("RotateMasterUserPassword (RDS-managed secret)" if managed else "MasterUserPassword")
        + " (ApplyImmediately)",
        operations=(
            Operation(
                "rds",
                "ModifyDBInstance",
                db_site.region,
                {"DBInstanceIdentifier": db, "ApplyImmediately": True}
                | ({"RotateMasterUserPassword": True} if managed else {}),
            ),
            *(
                (Operation("secretsmanager", "GetSecretValue", db_site.region, {"SecretId": managed}, False),)
                if managed
                else ()
            ),
        ),
        timeout=timeout,
        estimate=60.0,
    )
    if managed:

        def rds_managed_check(ctx: StepContext) -> bool:
            return (
                rds_rotated(ctx)
                and rds_api.Rds(clients_of(ctx), db_site.region).describe_instance(db).status == "available"
            )

        def rds_managed_action(ctx: StepContext) -> None:
            ctx.set(
                "managed-version-before", sm.get_secret(clients_of(ctx), db_site.region, managed).version_id
            )
            rds_api.rotate_managed_password(clients_of(ctx), db_site.region, db)
            ctx.set("rds-modified", True)

        rds_step.check, rds_step.action, rds_step.wait = rds_managed_check, rds_managed_action, rds_wait
        steps.append(rds_step)
    sm_ids = []
    for view in writable:

        def sm_check(ctx: StepContext, region: str = view.region) -> bool:
            return holds_new(ctx, region)

        def sm_action(ctx: StepContext, region: str = view.region) -> None:
            data = sm.get_secret(clients_of(ctx), region, secret_id).value.json()
            data["password"] = current(ctx).reveal()
            sm.put_secret(clients_of(ctx), region, secret_id, SecretValue(json.dumps(data)))

        sid = f"secretsmanager-{view.site.name}"
        sm_ids.append(sid)
        steps.append(
            Step(
                id=sid,
                title=f"Store the new password in Secrets Manager {secret_id} ({view.region})",
                region=view.region,
                service="secretsmanager",
                changes=f"secret {secret_id}: new AWSCURRENT version (password replaced, other keys kept)",
                depends_on=("rds-master-password",) if managed else (),
                operations=(
                    Operation("secretsmanager", "PutSecretValue", view.region, {"SecretId": secret_id}),
                ),
                check=sm_check,
                action=sm_action,
                estimate=0.5,
            )
        )
    for view in replicas:

        def replica_wait(ctx: StepContext, region: str = view.region) -> bool:
            return holds_new(ctx, region)

        sid = f"secretsmanager-replica-{view.site.name}"
        steps.append(
            Step(
                id=sid,
                title=f"Wait until the replica of {secret_id} in {view.region} holds the new password",
                region=view.region,
                service="secretsmanager",
                changes=f"nothing (Secrets Manager replicates {secret_id} from {owner[view.region]})",
                depends_on=tuple(sm_ids),
                operations=(
                    Operation(
                        "secretsmanager", "GetSecretValue", view.region, {"SecretId": secret_id}, False
                    ),
                ),
                check=replica_wait,
                wait=replica_wait,
                timeout=timeout,
                estimate=5.0,
            )
        )
        sm_ids.append(sid)
    if not managed:

        def rds_action(ctx: StepContext) -> None:
            rds_api.modify_master_password(clients_of(ctx), db_site.region, db, new.reveal())
            ctx.set("rds-modified", True)

        rds_step.depends_on, rds_step.action, rds_step.wait = tuple(sm_ids), rds_action, rds_wait
        steps.append(rds_step)
    k8s_after = tuple(sm_ids) if managed else ("rds-master-password",)
    ns, secret = app.namespace, app.db_secret
    for view in sites:

        def k_check(ctx: StepContext, view: SiteView = view) -> bool:
            url = kube_of(ctx, view).read_secret_key(ns, secret.name, secret.key)
            return unquote(urlsplit(url.reveal()).password or "") == current(ctx).reveal()

        def k_action(ctx: StepContext, view: SiteView = view) -> None:
            k = kube_of(ctx, view)
            url = k.read_secret_key(ns, secret.name, secret.key)
            k.patch_secret_key(ns, secret.name, secret.key, with_password(url, current(ctx)))
            ctx.set(f"secret-patched-{view.site.name}", True)

        kid = f"k8s-secret-{view.site.name}"
        steps.append(
            Step(
                id=kid,
                title=f"Patch Secret {secret.name} key {secret.key} with the new URL ({view.cluster.name})",
                region=view.region,
                service="k8s",
                changes=f"secret {ns}/{secret.name}: {secret.key} (password part only)",
                depends_on=k8s_after,
                operations=(
                    Operation("k8s", "PatchSecret", view.region, {"name": secret.name, "key": secret.key}),
                ),
                check=k_check,
                action=k_action,
                estimate=0.5,
            )
        )
        if not restart:
            continue
        for dep in app.deployments:

            def r_check(ctx: StepContext, view: SiteView = view, name: str = dep.name) -> bool:
                if ctx.dry_run:
                    return False
                info = kube_of(ctx, view).get_deployment(ns, name)
                return info.replicas == 0 or (
                    ctx.get(f"restarted-{view.site.name}-{name}") is not None
                    and info.template_annotations.get("kubectl.kubernetes.io/restartedAt")
                    == ctx.get(f"restarted-{view.site.name}-{name}")
                )

            def r_action(ctx: StepContext, view: SiteView = view, name: str = dep.name) -> None:
                ctx.set(f"restarted-{view.site.name}-{name}", kube_of(ctx, view).rollout_restart(ns, name))

            def r_wait(ctx: StepContext, view: SiteView = view, name: str = dep.name) -> bool:
                return kube_of(ctx, view).rollout_status(ns, name).rolled_out

            steps.append(
                Step(
                    id=f"restart-{dep.name}-{view.site.name}",
                    title=f"Rolling restart of {dep.name} ({view.cluster.name}) to use the new secret",
                    region=view.region,
                    service="k8s",
                    changes=f"deployment {ns}/{dep.name}: new ReplicaSet",
                    depends_on=(kid,),
                    operations=(Operation("k8s", "PatchDeployment", view.region, {"name": dep.name}),),
                    check=r_check,
                    action=r_action,
                    wait=r_wait,
                    timeout=timeout,
                    estimate=60.0,
                )
            )
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
