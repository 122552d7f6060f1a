"""R4 cases that may change the estate when the gap they document lets them through (see
test_r4_bad_inputs.py): each runs on its own estate, never beside the shared one."""

from __future__ import annotations

import pytest

from tests.reliability.harness import Estate
from tests.reliability.test_r4_bad_inputs import CASES, Case, _check, _param

pytestmark = pytest.mark.slow

PRIVATE = [c for c in CASES if c.fresh]


@pytest.mark.parametrize("case", [_param(c) for c in PRIVATE], ids=[c.id for c in PRIVATE])
def test_bad_input_on_a_private_estate(fresh_estate: Estate, case: Case) -> None:
    _check(fresh_estate, case)
