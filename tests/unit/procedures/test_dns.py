"""DNS evaluation rules (Route53 failover semantics) and the desired-state computation."""

from __future__ import annotations

from typing import Any

import pytest

from dr.aws.route53 import HealthCheck, HealthStatus, HostedZone, RecordSet, effective_healthy
from dr.steps.dns_records import DnsState, FailoverRecord, desired_changes, region_of

W, E = "us-west-2", "us-east-1"


def _check(inverted: bool = False, disabled: bool = False, hid: str = "hc") -> HealthCheck:
    return HealthCheck(hid, "HTTPS", "x", inverted, disabled, 1, hid)


@pytest.mark.parametrize(
    ("ok", "inverted", "disabled", "expected"),
    [
        (True, False, False, True),
        (False, False, False, False),
        (True, True, False, False),  # inverted healthy endpoint → unhealthy
        (False, True, False, True),  # inverted failing endpoint → healthy (why we never invert a failing one)
        (False, False, True, True),  # disabled → always healthy
        (True, True, True, True),
    ],
)
def test_effective_healthy(ok: bool, inverted: bool, disabled: bool, expected: bool) -> None:
    status = HealthStatus("hc", 3, 3 if ok else 0)
    assert effective_healthy(_check(inverted, disabled), status) is expected


@pytest.mark.parametrize(
    ("successes", "observations", "healthy"),
    [
        (3, 16, True),  # 18.75 % > 18 %: Route53 serves it (a majority rule said unhealthy)
        (2, 16, False),  # 12.5 %
        (8, 16, True),  # 50 %: healthy for Route53, not "more than half"
        (18, 100, False),  # exactly 18 %: "18 % or fewer" is unhealthy
        (19, 100, True),
        (9, 50, False),  # 18 % again, other denominator
        (1, 3, True),  # the sandbox's three checkers: one success is 33 %
        (0, 3, False),
        (0, 0, False),  # no observation: no verdict of healthy
    ],
)
def test_more_than_18_percent_of_checkers(successes: int, observations: int, healthy: bool) -> None:
    assert HealthStatus("h", observations, successes).endpoint_healthy is healthy


def test_unreachable_means_most_checkers_got_no_http_answer() -> None:
    timeout = "Failure: Connection timed out. The endpoint or the internet connection is down"
    refused = "Failure: Connection refused. The endpoint is down"
    http503 = "Failure: HTTP Status Code 503, Service Unavailable. Resolved IP: 10.0.0.1"
    ok = "Success: HTTP Status Code 200, OK"
    assert HealthStatus("h", 3, 0, (timeout, refused, http503)).endpoint_unreachable
    assert not HealthStatus("h", 3, 0, (http503, http503, timeout)).endpoint_unreachable  # answers 503
    assert not HealthStatus("h", 3, 1, (ok, http503, timeout)).endpoint_unreachable
    assert not HealthStatus("h", 0, 0).endpoint_unreachable  # no observation: no verdict


def _rec(region: str, role: str, *, inverted: bool = False, disabled: bool = False) -> FailoverRecord:
    rec = RecordSet(
        "api.example.com", "A", f"site-{region}", role, f"hc-{region}", f"alb.{region}.elb.amazonaws.com"
    )
    return FailoverRecord(
        rec, region, _check(inverted, disabled, f"hc-{region}"), HealthStatus(f"hc-{region}", 3, 3)
    )


def _state(*recs: FailoverRecord) -> DnsState:
    return DnsState(HostedZone("Z", "example.com", False), "api.example.com", list(recs), W)


def test_healthcheck_failover_inverts_primary_only() -> None:
    changes, roles = desired_changes(_state(_rec(W, "PRIMARY"), _rec(E, "SECONDARY")), E, "healthcheck")
    assert roles == {} and changes == [(f"hc-{W}", f"hc-{W}", True, False)]


def test_failback_clears_inversions() -> None:
    state = _state(_rec(W, "PRIMARY", inverted=True), _rec(E, "SECONDARY", disabled=True))
    changes, roles = desired_changes(state, W, "healthcheck")
    assert roles == {} and sorted(changes) == [
        (f"hc-{E}", f"hc-{E}", False, False),
        (f"hc-{W}", f"hc-{W}", False, False),
    ]


def test_records_swap_roles_and_clear_inversions() -> None:
    state = _state(_rec(W, "PRIMARY", inverted=True), _rec(E, "SECONDARY"))
    changes, roles = desired_changes(state, E, "records")
    assert roles == {f"site-{W}": "SECONDARY", f"site-{E}": "PRIMARY"}
    assert changes == [(f"hc-{W}", f"hc-{W}", False, False)]


def test_forced_move_makes_target_primary_and_inverts_the_healthy_other() -> None:
    changes, roles = desired_changes(
        _state(_rec(W, "PRIMARY"), _rec(E, "SECONDARY", disabled=True)), E, "records", pin_target=True
    )
    assert roles == {f"site-{W}": "SECONDARY", f"site-{E}": "PRIMARY"}
    # the old region's healthy check inverted; a disabled check (older toolkit) re-enabled
    assert sorted(changes) == [(f"hc-{E}", f"hc-{E}", False, False), (f"hc-{W}", f"hc-{W}", True, False)]


def test_evaluate_target_health_beats_a_disabled_or_inverted_check() -> None:
    """An alias with EvaluateTargetHealth is unhealthy while its target (the ALB, same /health)
    fails, whatever the health check's Disabled/Inverted say."""
    alias = RecordSet(
        "api.example.com", "A", "s", "PRIMARY", "hc", "alb.example.com", evaluate_target_health=True
    )
    failing = HealthStatus("hc", 3, 0)
    assert not FailoverRecord(alias, W, _check(disabled=True), failing).healthy
    assert not FailoverRecord(alias, W, _check(inverted=True), failing).healthy
    plain = RecordSet("api.example.com", "A", "s", "PRIMARY", "hc", "alb.example.com")
    assert FailoverRecord(plain, W, _check(disabled=True), failing).healthy


def test_satisfied_state_has_no_changes() -> None:
    assert desired_changes(
        _state(_rec(W, "PRIMARY", inverted=True), _rec(E, "SECONDARY")), E, "healthcheck"
    ) == (
        [],
        {},
    )
    assert desired_changes(_state(_rec(W, "SECONDARY"), _rec(E, "PRIMARY")), E, "records") == ([], {})


def test_region_of_record(estate: Any) -> None:
    p, s = estate.primary, estate.secondary
    by_dns = RecordSet("x", "A", "whatever", "PRIMARY", None, f"lb-1.{s.region}.elb.amazonaws.com")
    assert region_of(by_dns, estate) == s.region  # the target wins over the role
    by_alb = RecordSet("x", "A", None, "SECONDARY", None, f"{p.edge.alb_name}-99.example")
    assert region_of(by_alb, estate) == p.region
    by_setid = RecordSet("x", "A", s.site.name, "PRIMARY", None, None, values=("203.0.113.9",))
    assert region_of(by_setid, estate) == s.region
    by_role = RecordSet("x", "A", "a", "SECONDARY", None, None, values=("203.0.113.9",))
    assert region_of(by_role, estate) == s.region
