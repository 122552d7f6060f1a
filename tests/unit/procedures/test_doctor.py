"""`dr doctor` in moto: the whole estate passes; a narrowed role, an opt-in region, a missing
resource, an RBAC refusal and drift each fail (or warn) on exactly their check, saying what to do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dr.aws.session import ClientProvider
from dr.drills import drill_iam
from dr.procedures.doctor import FAIL, PASS, WARN, DoctorReport, run_doctor
from dr.procedures.iam import PROCEDURES
from tests.unit.procedures.status_fixtures import Full, full

__all__ = ["full"]

ACCOUNT = "123456789012"
ROLE = "dr-operator"

drill_iam.install()  # as `dr doctor` does: the drill policy's needs, from the drills' registrations


def complete(full: Full) -> None:
    """What the `full` fixture lacks and the stacks deploy: ALBs, journal buckets, the lock table's
    primary-region copy."""
    from dr.runbook.lock import create_lock_table

    estate, clients = full.estate, full.clients
    for view in (estate.primary, estate.secondary):
        r = view.region
        ec2 = clients.client("ec2", r)
        vpc = ec2.create_vpc(CidrBlock=view.site.vpc_cidr)["Vpc"]["VpcId"]
        base = view.site.vpc_cidr.split(".")
        subnets = [
            ec2.create_subnet(
                VpcId=vpc, CidrBlock=f"{base[0]}.{base[1]}.{i}.0/24", AvailabilityZone=f"{r}{'ab'[i]}"
            )["Subnet"]["SubnetId"]
            for i in range(2)
        ]
        clients.client("elbv2", r).create_load_balancer(
            Name=view.edge.alb_name, Subnets=subnets, Type="application"
        )
        s3 = clients.client("s3", r)
        kwargs: dict[str, Any] = {"Bucket": estate.journal_bucket(r)}
        if r != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": r}
        s3.create_bucket(**kwargs)
    create_lock_table(clients, estate.lock_table, estate.primary.region)


def operator(
    full: Full, *, drop: dict[str, set[str]] | None = None, restore_deny: bool = False
) -> ClientProvider:
    """Credentials of a session of a role carrying every procedure's `dr iam-policy` policy (minus
    the ``drop`` actions per procedure; restore's Deny only with ``restore_deny``)."""
    from dr.sandbox.seed import create_operator_role

    role = create_operator_role(full.clients, full.estate, role=ROLE, drop=drop, denies=restore_deny)
    sts = full.clients.client("sts", "us-east-1")
    creds = sts.assume_role(RoleArn=role, RoleSessionName="alice")["Credentials"]
    return ClientProvider(
        credentials={
            "aws_access_key_id": creds["AccessKeyId"],
            "aws_secret_access_key": creds["SecretAccessKey"],
            "aws_session_token": creds["SessionToken"],
        }
    )


def doctor(full: Full, clients: ClientProvider) -> DoctorReport:
    return run_doctor(full.estate, clients, full.kube)


def by_name(report: DoctorReport) -> dict[tuple[str, str | None], Any]:
    return {(c.name, c.region): c for c in report.checks}


def not_passing(report: DoctorReport) -> list[dict[str, Any]]:
    return [c.to_dict() for c in report.checks if c.status != PASS]


def test_the_seeded_estate_passes_every_check(full: Full) -> None:
    complete(full)
    report = doctor(full, operator(full))
    assert report.exit_code == 0, not_passing(report)
    assert not_passing(report) == []
    assert report.identity is not None
    assert report.identity["arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE}/alice"
    assert "local evaluation" in str(report.iam_source)  # moto has no simulator
    areas = {c.area for c in report.checks}
    assert areas == {"identity", "region", "resource", "iam", "kubernetes", "state", "drift"}
    names = {name for name, _ in by_name(report)}
    for view in (full.estate.primary, full.estate.secondary):
        assert f"RDS instance {view.database.identifier}" in names
        assert f"ALB {view.edge.alb_name}" in names
        assert f"EKS nodegroup {view.cluster.name}/{view.cluster.nodegroup.name}" in names
    assert {f"iam {p}" for p in PROCEDURES} <= names
    # the secret is read to prove it exists; its value never reaches the report
    assert "s3cr3t" not in json.dumps(report.to_dict())


def test_a_narrowed_role_names_the_missing_actions_per_procedure(full: Full) -> None:
    complete(full)
    # Route53 record changes are granted by the failback policy as well: drop them from both
    r53 = "route53:ChangeResourceRecordSets"
    narrowed = operator(full, drop={"failover": {"rds:PromoteReadReplica", r53}, "failback": {r53}})
    report = doctor(full, narrowed)
    assert report.exit_code == 1
    failed = {c.name: c for c in report.failed}
    assert set(failed) == {"iam failover", "iam failback"}, not_passing(report)
    check = failed["iam failover"]
    assert "rds:PromoteReadReplica" in check.detail and "route53:ChangeResourceRecordSets" in check.detail
    assert "dr iam-policy --procedure failover" in str(check.fix)
    assert f"arn:aws:iam::{ACCOUNT}:role/{ROLE}" in str(check.fix)
    missing = {m["action"] for m in check.data["missing"]}
    assert missing == {"rds:PromoteReadReplica", "route53:ChangeResourceRecordSets"}
    assert failed["iam failback"].data["missing"][0]["action"] == r53
    assert "dr iam-policy --procedure failback" in str(failed["iam failback"].fix)
    # the other procedures' own policies still grant what they need
    assert by_name(report)[("iam reprotect", None)].status == PASS


def test_an_explicit_deny_is_named_as_such(full: Full) -> None:
    """All seven policies on one role: restore's Deny on the estate's databases wins over the
    rds:ModifyDBInstance that failback, reprotect and ops are granted."""
    complete(full)
    report = doctor(full, operator(full, restore_deny=True))
    failed = {c.name: c for c in report.failed}
    assert set(failed) == {"iam failback", "iam reprotect", "iam ops"}, not_passing(report)
    for check in failed.values():
        assert "explicitly denied: rds:ModifyDBInstance" in check.detail
        assert {m["decision"] for m in check.data["missing"]} == {"explicitDeny"}


def test_a_missing_resource_is_named_with_its_stack_file(full: Full) -> None:
    complete(full)
    s = full.estate.secondary
    full.clients.client("elbv2", s.region).delete_target_group(TargetGroupArn=full.ids[f"tg-{s.region}"])
    full.clients.client("s3", s.region).delete_bucket(Bucket=full.estate.journal_bucket(s.region))
    report = doctor(full, operator(full))
    assert report.exit_code == 1
    failed = {(c.name, c.region): c for c in report.failed}
    assert set(failed) == {
        (f"target group {s.edge.target_group_name}", s.region),
        (f"journal bucket {full.estate.journal_bucket(s.region)}", s.region),
    }, not_passing(report)
    tg = failed[(f"target group {s.edge.target_group_name}", s.region)]
    assert s.region in tg.detail and s.edge.target_group_name in tg.detail
    assert f"pulumi up --stack {s.stack}" in str(tg.fix)
    assert f"Pulumi.{s.stack}.yaml" in str(tg.fix) and "site.edge.targetGroupName" in str(tg.fix)


def test_rbac_refusals_name_the_verbs_and_procedures(full: Full) -> None:
    complete(full)
    full.api("secondary").rbac_denied = {
        ("patch", "apps", "deployments", "scale"),
        ("get", "", "secrets", ""),
    }
    report = doctor(full, operator(full))
    assert report.exit_code == 1
    (check,) = report.failed
    assert check.area == "kubernetes" and check.region == full.estate.secondary.region
    assert "patch apps/deployments/scale" in check.detail and "get secrets" in check.detail
    assert "failover" in check.detail and "status" in check.detail
    assert full.estate.app.namespace in str(check.fix)


def test_drift_from_the_stack_files_warns_without_failing(full: Full) -> None:
    complete(full)
    p, s = full.estate.primary, full.estate.secondary
    full.clients.client("rds", p.region).modify_db_instance(
        DBInstanceIdentifier=p.database.identifier, DBInstanceClass="db.r6g.2xlarge", ApplyImmediately=True
    )
    full.clients.client("eks", s.region).update_nodegroup_config(
        clusterName=s.cluster.name,
        nodegroupName=s.cluster.nodegroup.name,
        scalingConfig={"minSize": 1, "maxSize": 3, "desiredSize": 1},
    )
    report = doctor(full, operator(full))
    assert report.exit_code == 0
    warned = {(c.name, c.region): c for c in report.checks if c.status == WARN}
    assert set(warned) == {
        (f"{p.database.identifier} instance class", p.region),
        (f"{s.cluster.name}/{s.cluster.nodegroup.name} min/max", s.region),
    }, not_passing(report)
    assert "stack file says db.r6g.large, deployed is db.r6g.2xlarge" in warned[
        (f"{p.database.identifier} instance class", p.region)
    ].detail.replace(p.database.instance_class, "db.r6g.large")


def test_an_opt_in_region_not_enabled_fails_its_region_check(tmp_path: Path) -> None:
    """A new estate whose DR region is an opt-in region (me-south-1) nothing is deployed to yet."""
    from moto import mock_aws

    from dr.estate_template import render_pair, write_pair
    from dr.topology import load_estate

    write_pair(tmp_path, render_pair("shop", "eu-west-1", "me-south-1"))
    estate = load_estate(tmp_path, "shop-eu-west-1")
    with mock_aws():
        report = run_doctor(estate, ClientProvider(), None)
    assert report.exit_code == 1
    regions = {c.region: c for c in report.checks if c.area == "region"}
    assert regions["eu-west-1"].status == PASS
    assert regions["me-south-1"].status == FAIL
    assert "aws account enable-region --region-name me-south-1" in str(regions["me-south-1"].fix)
    missing = {c.name for c in report.failed if c.area == "resource" and c.region == "eu-west-1"}
    assert f"RDS instance {estate.primary.database.identifier}" in missing
    assert all(c.fix for c in report.failed)  # every failure says what to do


def refuse_sts(clients: ClientProvider, region: str, code: str, message: str, status: int) -> None:
    """STS in ``region`` answers ``code`` (as AWS does for expired tokens or a region not enabled)."""
    from botocore.awsrequest import AWSResponse

    body = (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
        f"<Message>{message}</Message></Error></ErrorResponse>"
    ).encode()

    def refuse(request: Any, **_: Any) -> Any:
        return AWSResponse(request.url, status, {}, _Raw(body))

    clients.client("sts", region).meta.events.register("before-send.sts.GetCallerIdentity", refuse)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body

    def read(self, *_: Any) -> bytes:
        return self.body


def test_no_region_accepting_the_credentials_is_a_setup_error(full: Full) -> None:
    from dr.errors import CredentialsError

    clients = ClientProvider()
    for region in full.estate.regions:
        refuse_sts(
            clients, region, "ExpiredToken", "The security token included in the request is expired", 400
        )
    with pytest.raises(CredentialsError) as err:
        run_doctor(full.estate, clients, full.kube)
    assert err.value.exit_code == 2
    assert "aws sso login" in str(err.value.hint)


def test_one_region_refusing_the_credentials_is_a_region_not_enabled(full: Full) -> None:
    complete(full)
    clients = operator(full)
    s = full.estate.secondary
    refuse_sts(
        clients,
        s.region,
        "InvalidClientTokenId",
        "The security token included in the request is invalid.",
        403,
    )
    report = doctor(full, clients)
    assert report.exit_code == 1
    identity = {c.region: c for c in report.checks if c.area == "identity"}
    assert identity[full.estate.primary.region].status == PASS
    assert identity[s.region].status == FAIL
    assert "not enabled" in identity[s.region].detail
    assert f"aws account enable-region --region-name {s.region}" in str(identity[s.region].fix)
    # the region that answers is still checked in full; the other one is not probed at all
    regional = {c.region for c in report.checks if c.area == "resource" and not c.name.startswith("Route53")}
    assert regional == {full.estate.primary.region}
    assert by_name(report)[("iam failover", None)].status == PASS


def test_the_real_simulator_is_used_when_the_endpoint_has_it() -> None:
    """Against real AWS: SimulatePrincipalPolicy's per-resource answers, all pages, and no local
    evaluation (botocore's Stubber stands in for IAM)."""
    from botocore.stub import Stubber

    from dr.aws.identity import Identity
    from dr.procedures.doctor import simulate_needs

    clients = ClientProvider(credentials={"aws_access_key_id": "a", "aws_secret_access_key": "b"})
    iam = clients.client("iam", "us-east-1")
    role = f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Ops_0123"
    db = f"arn:aws:rds:us-east-1:{ACCOUNT}:db:shop-replica"
    needs = {"failover": [("rds:PromoteReadReplica", db), ("rds:DescribeDBInstances", db)]}
    with Stubber(iam) as stub:
        stub.add_response("get_role", {"Role": {"Path": "/aws-reserved/sso.amazonaws.com/", "RoleName": "AWSReservedSSO_Ops_0123", "RoleId": "AROAEXAMPLE0123456789", "Arn": role, "CreateDate": "2026-01-01T00:00:00Z"}}, {"RoleName": "AWSReservedSSO_Ops_0123"})  # fmt: skip
        base = {"PolicySourceArn": role, "ResourceArns": [db], "MaxItems": 1000}
        actions = ["rds:DescribeDBInstances", "rds:PromoteReadReplica"]
        stub.add_response(
            "simulate_principal_policy",
            {
                "EvaluationResults": [
                    {"EvalActionName": "rds:describedbinstances", "EvalDecision": "allowed", "ResourceSpecificResults": [{"EvalResourceName": db, "EvalResourceDecision": "allowed"}]},
                ],
                "IsTruncated": True,
                "Marker": "page-2",
            },
            {**base, "ActionNames": actions},
        )  # fmt: skip
        stub.add_response(
            "simulate_principal_policy",
            {
                "EvaluationResults": [
                    {"EvalActionName": "rds:PromoteReadReplica", "EvalResourceName": db, "EvalDecision": "implicitDeny"},
                ],
                "IsTruncated": False,
            },
            {**base, "ActionNames": actions, "Marker": "page-2"},
        )  # fmt: skip
        ident = Identity(
            ACCOUNT, f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_Ops_0123/alice", "x", "us-east-1"
        )
        result = simulate_needs(clients, ident, needs)
        stub.assert_no_pending_responses()
    assert result.source == "iam:SimulatePrincipalPolicy"
    assert result.principal == role  # the SSO role's path, from GetRole
    assert result.decisions == {
        ("rds:DescribeDBInstances", db): "allowed",
        ("rds:PromoteReadReplica", db): "implicitDeny",
    }
