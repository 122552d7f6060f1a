"""The restore and snapshot kinds run only from the dr CLI: no Step Functions form."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dr.errors import ConfigError
from dr.procedures import restore, snapshot
from dr.procedures.stepfunctions import asl_options
from dr.runbook.asl import compile_plan
from dr.runbook.plan import Plan
from dr.steps import KINDS
from dr.steps.restore_steps import RestoreDb
from dr.steps.snapshot_steps import CopySnapshot, CreateSnapshot, DeleteSnapshot
from dr.topology import load_estate
from tests.conftest import STACKS


def test_restore_and_snapshot_steps_refuse_a_step_functions_export() -> None:
    estate = load_estate(STACKS, "prod")
    opts = asl_options(estate, estate.secondary)
    plans = [*restore.iam_plans(estate, estate.primary), *snapshot.iam_plans(estate, estate.secondary)]
    steps = [s for p in plans for s in p.steps]
    assert steps and all(s.kind is not None and not s.kind.exportable for s in steps)  # type: ignore[attr-defined]
    for step in steps:
        with pytest.raises(ConfigError, match="no Step Functions form") as err:
            compile_plan(Plan("one", [replace(step, depends_on=())]), opts)
        assert err.value.resource == step.id
    kinds = {type(s.kind) for s in steps}
    assert {RestoreDb, CreateSnapshot, CopySnapshot, DeleteSnapshot} <= kinds
    assert kinds <= {type(k) for k in KINDS}
