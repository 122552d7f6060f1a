"""The restore and snapshot procedures (CLI only, never exported to Step Functions), run for the
agreement test: snapshot create (RDS and Redis), copy and prune; restore PITR with verify and
cleanup, from a snapshot, and Redis — every kind of :mod:`dr.steps.restore_steps` and
:mod:`dr.steps.snapshot_steps`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from dr.procedures.restore import prepare_pitr, prepare_snapshot, restore_plan
from dr.procedures.snapshot import copy_plan, create_plan, prune_candidates, prune_plan, resolve_copy
from dr.runbook.plan import Plan
from tests.unit.procedures.test_failover import Env
from tests.unit.procedures.test_iam_procedures import _Conn, _fix_moto_cache_delete

ACCOUNT = "123456789012"
NAMES = ("manual-snapshot-20260101-000000", "manual-snapshot-20260102-000000")


def cli_plans(env: Env, run: Callable[[Plan], Any], monkeypatch: pytest.MonkeyPatch) -> list[Plan]:
    """Build and ``run`` each plan in turn (a later pre-flight reads what an earlier plan made);
    each plan is named uniquely (step ids repeat between plans)."""
    from moto.backends import get_backend

    est, clients = env.estate, env.clients
    primary = est.primary
    region = primary.region
    db = get_backend("rds")[ACCOUNT][region].databases[primary.database.identifier]
    db.created = db.instance_create_time = env.now - dt.timedelta(days=1)  # a PITR window
    _fix_moto_cache_delete(monkeypatch)
    plans: list[Plan] = []

    def go(plan: Plan) -> None:
        plan = Plan(f"{plan.name}-{len(plans)}", plan.steps, plan.description)
        run(plan)
        plans.append(plan)

    for name in NAMES:
        go(create_plan(est, primary, kind="rds", name=name, timeout=20))
        go(create_plan(est, primary, kind="redis", name=name, timeout=20))
    copy = resolve_copy(
        clients,
        est,
        snapshot=NAMES[0],
        source_view=primary,
        dest_view=est.secondary,
        target=None,
        kms_key=None,
    )
    go(copy_plan(copy, timeout=20))
    pitr = prepare_pitr(
        clients,
        est,
        primary,
        source=None,
        target="restored-pitr",
        when=None,
        minutes_ago=10,
        checks=[],
        verify=True,
        cleanup=True,
    )
    go(restore_plan(pitr, timeout=20, connect=lambda **_kw: _Conn()))
    for kind, target in (("rds", "restored-snap"), ("redis", "restored-redis")):
        req = prepare_snapshot(
            clients,
            est,
            primary,
            snapshot=NAMES[1],
            target=target,
            kind=kind,  # type: ignore[arg-type]
            checks=[],
            verify=False,
            cleanup=True,
        )
        go(restore_plan(req, timeout=20))
    candidates = prune_candidates(
        clients, est, regions=[region], kinds=["rds", "redis"], keep_last=1, older_than=None
    )
    assert {s.kind for s in candidates} == {"rds", "redis"}, candidates
    go(prune_plan(candidates, timeout=20))
    return plans
