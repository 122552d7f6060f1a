"""What Route53's checkers conclude, and when."""

from __future__ import annotations

from typing import Any

from dr.sandbox.fakeaws.health_checks import HealthEvaluator


def test_health_change_is_reported_only_after_the_evaluation_delay() -> None:
    now = [1000.0]
    truth = {"us-west-2": True}
    ev = HealthEvaluator(["us-west-2"], lambda r: truth[r], lambda: 10.0, clock=lambda: now[0])
    ev.tick()
    assert ev.healthy("us-west-2")
    truth["us-west-2"] = False
    ev.tick()
    assert ev.healthy("us-west-2")  # checkers have not agreed yet
    now[0] += 9.9
    ev.tick()
    assert ev.healthy("us-west-2")
    now[0] += 0.2
    ev.tick()
    assert not ev.healthy("us-west-2")
    # A flap shorter than the delay is never reported.
    truth["us-west-2"] = True
    ev.tick()
    now[0] += 5
    truth["us-west-2"] = False
    ev.tick()
    now[0] += 6
    ev.tick()
    assert not ev.healthy("us-west-2")


def test_probe_exception_counts_unhealthy() -> None:
    def boom(region: str) -> bool:
        raise OSError("refused")

    ev = HealthEvaluator(["r"], boom, lambda: 0.0)
    ev.tick()
    assert not ev.healthy("r")


def test_reports_say_whether_the_endpoint_answered_and_follow_the_reported_state() -> None:
    """A 503 is an answer (Route53: "HTTP Status Code 503"), a bare False is no answer; the report
    changes together with the (delayed) reported state, never ahead of it."""
    from dr.aws.route53 import answered
    from dr.sandbox.fakeaws.health_checks import NO_ANSWER, http_report

    now = [0.0]
    truth: dict[str, Any] = {"r": http_report(200)}
    ev = HealthEvaluator(["r"], lambda r: truth[r], lambda: 10.0, clock=lambda: now[0])
    ev.start()
    ev.stop()
    assert ev.healthy("r") and ev.report("r").startswith("Success: HTTP Status Code 200")
    truth["r"] = http_report(503)
    ev.tick()
    assert ev.healthy("r") and ev.report("r").startswith("Success")  # not reported yet
    now[0] += 10.1
    ev.tick()
    assert not ev.healthy("r")
    assert ev.report("r").startswith("Failure: HTTP Status Code 503") and answered(ev.report("r"))
    truth["r"] = False  # the endpoint stops answering: still unhealthy, the report says why
    ev.tick()
    assert ev.report("r") == NO_ANSWER and not answered(NO_ANSWER)
