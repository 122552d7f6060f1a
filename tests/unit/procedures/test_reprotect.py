"""`dr reprotect`: the standby region's database becomes a read replica of the serving one again."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import pytest

from dr.aws.session import CallRecorder, ClientProvider
from dr.errors import BadInput, GateRefused
from dr.procedures.failback import aside_identifier
from dr.procedures.failover_gates import preflight as failover_preflight
from dr.procedures.reprotect import ReprotectPreflight, preflight, reprotect_plan
from dr.procedures.support import TAG_SUPERSEDED_BY
from dr.runbook.executor import RunResult
from dr.steps.workload_steps import RESTARTED_FOR, promotion_marker
from tests.unit.procedures.estate_seed import create_restored, db_network, other_app_snapshot, put_caught_up
from tests.unit.procedures.test_failover import Crash, Env, _crash_at, env

__all__ = ["env"]


@pytest.fixture(autouse=True)
def network(env: Env) -> dict[str, dict[str, Any]]:
    """Each site's VPC, database security group and DB subnet group, named as Pulumi names them."""
    return {
        v.region: db_network(env.clients, env.estate, v) for v in (env.estate.primary, env.estate.secondary)
    }


def _pre(env: Env, clients: ClientProvider | None = None, **kw: Any) -> ReprotectPreflight:
    return preflight(
        clients or env.clients,
        env.estate,
        region=kw.pop("region", None),
        max_lag=dt.timedelta(seconds=5),
        **kw,
    )


def _run(env: Env, pre: ReprotectPreflight, **kw: Any) -> RunResult:
    return env.run(kw.pop("plan", None) or reprotect_plan(env.estate, pre, timeout=20), **kw)


def _failed_over(env: Env) -> None:
    result = env.run(env.plan("unplanned"))
    assert result.status == "succeeded", result.summary()


def test_a_protected_estate_has_nothing_to_do(env: Env) -> None:
    pre = _pre(env)
    assert (pre.source.region, pre.target.region) == (env.estate.primary.region, env.estate.secondary.region)
    assert pre.protected and pre.aside_id is None and pre.warnings == []
    # checked, nothing to wait for; the standby's pods are newer than its replica: nothing to restart
    assert reprotect_plan(env.estate, pre).ids == [
        "create-replica",
        *_restarts(env),
        "standby-pods-ready",
        "redis-standby",
    ]
    assert pre.redis is not None and pre.redis.action == "none"
    recorder = env.clients.add_recorder(CallRecorder())
    result = _run(env, pre)
    assert result.status == "succeeded", result.summary()
    assert recorder.mutating() == [] and env.kube_writes() == []
    assert {result.step(r).status for r in _restarts(env)} == {"skipped"}


def _restarts(env: Env) -> list[str]:
    return [f"restart-{d.name}" for d in env.estate.app.deployments]


def test_the_serving_region_is_never_rebuilt(env: Env) -> None:
    recorder = env.clients.add_recorder(CallRecorder())
    with pytest.raises(BadInput, match="serves") as err:
        _pre(env, region=env.estate.primary.region)
    assert err.value.region == env.estate.primary.region and env.estate.secondary.region in (
        err.value.hint or ""
    )
    assert recorder.calls and recorder.mutating() == []


@pytest.mark.slow
def test_after_a_failover_the_old_primary_is_moved_aside_and_replaced_by_a_replica(
    env: Env, network: dict[str, dict[str, Any]]
) -> None:
    """The estate stays on DR: the old primary (diverged, standalone) is renamed and kept, a new
    replica of the DR database takes its identifier — and a failover back is possible again."""
    estate, prod, dr = env.estate, env.estate.primary, env.estate.secondary
    _failed_over(env)
    old = env.s.db(prod.region, prod.database.identifier)
    assert not old.get("ReadReplicaSourceDBInstanceIdentifier")
    with pytest.raises(GateRefused, match="read replica"):
        failover_preflight(
            env.clients, estate, target=prod, mode="unplanned", max_lag=dt.timedelta(seconds=5)
        )

    pre = _pre(env)
    assert (pre.source.region, pre.target.region) == (dr.region, prod.region)
    assert pre.aside_id is not None and pre.aside_id.startswith(f"{prod.database.identifier}-old-")
    assert not pre.protected and any(pre.aside_id in w and "kept" in w for w in pre.warnings)
    plan = reprotect_plan(estate, pre, timeout=20)
    assert plan.ids == [
        "move-aside",
        "create-replica",
        "replica-in-sync",
        *_restarts(env),
        "standby-pods-ready",
        "redis-standby",
    ]
    assert plan.ancestors("create-replica") == {"move-aside"}
    assert all("replica-in-sync" in plan.ancestors(r) for r in _restarts(env))

    put_caught_up(env.clients, prod.region, prod.database.identifier, env.now)
    # The old primary's pods have run for a while (in this test everything happens within a second;
    # creationTimestamp has whole seconds, and a pod of the instance's own second is not "older").
    env.api("primary").backdate_pods(estate.app.namespace, 60)
    recorder = env.clients.add_recorder(CallRecorder())
    result = _run(env, pre, plan=plan)
    assert result.status == "succeeded", result.summary()

    counts = Counter(c.operation for c in recorder.mutating())
    assert counts == {"AddTagsToResource": 1, "ModifyDBInstance": 1, "CreateDBInstanceReadReplica": 1}
    assert {c.region for c in recorder.mutating()} == {prod.region}
    (create,) = [c for c in recorder.mutating() if c.operation == "CreateDBInstanceReadReplica"]
    assert create.params["DBInstanceIdentifier"] == prod.database.identifier
    assert (
        create.params["SourceDBInstanceIdentifier"]
        == env.s.db(dr.region, dr.database.identifier)["DBInstanceArn"]
    )
    assert create.params["KmsKeyId"] == env.s.kms[prod.region]
    # Placed in the estate's VPC with its database security group (RDS's defaults would be the
    # default VPC / the VPC's default security group), and built as its stack declares: after a
    # failback this instance is production.
    net = network[prod.region]
    assert create.params["DBSubnetGroupName"] == net["subnet_group"] == estate.db_subnet_group(prod)
    assert create.params["VpcSecurityGroupIds"] == [net["sg"]]
    new = env.s.db(prod.region, prod.database.identifier)
    assert [g["VpcSecurityGroupId"] for g in new["VpcSecurityGroups"]] == [net["sg"]]
    assert new["DBSubnetGroup"]["DBSubnetGroupName"] == net["subnet_group"]
    assert new["DeletionProtection"] is prod.database.deletion_protection
    assert new["StorageType"] == "gp3"
    assert new["ReadReplicaSourceDBInstanceIdentifier"].endswith(f":db:{dr.database.identifier}")
    kept = env.s.db(prod.region, pre.aside_id)  # renamed, not deleted
    assert not kept.get("ReadReplicaSourceDBInstanceIdentifier")
    tags = env.clients.client("rds", prod.region).list_tags_for_resource(ResourceName=kept["DBInstanceArn"])
    assert {"Key": TAG_SUPERSEDED_BY, "Value": result.run_id} in tags["TagList"]
    # The old primary's pods predate the new replica (they may hold connections to the renamed
    # instance): restarted, marked for that instance, Ready again — and each says why.
    marker = promotion_marker(env.clients, prod.region, prod.database.identifier)
    assert marker.startswith(f"{prod.database.identifier}@created-")
    api = env.api("primary")
    for d in estate.app.deployments:
        dep = api.get("deployments", estate.app.namespace, d.name)
        assert dep["metadata"]["annotations"][RESTARTED_FOR] == marker, d.name
        assert api.ready_pods(estate.app.namespace, d.name) == dep["spec"]["replicas"]
    assert {result.step(r).status for r in _restarts(env)} == {"done"}
    assert result.step("standby-pods-ready").status == "done"

    # Protected again: a failover to the original region passes its gates, and a second reprotect
    # has nothing to do (no call that changes anything).
    assert (
        failover_preflight(
            env.clients, estate, target=prod, mode="unplanned", max_lag=dt.timedelta(seconds=5)
        ).db
        == prod.database.identifier
    )
    again = _pre(env)
    assert again.protected and again.aside_id is None
    recorder.calls.clear()
    writes = len(env.kube_writes())
    assert _run(env, again).status == "succeeded" and recorder.mutating() == []
    assert len(env.kube_writes()) == writes  # the pods are current: not restarted twice


@pytest.mark.slow
@pytest.mark.parametrize("step", ["move-aside", "create-replica"])
def test_a_reprotect_killed_after_each_step_resumes_without_repeating_it(env: Env, step: str) -> None:
    prod = env.estate.primary
    _failed_over(env)
    pre = _pre(env)
    with pytest.raises(Crash):
        _run(env, pre, plan=_crash_at(reprotect_plan(env.estate, pre, timeout=20), {step}, "after_action"))
    (run_id,) = [p.name for p in env.runs.iterdir() if _journal(env, p.name).plan == "reprotect"]
    outputs = dict(_journal(env, run_id).outputs)
    assert outputs.get("reprotect_aside") == pre.aside_id

    put_caught_up(env.clients, prod.region, prod.database.identifier, env.now)
    recorder = env.clients.add_recorder(CallRecorder())
    resumed = _pre(env, resuming=True, moved_aside=outputs.get("reprotect_aside"))
    assert resumed.aside_id == pre.aside_id  # the resumed plan still has the step it journaled
    result = _run(env, resumed, resume=run_id)
    assert result.status == "succeeded", result.summary()
    sent_before = {"ModifyDBInstance"} | (
        {"CreateDBInstanceReadReplica"} if step == "create-replica" else set()
    )
    assert not {c.operation for c in recorder.mutating()} & sent_before, recorder.mutating()
    assert env.s.db(prod.region, prod.database.identifier)["ReadReplicaSourceDBInstanceIdentifier"]


def _journal(env: Env, run_id: str) -> Any:
    from dr.runbook.journal import Journal

    return Journal.load(env.runs, run_id)


def test_a_second_standalone_database_beside_the_named_one_is_not_guessed(env: Env) -> None:
    """After a failback that found the old primary in its way, the serving database is
    <identifier>-failback: reprotect refuses to pick a replication source, naming the fix."""
    prod = env.estate.primary
    env.clients.client("rds", prod.region).create_db_instance(
        DBInstanceIdentifier=f"{prod.database.identifier}-failback",
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="app",
        MasterUserPassword="not-a-real-one-1",
        AllocatedStorage=20,
    )
    with pytest.raises(GateRefused, match="two standalone databases") as err:
        _pre(env)
    assert f"{prod.database.identifier}-failback" in (err.value.hint or "")


def test_aside_identifier_is_stable_and_fits_rds_limits(env: Env) -> None:
    from dr.aws.rds import Rds

    inst = Rds(env.clients, env.estate.primary.region).describe_instance(
        env.estate.primary.database.identifier
    )
    assert aside_identifier(inst) == aside_identifier(inst)
    long = type(inst)(**{**inst.__dict__, "identifier": "a" * 60})
    name = aside_identifier(long)
    assert len(name) <= 63 and not name.startswith("-") and "--" not in name


def _lose_redis(env: Env, view: Any) -> None:
    from tests.unit.procedures.test_failover import _drop_group

    env.clients.client("elasticache", view.region).delete_replication_group(
        ReplicationGroupId=view.cache.replication_group_id
    )
    _drop_group(view.region, view.cache.replication_group_id)


@pytest.mark.slow
def test_reprotect_restores_the_standby_redis_from_the_estate_snapshot(env: Env) -> None:
    """After a failover the old primary region came back without its cache: reprotect rebuilds the
    Redis group there from the estate's snapshot (not another app's newer one), encrypted as the
    stack declares, and the journal says so."""
    prod = env.estate.primary
    ec = env.clients.client("elasticache", prod.region)
    ec.create_snapshot(ReplicationGroupId=prod.cache.replication_group_id, SnapshotName="prod-nightly")
    other_app_snapshot(env.clients, prod.region, "someone-else-newer", "someone-else")
    _failed_over(env)
    _lose_redis(env, prod)

    pre = _pre(env)
    assert pre.target.region == prod.region
    assert pre.redis is not None and (pre.redis.action, pre.redis.snapshot) == ("restore", "prod-nightly")
    assert any("prod-nightly" in w for w in pre.warnings)
    assert pre.to_dict()["redis"]["action"] == "restore"
    put_caught_up(env.clients, prod.region, prod.database.identifier, env.now)
    result = _run(env, pre)
    assert result.status == "succeeded", result.summary()
    step = result.step("redis-standby")
    (create,) = [c for c in step.calls if c["operation"] == "CreateReplicationGroup"]
    assert "someone-else" not in str(create)
    group = ec.describe_replication_groups(ReplicationGroupId=prod.cache.replication_group_id)[
        "ReplicationGroups"
    ][0]
    assert group["Status"] == "available"
    assert group["TransitEncryptionEnabled"] and group["AtRestEncryptionEnabled"]
    assert group["KmsKeyId"] == env.s.kms[prod.region]
    assert _journal(env, result.run_id).outputs["redis_restored_from"] == "prod-nightly"
    assert _journal(env, result.run_id).outputs["redis_restore"]["at_rest_encryption"] is True


def test_reprotect_refuses_when_the_standby_redis_is_gone_with_no_estate_snapshot(env: Env) -> None:
    dr = env.estate.secondary
    other_app_snapshot(env.clients, dr.region, "theirs", "someone-else")
    _lose_redis(env, dr)
    recorder = env.clients.add_recorder(CallRecorder())
    with pytest.raises(GateRefused, match="no Redis snapshot of") as err:
        _pre(env)
    assert err.value.region == dr.region
    assert recorder.mutating() == []


def test_aside_names_differ_per_second_and_are_valid_rds_identifiers(env: Env) -> None:
    """Two generations of the instance created within the same minute get different names (the
    second failback/reprotect of a sandbox cycle); every candidate is a valid RDS identifier."""
    from dr.aws.rds import Rds
    from dr.procedures.failback import aside_candidates, valid_db_identifier

    inst = Rds(env.clients, env.estate.primary.region).describe_instance(
        env.estate.primary.database.identifier
    )
    created = dt.datetime(2026, 12, 6, 20, 1, 5, tzinfo=dt.UTC)
    first = type(inst)(**{**inst.__dict__, "created": created})
    second = type(inst)(**{**inst.__dict__, "created": created + dt.timedelta(seconds=40)})
    assert aside_identifier(first) != aside_identifier(second)
    assert aside_candidates(first) == aside_candidates(first)  # resume recomputes the same list
    for ident in ("app-db", "a" * 63, "a" * 50 + "-" * 3 + "b" * 10, "db-" + "x" * 58 + "-z"):
        names = aside_candidates(type(inst)(**{**inst.__dict__, "identifier": ident, "created": created}))
        assert len(set(names)) == len(names)
        for name in names:
            assert valid_db_identifier(name), name
    assert (
        not valid_db_identifier("a--b") and not valid_db_identifier("ab-") and not valid_db_identifier("1a")
    )
    assert not valid_db_identifier("a" * 64)


@pytest.mark.slow
def test_a_second_reprotect_moves_aside_beside_the_first_ones_leftover(env: Env) -> None:
    """An earlier cycle left an instance under the first aside name of the old primary (same
    created second: a fast sandbox cycle): reprotect picks the next free name, checks it is
    free, renames, and keeps both."""
    from dr.aws.rds import Rds
    from tests.unit.procedures.test_failback import occupy

    prod = env.estate.primary
    _failed_over(env)
    rds = Rds(env.clients, prod.region)
    old = rds.describe_instance(prod.database.identifier)
    leftover = aside_identifier(old)
    occupy(env, prod.region, leftover)
    pre = _pre(env)
    assert pre.aside_id is not None and pre.aside_id != leftover
    assert pre.aside_id.startswith(f"{prod.database.identifier}-old-")
    put_caught_up(env.clients, prod.region, prod.database.identifier, env.now)
    env.api("primary").backdate_pods(env.estate.app.namespace, 60)
    result = _run(env, pre)
    assert result.status == "succeeded", result.summary()
    assert rds.find_instance(leftover) is not None and rds.find_instance(pre.aside_id) is not None
    assert env.s.db(prod.region, prod.database.identifier)["ReadReplicaSourceDBInstanceIdentifier"]


def test_reprotect_refuses_when_every_aside_name_is_taken(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    import dr.procedures.reprotect as reprotect

    _failed_over(env)
    monkeypatch.setattr(reprotect, "free_aside_identifier", lambda rds, inst: None)
    recorder = env.clients.add_recorder(CallRecorder())
    with pytest.raises(GateRefused, match="every name for it") as err:
        _pre(env)
    assert err.value.region == env.estate.primary.region and recorder.mutating() == []


@pytest.mark.parametrize("missing", ["security-group", "subnet-group"])
def test_a_replica_is_never_left_to_rds_default_placement(env: Env, missing: str) -> None:
    """No DB subnet group or no database security group in the region: refused (exit 2) before
    the replica is created, naming what is missing — RDS would use the default VPC / default SG."""
    prod = env.estate.primary
    _failed_over(env)
    if missing == "security-group":
        ec2 = env.clients.client("ec2", prod.region)
        (group,) = ec2.describe_security_groups(
            Filters=[{"Name": "tag:Name", "Values": [env.estate.db_security_group(prod)]}]
        )["SecurityGroups"]
        ec2.delete_tags(Resources=[group["GroupId"]], Tags=[{"Key": "Name"}])
        name = env.estate.db_security_group(prod)
    else:
        env.clients.client("rds", prod.region).delete_db_subnet_group(
            DBSubnetGroupName=env.estate.db_subnet_group(prod)
        )
        name = env.estate.db_subnet_group(prod)
    from dr.steps.db_replica import replica_placement

    with pytest.raises(BadInput) as err:
        replica_placement(env.clients, env.estate, prod)
    assert name in str(err.value) and prod.region in str(err.value) and err.value.exit_code == 2
    pre = _pre(env)
    recorder = env.clients.add_recorder(CallRecorder())
    result = _run(env, pre)
    assert result.status == "failed" and result.step("create-replica").status == "failed"
    assert "CreateDBInstanceReadReplica" not in {c.operation for c in recorder.mutating()}


def test_after_a_failover_onto_a_restored_instance_reprotect_replicates_from_it(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DR site serves from a restored instance (failover --db): its own database is still the
    (corrupt) replica, so reprotect must be told the serving database; the old primary is moved
    aside and the new replica is of the restored instance. The post-drill invariants judge the
    restored instance too: a split brain before the reprotect, one writer and a replica after."""
    from dr.drills.drill_context import DrillContext
    from dr.drills.procedure_probes import estate_invariants

    estate, prod, dr = env.estate, env.estate.primary, env.estate.secondary
    monkeypatch.setenv("KUBECONFIG", env.kubeconfig)  # the check's read-only Kubernetes clients
    restored = f"{dr.database.identifier}-pitr-120000"
    create_restored(env.clients, dr.region, restored)
    result = env.run(env.plan("unplanned", db=restored))
    assert result.status == "succeeded", result.summary()
    assert env.s.db(dr.region, dr.database.identifier).get("ReadReplicaSourceDBInstanceIdentifier")

    def invariants() -> dict[str, Any]:
        ctx = DrillContext(
            run_id="t",
            target="aws",
            estate=estate,
            clients_factory=lambda ro: env.clients,
        )
        return {i.name: i for i in estate_invariants(ctx, "secondary").invariants}

    split = invariants()
    assert not split["single-writer"].ok and "split brain" in split["single-writer"].detail
    assert (
        not split["replica-replicating"].ok
        and f"not a replica of {restored}" in split["replica-replicating"].detail
    )

    with pytest.raises(GateRefused, match="itself a read replica"):
        _pre(env)
    pre = _pre(env, source_db=restored)
    assert pre.source_db.identifier == restored and pre.target.region == prod.region
    assert pre.aside_id is not None and pre.aside_id.startswith(f"{prod.database.identifier}-old-")
    put_caught_up(env.clients, prod.region, prod.database.identifier, env.now)
    env.api("primary").backdate_pods(estate.app.namespace, 60)
    result = _run(env, pre)
    assert result.status == "succeeded", result.summary()
    back = env.s.db(prod.region, prod.database.identifier)
    assert back["ReadReplicaSourceDBInstanceIdentifier"].endswith(f":db:{restored}")

    after = invariants()
    assert all(i.ok for i in after.values()), after
    assert after["single-writer"].detail == f"one writable database: {restored} ({dr.region})"
