"""R4: a catalogue of bad inputs across the commands: each exits 2 (bad input) or 3 (a safety gate
refused), with a message naming what is wrong, and sends ZERO mutating calls.

Every case is a real ``dr`` process (forked, see zygote.py) on one shared estate (moto + realism
layer: RDS's own validations such as the PITR window, promote of a non-replica, an existing target).
The call log records every AWS call and Kubernetes write the process attempted; none may mutate.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dr.sandbox.fakeaws.health_checks import NO_ANSWER
from tests.reliability.harness import Estate, manual_snapshot, sent_mutations

pytestmark = pytest.mark.slow

API = "claude-deployment-api"


@dataclass(frozen=True)
class Case:
    id: str
    args: list[str]
    code: int  # 2 bad input, 3 gate
    says: tuple[str, ...]  # every one must appear in stderr (case-insensitive)
    setup: Callable[[Estate, Path], contextlib.AbstractContextManager[list[str]]] | None = None
    env: dict[str, str] = field(default_factory=dict)
    xfail: str | None = None  # a known gap: strict xfail, so the fix turns it into a failure to update
    # May change the estate (a known gap lets it through): runs in test_r4_private_estate.py on a
    # private estate (moto's backends are per process: two estates cannot coexist in one worker).
    fresh: bool = False


@contextlib.contextmanager
def _no_extra(e: Estate, tmp: Path) -> Iterator[list[str]]:
    yield []


@contextlib.contextmanager
def _broken_stack_file(e: Estate, tmp: Path) -> Iterator[list[str]]:
    import shutil

    from tests.conftest import STACKS

    stacks = tmp / "stacks-broken"
    shutil.copytree(STACKS, stacks)
    path = stacks / "Pulumi.prod.yaml"
    path.write_text(path.read_text().replace("config:", "config: [unclosed", 1))
    yield ["--stack-dir", str(stacks)]


@contextlib.contextmanager
def _bad_restart_pods(e: Estate, tmp: Path) -> Iterator[list[str]]:
    """Both stack files say ``restartPods: sometimes`` (only on-change / always exist)."""
    import shutil

    from tests.conftest import STACKS

    stacks = tmp / "stacks-bad-restart"
    shutil.copytree(STACKS, stacks)
    for name in ("Pulumi.prod.yaml", "Pulumi.dr.yaml"):
        path = stacks / name
        text = path.read_text()
        assert "restartPods: on-change" in text, name
        path.write_text(text.replace("restartPods: on-change", "restartPods: sometimes"))
    yield ["--stack-dir", str(stacks)]


@contextlib.contextmanager
def _bad_scenario(e: Estate, tmp: Path) -> Iterator[list[str]]:
    (tmp / "bad-drill.yaml").write_text(
        "version: 1\ntitle: broken\nmethod:\n  - name: x\n    type: action\n    provider: failovr\n"
    )
    yield []


@contextlib.contextmanager
def _target_unhealthy(e: Estate, tmp: Path) -> Iterator[list[str]]:
    """The DR region's health check fails (its ALB does not answer)."""
    secondary = e.estate.secondary.region
    previous = e.realism.health_probe
    e.realism.health_probe = lambda region: region != secondary
    try:
        health = e.realism.health
        assert health is not None
        # The health checkers see it on their next tick: wait, or a fast `dr` can read the old report
        # and start the switchover (it did once in a loaded run: stop-writes, then a 120 s hang).
        deadline = time.monotonic() + 10
        while health.report(secondary) != NO_ANSWER:
            assert time.monotonic() < deadline, health.report(secondary)
            time.sleep(0.02)
        yield []
    finally:
        e.realism.health_probe = previous


@contextlib.contextmanager
def _target_cluster_failed(e: Estate, tmp: Path) -> Iterator[list[str]]:
    """The DR region's EKS cluster is not ACTIVE (moto's model, set in place)."""
    from moto.eks.models import eks_backends

    view = e.estate.secondary
    cluster = eks_backends["123456789012"][view.region].clusters[view.cluster.name]
    previous, cluster.status = cluster.status, "FAILED"
    try:
        yield []
    finally:
        cluster.status = previous


@contextlib.contextmanager
def _target_replica_broken(e: Estate, tmp: Path) -> Iterator[list[str]]:
    """The DR read replica is in a state RDS cannot promote from."""
    from moto.rds.models import rds_backends

    view = e.estate.secondary
    db = rds_backends["123456789012"][view.region].databases[view.database.identifier]
    previous, db.status = db.status, "storage-full"
    try:
        yield []
    finally:
        db.status = previous


@contextlib.contextmanager
def _target_promoted_earlier(e: Estate, tmp: Path) -> Iterator[list[str]]:
    """The DR database is standalone, tagged by an earlier failover's promotion and by the failback
    that left it behind, stale since (moto's model, set in place and restored)."""
    from moto.rds.models import rds_backends

    view = e.estate.secondary
    db = rds_backends["123456789012"][view.region].databases[view.database.identifier]
    source, tags = db.source_db_instance_identifier, list(db.tags)
    db.source_db_instance_identifier = None
    db.add_tags(
        [
            {"Key": "dr:promoted-from", "Value": str(source)},
            {"Key": "dr:promoted-at", "Value": "2026-08-01T03:12:00Z"},
            {"Key": "dr:superseded-by", "Value": "20260802T101500Z-a1b2c3"},  # the failback's mark
        ]
    )
    try:
        yield []
    finally:
        db.source_db_instance_identifier, db.tags = source, tags


@contextlib.contextmanager
def _lag_over_budget(e: Estate, tmp: Path) -> Iterator[list[str]]:
    """The DR replica trails by 120 s: published by the realism layer's metrics loop (as the sandbox
    does from its measured lag) and put at once, so the newest ReplicaLag datapoint says 120."""
    from tests.reliability.harness import put_lag

    previous = e.realism.lag_fn
    e.realism.lag_fn = lambda _region, _ident: 120.0
    put_lag(e.clients, e.estate, 120.0)
    try:
        yield []
    finally:
        e.realism.lag_fn = previous
        put_lag(e.clients, e.estate, 0.0)


def _cases() -> list[Case]:
    return [
        Case("unknown-stack", ["--stack", "nope", "status"], 2, ("nope",)),
        Case("malformed-stack-file", ["status"], 2, ("Pulumi.prod.yaml",), _broken_stack_file),
        Case(
            "bad-restart-pods-setting",
            ["failover", "--to", "secondary", "--yes"],
            2,
            ("app.dbSecret.restartPods", "on-change", "always"),
            _bad_restart_pods,
        ),
        Case("bad-region", ["snapshot", "create", "--region", "mars-west-9", "--yes"], 2, ("mars-west-9",)),
        Case("unknown-site", ["failover", "--to", "atlantis", "--yes"], 2, ("atlantis",)),
        Case("failover-to-primary", ["failover", "--to", "primary", "--yes"], 2, ("primary",)),
        Case("bad-max-lag", ["failover", "--max-lag", "banana", "--yes"], 2, ("--max-lag", "banana")),
        Case("negative-max-lag", ["promote", "--max-lag", "-5s", "--yes"], 2, ("--max-lag",)),
        Case(
            "pitr-outside-window",
            ["restore", "pitr", "--time", "2001-01-01T00:00:00Z", "--target", "r4-pitr", "--yes"],
            2,
            ("2001-01-01", "restorable"),
        ),
        Case(
            "pitr-negative-minutes",
            ["restore", "pitr", "--minutes-ago", "-5", "--target", "r4-x", "--yes"],
            2,
            ("minutes",),
        ),
        Case(
            "restore-target-exists",
            ["restore", "snapshot", "--snapshot", "{snapshot}", "--target", "{primary_db}", "--yes"],
            2,
            ("{primary_db}", "exists"),
        ),
        Case(
            "unknown-snapshot",
            ["restore", "snapshot", "--snapshot", "no-such-snap", "--target", "r4-s", "--yes"],
            2,
            ("no-such-snap",),
        ),
        Case(
            "copy-unknown-snapshot",
            ["snapshot", "copy", "--snapshot", "no-such-snap", "--yes"],
            2,
            ("no-such-snap",),
        ),
        Case(
            "promote-non-replica",
            ["promote", "--db", "{primary_db}", "--region", "primary", "--yes"],
            2,
            ("{primary_db}", "replica"),
        ),
        Case(
            "promote-unknown-db",
            ["promote", "--db", "no-such-db", "--region", "secondary", "--yes"],
            2,
            ("no-such-db",),
        ),
        Case("bad-cidr", ["ops", "waf", "block", "10.0.0.0/33", "--yes"], 2, ("10.0.0.0/33",)),
        Case("not-a-cidr", ["ops", "waf", "unblock", "not-an-ip", "--yes"], 2, ("not-an-ip",)),
        Case("negative-replicas", ["ops", "scale", "api", "--replicas", "-1", "--yes"], 2, ("replicas",)),
        Case(
            "nodegroup-min-over-max",
            ["ops", "scale", "nodegroup", "--min", "9", "--max", "2", "--yes"],
            2,
            ("min", "max"),
        ),
        Case("unknown-deployment", ["ops", "rollback", "no-such-deploy", "--yes"], 2, ("no-such-deploy",)),
        Case(
            "hpa-min-over-max", ["ops", "hpa", "api", "--min", "9", "--max", "2", "--yes"], 2, ("min", "max")
        ),
        Case("unknown-pod", ["ops", "quarantine", "no-such-pod", "--yes"], 2, ("no-such-pod",)),
        Case(
            "malformed-scenario",
            ["drill", "run", "bad-drill.yaml"],
            2,
            ("bad-drill.yaml", "failovr"),
            _bad_scenario,
        ),
        Case("unknown-scenario", ["drill", "run", "no-such-scenario"], 2, ("no-such-scenario",)),
        Case(
            "resume-unknown-run",
            ["failover", "--yes", "--resume", "20990101T000000Z-nope"],
            2,
            ("20990101T000000Z-nope",),
        ),
        Case("prune-bad-age", ["snapshot", "prune", "--older-than", "soon", "--yes"], 2, ("soon",)),
        Case("reconcile-unknown-primary", ["reconcile", "--primary", "atlantis", "--yes"], 2, ("atlantis",)),
        Case(
            "bad-retry-mode",
            ["failover", "--mode", "unplanned", "--yes"],
            2,
            ("AWS_RETRY_MODE", "fastest", "standard"),
            env={"AWS_RETRY_MODE": "fastest"},
        ),
        Case(
            "no-sandbox-running",
            ["status"],
            2,
            ("sandbox",),
            env={"DR_SANDBOX_DIR": "/nonexistent/dr-sandbox"},
        ),
        Case(
            "failover-target-cluster-failed",
            ["failover", "--mode", "unplanned", "--yes"],
            3,
            ("{dr_cluster}", "FAILED"),
            _target_cluster_failed,
        ),
        Case(
            "failover-target-replica-broken",
            ["failover", "--mode", "unplanned", "--yes"],
            3,
            ("{dr_db}", "storage-full"),
            _target_replica_broken,
        ),
        Case(
            "failover-planned-target-does-not-answer",
            ["failover", "--mode", "planned", "--yes"],
            3,
            ("does not answer", "health check", "{dr_region}"),
            _target_unhealthy,
            fresh=True,
        ),
        Case(
            "failover-to-a-database-promoted-earlier",
            ["failover", "--mode", "unplanned", "--yes"],
            3,
            ("{dr_db}", "not a read replica", "20260802T101500Z-a1b2c3", "stale", "dr reprotect"),
            _target_promoted_earlier,
        ),
        Case(
            "reprotect-the-serving-region",
            ["reprotect", "--region", "{primary_region}", "--yes"],
            2,
            ("serves", "{primary_region}", "never the serving one"),
        ),
        Case(
            "failover-lag-over-budget",
            ["failover", "--mode", "planned", "--max-lag", "5s", "--yes"],
            3,
            ("lag", "5s"),
            _lag_over_budget,
        ),
        Case(
            "promote-lag-over-budget", ["promote", "--max-lag", "5s", "--yes"], 3, ("lag",), _lag_over_budget
        ),
    ]


CASES = _cases()


def test_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 20 and len({c.id for c in CASES}) == len(CASES)


def _param(c: Case) -> Any:
    return pytest.param(c, marks=pytest.mark.xfail(reason=c.xfail, strict=True)) if c.xfail else c


@pytest.mark.parametrize(
    "case", [_param(c) for c in CASES if not c.fresh], ids=[c.id for c in CASES if not c.fresh]
)
def test_bad_input_exits_2_or_3_naming_it_and_changes_nothing(shared_estate: Estate, case: Case) -> None:
    _check(shared_estate, case)


def _check(e: Estate, case: Case) -> None:
    names = {
        "primary_db": e.estate.primary.database.identifier,
        "dr_db": e.estate.secondary.database.identifier,
        "dr_cluster": e.estate.secondary.cluster.name,
        "dr_region": e.estate.secondary.region,
        "primary_region": e.estate.primary.region,
        "snapshot": manual_snapshot(e),
    }
    args = [a.format(**names) for a in case.args]
    says = [s.format(**names) for s in case.says]
    log = e.new_log(case.id)
    with (case.setup or _no_extra)(e, e.directory) as extra:
        res = e.dr([*extra, *args], log=log, timeout=120, **case.env)
    assert res.returncode == case.code, (res.returncode, res.stdout[-1500:], res.stderr[-1500:])
    err = res.stderr.lower()
    for word in says:
        assert word.lower() in err, (word, res.stderr[-1500:])
    assert sent_mutations(log) == [], [(c.get("service"), c["operation"]) for c in sent_mutations(log)]
