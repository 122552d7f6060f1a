"""`dr iam-policy`: failback, snapshot, restore, ops and drill run end to end in moto, every AWS
call recorded — each call is allowed by the generated policy on its real ARN, and every granted
action is used except a short documented list per procedure (paths a short run does not take).

The (action, ARN) of each recorded call is rebuilt here from the call's parameters and the
topology, independently of ``dr.procedures.iam``. Where IAM authorises a call on more than one
resource (CreateDBSnapshot: the instance and the new snapshot; CopyDBSnapshot: the source and the
target snapshot), every one must be allowed.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from dr.aws.iam_names import iam_action
from dr.aws.session import ApiCall, CallRecorder
from dr.drills import drill_iam
from dr.errors import BadInput, OperationFailed
from dr.procedures.iam import CONDITIONAL_PATHS, DEPENDENT, allows, policy
from dr.topology import Estate
from tests.unit.procedures.estate_seed import (
    Seeded,
    cli_calls,
    db_network,
    invoke,
    put_caught_up,
    seeded,
)
from tests.unit.procedures.test_failover import FAST, Env, env

__all__ = ["cli_calls", "env", "seeded"]

drill_iam.install()  # the drill policy's needs come from the drills' registrations

ACCOUNT = "123456789012"  # moto's


def _site_of(estate: Estate, region: str) -> Any:
    return estate.primary if estate.primary.region == region else estate.secondary


def call_arns(estate: Estate, call: ApiCall, kms: dict[str, str] | None = None) -> list[str]:
    """The resource ARNs IAM authorises ``call`` on (``*-no-resource-level``: only ``"*"`` matches)."""
    p, r, a, op = call.params, call.region, ACCOUNT, call.operation
    site = _site_of(estate, r)
    none = f"arn:aws:{call.service}:{r}:{a}:*-no-resource-level"
    if call.service == "rds":
        db = f"arn:aws:rds:{r}:{a}:db:"
        snap = f"arn:aws:rds:{r}:{a}:snapshot:"
        if "ResourceName" in p:
            return [str(p["ResourceName"])]
        if op == "DescribeDBSubnetGroups":
            return [f"arn:aws:rds:{r}:{a}:subgrp:{p.get('DBSubnetGroupName', '*')}"]
        if op in ("CreateDBSnapshot",):
            return [db + p["DBInstanceIdentifier"], snap + p["DBSnapshotIdentifier"]]
        if op == "CopyDBSnapshot":
            src = str(p["SourceDBSnapshotIdentifier"])
            return [snap + p["TargetDBSnapshotIdentifier"], src if src.startswith("arn:") else snap + src]
        if op in ("DeleteDBSnapshot",):
            return [snap + p["DBSnapshotIdentifier"]]
        if op == "DescribeDBSnapshots":
            if "DBSnapshotIdentifier" in p:
                return [snap + p["DBSnapshotIdentifier"]]
            if "DBInstanceIdentifier" in p:
                return [db + p["DBInstanceIdentifier"]]
            return [snap + "*"]
        if op == "RestoreDBInstanceToPointInTime":
            out = [db + p["TargetDBInstanceIdentifier"], db + p["SourceDBInstanceIdentifier"]]
        elif op == "RestoreDBInstanceFromDBSnapshot":
            out = [db + p["DBInstanceIdentifier"], snap + p["DBSnapshotIdentifier"]]
        elif op == "CreateDBInstanceReadReplica":
            src = str(p["SourceDBInstanceIdentifier"])
            out = [db + p["DBInstanceIdentifier"], src if src.startswith("arn:") else db + src]
        else:
            return [db + p.get("DBInstanceIdentifier", "*")]
        if "DBSubnetGroupName" in p:
            out.append(f"arn:aws:rds:{r}:{a}:subgrp:{p['DBSubnetGroupName']}")
        if "DBParameterGroupName" in p:
            out.append(f"arn:aws:rds:{r}:{a}:pg:{p['DBParameterGroupName']}")
        if "OptionGroupName" in p:
            out.append(f"arn:aws:rds:{r}:{a}:og:{p['OptionGroupName']}")
        return out
    if call.service == "kms":
        key = str(p.get("KeyId", ""))
        if key.startswith("arn:"):
            return [key]
        if kms and key == estate.kms_alias(site):
            return [kms[r]]
        return [f"arn:aws:kms:{r}:{a}:key/aws-managed-{key.replace('/', '-')}"]
    if call.service == "eks":
        if op == "DescribeCluster":
            return [f"arn:aws:eks:{r}:{a}:cluster/{site.cluster.name}"]
        return [f"arn:aws:eks:{r}:{a}:nodegroup/{p['clusterName']}/{p['nodegroupName']}/0ac1-uuid"]
    if call.service == "elasticache":
        rg = f"arn:aws:elasticache:{r}:{a}:replicationgroup:"
        snap = f"arn:aws:elasticache:{r}:{a}:snapshot:"
        if op == "DescribeSnapshots":
            if "SnapshotName" in p:
                return [snap + p["SnapshotName"]]
            if "ReplicationGroupId" in p:
                return [rg + p["ReplicationGroupId"]]
            return [snap + "*"]
        if op == "DescribeReplicationGroups":
            return [rg + p.get("ReplicationGroupId", "*")]
        if op == "CreateSnapshot":
            return [rg + p["ReplicationGroupId"], snap + p["SnapshotName"]]
        if op == "DeleteSnapshot":
            return [snap + p["SnapshotName"]]
        if op == "DescribeCacheClusters":
            return [f"arn:aws:elasticache:{r}:{a}:cluster:{p.get('CacheClusterId', '*')}"]
        if op == "CreateReplicationGroup":
            out = [rg + p["ReplicationGroupId"]]
            if "SnapshotName" in p:
                out.append(snap + p["SnapshotName"])
            return out
        return [rg + p["ReplicationGroupId"]]
    if call.service == "route53":
        if "HostedZoneId" in p:
            return [f"arn:aws:route53:::hostedzone/{str(p['HostedZoneId']).split('/')[-1]}"]
        if "HealthCheckId" in p:
            return [f"arn:aws:route53:::healthcheck/{p['HealthCheckId']}"]
        if op == "GetChange":
            return [f"arn:aws:route53:::change/{str(p['Id']).split('/')[-1]}"]
        if op == "ListTagsForResource":
            kind = "hostedzone" if p["ResourceType"] == "hostedzone" else "healthcheck"
            return [f"arn:aws:route53:::{kind}/{p['ResourceId']}"]
        return ["arn:aws:route53:::*-no-resource-level"]
    if call.service == "secretsmanager":
        return [f"arn:aws:secretsmanager:{r}:{a}:secret:{estate.app.db_secret.secrets_manager_id}-Ab12Cd"]
    if call.service == "wafv2":
        if op in ("GetIPSet", "UpdateIPSet"):
            return [f"arn:aws:wafv2:{r}:{a}:regional/ipset/{p['Name']}/{p['Id']}"]
        return [none]
    if call.service == "cloudwatch" and op == "DescribeAlarms":
        return [f"arn:aws:cloudwatch:{r}:{a}:alarm:*"]
    if call.service == "acm" and op == "DescribeCertificate":
        return [str(p["CertificateArn"])]
    if call.service == "dynamodb":
        return [f"arn:aws:dynamodb:{r}:{a}:table/{p['TableName']}"]
    if call.service == "s3":
        return [f"arn:aws:s3:::{p['Bucket']}/{p['Key']}"]
    return [none]  # cloudwatch, elbv2, acm ListCertificates: no resource-level permissions


# What AWS does with the estate's customer-managed data key on the caller's behalf (moto does not
# model it): the Secrets Manager secret and the journal bucket are encrypted with the site's key
# ``alias/<site>-data`` (dr/infra/database.py, tooling.py), so the caller needs these KMS actions
# on that key, in a request made through that service.
IMPLICIT_KMS = {
    "secretsmanager:GetSecretValue": ("secretsmanager", ("kms:Decrypt",)),
    "secretsmanager:PutSecretValue": ("secretsmanager", ("kms:GenerateDataKey",)),
    "s3:PutObject": ("s3", ("kms:GenerateDataKey",)),
}


def implicit_kms(estate: Estate, call: ApiCall, kms: dict[str, str]) -> list[tuple[str, str, dict[str, Any]]]:
    """(kms action, key ARN, request context) AWS authorises alongside ``call``."""
    via = IMPLICIT_KMS.get(iam_action(call.service, call.operation))
    if via is None or call.region not in kms:
        return []
    context = {
        "kms:ViaService": f"{via[0]}.{call.region}.amazonaws.com",
        "kms:ResourceAliases": [estate.kms_alias(_site_of(estate, call.region))],
    }
    return [(action, kms[call.region], context) for action in via[1]]


def verdict(
    estate: Estate, doc: dict[str, Any], calls: list[ApiCall], kms: dict[str, str] | None = None
) -> tuple[list[str], set[str]]:
    """(calls the policy does not allow, actions used — with the KMS actions AWS makes for them)."""
    uncovered = {
        f"{c.service}:{c.operation} {arn}"
        for c in calls
        if c.service != "sts"  # GetCallerIdentity needs no permission
        for arn in call_arns(estate, c, kms)
        if not allows(doc, iam_action(c.service, c.operation), arn)
    }
    implied = [k for c in calls for k in implicit_kms(estate, c, kms or {})]
    uncovered |= {
        f"{a} {key} (via {ctx['kms:ViaService']})" for a, key, ctx in implied if not allows(doc, a, key, ctx)
    }
    used = {iam_action(c.service, c.operation) for c in calls} | {a for a, _, _ in implied}
    return sorted(uncovered), used


def assert_exact(
    estate: Estate, proc: str, calls: list[ApiCall], *, kms: dict[str, str] | None = None, **kw: Any
) -> dict[str, Any]:
    doc = policy(estate, proc, account_id=ACCOUNT, **kw)
    uncovered, used = verdict(estate, doc, calls, kms)
    assert uncovered == []
    granted = {a for st in doc["Statement"] for a in st["Action"]}
    conditional = set(CONDITIONAL_PATHS[proc])
    # the documented exceptions are granted and were not used (else they are not conditional)
    assert conditional <= granted - used, (conditional - granted, conditional & used)
    # actions AWS authorises alongside a call that was made (tags on create, KMS grants)
    dependent = {d for action in used for d in DEPENDENT.get(action, ())}
    assert granted - used - conditional - dependent == set()
    return doc


# ---------------------------------------------------------------------------------------------
# snapshot
# ---------------------------------------------------------------------------------------------


def _ok(res: Any) -> dict[str, Any]:
    assert res.exit_code == 0, res.output
    out: dict[str, Any] = json.loads(res.stdout)
    return out


@pytest.mark.slow
def test_snapshot_policy_is_exact(seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path) -> None:
    est = seeded.estate
    for name in ("manual-snapshot-20260101-000000", "manual-snapshot-20260102-000000"):
        _ok(invoke(["snapshot", "create", "--name", name, "--yes"], tmp_path))
        _ok(invoke(["snapshot", "copy", "--snapshot", name, "--yes"], tmp_path))
        for where in ("primary", "secondary"):
            _ok(
                invoke(
                    ["snapshot", "create", "--kind", "redis", "--region", where, "--name", name, "--yes"],
                    tmp_path,
                )
            )
    _ok(invoke(["snapshot", "list"], tmp_path))
    out = _ok(invoke(["snapshot", "prune", "--keep-last", "1", "--yes"], tmp_path))
    deleted = [c.operation for c in cli_calls.mutating() if c.operation.startswith("Delete")]
    assert sorted(set(deleted)) == ["DeleteDBSnapshot", "DeleteSnapshot"], out
    assert_exact(est, "snapshot", cli_calls.since(0), kms=seeded.kms)


# ---------------------------------------------------------------------------------------------
# restore
# ---------------------------------------------------------------------------------------------


class _Conn:
    """A DB-API connection answering every query with ``row`` (moto's endpoints do not exist)."""

    def __init__(self, row: tuple[Any, ...] = (1,)) -> None:
        self.row = row

    def cursor(self) -> _Conn:
        return self

    def __enter__(self) -> _Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def execute(self, query: Any, *args: Any) -> _Conn:
        return self

    def fetchone(self) -> tuple[Any, ...]:
        return self.row

    def close(self) -> None:
        pass


def _fix_moto_cache_delete(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto keeps a deleted replication group "deleting" for ever; ElastiCache removes it."""
    from moto.elasticache.models import ElastiCacheBackend

    original = ElastiCacheBackend.delete_replication_group

    def delete(self: Any, replication_group_id: str, retain_primary_cluster: bool | None) -> Any:
        group = original(self, replication_group_id, retain_primary_cluster)
        del self.replication_groups[replication_group_id]
        return group

    monkeypatch.setattr(ElastiCacheBackend, "delete_replication_group", delete)


def test_restore_policy_is_exact(
    seeded: Seeded, cli_calls: CallRecorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.backends import get_backend

    est = seeded.estate
    db = get_backend("rds")[ACCOUNT][seeded.primary].databases[est.primary.database.identifier]
    db.created = db.instance_create_time = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    monkeypatch.setattr("dr.procedures.pg_session.default_connect", lambda **_kw: _Conn())
    _fix_moto_cache_delete(monkeypatch)
    seeded.rds(seeded.primary).create_db_snapshot(
        DBInstanceIdentifier=est.primary.database.identifier, DBSnapshotIdentifier="snap-1"
    )
    seeded.clients.client("elasticache", seeded.primary).create_snapshot(
        ReplicationGroupId=est.primary.cache.replication_group_id, SnapshotName="redis-snap-1"
    )
    runs = [
        ["pitr", "--minutes-ago", "30", "--target", "restored-pitr", "--verify", "--cleanup"],
        ["snapshot", "--snapshot", "snap-1", "--target", "restored-snap", "--cleanup"],
        [
            "snapshot",
            "--kind",
            "redis",
            "--snapshot",
            "redis-snap-1",
            "--target",
            "restored-redis",
            "--cleanup",
        ],
    ]
    for args in runs:
        out = _ok(invoke(["restore", *args, "--yes"], tmp_path))
        assert out["run"]["status"] == "succeeded", out
    doc = assert_exact(est, "restore", cli_calls.since(0), kms=seeded.kms)
    # restore targets are the operator's names (db:*), but the estate's own are never deleted
    for view in (est.primary, est.secondary):
        own_db = f"arn:aws:rds:{view.region}:{ACCOUNT}:db:{view.database.identifier}"
        group = (
            f"arn:aws:elasticache:{view.region}:{ACCOUNT}:replicationgroup:{view.cache.replication_group_id}"
        )
        assert allows(doc, "rds:DeleteDBInstance", f"arn:aws:rds:{view.region}:{ACCOUNT}:db:restored-x")
        assert not allows(doc, "rds:DeleteDBInstance", own_db)
        assert not allows(doc, "rds:ModifyDBInstance", own_db)
        assert not allows(doc, "elasticache:DeleteReplicationGroup", group)
    assert not any(a.startswith(("dynamodb:", "s3:")) for st in doc["Statement"] for a in st["Action"])


# ---------------------------------------------------------------------------------------------
# ops
# ---------------------------------------------------------------------------------------------


@dataclass
class OpsEnv:
    estate: Estate
    kubeconfig: str
    tmp: Path

    def invoke(self, *args: str, code: int = 0) -> dict[str, Any]:
        from click.testing import CliRunner

        from dr.cli.main import cli

        res = CliRunner().invoke(
            cli,
            ["-o", "json", "ops", "--kubeconfig", self.kubeconfig, *args],
            env={"DR_RUNS_DIR": str(self.tmp / "runs")},
        )
        if code:
            assert res.exit_code == code, res.output
            return dict(json.loads(res.stdout))
        return _ok(res)


@pytest.fixture
def ops_env(
    estate: Estate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_calls: CallRecorder
) -> Iterator[OpsEnv]:
    from tests.unit.kube.estate_fixtures import clusters, seed_eks, seed_light

    monkeypatch.setattr("dr.aws.eks.SETTLE_SECONDS", 0.0)
    with mock_aws():
        seed_light(estate)
        seed_eks(estate)
        with clusters(estate, tmp_path) as (_apis, kc):
            yield OpsEnv(estate, kc, tmp_path)


@pytest.mark.slow
def test_ops_policy_is_exact(ops_env: OpsEnv, cli_calls: CallRecorder) -> None:
    import boto3

    from tests.unit.cli.test_ops_cmd import _self_signed

    env = ops_env
    for region in env.estate.regions:  # the certificate of the public name (cert check, triage)
        pem, key = _self_signed(env.estate.app.record, (-300, 100))
        boto3.client("acm", region_name=region).import_certificate(Certificate=pem, PrivateKey=key)
    env.invoke("triage", code=1)  # FAIL (no ALB targets in moto): every read made, exit 1
    env.invoke("scale", "api", "--replicas", "8", "--yes")
    env.invoke("scale", "nodegroup", "--desired", "6", "--region", "secondary", "--yes")
    env.invoke("stop-writes", "--yes")
    env.invoke("resume-writes", "--yes")
    env.invoke("waf", "block", "203.0.113.7", "--yes")
    env.invoke("waf", "unblock", "203.0.113.7", "--yes")
    env.invoke("waf", "list")
    env.invoke("rotate-db-secret", "--yes")
    env.invoke("cert", "check")
    keys = {r: f"arn:aws:kms:{r}:{ACCOUNT}:key/data-key-id" for r in env.estate.regions}  # the site keys
    doc = assert_exact(env.estate, "ops", cli_calls.since(0), kms=keys)
    # scoped to the estate's nodegroups, IP sets and secret; the run lock only in its table
    view = env.estate.primary
    assert not allows(
        doc, "eks:UpdateNodegroupConfig", f"arn:aws:eks:{view.region}:{ACCOUNT}:nodegroup/other/ng/x"
    )
    assert not allows(
        doc, "wafv2:UpdateIPSet", f"arn:aws:wafv2:{view.region}:{ACCOUNT}:regional/ipset/other/x"
    )
    lock = f"arn:aws:dynamodb:{env.estate.secondary.region}:{ACCOUNT}:table/{env.estate.lock_table}"
    assert allows(doc, "dynamodb:PutItem", lock)
    assert not allows(doc, "dynamodb:PutItem", lock.replace(env.estate.lock_table, "other-table"))
    assert not allows(doc, "dynamodb:PutItem", lock.replace(env.estate.secondary.region, view.region))


# ---------------------------------------------------------------------------------------------
# failback
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_failback_policy_is_exact(env: Env) -> None:
    from dr.procedures.failback import failback_plan, preflight
    from dr.procedures.support import services
    from dr.runbook.lock import DynamoLock, create_lock_table
    from dr.runbook.runner import run_plan

    est = env.estate
    prod = est.primary
    for view in (est.primary, est.secondary):
        db_network(env.clients, est, view)  # where the new replica is placed
    assert env.run(env.plan("unplanned")).status == "succeeded"
    # the run machinery in the original region (the failback's target): lock table, journal bucket
    create_lock_table(env.clients, est.lock_table, prod.region)
    env.clients.client("s3", prod.region).create_bucket(
        Bucket=est.journal_bucket(prod.region),
        CreateBucketConfiguration={"LocationConstraint": prod.region},
    )
    recorder = env.clients.add_recorder(CallRecorder())
    pre = preflight(env.clients, est, to=None, max_lag=dt.timedelta(seconds=5))
    put_caught_up(env.clients, prod.region, pre.replica_id, env.now)
    lock = DynamoLock(env.clients, table=est.lock_table, region=prod.region, name="dr-test")
    result = run_plan(
        failback_plan(est, pre, timeout=20),
        services(env.clients, est, kube=env.kube, pg_connect=env.pg.connect),
        dry_run=False,
        assume_yes=True,
        resume=None,
        runs_dir=env.runs,
        lock=lock,
        break_lock=False,
        output="json",
        poll=FAST,
    )
    assert result.status == "succeeded", result.summary()
    calls = [
        c for c in recorder.since(0) if not (c.service == "cloudwatch" and c.operation == "PutMetricData")
    ]
    doc = assert_exact(est, "failback", calls, kms=env.s.kms, zone_id=env.s.zone_id)
    assert {"rds:CreateDBInstanceReadReplica", "rds:PromoteReadReplica", "dynamodb:PutItem"} <= {
        iam_action(c.service, c.operation) for c in calls
    }
    # the promoted DR database (now the source) is replicated from, never promoted or deleted
    dr_db = f"arn:aws:rds:{est.secondary.region}:{ACCOUNT}:db:{est.secondary.database.identifier}"
    assert allows(doc, "rds:CreateDBInstanceReadReplica", dr_db)
    assert not allows(doc, "rds:PromoteReadReplica", dr_db)
    assert not allows(doc, "rds:DeleteDBInstance", dr_db)


def test_reprotect_policy_is_exact(env: Env) -> None:
    """The estate stays on DR after a failover: reprotect rebuilds the original region's database
    (the old primary moved aside), locking in the lock table's DR copy."""
    from dr.procedures.reprotect import preflight, reprotect_plan
    from dr.procedures.support import services
    from dr.runbook.lock import estate_lock
    from dr.runbook.runner import run_plan

    est = env.estate
    prod, dr = est.primary, est.secondary
    for view in (prod, dr):
        db_network(env.clients, est, view)  # where the new replica is placed
    assert env.run(env.plan("unplanned")).status == "succeeded"
    s3 = env.clients.client("s3", dr.region)
    if est.journal_bucket(dr.region) not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        where = (
            {}
            if dr.region == "us-east-1"
            else {"CreateBucketConfiguration": {"LocationConstraint": dr.region}}
        )
        s3.create_bucket(Bucket=est.journal_bucket(dr.region), **where)
    put_caught_up(env.clients, prod.region, prod.database.identifier, env.now)
    recorder = env.clients.add_recorder(CallRecorder())
    pre = preflight(env.clients, est, region=None, max_lag=dt.timedelta(seconds=5))
    assert pre.target == prod and pre.aside_id is not None
    result = run_plan(
        reprotect_plan(est, pre, timeout=20),
        services(env.clients, est, kube=env.kube, pg_connect=env.pg.connect),
        dry_run=False,
        assume_yes=True,
        resume=None,
        runs_dir=env.runs,
        lock=estate_lock(env.clients, est),
        break_lock=False,
        output="json",
        poll=FAST,
    )
    assert result.status == "succeeded", result.summary()
    calls = list(recorder.since(0))
    doc = assert_exact(est, "reprotect", calls, kms=env.s.kms, zone_id=env.s.zone_id, target=prod)
    assert {"rds:ModifyDBInstance", "rds:CreateDBInstanceReadReplica", "dynamodb:PutItem"} <= {
        iam_action(c.service, c.operation) for c in calls
    }
    # the serving database is replicated from, never renamed, promoted or deleted
    dr_db = f"arn:aws:rds:{dr.region}:{ACCOUNT}:db:{dr.database.identifier}"
    assert allows(doc, "rds:CreateDBInstanceReadReplica", dr_db)
    for action in ("rds:ModifyDBInstance", "rds:PromoteReadReplica", "rds:DeleteDBInstance"):
        assert not allows(doc, action, dr_db), action


# ---------------------------------------------------------------------------------------------
# drill
# ---------------------------------------------------------------------------------------------


def _drill_context(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorder: CallRecorder) -> Any:
    """An ``aws`` drill context on the moto estate whose every AWS call ``recorder`` records."""
    from dr.drills.drill_context import DrillContext
    from dr.drills.evidence import DrillJournal

    def clients(read_only: bool) -> Any:
        from dr.aws.session import ClientProvider

        provider = ClientProvider(read_only=read_only)
        provider.add_recorder(recorder)
        return provider

    monkeypatch.setattr("psycopg.connect", lambda **_kw: _Conn((False, "off")))
    monkeypatch.setenv("KUBECONFIG", env.kubeconfig)  # read-only probes build their own clients
    return DrillContext(
        run_id="t",
        target="aws",
        estate=env.estate,
        journal=DrillJournal(tmp_path / "evidence" / "journal.json", {}),
        clients_factory=clients,
        services={"kube_factory": env.kube},
    )


def _impl(kind: str, name: str) -> Any:
    from dr.drills import registry

    prov = registry.get(kind, name)  # type: ignore[arg-type]
    assert prov is not None, name
    return prov.resolve("aws")


def test_drill_policy_is_exact(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dr.cli.drill_cmd import load_activities

    est = env.estate
    recorder = CallRecorder()
    ctx = _drill_context(env, tmp_path, monkeypatch, recorder)
    load_activities()
    _impl("action", "rds-reboot-failover")(ctx, site="primary")
    # moto has no ElastiCache TestFailover: the call is sent (and recorded), then moto raises
    with pytest.raises(NotImplementedError):
        _impl("action", "redis-primary-failure")(ctx, site="primary")
    assert _impl("probe", "replica-lag")(ctx, site="secondary") == 0.0
    assert _impl("probe", "dns-points-to")(ctx, site="primary") is True
    assert _impl("probe", "db-writable")(ctx, site="primary") is True
    assert _impl("probe", "pods-ready")(ctx, site="primary") is True
    # no readiness alarm is deployed in moto: the probe reads the alarms, finds none and refuses
    with pytest.raises(OperationFailed):
        _impl("probe", "readiness-alarms")(ctx)
    calls = recorder.since(0)
    assert {"rds:RebootDBInstance", "elasticache:TestFailover"} <= {
        iam_action(c.service, c.operation) for c in calls
    }
    doc = assert_exact(est, "drill", calls, kms=env.s.kms, zone_id=env.s.zone_id)
    # faults and probes only: no promote, no DNS change (scenarios running those need their policies)
    assert not any(
        a in ("rds:PromoteReadReplica", "route53:ChangeResourceRecordSets")
        for st in doc["Statement"]
        for a in st["Action"]
    )


# The drill providers that call AWS, each run alone in moto: (kind, name, arguments, what it raises).
_CALLING_AWS: list[tuple[str, str, dict[str, Any], type[BaseException] | None]] = [
    ("action", "rds-reboot-failover", {"site": "primary"}, None),
    # moto has no ElastiCache TestFailover: the call is sent (and recorded), then moto raises
    ("action", "redis-primary-failure", {"site": "primary"}, NotImplementedError),
    ("probe", "replica-lag", {"site": "secondary"}, None),
    ("probe", "dns-points-to", {"site": "primary"}, None),
    ("probe", "db-writable", {"site": "primary"}, None),
    # no readiness alarm is deployed in moto: the probe reads, finds none and refuses
    ("probe", "readiness-alarms", {}, OperationFailed),
    # moto replicates no automated backup: the action lists them, finds none and refuses
    (
        "action",
        "wait-replicated-backups",
        {"site": "secondary", "covers": "now", "timeout": 0.0},
        BadInput,
    ),
]
# Not run here. Kubernetes only (KUBE_CONNECT: the cluster's EKS endpoint when no kubeconfig
# context names it); runs a procedure (its policy, tested end to end above); no AWS call at all.
_KUBERNETES_ONLY = {
    "pods-ready",
    "deploy",
    "repoint-app",
    "rollback-deploy",
    "scale-deployment",
    "data-intact",
    "restored-to-point",
}
_RUNS_PROCEDURE = {
    "failover": "failover",
    "failback": "failback",
    "reprotect": "reprotect",
    "restore-pitr": "restore",
}
_NO_AWS_CALL = {"pause", "http-request", "http", "endpoint", "heartbeat-acked", "region-loss", "region-restore", "corrupt-data"}  # fmt: skip


def drill_disagreement(prov: Any, called: set[str], estate: Estate) -> tuple[set[str], set[str]]:
    """(IAM actions ``prov`` called but does not declare, actions it declares but did not call and
    that are not a documented conditional path of the drill policy). A provider that names a
    procedure's policy (``policy_of``) must stay inside what that policy grants."""
    if prov.policy_of is not None:
        doc = policy(estate, prov.policy_of, account_id=ACCOUNT)
        granted = {a for st in doc["Statement"] if st["Effect"] == "Allow" for a in st["Action"]}
        return called - granted, set()
    declared = {n.action for n in prov.iam}
    return called - declared, declared - called - set(CONDITIONAL_PATHS["drill"])


def _run_alone(
    ctx: Any, recorder: CallRecorder, kind: str, name: str, args: dict[str, Any], raises: Any
) -> set[str]:
    start = len(recorder.since(0))
    if raises is None:
        _impl(kind, name)(ctx, **args)
    else:
        with pytest.raises(raises):
            _impl(kind, name)(ctx, **args)
    return {iam_action(c.service, c.operation) for c in recorder.since(start)}


def test_drill_providers_call_what_they_declare(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each provider's AWS calls in moto ⊆ its declared IAM actions, and each declared action is
    called (or a documented conditional path); every registered provider is accounted for."""
    from dr.cli.drill_cmd import load_activities
    from dr.drills import drill_iam, registry
    from dr.drills.procedure_actions import KUBE_CONNECT

    load_activities()
    recorder = CallRecorder()
    ctx = _drill_context(env, tmp_path, monkeypatch, recorder)
    for kind, name, args, raises in _CALLING_AWS:
        called = _run_alone(ctx, recorder, kind, name, args, raises)
        prov = registry.get(kind, name)  # type: ignore[arg-type]
        assert called, name
        assert drill_disagreement(prov, called, env.estate) == (set(), set()), (name, called)
    run = {name for _, name, _, _ in _CALLING_AWS}
    for prov in registry.providers():
        if prov.name in _KUBERNETES_ONLY:
            assert prov.iam == (KUBE_CONNECT,) and prov.policy_of is None, prov
        elif prov.name in _RUNS_PROCEDURE:
            assert prov.policy_of == _RUNS_PROCEDURE[prov.name] and not prov.iam, prov
        elif prov.name in _NO_AWS_CALL:
            assert not prov.iam and prov.policy_of is None, prov
        else:
            assert prov.name in run, f"{prov.kind} {prov.name}: neither run here nor accounted for"
    # the drill policy is exactly what the providers declare
    assert {n.action for n in drill_iam.needs()} == {n.action for p in registry.providers() for n in p.iam}


def test_an_under_declared_drill_provider_is_caught(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control: a declaration missing an action the provider calls, or naming one it never calls."""
    from dataclasses import replace

    from dr.cli.drill_cmd import load_activities
    from dr.drills import registry
    from dr.procedures.iam import Need

    load_activities()
    recorder = CallRecorder()
    ctx = _drill_context(env, tmp_path, monkeypatch, recorder)
    called = _run_alone(ctx, recorder, "action", "rds-reboot-failover", {"site": "primary"}, None)
    prov = registry.get("action", "rds-reboot-failover")
    assert prov is not None
    under = replace(prov, iam=(Need("rds:DescribeDBInstances", "both"),))
    assert drill_disagreement(under, called, env.estate) == ({"rds:RebootDBInstance"}, set())
    over = replace(prov, iam=(*prov.iam, Need("rds:FailoverDBCluster", "both")))
    assert drill_disagreement(over, called, env.estate) == (set(), {"rds:FailoverDBCluster"})
    # a provider naming a procedure's policy must stay inside it: the drill's reboot is not in restore's
    in_restore = replace(prov, iam=(), policy_of="restore")
    assert drill_disagreement(in_restore, called, env.estate) == ({"rds:RebootDBInstance"}, set())
