"""The operator's security steps (``dr ops``): WAF block/unblock, pod quarantine, and the DB
master password's rotation (the database, Secrets Manager, the clusters' DB Secret).

Rotation never lets the secret out: the new password lives in a :class:`Rotation` held by the
steps' closures — not in step outputs (journaled), not in operation params (printed by dry runs).
Like every kind of :mod:`dr.steps.ops_workload_steps`, none is lowered to Step Functions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from dr.aws import rds as rds_api
from dr.aws import secretsmanager as sm
from dr.aws import wafv2
from dr.aws.secretsmanager import SecretValue
from dr.errors import BadInput
from dr.runbook.plan import Operation, Step, StepContext
from dr.steps.base import IamRead, Settled, clients_of, kube_of
from dr.steps.ops_workload_steps import CONNECT, OpsKind

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.topology import SiteView

# Output keys (journaled).
OUT_WAF = "waf-"  # waf-<region>: the IP set change
OUT_MANAGED_VERSION = "managed-version-before"  # RDS-managed secret's version before the rotation
OUT_RDS_MODIFIED = "rds-modified"
OUT_SECRET_PATCHED = "secret-patched-"  # secret-patched-<site>

_RDS_MANAGED = "the master password is managed by RDS: the new one is read from RDS's secret"


# ----------------------------------------------------------------------------------------------
# WAF
# ----------------------------------------------------------------------------------------------


class WafIpSet(OpsKind):
    """Add (block) or remove (unblock) CIDRs in a site's WAF IP set, every other entry kept."""

    name: ClassVar[str] = "waf-ip-set"
    outputs: ClassVar[tuple[str, ...]] = (OUT_WAF,)
    # the IP set's id is found by name
    reads: ClassVar[tuple[IamRead, ...]] = (IamRead("wafv2:ListIPSets"),)
    conditional: ClassVar[dict[str, str]] = {}

    def build(self, view: SiteView, nets: Sequence[wafv2.Network], *, block: bool) -> Step:
        name, region = view.edge.ip_set_name, view.region
        verb = "block" if block else "unblock"
        add, remove = (nets, ()) if block else ((), nets)

        def check(ctx: StepContext) -> bool:
            change = wafv2.change_ip_set(clients_of(ctx), region, name, add=add, remove=remove, dry_run=True)
            return not change.added and not change.removed

        def action(ctx: StepContext) -> None:
            change = wafv2.change_ip_set(clients_of(ctx), region, name, add=add, remove=remove)
            ctx.set(f"{OUT_WAF}{region}", change.to_dict())

        return Step(
            id=f"waf-{verb}-{view.site.name}",
            title=f"WAF {verb} {', '.join(map(str, nets))} in IP set {name} ({region})",
            region=region,
            service="wafv2",
            changes=f"IP set {name}: {'add' if block else 'remove'} {', '.join(map(str, nets))}; other entries kept",
            operations=(
                Operation("wafv2", "GetIPSet", region, {"Name": name, "Scope": "REGIONAL"}, mutating=False),
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
            kind=self,
        )


# ----------------------------------------------------------------------------------------------
# Quarantine
# ----------------------------------------------------------------------------------------------


class DenyAllPolicy(OpsKind):
    """A NetworkPolicy denying all ingress and egress of the pods carrying a label."""

    name: ClassVar[str] = "deny-all-policy"

    def build(self, view: SiteView, namespace: str, policy: str, label: tuple[str, str]) -> Step:
        key, value = label

        def check(ctx: StepContext) -> bool:
            try:
                pol = kube_of(ctx, view).get_network_policy(namespace, policy)
            except BadInput:  # NotFound
                return False
            return bool(pol.get("spec", {}).get("podSelector", {}).get("matchLabels") == {key: value})

        def action(ctx: StepContext) -> None:
            kube_of(ctx, view).ensure_deny_all_policy(namespace, policy, {key: value})

        return Step(
            id="deny-all-policy",
            title=f"NetworkPolicy {policy}: deny all traffic of pods labelled {key}={value} ({view.region})",
            region=view.region,
            service="k8s",
            changes=f"networkpolicy {namespace}/{policy} (ingress and egress denied)",
            operations=(Operation("k8s", "CreateNetworkPolicy", view.region, {"name": policy}),),
            check=check,
            action=action,
            estimate=0.5,
            kind=self,
        )


class LabelPod(OpsKind):
    """Label one pod (the quarantine label: isolated by the deny-all policy, kept for forensics)."""

    name: ClassVar[str] = "label-pod"

    def build(self, view: SiteView, namespace: str, pod: str, label: tuple[str, str]) -> Step:
        key, value = label

        def check(ctx: StepContext) -> bool:
            return kube_of(ctx, view).get_pod(namespace, pod).labels.get(key) == value

        def action(ctx: StepContext) -> None:
            kube_of(ctx, view).label_pod(namespace, pod, {key: value})

        return Step(
            id="label-pod",
            title=f"Label pod {pod} {key}={value} ({view.region})",
            region=view.region,
            service="k8s",
            changes=f"pod {namespace}/{pod}: label {key}={value} (isolated by the policy, kept for forensics)",
            operations=(Operation("k8s", "PatchPod", view.region, {"name": pod, "labels": {key: value}}),),
            check=check,
            action=action,
            estimate=0.5,
            kind=self,
        )


# ----------------------------------------------------------------------------------------------
# DB master password rotation
# ----------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Rotation:
    """One rotation of the DB master password, shared by its steps (never journaled or printed).

    ``managed``: the ARN of the RDS-managed secret when RDS manages the password (it generates the
    new one); else ``new`` is the password the rotation sets."""

    db: str
    db_region: str
    secret_id: str
    new: SecretValue
    managed: str | None = None

    def password(self, clients: ClientProvider) -> SecretValue:
        """The password the database has (or is about to have) after this rotation."""
        if not self.managed:
            return self.new
        data = sm.get_secret(clients, self.db_region, self.managed).value.json()
        return SecretValue(str(data.get("password") or ""))

    def holds_new(self, clients: ClientProvider, region: str) -> bool:
        data = sm.get_secret(clients, region, self.secret_id).value.json()
        return bool(data.get("password")) and data.get("password") == self.password(clients).reveal()


class RdsMasterPassword(OpsKind):
    """Change the database's master password (``ModifyDBInstance``; RDS-managed: RDS rotates it),
    then wait until the instance is available with it."""

    name: ClassVar[str] = "rds-master-password"
    outputs: ClassVar[tuple[str, ...]] = (OUT_MANAGED_VERSION, OUT_RDS_MODIFIED)
    # the wait reads the instance's status
    reads: ClassVar[tuple[IamRead, ...]] = (IamRead("rds:DescribeDBInstances"),)
    conditional: ClassVar[dict[str, str]] = {}

    def build(self, rot: Rotation, *, timeout: float) -> Step:
        db, region, managed = rot.db, rot.db_region, rot.managed
        settled = Settled()

        def rotated(ctx: StepContext) -> bool:
            before = ctx.get(OUT_MANAGED_VERSION)
            return (
                before is not None
                and sm.get_secret(clients_of(ctx), region, managed or "").version_id != before
            )

        def wait(ctx: StepContext) -> bool:
            status = rds_api.Rds(clients_of(ctx), region).describe_instance(db).status
            return settled.observe(
                done=status == "available" and (not managed or rotated(ctx)),
                transitional=status in ("modifying", "resetting-master-credentials"),
                label=status,
            )

        step = Step(
            id="rds-master-password",
            title=(
                f"RDS rotates the managed master password of {db} ({region}); the old one stops working"
                if managed
                else f"Set the master password of {db} ({region}); the old one stops working"
            ),
            region=region,
            service="rds",
            changes=f"DB instance {db}: "
            + ("RotateMasterUserPassword (RDS-managed secret)" if managed else "MasterUserPassword")
            + " (ApplyImmediately)",
            operations=(
                Operation(
                    "rds",
                    "ModifyDBInstance",
                    region,
                    {"DBInstanceIdentifier": db, "ApplyImmediately": True}
                    | ({"RotateMasterUserPassword": True} if managed else {}),
                ),
                *(
                    (Operation("secretsmanager", "GetSecretValue", region, {"SecretId": managed}, False),)
                    if managed
                    else ()
                ),
            ),
            wait=wait,
            timeout=timeout,
            estimate=60.0,
            kind=self,
        )
        if managed:

            def check(ctx: StepContext) -> bool:
                return (
                    rotated(ctx)
                    and rds_api.Rds(clients_of(ctx), region).describe_instance(db).status == "available"
                )

            def action(ctx: StepContext) -> None:
                ctx.set(OUT_MANAGED_VERSION, sm.get_secret(clients_of(ctx), region, managed).version_id)
                rds_api.rotate_managed_password(clients_of(ctx), region, db)
                ctx.set(OUT_RDS_MODIFIED, True)

            step.check, step.action = check, action
        else:

            def set_password(ctx: StepContext) -> None:
                rds_api.modify_master_password(clients_of(ctx), region, db, rot.new.reveal())
                ctx.set(OUT_RDS_MODIFIED, True)

            step.action = set_password
        return step


class StorePassword(OpsKind):
    """Write the new password into the app's JSON secret in one region (other keys kept)."""

    name: ClassVar[str] = "store-password"
    reads: ClassVar[tuple[IamRead, ...]] = (IamRead("secretsmanager:GetSecretValue"),)
    conditional: ClassVar[dict[str, str]] = {}

    def build(self, rot: Rotation, view: SiteView) -> Step:
        region, secret_id = view.region, rot.secret_id

        def check(ctx: StepContext) -> bool:
            return rot.holds_new(clients_of(ctx), region)

        def action(ctx: StepContext) -> None:
            clients = clients_of(ctx)
            data = sm.get_secret(clients, region, secret_id).value.json()
            data["password"] = rot.password(clients).reveal()
            sm.put_secret(clients, region, secret_id, SecretValue(json.dumps(data)))

        return Step(
            id=f"secretsmanager-{view.site.name}",
            title=f"Store the new password in Secrets Manager {secret_id} ({region})",
            region=region,
            service="secretsmanager",
            changes=f"secret {secret_id}: new AWSCURRENT version (password replaced, other keys kept)",
            operations=(Operation("secretsmanager", "PutSecretValue", region, {"SecretId": secret_id}),),
            check=check,
            action=action,
            estimate=0.5,
            kind=self,
        )


class SecretReplicaWait(OpsKind):
    """Wait until a replica of a multi-region secret holds the new password (Secrets Manager
    writes it, from the secret's primary region ``source``)."""

    name: ClassVar[str] = "secret-replica-wait"
    reads: ClassVar[tuple[IamRead, ...]] = ()
    conditional: ClassVar[dict[str, str]] = {}

    def build(self, rot: Rotation, view: SiteView, *, source: str, timeout: float) -> Step:
        region, secret_id = view.region, rot.secret_id

        def wait(ctx: StepContext) -> bool:
            return rot.holds_new(clients_of(ctx), region)

        return Step(
            id=f"secretsmanager-replica-{view.site.name}",
            title=f"Wait until the replica of {secret_id} in {region} holds the new password",
            region=region,
            service="secretsmanager",
            changes=f"nothing (Secrets Manager replicates {secret_id} from {source})",
            operations=(
                Operation("secretsmanager", "GetSecretValue", region, {"SecretId": secret_id}, False),
            ),
            check=wait,
            wait=wait,
            timeout=timeout,
            estimate=5.0,
            kind=self,
        )


class K8sSecretPassword(OpsKind):
    """Put the new password into a cluster's DB Secret URL (the password part only)."""

    name: ClassVar[str] = "k8s-secret-password"
    outputs: ClassVar[tuple[str, ...]] = (OUT_SECRET_PATCHED,)
    reads: ClassVar[tuple[IamRead, ...]] = (
        IamRead("eks:DescribeCluster"),
        IamRead("secretsmanager:GetSecretValue"),
    )
    conditional: ClassVar[dict[str, str]] = {
        "eks:DescribeCluster": CONNECT,
        "secretsmanager:GetSecretValue": _RDS_MANAGED,
    }

    def build(self, rot: Rotation, view: SiteView, namespace: str, secret: str, key: str) -> Step:
        def check(ctx: StepContext) -> bool:
            url = kube_of(ctx, view).read_secret_key(namespace, secret, key)
            return unquote(urlsplit(url.reveal()).password or "") == rot.password(clients_of(ctx)).reveal()

        def action(ctx: StepContext) -> None:
            k = kube_of(ctx, view)
            url = k.read_secret_key(namespace, secret, key)
            k.patch_secret_key(namespace, secret, key, with_password(url, rot.password(clients_of(ctx))))
            ctx.set(f"{OUT_SECRET_PATCHED}{view.site.name}", True)

        return Step(
            id=f"k8s-secret-{view.site.name}",
            title=f"Patch Secret {secret} key {key} with the new URL ({view.cluster.name})",
            region=view.region,
            service="k8s",
            changes=f"secret {namespace}/{secret}: {key} (password part only)",
            operations=(Operation("k8s", "PatchSecret", view.region, {"name": secret, "key": key}),),
            check=check,
            action=action,
            estimate=0.5,
            kind=self,
        )
