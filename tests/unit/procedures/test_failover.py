"""`dr failover` plan: structure, ordering (DNS strictly last), gates, dry run, unplanned isolation, resume.

moto (two-region estate from ``estate_seed``) + EKS clusters/nodegroups in moto + the fake Kubernetes
API (one per cluster) driven by the real kubernetes client through ``dr.kube``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from dr.aws.session import CallRecorder, ClientProvider
from dr.errors import GateRefused, OperationFailed
from dr.kube import KubeFactory
from dr.procedures import support as common
from dr.procedures.failover import failover_plan
from dr.procedures.failover_gates import FailoverPreflight, preflight
from dr.procedures.support import TAG_PROMOTED_FROM, services
from dr.runbook.plan import Plan
from dr.runbook.poll import PollPolicy
from dr.runbook.runner import RunResult, run_plan
from dr.sandbox.fakekube import FakeKubeApi, serve_estate
from dr.steps.workload_steps import CHANGED_FOR, RESTARTED_FOR
from tests.unit.procedures.estate_seed import PASSWORD, CaughtUpPg, Seeded, other_app_snapshot, put_caught_up

FAST = PollPolicy(first=0.01, factor=1.5, cap=0.05, floor=0.02, fraction=0.01)
ROLE_ARN = "arn:aws:iam::123456789012:role/eks"


class Crash(BaseException):
    """The process dying mid-step (not an error the executor may handle)."""


@dataclass
class Env:
    s: Seeded
    kube: KubeFactory
    apis: dict[str, FakeKubeApi]
    kubeconfig: str
    runs: Path
    now: dt.datetime
    pg: CaughtUpPg = field(default_factory=CaughtUpPg)  # both databases reachable, caught up

    @property
    def estate(self) -> Any:
        return self.s.estate

    @property
    def clients(self) -> ClientProvider:
        return self.s.clients

    def api(self, which: str) -> FakeKubeApi:
        view = self.estate.site(which)
        return self.apis[view.cluster.name]

    def kube_writes(self) -> list[str]:
        return [w for k in self.kube._cache.values() for w in k.writes]

    def preflight(self, mode: str = "planned", **kw: Any) -> FailoverPreflight:
        return preflight(
            self.clients,
            self.estate,
            target=self.estate.secondary,
            mode=mode,  # type: ignore[arg-type]
            max_lag=dt.timedelta(seconds=5),
            **{"pg_connect": self.pg.connect, **kw},
        )

    def plan(self, mode: str = "planned", **kw: Any) -> Plan:
        return failover_plan(self.estate, self.preflight(mode, **kw), timeout=20)

    def run(
        self,
        plan: Plan,
        *,
        resume: str | None = None,
        dry_run: bool = False,
        clients: ClientProvider | None = None,
        **extra: Any,
    ) -> RunResult:
        extra.setdefault("pg_connect", self.pg.connect)
        return run_plan(
            plan,
            services(clients or self.clients, self.estate, kube=self.kube, **extra),
            dry_run=dry_run,
            assume_yes=True,
            resume=resume,
            runs_dir=self.runs,
            lock=None,
            break_lock=False,
            output="json",
            poll=FAST,
        )


def create_clusters(s: Seeded) -> None:
    for view in (s.estate.primary, s.estate.secondary):
        eks = s.clients.client("eks", view.region)
        eks.create_cluster(
            name=view.cluster.name, roleArn=ROLE_ARN, resourcesVpcConfig={"subnetIds": []}, version="1.31"
        )
        ng = view.cluster.nodegroup
        eks.create_nodegroup(
            clusterName=view.cluster.name,
            nodegroupName=ng.name,
            nodeRole=ROLE_ARN,
            subnets=["subnet-1"],
            scalingConfig={"minSize": ng.min_size, "maxSize": ng.max_size, "desiredSize": ng.desired_size},
        )


@pytest.fixture
def env(seeded: Seeded, tmp_path: Path) -> Iterator[Env]:
    create_clusters(seeded)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    if now.second == 0:
        # Keep "now" and "the minute after" (put_caught_up) in one moto period (moto starts periods
        # at the first datapoint): tests that put a lag at now see it as the newest.
        now -= dt.timedelta(seconds=1)
    common.set_clock(lambda: now)
    # the replica is caught up (planned mode's lag gate and its caught-up wait)
    put_caught_up(seeded.clients, seeded.secondary, seeded.estate.secondary.database.identifier, now)
    kc = str(tmp_path / "kubeconfig")
    try:
        with serve_estate(seeded.estate, kc, capacity_fn=lambda _c: 500) as apis:
            kube = KubeFactory(kubeconfig=kc, clients=seeded.clients)
            yield Env(seeded, kube, apis, kc, tmp_path / "runs", now)
            kube.close()
    finally:
        common.set_clock(None)


def journal_events(env: Env, run_id: str) -> list[dict[str, Any]]:
    path = env.runs / run_id / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def mutating_calls(recorder: CallRecorder) -> list[str]:
    return [f"{c.service}:{c.operation}" for c in recorder.mutating()]


# ---------------------------------------------------------------------------------------------
# plan construction
# ---------------------------------------------------------------------------------------------


def test_planned_plan_stops_writes_and_waits_for_lag_before_promoting(env: Env) -> None:
    plan = env.plan("planned")
    writers = [d.name for d in env.estate.app.writers]
    stops = {f"stop-{w}" for w in writers}
    assert stops <= set(plan.ids)
    assert set(plan.step("replica-caught-up").depends_on) == stops
    assert plan.step("promote-db").depends_on == ("replica-caught-up",)
    for sid in stops:  # writes stop in the SOURCE region
        assert plan.step(sid).region == env.estate.primary.region
    # The promote is RPO 0: nothing after writes stopped is lost.
    assert stops <= plan.ancestors("promote-db")
    _assert_dns_flip_last(env, plan)


def test_unplanned_plan_has_no_source_region_step_and_sizes_from_topology(env: Env) -> None:
    plan = env.plan("unplanned")
    assert not any(s.startswith("stop-") for s in plan.ids)
    assert "replica-caught-up" not in plan.ids
    assert plan.step("promote-db").depends_on == ()
    src = env.estate.primary.region
    assert all(s.region in (None, env.estate.secondary.region) for s in plan.steps)
    assert all(op.region != src for op in plan.operations())
    _assert_sizes_from_topology(env, plan)
    _assert_dns_flip_last(env, plan)


def _assert_dns_flip_last(env: Env, plan: Plan) -> None:
    before_flip = plan.ancestors("route-traffic")
    restarts = {f"restart-{d.name}" for d in env.estate.app.deployments}
    assert {
        "promote-db",
        "patch-db-secret",
        "pods-ready",
        "target-healthy",
        "scale-nodegroup",
    } | restarts <= before_flip
    assert "route-traffic" in plan.ancestors("verify-dns")
    assert "verify-dns" in plan.ancestors("verify-service")
    # Independent work runs in parallel: nodegroup, workloads, promote and Redis have no order.
    for a, b in [
        ("scale-nodegroup", "promote-db"),
        ("redis-ready", "promote-db"),
        ("scale-workloads", "promote-db"),
    ]:
        assert a not in plan.ancestors(b) and b not in plan.ancestors(a)
    # Nothing the DNS step precedes may be a prerequisite of it (no cycle sneaks in).
    assert not ({"route-traffic", "verify-dns", "verify-service"} & before_flip)


def _assert_sizes_from_topology(env: Env, plan: Plan) -> None:
    prod_ng = env.estate.primary.cluster.nodegroup
    (update,) = [op for op in plan.step("scale-nodegroup").operations if op.action == "UpdateNodegroupConfig"]
    assert update.params["scalingConfig"] == {
        "min": prod_ng.min_size,
        "max": prod_ng.max_size,
        "desired": prod_ng.desired_size,
    }
    assert update.params["clusterName"] == env.estate.secondary.cluster.name
    scales = {
        op.params["name"]: op.params["replicas"]
        for op in plan.step("scale-workloads").operations
        if op.action == "PatchDeploymentScale"
    }
    assert scales == {d.name: d.replicas for d in env.estate.app.deployments}


# ---------------------------------------------------------------------------------------------
# execution: the whole failover, ordering from the journal
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_planned_failover_end_to_end_in_order(env: Env) -> None:
    estate, dr = env.estate, env.estate.secondary
    recorder = env.clients.add_recorder(CallRecorder())
    result = env.run(env.plan("planned"))
    assert result.status == "succeeded", result.summary()

    # Real state afterwards.
    db = env.s.db(dr.region, dr.database.identifier)
    assert db["DBInstanceStatus"] == "available" and not db.get("ReadReplicaSourceDBInstanceIdentifier")
    # the new primary keeps the PITR window its stack declares, not PromoteReadReplica's 1-day default
    assert db["BackupRetentionPeriod"] == dr.database.backup_retention_days > 1
    ng = env.clients.client("eks", dr.region).describe_nodegroup(
        clusterName=dr.cluster.name, nodegroupName=dr.cluster.nodegroup.name
    )["nodegroup"]["scalingConfig"]
    prod_ng = estate.primary.cluster.nodegroup
    assert ng == {
        "minSize": prod_ng.min_size,
        "maxSize": prod_ng.max_size,
        "desiredSize": prod_ng.desired_size,
    }
    ns = estate.app.namespace
    for dep in estate.app.deployments:
        assert env.api("secondary").ready_pods(ns, dep.name) == dep.replicas
        assert env.api("primary").ready_pods(ns, dep.name) == 0  # writes stopped at the source
    url = env.api("secondary").secret_value(ns, estate.app.db_secret.name, estate.app.db_secret.key)
    assert db["Endpoint"]["Address"] in url and PASSWORD in url
    records = env.clients.client("route53", "us-east-1").list_resource_record_sets(HostedZoneId=env.s.zone_id)
    roles = {r["SetIdentifier"]: r["Failover"] for r in records["ResourceRecordSets"] if "Failover" in r}
    assert roles == {dr.site.name: "PRIMARY", estate.primary.site.name: "SECONDARY"}

    # Ordering, from the journal (seq is a total order of events).
    events = journal_events(env, result.run_id)
    seq = {(e["kind"], e.get("step")): e["seq"] for e in events}
    flip = seq[("step_started", "route-traffic")]
    for prereq in ("promote-db", "pods-ready", "target-healthy", "patch-db-secret"):
        assert seq[("step_done", prereq)] < flip, prereq
    # ... and from the API calls: the record change is sent after the promotion and the restarts.
    ops = [(c.operation, c.at) for c in recorder.calls if c.mutating]
    at = {op: t for op, t in ops}
    assert at["ChangeResourceRecordSets"] > at["PromoteReadReplica"]
    assert [o for o, _ in ops].count("PromoteReadReplica") == 1

    # Result: per-step timings, critical path, wall and ratio.
    data = result.to_dict()
    assert data["critical_path"] and data["wall_seconds"] > 0 and data["ratio"] is not None
    assert all(s["duration"] is not None for s in data["steps"])
    # No secret in the journal.
    assert PASSWORD not in (env.runs / result.run_id / "journal.jsonl").read_text()


@pytest.mark.slow
def test_unplanned_failover_never_calls_the_source_region(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    src, dst = env.estate.primary.region, env.estate.secondary.region
    recorder = env.clients.add_recorder(CallRecorder())
    original = env.clients.client

    def guarded(service: str, region: str) -> Any:
        if region == src and service != "route53":  # Route53 is global (its API lives in us-east-1)
            raise OperationFailed(f"region {src} is unreachable (test)", region=src)
        return original(service, region)

    monkeypatch.setattr(env.clients, "client", guarded)
    env.api("primary").stop()  # the source cluster is gone too
    plan = env.plan("unplanned")
    result = env.run(plan)
    assert result.status == "succeeded", result.summary()
    regions = {c.region for c in recorder.calls if c.service != "route53"}
    assert regions == {dst}
    assert "rds:PromoteReadReplica" in mutating_calls(recorder)


def test_dry_run_makes_no_mutating_call_and_lists_every_operation(env: Env) -> None:
    ro = ClientProvider(read_only=True)
    recorder = ro.add_recorder(CallRecorder())
    env.kube = KubeFactory(kubeconfig=env.kubeconfig, clients=ro, read_only=True)
    pre = preflight(
        ro,
        env.estate,
        target=env.estate.secondary,
        mode="planned",
        max_lag=dt.timedelta(seconds=5),
        pg_connect=env.pg.connect,
    )
    plan = failover_plan(env.estate, pre)
    result = env.run(plan, dry_run=True, clients=ro)
    assert result.status == "dry-run"
    assert recorder.mutating() == [] and env.kube_writes() == []
    planned = result.to_dict()["planned"]
    actions = {
        (o["service"], o["action"]) for s in planned["steps"] for o in s["operations"] if o["mutating"]
    }
    assert {
        ("rds", "PromoteReadReplica"),
        ("eks", "UpdateNodegroupConfig"),
        ("k8s", "PatchDeploymentScale"),
        ("k8s", "PatchSecret"),
        ("route53", "ChangeResourceRecordSets"),
    } <= actions
    db = env.s.db(env.estate.secondary.region, env.estate.secondary.database.identifier)
    assert db.get("ReadReplicaSourceDBInstanceIdentifier")  # still a replica


# ---------------------------------------------------------------------------------------------
# gates: exit 3, nothing changed
# ---------------------------------------------------------------------------------------------


def _moto_db(env: Env, region: str, ident: str) -> Any:
    from moto.rds.models import rds_backends

    return rds_backends["123456789012"][region].databases[ident]


def test_gate_cluster_not_active(env: Env) -> None:
    from moto.eks.models import eks_backends

    dr = env.estate.secondary
    eks_backends["123456789012"][dr.region].clusters[dr.cluster.name].status = "UPDATING"
    with pytest.raises(GateRefused, match="not ACTIVE") as err:
        env.preflight()
    assert err.value.exit_code == 3 and err.value.region == dr.region


def test_gate_lag_over_budget_and_unknown(env: Env) -> None:
    env.s.put_lag(42.0, at=env.now + dt.timedelta(seconds=1))
    with pytest.raises(GateRefused, match="over the"):
        env.preflight("planned")
    env.preflight("unplanned")  # informational in unplanned mode


def test_gate_replica_not_a_replica(env: Env) -> None:
    dr = env.estate.secondary
    env.clients.client("rds", dr.region).promote_read_replica(DBInstanceIdentifier=dr.database.identifier)
    with pytest.raises(GateRefused, match="not a read replica") as err:
        env.preflight("unplanned")
    assert err.value.exit_code == 3


def test_gate_replica_not_available(env: Env) -> None:
    dr = env.estate.secondary
    _moto_db(env, dr.region, dr.database.identifier).status = "storage-optimization"
    with pytest.raises(GateRefused, match="not available"):
        env.preflight("unplanned")


def _drop_group(region: str, group_id: str) -> None:
    """moto keeps a deleted group in 'deleting' for ever; real AWS removes it after a while."""
    from moto.elasticache.models import elasticache_backends

    elasticache_backends["123456789012"][region].replication_groups.pop(group_id, None)


@pytest.mark.slow
def test_gate_redis_missing_without_snapshot_then_restored_from_snapshot(env: Env) -> None:
    dr = env.estate.secondary
    ec = env.clients.client("elasticache", dr.region)
    ec.create_snapshot(ReplicationGroupId=dr.cache.replication_group_id, SnapshotName="nightly")
    ec.delete_replication_group(ReplicationGroupId=dr.cache.replication_group_id)
    with pytest.raises(GateRefused, match="is deleting"):
        env.preflight("unplanned")
    _drop_group(dr.region, dr.cache.replication_group_id)
    pre = env.preflight("unplanned")  # moto snapshots carry no creation time: age unknown, accepted
    assert pre.redis.action == "restore" and pre.redis.snapshot == "nightly"
    result = env.run(failover_plan(env.estate, pre, timeout=20))
    assert result.status == "succeeded", result.summary()
    group = ec.describe_replication_groups(ReplicationGroupId=dr.cache.replication_group_id)
    assert group["ReplicationGroups"][0]["Status"] == "available"
    ec.delete_snapshot(SnapshotName="nightly")
    _drop_group(dr.region, dr.cache.replication_group_id)
    with pytest.raises(GateRefused, match="no Redis snapshot"):
        env.preflight("unplanned", resuming=True)  # (a fresh run refuses the promoted DB first)


def test_a_target_left_stale_by_a_failback_is_refused_unless_resuming(env: Env) -> None:
    """A standalone DR database promoted a moment ago (`dr promote`, or this failover interrupted)
    is taken over by a failover; one a failback left behind (tagged dr:superseded-by) is stale —
    failing over to it would serve data missing every write since. A fresh run refuses it, naming
    `dr reprotect`; a resumed run passes."""
    from dr.procedures.support import TAG_SUPERSEDED_BY

    assert env.run(env.plan("unplanned")).status == "succeeded"
    assert env.preflight("unplanned").promote.already_promoted  # promoted, not superseded: continue
    dr = env.estate.secondary
    arn = env.s.db(dr.region, dr.database.identifier)["DBInstanceArn"]
    env.clients.client("rds", dr.region).add_tags_to_resource(
        ResourceName=arn, Tags=[{"Key": TAG_SUPERSEDED_BY, "Value": "20260801T031200Z-failbk"}]
    )
    recorder = env.clients.add_recorder(CallRecorder())
    for mode in ("unplanned", "planned"):
        with pytest.raises(GateRefused, match=r"not a read replica.*20260801T031200Z-failbk.*stale") as err:
            env.preflight(mode)
        assert "dr reprotect" in (err.value.hint or "") and err.value.region == dr.region
    assert recorder.mutating() == []
    assert env.preflight("unplanned", resuming=True).promote.already_promoted


def test_gate_target_without_health_check(env: Env) -> None:
    dr = env.estate.secondary
    r53 = env.clients.client("route53", "us-east-1")
    recs = r53.list_resource_record_sets(HostedZoneId=env.s.zone_id)["ResourceRecordSets"]
    (rec,) = [r for r in recs if r.get("SetIdentifier") == dr.site.name]
    rec = {k: v for k, v in rec.items() if k != "HealthCheckId"}
    r53.change_resource_record_sets(
        HostedZoneId=env.s.zone_id, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": rec}]}
    )
    with pytest.raises(GateRefused, match="health check"):
        env.preflight("unplanned")


def test_a_target_that_does_not_answer_is_named_before_any_change(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before a failover the target's /health fails by design (503: its DB is a replica) — nothing
    to say. Checkers getting no answer at all: an unplanned failover says so up front (a warning: a
    timeout may be a slow /health against a read-only database, and refusing a region-loss failover
    on it is worse); a planned one, which would stop writes on a working primary first, refuses."""
    from dr.aws.route53 import HealthStatus, Route53

    reports: list[str] = []
    monkeypatch.setattr(Route53, "health_status", lambda self, hid: HealthStatus(hid, 3, 0, tuple(reports)))
    reports[:] = ["Failure: HTTP Status Code 503, Service Unavailable. Resolved IP: 10.0.0.1"] * 3
    for mode in ("unplanned", "planned"):
        assert not [w for w in env.preflight(mode).warnings if "does not answer" in w]
    reports[:] = ["Failure: Connection timed out. The endpoint or the internet connection is down"] * 3
    (warning,) = [w for w in env.preflight("unplanned").warnings if "does not answer" in w]
    assert env.estate.secondary.region in warning and "3 of 3" in warning
    with pytest.raises(GateRefused, match="does not answer its Route53 health check") as err:
        env.preflight("planned")
    assert err.value.region == env.estate.secondary.region and "503 is fine" in (err.value.hint or "")
    assert not [w for w in env.preflight("unplanned", resuming=True).warnings if "does not answer" in w]
    assert env.preflight("planned", resuming=True).mode == "planned"  # resumed: the gate was passed


def test_dns_is_not_flipped_while_the_target_is_unhealthy(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    from dr.aws.route53 import HealthStatus, Route53

    monkeypatch.setattr(Route53, "health_status", lambda self, hid: HealthStatus(hid, 3, 0))
    plan = env.plan("unplanned")
    for sid in ("target-healthy",):
        plan.step(sid).timeout = 0.3
    result = env.run(plan)
    assert result.status == "failed"
    assert result.step("target-healthy").status == "failed"
    assert result.step("route-traffic").status == "not_started"
    records = env.clients.client("route53", "us-east-1").list_resource_record_sets(HostedZoneId=env.s.zone_id)
    roles = {r["SetIdentifier"]: r["Failover"] for r in records["ResourceRecordSets"] if "Failover" in r}
    assert roles[env.estate.primary.site.name] == "PRIMARY"  # untouched


# ---------------------------------------------------------------------------------------------
# resume after a crash at each step: no duplicate mutating call
# ---------------------------------------------------------------------------------------------


def _crash_at(plan: Plan, step_ids: set[str], where: str) -> Plan:
    """Make the first of ``step_ids`` that runs die (BaseException) after its action / in its wait."""
    for step_id in step_ids & set(plan.ids):
        step = plan.step(step_id)
        if where == "after_action":
            original = step.action
            assert original is not None, step_id

            def action(ctx: Any, original: Any = original, step_id: str = step_id) -> Any:
                original(ctx)
                raise Crash(step_id)

            step.action = action
        else:
            assert step.wait is not None, step_id

            def wait(ctx: Any, step_id: str = step_id) -> bool:
                raise Crash(step_id)

            step.wait = wait
    return plan


def _dupes(items: list[str]) -> dict[str, int]:
    return {k: n for k, n in Counter(items).items() if n > 1}


def _crash_chain(env: Env, mode: str, where: str) -> tuple[set[str], list[str], RunResult, CallRecorder]:
    """Kill the run at every mutating step in turn (one crash per attempt), resuming each time."""
    recorder = env.clients.add_recorder(CallRecorder())
    first = env.plan(mode)
    pending = {s.id for s in first.steps if s.mutating and (where == "after_action" or s.wait is not None)}
    expected = set(pending)
    crashed: list[str] = []
    run_id: str | None = None
    for _ in range(len(pending) + 1):
        plan = first if run_id is None else env.plan(mode, resuming=True)
        try:
            result = run_plan(
                _crash_at(plan, pending, where),
                services(env.clients, env.estate, kube=env.kube, pg_connect=env.pg.connect),
                dry_run=False,
                assume_yes=True,
                resume=run_id,
                runs_dir=env.runs,
                lock=None,
                break_lock=False,
                output="json",
                poll=FAST,
                max_workers=1,  # a crash kills the whole process: no other step may keep running
            )
        except Crash as crash:
            (sid,) = crash.args
            crashed.append(sid)
            pending.discard(sid)
            (run_id,) = [p.name for p in env.runs.iterdir()]
            continue
        return expected, crashed, result, recorder
    raise AssertionError(f"never finished; crashed at {crashed}")


@pytest.mark.slow
def test_crash_after_each_mutating_step_then_resume_repeats_nothing(env: Env) -> None:
    expected, crashed, result, recorder = _crash_chain(env, "planned", "after_action")
    assert {"stop-claude-deployment-api", "promote-db", "route-traffic", "patch-db-secret"} <= expected
    assert set(crashed) == expected, crashed
    assert result.status == "succeeded", result.summary()
    events = journal_events(env, result.run_id)
    # Each crashed step was re-checked on the next attempt and found done: skipped, not redone.
    for sid in crashed:
        assert ("step_skipped", sid) in {(e["kind"], e.get("step")) for e in events}, sid
    calls = [
        f"{c.operation}:{json.dumps(c.params, sort_keys=True, default=str)}"
        for c in recorder.mutating()
        if c.operation != "AddTagsToResource"
    ]
    assert _dupes(calls) == {}
    assert _dupes(env.kube_writes()) == {}
    assert mutating_calls(recorder).count("rds:PromoteReadReplica") == 1
    dr = env.estate.secondary
    assert not env.s.db(dr.region, dr.database.identifier).get("ReadReplicaSourceDBInstanceIdentifier")
    # The run killed right after patch-db-secret changed the secret still restarted the pods on
    # resume (the secret's changed-for marker, not the dead run's memory, says they need it).
    from dr.steps.workload_steps import promotion_marker

    marker = promotion_marker(env.clients, dr.region, dr.database.identifier)
    assert set(_restart_markers(env).values()) == {(marker, True)}


@pytest.mark.slow
def test_crash_while_waiting_at_each_step_then_resume(env: Env) -> None:
    expected, crashed, result, recorder = _crash_chain(env, "unplanned", "in_wait")
    assert {"promote-db", "scale-nodegroup", "route-traffic"} <= expected
    assert set(crashed) == expected, crashed
    assert result.status == "succeeded", result.summary()
    assert mutating_calls(recorder).count("rds:PromoteReadReplica") == 1
    assert _dupes([c.operation for c in recorder.mutating() if c.operation != "AddTagsToResource"]) == {}
    assert _dupes(env.kube_writes()) == {}


def test_promotion_in_flight_is_not_reissued(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """A resumed run finding the replica 'modifying' (promotion issued, not finished) only waits."""
    dr = env.estate.secondary
    plan = env.plan("unplanned")
    inst = _moto_db(env, dr.region, dr.database.identifier)
    inst.status = "modifying"  # RDS: still listed as a replica while the promotion runs
    rds = env.clients.client("rds", dr.region)
    arn = rds.describe_db_instances(DBInstanceIdentifier=dr.database.identifier)["DBInstances"][0][
        "DBInstanceArn"
    ]
    rds.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": TAG_PROMOTED_FROM, "Value": "x"}])
    recorder = env.clients.add_recorder(CallRecorder())
    step = plan.step("promote-db")
    from dr.runbook.plan import StepContext

    ctx = StepContext(run_id="t", services=services(env.clients, env.estate, kube=env.kube))
    assert step.check is not None and not step.check(ctx)
    assert step.action is not None
    step.action(ctx)
    assert "rds:PromoteReadReplica" not in mutating_calls(recorder)
    assert ctx.get("promote_in_flight") == "modifying"


@pytest.mark.slow
def test_rerun_of_a_completed_failover_changes_nothing(env: Env) -> None:
    first = env.run(env.plan("unplanned"))
    assert first.status == "succeeded", first.summary()
    recorder = env.clients.add_recorder(CallRecorder())
    writes_before = len(env.kube_writes())
    second = env.run(env.plan("unplanned", resuming=True))
    assert second.status == "succeeded", second.summary()
    assert [c for c in mutating_calls(recorder)] == []
    assert len(env.kube_writes()) == writes_before
    waits_only = {"pods-ready", "target-healthy", "verify-dns", "verify-service"}
    assert {s.id for s in second.steps if s.status == "done"} <= waits_only


# ---------------------------------------------------------------------------------------------
# the pods' restart after the promotion (app.dbSecret.restartPods)
# ---------------------------------------------------------------------------------------------


def _restart_markers(env: Env) -> dict[str, tuple[str | None, bool]]:
    """Per deployment in the target: (its restarted-for-promotion marker, template stamped?)."""
    ns, api = env.estate.app.namespace, env.api("secondary")
    out = {}
    for d in env.estate.app.deployments:
        dep = api.get("deployments", ns, d.name)
        template = dep["spec"]["template"]["metadata"].get("annotations") or {}
        out[d.name] = (
            (dep["metadata"].get("annotations") or {}).get(RESTARTED_FOR),
            "kubectl.kubernetes.io/restartedAt" in template,
        )
    return out


@pytest.mark.slow
@pytest.mark.parametrize(
    ("restart_pods", "secret_already_right", "pods_predate_db", "restarted"),
    [
        ("on-change", False, False, True),
        ("on-change", True, False, False),
        ("on-change", True, True, True),
        ("always", True, False, True),
    ],
    ids=["secret-changes", "secret-unchanged", "pods-older-than-the-instance", "always"],
)
def test_pods_are_restarted_only_when_their_connection_may_be_stale(
    env: Env, restart_pods: str, secret_already_right: bool, pods_predate_db: bool, restarted: bool
) -> None:
    """on-change: a restart when the failover changed the secret, or when a pod is older than the
    instance now holding the identifier (a replica re-created under the old name by failback or
    reprotect: the pod may still hold a connection to the renamed one); none otherwise."""
    from dr.steps.workload_steps import desired_database_url, promotion_marker

    app, dr_site = env.estate.app, env.estate.secondary
    env.s = replace(
        env.s,
        estate=env.estate.model_copy(
            update={
                "app": app.model_copy(
                    update={"db_secret": app.db_secret.model_copy(update={"restart_pods": restart_pods})}
                )
            }
        ),
    )
    secret = env.estate.app.db_secret
    if secret_already_right:  # a standby's secret names its replica, whose endpoint survives promotion
        url = desired_database_url(env.clients, env.estate, dr_site, dr_site.database.identifier, None)
        encoded = base64.b64encode(url.reveal().encode()).decode()
        env.api("secondary").patch(
            "secrets",
            app.namespace,
            secret.name,
            {"data": {secret.key: encoded}},
            "application/merge-patch+json",
        )
    if pods_predate_db:
        _moto_db(env, dr_site.region, dr_site.database.identifier).instance_create_time = dt.datetime.now(
            dt.UTC
        ) + dt.timedelta(minutes=5)
    result = env.run(env.plan("unplanned"))
    assert result.status == "succeeded", result.summary()

    marker = promotion_marker(env.clients, dr_site.region, dr_site.database.identifier)
    restarts = [f"restart-{d.name}" for d in app.deployments]
    assert {result.step(r).status for r in restarts} == {"done" if restarted else "skipped"}
    assert set(_restart_markers(env).values()) == {(marker, True) if restarted else (None, False)}
    annotations = (
        env.api("secondary").get("secrets", app.namespace, secret.name)["metadata"].get("annotations")
    )
    assert (annotations or {}).get(CHANGED_FOR) == (None if secret_already_right else marker)
    events = journal_events(env, result.run_id)
    reasons = {
        e["key"]: e["value"]
        for e in events
        if e["kind"] == "output_set" and e["key"].startswith("restarted:")
    }
    assert set(reasons) == ({f"restarted:{d.name}" for d in app.deployments} if restarted else set())
    if restarted:  # DNS moves only once the pods run the (new) connection string
        why = "always" if restart_pods == "always" else "predates" if pods_predate_db else "changed"
        assert all(why in reason for reason in reasons.values()), reasons
        seq = {(e["kind"], e.get("step")): e["seq"] for e in events}
        assert all(seq[("step_done", r)] < seq[("step_started", "route-traffic")] for r in restarts)


# ---------------------------------------------------------------------------------------------
# the connection string
# ---------------------------------------------------------------------------------------------


def test_database_url_credentials_come_from_the_target_region_only(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dr.aws.secretsmanager import SecretValue
    from dr.steps.workload_steps import desired_database_url

    estate, dr_site = env.estate, env.estate.secondary
    sm = env.clients.client("secretsmanager", dr_site.region)
    sid = estate.app.db_secret.secrets_manager_id
    current = SecretValue(
        "postgresql://app_admin:from-cluster@old-host:5432/claude_deployment?sslmode=verify-full"
    )
    db = env.s.db(dr_site.region, dr_site.database.identifier)

    # 1. The secret holds the password (sandbox / seed layout).
    url = desired_database_url(env.clients, estate, dr_site, dr_site.database.identifier, current).reveal()
    assert url == (
        f"postgresql://app_admin:{PASSWORD}@{db['Endpoint']['Address']}:{db['Endpoint']['Port']}"
        "/claude_deployment?sslmode=verify-full"
    )
    # 2. The Pulumi layout: a descriptor pointing at the RDS-managed secret of ANOTHER region
    #    (the lost one): never followed; the cluster's current password is kept.
    other = f"arn:aws:secretsmanager:{estate.primary.region}:123456789012:secret:rds!db-x"
    sm.put_secret_value(
        SecretId=sid, SecretString=json.dumps({"username": "app_admin", "masterUserSecretArn": other})
    )
    recorder = env.clients.add_recorder(CallRecorder())
    url = desired_database_url(env.clients, estate, dr_site, dr_site.database.identifier, current).reveal()
    assert ":from-cluster@" in url
    assert {c.region for c in recorder.calls} == {dr_site.region}
    # 3. ... pointing at a managed secret in the SAME region: followed.
    managed = sm.create_secret(
        Name="rds-managed", SecretString=json.dumps({"username": "u2", "password": "p@ss/2"})
    )
    sm.put_secret_value(
        SecretId=sid,
        SecretString=json.dumps({"username": "app_admin", "masterUserSecretArn": managed["ARN"]}),
    )
    url = desired_database_url(env.clients, estate, dr_site, dr_site.database.identifier, current).reveal()
    assert url.startswith("postgresql://u2:p%40ss%2F2@")
    # 4. No password anywhere: bad input naming the secret, and nothing leaks in the message.
    sm.put_secret_value(SecretId=sid, SecretString=json.dumps({"username": "app_admin"}))
    from dr.errors import BadInput

    with pytest.raises(BadInput, match=sid):
        desired_database_url(env.clients, estate, dr_site, dr_site.database.identifier, None)
    assert "from-cluster" not in repr(current) and "from-cluster" not in str(current)


def test_resume_after_a_kill_between_promote_and_tag(env: Env) -> None:
    """kill -9 right after PromoteReadReplica (before our tags): a fresh run refuses (exit 3: not a
    replica), the resumed one accepts the standalone instance and never promotes again."""
    dr_site = env.estate.secondary
    ident = dr_site.database.identifier
    env.clients.client("rds", dr_site.region).promote_read_replica(DBInstanceIdentifier=ident)
    with pytest.raises(GateRefused, match="not a read replica"):
        env.preflight("unplanned")
    recorder = env.clients.add_recorder(CallRecorder())
    pre = env.preflight("unplanned", resuming=True)
    assert pre.promote.already_promoted
    result = env.run(failover_plan(env.estate, pre, timeout=20))
    assert result.status == "succeeded", result.summary()
    assert result.step("promote-db").status == "skipped"
    assert "rds:PromoteReadReplica" not in mutating_calls(recorder)


def test_promotion_in_flight_without_our_tags_gets_tagged_not_repromoted(env: Env) -> None:
    from dr.runbook.plan import StepContext

    dr_site = env.estate.secondary
    plan = env.plan("unplanned")
    _moto_db(env, dr_site.region, dr_site.database.identifier).status = "modifying"
    recorder = env.clients.add_recorder(CallRecorder())
    step = plan.step("promote-db")
    assert step.action is not None
    step.action(StepContext(run_id="t", services=services(env.clients, env.estate, kube=env.kube)))
    assert mutating_calls(recorder) == ["rds:AddTagsToResource"]


@pytest.mark.slow
def test_redis_restore_uses_only_the_estate_snapshot_and_the_declared_encryption(env: Env) -> None:
    """Another application's cache shares the DR region and has a newer snapshot: the restore
    must not seed the estate's group from it, and must create the group as dr/infra/cache.py
    declares it (TLS, KMS at rest with the site key, engine version, port)."""
    dr = env.estate.secondary
    ec = env.clients.client("elasticache", dr.region)
    ec.create_snapshot(ReplicationGroupId=dr.cache.replication_group_id, SnapshotName="ours")
    other_app_snapshot(env.clients, dr.region, "theirs-newer", "other-app-redis")
    ec.delete_replication_group(ReplicationGroupId=dr.cache.replication_group_id)
    _drop_group(dr.region, dr.cache.replication_group_id)

    pre = env.preflight("unplanned")
    assert pre.redis.action == "restore" and pre.redis.snapshot == "ours"
    result = env.run(failover_plan(env.estate, pre, timeout=20))
    assert result.status == "succeeded", result.summary()
    group = ec.describe_replication_groups(ReplicationGroupId=dr.cache.replication_group_id)[
        "ReplicationGroups"
    ][0]
    assert group["TransitEncryptionEnabled"] is True
    assert group["AtRestEncryptionEnabled"] is True
    assert group["KmsKeyId"] == env.s.kms[dr.region]
    assert group["NodeGroups"][0]["PrimaryEndpoint"]["Port"] == dr.cache.port
    creates = [c for c in result.step("redis-ready").calls if c["operation"] == "CreateReplicationGroup"]
    assert len(creates) == 1, creates
    assert "theirs-newer" not in json.dumps(creates, default=str)


def test_redis_gate_ignores_other_groups_snapshots(env: Env) -> None:
    """With only another application's snapshot in the region the gate refuses (nothing of ours)."""
    dr = env.estate.secondary
    ec = env.clients.client("elasticache", dr.region)
    other_app_snapshot(env.clients, dr.region, "theirs", "other-app-redis")
    ec.delete_replication_group(ReplicationGroupId=dr.cache.replication_group_id)
    _drop_group(dr.region, dr.cache.replication_group_id)
    with pytest.raises(GateRefused, match="no Redis snapshot of"):
        env.preflight("unplanned")


def test_after_a_rotation_an_unplanned_failover_uses_the_rotated_password_from_the_dr_replica(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The credentials secret is a multi-region secret (primary region → DR replica, kept in sync
    by Secrets Manager). The password is rotated after the clusters' URLs were written; the primary
    region is then lost: the failover takes the rotated password from the DR replica, in the DR
    region only, and never prints or journals it."""
    estate, prod, dr_site = env.estate, env.estate.primary, env.estate.secondary
    sid = estate.app.db_secret.secrets_manager_id
    env.clients.client("secretsmanager", dr_site.region).delete_secret(
        SecretId=sid, ForceDeleteWithoutRecovery=True
    )
    primary_sm = env.clients.client("secretsmanager", prod.region)
    primary_sm.replicate_secret_to_regions(SecretId=sid, AddReplicaRegions=[{"Region": dr_site.region}])
    rotated = "r0tated-Pa55word-never-printed"
    primary_sm.put_secret_value(
        SecretId=sid, SecretString=json.dumps({"username": estate.app.database.username, "password": rotated})
    )
    original = env.clients.client

    def guarded(service: str, region: str) -> Any:
        if region == prod.region and service != "route53":
            raise OperationFailed(f"region {prod.region} is unreachable (test)", region=prod.region)
        return original(service, region)

    monkeypatch.setattr(env.clients, "client", guarded)
    env.api("primary").stop()
    result = env.run(env.plan("unplanned"))
    assert result.status == "succeeded", result.summary()
    url = env.api("secondary").secret_value(
        estate.app.namespace, estate.app.db_secret.name, estate.app.db_secret.key
    )
    assert f":{rotated}@" in url and PASSWORD not in url
    assert rotated not in (env.runs / result.run_id / "journal.jsonl").read_text()


def test_a_planned_switchover_that_cannot_read_the_wal_positions_is_refused_before_writes_stop(
    env: Env,
) -> None:
    """RDS PostgreSQL's ReplicaLag is the time since the last replayed commit: once writes stop it
    only grows, so it can never prove RPO 0. Where the databases cannot be read (private subnets,
    the operator's laptop), a planned switchover is refused in its pre-flight — exit 3, nothing
    changed, writes never stopped — instead of waiting for a ReplicaLag of 0 with writes stopped."""

    def unreachable(**kw: Any) -> Any:
        raise OSError(f"connection to {kw['host']} timed out")

    # the replica has replayed everything; idle, RDS PG still reports a growing lag (here 240 s)
    env.s.put_lag(240.0, at=env.now)
    recorder = env.clients.add_recorder(CallRecorder())

    def gate(connect: Any) -> FailoverPreflight:
        return preflight(
            env.clients,
            env.estate,
            target=env.estate.secondary,
            mode="planned",
            max_lag=dt.timedelta(minutes=10),
            pg_connect=connect,
        )

    with pytest.raises(GateRefused, match="WAL positions") as err:
        gate(unreachable)
    assert err.value.exit_code == 3 and "--mode unplanned" in (err.value.hint or "")
    assert env.estate.secondary.region in str(err.value)
    assert recorder.mutating() == [] and env.kube_writes() == []
    ns = env.estate.app.namespace
    for dep in env.estate.app.deployments:  # writes were never stopped
        assert env.api("primary").ready_pods(ns, dep.name) == dep.replicas
    # reachable databases: the same switchover passes the gate (the WAL comparison proves RPO 0)
    assert gate(env.pg.connect).mode == "planned"
