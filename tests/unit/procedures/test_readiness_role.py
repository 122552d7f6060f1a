"""The scheduled readiness Lambda's role grants what a readiness run really calls.

The DR stack gives the function a role with ``READ_ACTIONS`` (dr/infra/readiness_alarms.py) plus
``cloudwatch:PutMetricData``. Here the same run the handler makes (``check_readiness`` then
``publish``) goes end to end in moto with every AWS call recorded: a call the role does not grant
would be AccessDenied in the Lambda on a real account, where moto lets it through.
"""

from __future__ import annotations

from dr.aws.iam_names import iam_action
from dr.infra.readiness_alarms import READ_ACTIONS
from dr.procedures.readiness import check_readiness
from dr.procedures.readiness_metrics import publish
from tests.unit.procedures.status_fixtures import Full, full
from tests.unit.procedures.test_readiness import _cert

__all__ = ["full"]

WRITES = {"cloudwatch:PutMetricData"}
# Granted on their own statements, scoped to the DR region's secret and data key.
SCOPED = {"secretsmanager:GetSecretValue"}


def _run(full: Full) -> list[tuple[str, str]]:
    """(IAM action, region) of every call the handler's run makes, certificates present."""
    full.seeded.put_lag(1.0)
    for region in (full.estate.primary.region, full.estate.secondary.region):
        cert, key = _cert(200)
        full.clients.client("acm", region).import_certificate(Certificate=cert, PrivateKey=key)
    start = len(full.recorder)
    report = check_readiness(full.estate, full.clients, full.kube)
    publish(report, full.estate, full.clients)
    return [(iam_action(c.service, c.operation), c.region) for c in full.recorder.since(start)]


def test_every_call_of_a_readiness_run_is_granted_to_the_lambda_role(full: Full) -> None:
    calls = _run(full)
    called = {action for action, _ in calls}
    assert "cloudwatch:PutMetricData" in called  # the run did publish
    missing = sorted(called - set(READ_ACTIONS) - WRITES - SCOPED)
    assert not missing, f"the readiness Lambda's role lacks {missing}"
    # the secret statement names the DR region's secret only: the run must not read another
    regions = {region for action, region in calls if action in SCOPED}
    assert regions == {full.estate.secondary.region}, regions


def test_the_role_grants_no_action_a_run_never_calls(full: Full) -> None:
    called = {action for action, _ in _run(full)}
    unused = sorted(set(READ_ACTIONS) - called)
    assert not unused, f"granted to the readiness Lambda but never called: {unused}"
