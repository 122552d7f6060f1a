"""The failover / failback use cases (dr.procedures.region_switch) that `dr failover`, `dr failback`
and the drill actions share; their full runs are in tests/unit/cli/test_failover_cmd.py and
tests/unit/drills/test_procedure_actions.py."""

from __future__ import annotations

import datetime as dt

import pytest

from dr.aws.session import ClientProvider
from dr.errors import EXIT_USAGE, BadInput
from dr.procedures.region_switch import FailoverRequest, FailoverRun, RunSettings, failover_target
from tests.unit.procedures.estate_seed import Seeded


def test_the_target_gate_refuses_the_stack_files_primary(seeded: Seeded) -> None:
    estate = seeded.estate
    assert failover_target(estate, "secondary") == estate.secondary
    with pytest.raises(BadInput) as info:
        failover_target(estate, "primary")
    assert info.value.exit_code == EXIT_USAGE
    assert info.value.message == (
        f"--to 'primary' is the site the stack files declare primary ({estate.primary.region}): "
        "nothing to fail over to"
    )
    assert info.value.hint == "use --to secondary; to return after a failover use `dr failback`"


def test_prepare_gates_before_any_call(seeded: Seeded) -> None:
    """The target gate runs before the pre-flight reads anything."""
    switch = FailoverRun(
        seeded.estate, ClientProvider(read_only=True), FailoverRequest(to="primary"), RunSettings()
    )
    with pytest.raises(BadInput, match="declare primary"):
        switch.prepare()


def test_no_lag_given_is_the_rpo_objective(seeded: Seeded) -> None:
    switch = FailoverRun(seeded.estate, ClientProvider(read_only=True), FailoverRequest(), RunSettings())
    rpo = dt.timedelta(seconds=seeded.estate.app.objectives.rpo_seconds)
    assert switch._budget(None) == rpo
    assert switch._budget(dt.timedelta(0)) == dt.timedelta(0)
