"""R4 cases that would change the estate if their gate regressed, or that perturb the sandbox
beyond the case (the realism layer's health reports lag a change): each runs on its own estate,
never beside the shared one (see test_r4_bad_inputs.py)."""

from __future__ import annotations

import pytest

from tests.reliability.harness import Estate
from tests.reliability.test_r4_bad_inputs import CASES, Case, _check, _param

pytestmark = pytest.mark.slow

PRIVATE = [c for c in CASES if c.fresh]


@pytest.mark.parametrize("case", [_param(c) for c in PRIVATE], ids=[c.id for c in PRIVATE])
def test_bad_input_on_a_private_estate(fresh_estate: Estate, case: Case) -> None:
    _check(fresh_estate, case)
