"""WAF IP set changes: validation, kept entries, idempotence and the lost-update retry."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from moto import mock_aws

from dr.aws import wafv2
from dr.aws.session import CallRecorder, ClientProvider
from dr.errors import BadInput, NotFound, OperationFailed

REGION = "us-west-2"
NAME = "malicious-ips"


@pytest.fixture
def ip_set() -> Any:
    with mock_aws():
        boto3.client("wafv2", region_name=REGION).create_ip_set(
            Name=NAME, Scope="REGIONAL", IPAddressVersion="IPV4", Addresses=["192.0.2.1/32"]
        )
        yield


def _addresses() -> list[str]:
    waf = boto3.client("wafv2", region_name=REGION)
    sid = waf.list_ip_sets(Scope="REGIONAL")["IPSets"][0]["Id"]
    return sorted(waf.get_ip_set(Name=NAME, Scope="REGIONAL", Id=sid)["IPSet"]["Addresses"])


def _concurrent_edit(address: str) -> None:
    waf = boto3.client("wafv2", region_name=REGION)
    sid = waf.list_ip_sets(Scope="REGIONAL")["IPSets"][0]["Id"]
    cur = waf.get_ip_set(Name=NAME, Scope="REGIONAL", Id=sid)
    waf.update_ip_set(
        Name=NAME,
        Scope="REGIONAL",
        Id=sid,
        Addresses=[*cur["IPSet"]["Addresses"], address],
        LockToken=cur["LockToken"],
    )


def test_parse_cidr_normalises_and_refuses() -> None:
    assert str(wafv2.parse_cidr("203.0.113.7")) == "203.0.113.7/32"
    assert str(wafv2.parse_cidr("2001:db8::1")) == "2001:db8::1/128"
    for bad, needle in [
        ("10.0.0.1/24", "10.0.0.0/24"),
        ("300.1.1.1", "not an IP"),
        ("::/0", "every address"),
    ]:
        with pytest.raises(BadInput, match=needle):
            wafv2.parse_cidr(bad)
    with pytest.raises(BadInput):
        wafv2.parse_cidrs([])
    assert len(wafv2.parse_cidrs(["203.0.113.7", "203.0.113.7/32"])) == 1


def test_add_keeps_entries_and_is_idempotent(ip_set: Any) -> None:
    clients = ClientProvider()
    rec = clients.add_recorder(CallRecorder())
    nets = wafv2.parse_cidrs(["203.0.113.7"])
    change = wafv2.change_ip_set(clients, REGION, NAME, add=nets)
    assert change.updated and change.added == ("203.0.113.7/32",)
    assert _addresses() == ["192.0.2.1/32", "203.0.113.7/32"]
    before = len(rec)
    again = wafv2.change_ip_set(clients, REGION, NAME, add=nets)
    assert not again.updated and again.unchanged == ("203.0.113.7/32",)
    assert not [c for c in rec.since(before) if c.operation == "UpdateIPSet"]
    gone = wafv2.change_ip_set(clients, REGION, NAME, remove=nets)
    assert gone.removed == ("203.0.113.7/32",) and _addresses() == ["192.0.2.1/32"]


def test_lost_update_is_retried_on_top_of_the_concurrent_change(ip_set: Any) -> None:
    clients = ClientProvider()
    client = clients.client("wafv2", REGION)
    calls = {"n": 0}

    def race(**_: Any) -> None:
        # Someone else updates the set between our GetIPSet and our UpdateIPSet (first attempt only).
        calls["n"] += 1
        if calls["n"] == 1:
            _concurrent_edit("198.51.100.99/32")

    client.meta.events.register("before-call.wafv2.UpdateIPSet", race)
    change = wafv2.change_ip_set(
        clients, REGION, NAME, add=wafv2.parse_cidrs(["203.0.113.7"]), sleep=lambda _s: None
    )
    assert change.attempts == 2 and change.updated
    # Nothing lost: the existing entry, the concurrent one, and ours.
    assert _addresses() == ["192.0.2.1/32", "198.51.100.99/32", "203.0.113.7/32"]


def test_lost_updates_forever_fail_after_retries(ip_set: Any) -> None:
    clients = ClientProvider()
    client = clients.client("wafv2", REGION)
    counter = iter(range(100))

    def race(**_: Any) -> None:
        _concurrent_edit(f"198.51.100.{next(counter)}/32")

    client.meta.events.register("before-call.wafv2.UpdateIPSet", race)
    with pytest.raises(OperationFailed, match="lost updates"):
        wafv2.change_ip_set(
            clients, REGION, NAME, add=wafv2.parse_cidrs(["203.0.113.7"]), retries=3, sleep=lambda _s: None
        )
    assert "203.0.113.7/32" not in _addresses()


def test_wrong_ip_version_and_missing_set(ip_set: Any) -> None:
    clients = ClientProvider()
    with pytest.raises(BadInput, match="IPv6"):
        wafv2.change_ip_set(clients, REGION, NAME, add=wafv2.parse_cidrs(["2001:db8::/32"]))
    with pytest.raises(NotFound, match="does not exist in us-west-2"):
        wafv2.get_ip_set(clients, REGION, "nope")


def test_dry_run_reports_without_updating(ip_set: Any) -> None:
    change = wafv2.change_ip_set(
        ClientProvider(), REGION, NAME, add=wafv2.parse_cidrs(["203.0.113.7"]), dry_run=True
    )
    assert change.dry_run and change.added == ("203.0.113.7/32",) and not change.updated
    assert _addresses() == ["192.0.2.1/32"]


def test_update_keeps_the_description(ip_set: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """UpdateIPSet "completely replaces the mutable specifications": Description left out is
    cleared by WAF (moto keeps it, so the fake is made to behave as WAF does)."""
    from moto.wafv2.models import FakeIPSet

    def replace_all(self: Any, description: str | None, addresses: list[str]) -> None:
        self.description = description
        self.addresses = addresses
        self.lock_token = str(len(addresses)) + self.lock_token

    monkeypatch.setattr(FakeIPSet, "update", replace_all)
    waf = boto3.client("wafv2", region_name=REGION)
    waf.create_ip_set(
        Name="described", Scope="REGIONAL", IPAddressVersion="IPV4", Addresses=[], Description="blocked by dr"
    )
    wafv2.change_ip_set(ClientProvider(), REGION, "described", add=wafv2.parse_cidrs(["192.0.2.7"]))
    sid = wafv2.find_ip_set_id(ClientProvider(), REGION, "described")
    after = waf.get_ip_set(Name="described", Scope="REGIONAL", Id=sid)["IPSet"]
    assert after["Addresses"] == ["192.0.2.7/32"] and after["Description"] == "blocked by dr"
