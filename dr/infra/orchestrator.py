"""Orchestrator: the failover as an AWS Step Functions state machine in the DR region.

An operator's laptop is a single point of failure during a region outage; this component deploys
(in every stack, whatever its role: a role swap then creates and deletes nothing) the *unplanned*
failover to the stack's own region (``dr.procedures.stepfunctions``: the failover plan built from the
topology alone, compiled by ``dr.runbook.asl``) as a state machine in this stack's region:

* ``aws.sfn.StateMachine`` ``<app>-dr-failover`` — definition from ``compile_plan``; it takes the
  run lock (the estate's DynamoDB lock table, this region's replica), records a failure in this
  region's journal bucket, and calls only this region's APIs and Route53;
* ``aws.iam.Role`` + inline policy — least privilege: exactly the actions the definition's Tasks
  call, on ARNs built from the topology (``dr.procedures.iam.definition_policy``);
* ``aws.eks.AccessEntry`` + ``aws.eks.AccessPolicyAssociation`` — the role mapped in this stack's
  cluster with ``AmazonEKSEditPolicy`` scoped to the app namespace only: the ``eks:call`` states
  (scale, rolling restart, HPA floor, pod readiness, secret annotation) act on nothing else.

Start it with ``{"lockExpiresAt": <epoch seconds>}`` as input (``dr failover --via stepfunctions``
does). See docs/stepfunctions-iam-fleets.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from dr.infra._common import child, namespace_access, service_role, tags
from dr.topology import Estate, StackConfig

# EKS access policy of the Kubernetes ``edit`` role (deployments, scale, HPAs, secrets; no RBAC).
EKS_EDIT_POLICY = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy"


@dataclass
class OrchestratorArgs:
    cfg: StackConfig
    # The whole estate (both stack files): the plan needs the peer's site name and production sizes.
    estate: Estate
    zone_id: pulumi.Input[str]
    health_check_id: pulumi.Input[str]
    lock_table_arn: pulumi.Input[str]
    journal_bucket: pulumi.Input[str]
    # This stack's EKS cluster (the target of every ``eks:call`` state).
    cluster_name: pulumi.Input[str]
    # The site's data key: the journal bucket's SSE-KMS key (PutObject needs kms:GenerateDataKey).
    kms_key_arn: pulumi.Input[str] = ""


def state_machine_name(cfg: StackConfig) -> str:
    return f"{cfg.app.name}-dr-failover"


def build_definition(
    estate: Estate, stack: str, *, zone_id: str, health_check_id: str, journal_bucket: str
) -> dict[str, Any]:
    """The state machine definition (pure: also used by tests and ``dr failover --export asl``)."""
    from dr.procedures.failover import failover_plan
    from dr.procedures.stepfunctions import asl_options, static_preflight
    from dr.runbook.asl import compile_plan

    target = estate.site(stack)
    pre = static_preflight(estate, target, zone_id=zone_id, health_check_id=health_check_id)
    plan = failover_plan(estate, pre)
    return compile_plan(
        plan,
        asl_options(
            estate,
            target,
            journal_bucket=journal_bucket,
            lock_table=estate.lock_table,
            lock_name=f"{estate.app.name}-dr",
        ),
    )


class Orchestrator(pulumi.ComponentResource):
    """The failover state machine, its least-privilege role and the role's EKS access (every stack)."""

    def __init__(self, name: str, args: OrchestratorArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("dr:infra:Orchestrator", name, None, opts)
        cfg, estate = args.cfg, args.estate
        from dr.procedures.iam import definition_policy

        def definition(values: list[Any]) -> str:
            zone, check, bucket = (str(v) for v in values)
            return json.dumps(
                build_definition(
                    estate, cfg.stack, zone_id=zone, health_check_id=check, journal_bucket=bucket
                )
            )

        self.definition: pulumi.Output[str] = pulumi.Output.all(
            args.zone_id, args.health_check_id, args.journal_bucket
        ).apply(definition)

        def role_policy(values: list[Any]) -> str:
            text, table_arn, zone, key = (str(v) for v in values)
            account = table_arn.split(":")[4]
            return json.dumps(
                definition_policy(
                    json.loads(text),
                    estate,
                    account_id=account,
                    region=cfg.region,
                    zone_id=zone,
                    kms_key_arn=key or None,
                )
            )

        self.role = service_role(
            "failover",
            self,
            cfg,
            role_name=f"{cfg.app.name}-dr-failover-{cfg.region}",
            service="states.amazonaws.com",
            description="Step Functions failover of the estate (least privilege, dr iam-policy)",
        )
        self.policy = aws.iam.RolePolicy(
            "failover",
            role=self.role.id,
            policy=pulumi.Output.all(
                self.definition, args.lock_table_arn, args.zone_id, args.kms_key_arn
            ).apply(role_policy),
            opts=child(self),
        )
        # eks:call authenticates as the machine's role: without an access entry the API server
        # refuses every Kubernetes state. Edit rights, on the app namespace only (not cluster-wide).
        self.access_entry, self.access_policy = namespace_access(
            "failover",
            self,
            cfg,
            cluster_name=args.cluster_name,
            principal_arn=self.role.arn,
            policy_arn=EKS_EDIT_POLICY,
        )
        self.state_machine = aws.sfn.StateMachine(
            "failover",
            name=state_machine_name(cfg),
            role_arn=self.role.arn,
            definition=self.definition,
            type="STANDARD",
            tags=tags(cfg),
            # Deployed only once it can act: IAM for the AWS calls, the access entry for eks:call.
            opts=child(self, depends_on=[self.policy, self.access_policy]),
        )
        self.register_outputs(
            {
                "stateMachineArn": self.state_machine.arn,
                "roleArn": self.role.arn,
                "accessEntryArn": self.access_entry.access_entry_arn,
                "definition": self.definition,
            }
        )


def load_estate_for(cfg: StackConfig, stack_dir: str | None = None) -> Estate | None:
    """Both stack files, when ``stack_dir`` holds the very config Pulumi runs this stack with.

    The program only receives its own stack's config; the plan also needs the peer's (site name,
    production sizes), read from the stack config directory (default: ``stackConfigDir`` of the
    project's Pulumi.yaml, relative to the project directory, where ``pulumi up`` runs the
    program). None when absent or different.
    """
    from pathlib import Path

    from dr.topology import load_estate, read_stack, stack_config_dir

    if stack_dir is None:
        stack_dir = str(stack_config_dir())
    try:
        on_disk = read_stack(Path(stack_dir), cfg.stack)
        if on_disk.model_dump(exclude={"path"}) != cfg.model_dump(exclude={"path"}):
            return None
        return load_estate(Path(stack_dir), cfg.stack)
    except Exception:
        return None


def estate_from_config(cfg: StackConfig) -> Estate:
    """An estate from this stack's config alone (the peer's file is not at hand).

    The peer is a stand-in: its site name is unknown (the Route53 swap picks "the other record" at
    run time, so it is not needed) and production sizes are this site's own nodegroup sizes.
    """
    from dr.topology import SiteView

    own = SiteView(stack=cfg.stack, region=cfg.region, role=cfg.role, site=cfg.site)
    peer_site = cfg.site.model_copy(update={"name": f"{cfg.app.name}-{cfg.peer_stack}"})
    peer = SiteView(
        stack=cfg.peer_stack,
        # Unknown here; an unplanned failover never calls the source region (descriptions only).
        region="unknown-peer-region",
        role="primary" if cfg.role == "standby" else "standby",
        site=peer_site,
    )
    primary, secondary = (peer, own) if cfg.role == "standby" else (own, peer)
    from dr.topology import stack_config_dir

    return Estate(app=cfg.app, primary=primary, secondary=secondary, stack_dir=str(stack_config_dir()))


def deploy_for(estate_component: Any, cfg: StackConfig) -> Orchestrator:
    """Add the orchestrator (failover *to this stack's region*) to the stack's Estate component.

    Every stack declares it, whatever its role, so a role swap (``dr reconcile``) creates and
    deletes nothing; while a stack is primary its machine is the way back (failback target).
    """
    estate = load_estate_for(cfg)
    if estate is None:
        pulumi.log.warn(
            f"orchestrator: {cfg.path} and its peer's file were not found in the stack config "
            "directory (Pulumi.yaml stackConfigDir), or differ from the config in use: the failover "
            "plan is built from this stack's config alone (nodegroup scaled to this site's own sizes)"
        )
        estate = estate_from_config(cfg)
    orch = Orchestrator(
        "orchestrator",
        OrchestratorArgs(
            cfg=cfg,
            estate=estate,
            zone_id=estate_component.zone_id,
            health_check_id=estate_component.dns.health_check.id,
            lock_table_arn=estate_component.tooling.lock_table_arn,
            journal_bucket=estate_component.tooling.bucket.bucket,
            cluster_name=estate_component.cluster.cluster.name,
            kms_key_arn=estate_component.database.key.arn,
        ),
        pulumi.ResourceOptions(parent=estate_component),
    )
    pulumi.export("failoverStateMachineArn", orch.state_machine.arn)
    return orch
