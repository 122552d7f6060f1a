"""`dr failback`: re-protect first, then a planned failover back, then the DR side to warm standby."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import Any

import pytest

from dr.aws.session import CallRecorder, ClientProvider
from dr.errors import GateRefused
from dr.kube import KubeFactory
from dr.procedures.failback import FailbackPreflight, NotFailedOver, failback_plan, preflight
from dr.procedures.support import TAG_SUPERSEDED_BY, services
from dr.runbook.journal import Journal
from dr.runbook.runner import run_plan
from tests.unit.procedures.estate_seed import db_network, other_app_snapshot, put_caught_up
from tests.unit.procedures.test_failover import FAST, Crash, Env, _crash_at, env, journal_events

__all__ = ["env"]


@pytest.fixture(autouse=True)
def network(env: Env) -> dict[str, dict[str, Any]]:
    """Each site's VPC, database security group and DB subnet group, named as Pulumi names them."""
    return {
        v.region: db_network(env.clients, env.estate, v) for v in (env.estate.primary, env.estate.secondary)
    }


def _failed_over(env: Env) -> None:
    result = env.run(env.plan("unplanned"))
    assert result.status == "succeeded", result.summary()


def _pre(env: Env, clients: ClientProvider | None = None, **kw: Any) -> FailbackPreflight:
    return preflight(
        clients or env.clients, env.estate, to=kw.pop("to", None), max_lag=dt.timedelta(seconds=5), **kw
    )


def _run(env: Env, pre: FailbackPreflight, **kw: Any) -> Any:
    return run_plan(
        kw.pop("plan", None) or failback_plan(env.estate, pre, timeout=20),
        services(
            kw.pop("clients", None) or env.clients, env.estate, kube=env.kube, pg_connect=env.pg.connect
        ),
        dry_run=kw.pop("dry_run", False),
        assume_yes=True,
        resume=kw.pop("resume", None),
        runs_dir=env.runs,
        lock=None,
        break_lock=False,
        output="json",
        poll=FAST,
        **kw,
    )


def test_failback_refuses_when_nothing_failed_over(env: Env) -> None:
    """Route53 serves the stack files' primary and its database is the writer: a failback (to the
    primary by default — never "the region Route53 does not serve") is refused, exit 3, read-only."""
    estate = env.estate
    recorder = env.clients.add_recorder(CallRecorder())
    for to in (None, estate.primary, estate.secondary):  # --to secondary would be a failover
        with pytest.raises(NotFailedOver) as err:
            _pre(env, to=to)
        assert err.value.exit_code == 3 and err.value.region == estate.primary.region
        msg = err.value.message
        assert estate.app.name in msg and "not failed over" in msg
        assert f"Route53 serves {estate.primary.region}, the stack files' primary region" in msg
        assert "dr failover --to secondary" in (err.value.hint or "")
    assert recorder.calls and recorder.mutating() == []


def test_failback_refuses_a_target_that_does_not_answer(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failback stops writes in the serving region first: a target whose health checkers get no
    answer at all is refused before anything changes (a 503 is an answer, and passes)."""
    from dr.aws.route53 import HealthStatus, Route53

    _failed_over(env)
    reports: list[str] = []
    monkeypatch.setattr(Route53, "health_status", lambda self, hid: HealthStatus(hid, 3, 0, tuple(reports)))
    reports[:] = ["Failure: HTTP Status Code 503, Service Unavailable. Resolved IP: 10.0.0.1"] * 3
    assert _pre(env).target.region == env.estate.primary.region
    reports[:] = ["Failure: Connection refused. Resolved IP: 10.0.0.1"] * 3
    recorder = env.clients.add_recorder(CallRecorder())
    with pytest.raises(GateRefused, match="does not answer") as err:
        _pre(env)
    assert err.value.region == env.estate.primary.region
    assert recorder.calls and recorder.mutating() == []
    # a resumed failback (its replica named by the journal) already passed the gate
    assert _pre(env, replica_id=env.estate.primary.database.identifier).target == env.estate.primary


@pytest.mark.slow
def test_failback_reprotects_then_fails_back_then_warm_standby(
    env: Env, network: dict[str, dict[str, Any]]
) -> None:
    estate, prod, dr = env.estate, env.estate.primary, env.estate.secondary
    _failed_over(env)
    pre = _pre(env)
    assert (pre.source.region, pre.target.region) == (dr.region, prod.region)
    # The old primary still holds the original identifier: it is renamed out of the way (kept,
    # said so), and the new replica takes the original identifier.
    assert not pre.renamed and pre.replica_id == prod.database.identifier
    assert pre.aside_id is not None and pre.aside_id.startswith(f"{prod.database.identifier}-old-")
    assert any(pre.aside_id in w and "kept" in w for w in pre.warnings)
    put_caught_up(env.clients, prod.region, pre.replica_id, env.now)

    plan = failback_plan(estate, pre, timeout=20)
    # Re-protect first: writes stop only once the new replica exists and is in sync.
    for stop in (s for s in plan.ids if s.startswith("stop-")):
        assert {"create-replica", "replica-in-sync", "redis-reseed"} <= plan.ancestors(stop)
    assert {"promote-db", "pods-ready", "target-healthy"} <= plan.ancestors("route-traffic")
    assert "verify-service" in plan.ancestors("standby-nodegroup")

    assert plan.ancestors("create-replica") == {"move-aside"}
    recorder = env.clients.add_recorder(CallRecorder())
    result = _run(env, pre, plan=plan)
    assert result.status == "succeeded", result.summary()

    (rename,) = [c for c in recorder.mutating() if c.operation == "ModifyDBInstance"]
    assert rename.params["NewDBInstanceIdentifier"] == pre.aside_id and rename.region == prod.region
    kept = env.s.db(prod.region, pre.aside_id)
    assert kept["DBInstanceStatus"] == "available" and not kept.get("ReadReplicaSourceDBInstanceIdentifier")
    (create,) = [c for c in recorder.mutating() if c.operation == "CreateDBInstanceReadReplica"]
    assert create.region == prod.region
    assert create.params["SourceDBInstanceIdentifier"].endswith(f":db:{dr.database.identifier}")
    assert create.params["KmsKeyId"] == env.s.kms[prod.region]  # the key of THAT region
    new = env.s.db(prod.region, pre.replica_id)
    assert new["DBInstanceStatus"] == "available" and not new.get("ReadReplicaSourceDBInstanceIdentifier")
    counts = Counter(c.operation for c in recorder.mutating())
    assert counts["PromoteReadReplica"] == 1 and counts["CreateDBInstanceReadReplica"] == 1
    # The subnet group is asked for by name (least privilege); the replica goes into it, with the
    # site's database security group (never RDS's default VPC / default security group).
    (ask,) = [c for c in recorder.calls if c.operation == "DescribeDBSubnetGroups"]
    assert ask.params == {"DBSubnetGroupName": estate.db_subnet_group(prod)}
    assert create.params["DBSubnetGroupName"] == network[prod.region]["subnet_group"]
    assert create.params["VpcSecurityGroupIds"] == [network[prod.region]["sg"]]

    # Traffic is back in the original region, DR is warm standby again.
    r53 = env.clients.client("route53", "us-east-1")
    roles = {
        r["SetIdentifier"]: r["Failover"]
        for r in r53.list_resource_record_sets(HostedZoneId=env.s.zone_id)["ResourceRecordSets"]
        if "Failover" in r
    }
    assert roles == {prod.site.name: "PRIMARY", dr.site.name: "SECONDARY"}
    ns = estate.app.namespace
    for dep in estate.app.deployments:
        assert env.api("primary").ready_pods(ns, dep.name) == dep.replicas
        assert env.api("secondary").ready_pods(ns, dep.name) == dr.site.standby_replicas.get(
            dep.name, dep.replicas
        )
    ng = env.clients.client("eks", dr.region).describe_nodegroup(
        clusterName=dr.cluster.name, nodegroupName=dr.cluster.nodegroup.name
    )["nodegroup"]["scalingConfig"]
    want = dr.cluster.nodegroup
    assert ng == {"minSize": want.min_size, "maxSize": want.max_size, "desiredSize": want.desired_size}
    url = env.api("primary").secret_value(ns, estate.app.db_secret.name, estate.app.db_secret.key)
    assert new["Endpoint"]["Address"] in url
    # The DR instance left behind is marked stale (a later failover refuses it until dr reprotect).
    stale = env.s.db(dr.region, dr.database.identifier)["DBInstanceArn"]
    tags = env.clients.client("rds", dr.region).list_tags_for_resource(ResourceName=stale)["TagList"]
    assert {"Key": TAG_SUPERSEDED_BY, "Value": result.run_id} in tags

    events = journal_events(env, result.run_id)
    seq = {(e["kind"], e.get("step")): e["seq"] for e in events}
    first_stop = min(v for (k, s), v in seq.items() if k == "step_started" and s and s.startswith("stop-"))
    assert seq[("step_done", "replica-in-sync")] < first_stop
    assert seq[("step_done", "promote-db")] < seq[("step_started", "route-traffic")]


@pytest.mark.slow
def test_failback_restarts_the_targets_stale_pods_before_writes_stop(env: Env) -> None:
    """The original region's pods predate the replica the failback creates (they may hold
    connections to the instance moved aside): restarted and Ready before the write pause starts,
    so the failover part's restart-* steps — inside the pause — find them current."""
    import base64

    from dr.steps.workload_steps import desired_database_url

    estate, prod = env.estate, env.estate.primary
    app, secret = estate.app, estate.app.db_secret
    _failed_over(env)
    pre = _pre(env)
    assert pre.replica_id == prod.database.identifier  # same identifier: same endpoint, same secret
    url = desired_database_url(env.clients, estate, prod, pre.replica_id, None)
    env.api("primary").patch(
        "secrets",
        app.namespace,
        secret.name,
        {"data": {secret.key: base64.b64encode(url.reveal().encode()).decode()}},
        "application/merge-patch+json",
    )
    env.api("primary").backdate_pods(app.namespace, 60)  # they have run for a while
    put_caught_up(env.clients, prod.region, pre.replica_id, env.now)
    plan = failback_plan(estate, pre, timeout=20)
    early = [f"early-restart-{d.name}" for d in app.deployments]
    for stop in (s for s in plan.ids if s.startswith("stop-")):
        assert {"replica-in-sync", *early, "early-pods-ready"} <= plan.ancestors(stop)

    result = _run(env, pre, plan=plan)
    assert result.status == "succeeded", result.summary()
    assert {result.step(s).status for s in early} == {"done"}
    assert {result.step(f"restart-{d.name}").status for d in app.deployments} == {"skipped"}
    events = journal_events(env, result.run_id)
    seq = {(e["kind"], e.get("step")): e["seq"] for e in events}
    first_stop = min(v for (k, s), v in seq.items() if k == "step_started" and s and s.startswith("stop-"))
    assert seq[("step_done", "early-pods-ready")] < first_stop
    reasons = [e["value"] for e in events if e["kind"] == "output_set" and e["key"].startswith("restarted:")]
    assert len(reasons) == len(app.deployments) and all("predates" in r for r in reasons)


@pytest.mark.slow
def test_failback_dry_run_and_resume_after_crash(env: Env) -> None:
    _failed_over(env)
    prod = env.estate.primary

    ro = ClientProvider(read_only=True)
    ro_rec = ro.add_recorder(CallRecorder())
    dry_kube = KubeFactory(kubeconfig=env.kubeconfig, clients=ro, read_only=True)
    pre = _pre(env, ro)
    dry = run_plan(
        failback_plan(env.estate, pre),
        services(ro, env.estate, kube=dry_kube),
        dry_run=True,
        assume_yes=True,
        resume=None,
        runs_dir=env.runs,
        lock=None,
        break_lock=False,
        output="json",
    )
    assert dry.status == "dry-run" and ro_rec.mutating() == []
    assert all(not k.writes for k in dry_kube._cache.values())

    pre = _pre(env)
    put_caught_up(env.clients, prod.region, pre.replica_id, env.now)
    recorder = env.clients.add_recorder(CallRecorder())
    before = {p.name for p in env.runs.iterdir()}
    plan = _crash_at(failback_plan(env.estate, pre, timeout=20), {"route-traffic"}, "after_action")
    with pytest.raises(Crash):
        _run(env, pre, plan=plan, max_workers=1)
    (run_id,) = [p.name for p in env.runs.iterdir() if p.name not in before]
    outputs = Journal.load(env.runs, run_id).outputs
    # DNS already points back: the resumed run must take the direction from its journal.
    # ... and the old primary it renamed (so the resumed plan still has its move-aside step).
    assert outputs["failback_aside"] == pre.aside_id
    resumed = _pre(
        env,
        to=env.estate.site(outputs["failback_target"]),
        replica_id=outputs["failback_replica"],
        moved_aside=outputs["failback_aside"],
    )
    assert resumed.replica_id == pre.replica_id and resumed.target.region == prod.region
    assert resumed.aside_id == pre.aside_id
    result = _run(env, resumed, resume=run_id)
    assert result.status == "succeeded", result.summary()
    assert result.step("route-traffic").status == "skipped"
    calls = [
        f"{c.operation}:{json.dumps(c.params, sort_keys=True, default=str)}"
        for c in recorder.mutating()
        if c.operation != "AddTagsToResource"
    ]
    assert {k: n for k, n in Counter(calls).items() if n > 1} == {}


@pytest.mark.slow
def test_failback_reseeds_the_original_regions_redis_from_the_estate_snapshot(env: Env) -> None:
    """The original region lost its Redis group while the estate ran in DR: failback re-seeds it
    from the newest snapshot of the estate's groups there (ElastiCache cannot copy one across
    regions), not from another application's newer snapshot, encrypted as the stack declares, and
    before writes stop in DR; the journal says what was restored."""
    from tests.unit.procedures.test_failover import _drop_group

    prod = env.estate.primary
    ec = env.clients.client("elasticache", prod.region)
    ec.create_snapshot(ReplicationGroupId=prod.cache.replication_group_id, SnapshotName="prod-final")
    other_app_snapshot(env.clients, prod.region, "another-app-newer", "another-app")
    _failed_over(env)
    ec.delete_replication_group(ReplicationGroupId=prod.cache.replication_group_id)
    _drop_group(prod.region, prod.cache.replication_group_id)

    pre = _pre(env)
    assert (pre.redis.action, pre.redis.snapshot) == ("restore", "prod-final")
    assert any("prod-final" in w and "across regions" in w for w in pre.warnings)
    put_caught_up(env.clients, prod.region, pre.replica_id, env.now)
    plan = failback_plan(env.estate, pre, timeout=20)
    for stop in (s for s in plan.ids if s.startswith("stop-")):
        assert "redis-reseed" in plan.ancestors(stop)
    result = _run(env, pre, plan=plan)
    assert result.status == "succeeded", result.summary()
    group = ec.describe_replication_groups(ReplicationGroupId=prod.cache.replication_group_id)[
        "ReplicationGroups"
    ][0]
    assert group["TransitEncryptionEnabled"] and group["AtRestEncryptionEnabled"]
    assert group["KmsKeyId"] == env.s.kms[prod.region]
    done = Journal.load(env.runs, result.run_id).outputs["redis_restore"]
    assert done["restore"] == "prod-final" and done["snapshot_of"] == prod.cache.replication_group_id


def test_a_second_failback_moves_aside_beside_the_first_ones_leftover(env: Env) -> None:
    """The old primary's first aside name is held (an earlier cycle's instance): the failback
    renames it to the next free name and the new replica keeps the original identifier (no
    `-failback` replica, no stack-file edit)."""
    from dr.aws.rds import Rds
    from dr.procedures.failback import aside_identifier

    prod = env.estate.primary
    _failed_over(env)
    rds = Rds(env.clients, prod.region)
    leftover = aside_identifier(rds.describe_instance(prod.database.identifier))
    occupy(env, prod.region, leftover)
    pre = _pre(env)
    assert not pre.renamed and pre.replica_id == prod.database.identifier
    assert pre.aside_id is not None and pre.aside_id != leftover
    assert rds.find_instance(pre.aside_id) is None  # checked free before the plan renames to it


def occupy(env: Env, region: str, identifier: str) -> None:
    """A standalone instance under ``identifier`` (what an earlier cycle moved aside there)."""
    from tests.unit.drills.test_builtin_actions_aws import _create_db

    _create_db(env.clients, region, identifier, multi_az=False)
