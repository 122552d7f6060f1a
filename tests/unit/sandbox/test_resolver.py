"""Failover routing and TTL caching of the sandbox resolver (no moto: candidates are injected)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from dr.sandbox.latency import LatencyProfile
from dr.sandbox.resolver import Candidate, NoSuchName, Resolver, ResolverServer, cache_seconds, choose

P = Candidate("lb-west.example.com", "CNAME", 60, "PRIMARY", "west", "hc-west")
S = Candidate("lb-east.example.com", "CNAME", 60, "SECONDARY", "east", "hc-east")


def test_choose_follows_route53_failover_rules() -> None:
    assert choose([S, P], lambda hc: True) == P
    assert choose([P, S], lambda hc: hc != "hc-west") == S
    # Every record unhealthy: Route53 answers the primary.
    assert choose([P, S], lambda hc: False) == P
    # A record without a health check is always healthy.
    bare = Candidate("lb-east.example.com", "CNAME", 60, "SECONDARY", "east", None)
    assert choose([P, bare], lambda hc: False) == bare
    simple = Candidate("1.2.3.4", "A", 300, None, None, None)
    assert choose([simple], lambda hc: False) == simple
    assert choose([], lambda hc: True) is None


def test_cache_seconds_by_profile() -> None:
    assert cache_seconds(60, LatencyProfile("none")) == 0
    assert 0 < cache_seconds(60, LatencyProfile("fast")) < 1
    assert cache_seconds(60, LatencyProfile("realistic", time_scale=0.5)) == 30


def test_answers_are_cached_for_the_scaled_ttl() -> None:
    now = [0.0]
    healthy = {"hc-west": True, "hc-east": True}
    resolver = Resolver(
        LatencyProfile("realistic", time_scale=0.1),  # TTL 60 s -> 6 s
        lambda hc: healthy[hc],
        regions_by_value={"lb-west.example.com": "us-west-2", "lb-east.example.com": "us-east-1"},
        health_urls={"us-west-2": "http://w/health", "us-east-1": "http://e/health"},
        candidates=lambda name: [P, S] if name == "api.example.com" else [],
        clock=lambda: now[0],
    )
    first = resolver.resolve("API.example.com.")
    assert (first.region, first.failover, first.health_url, first.cached) == (
        "us-west-2",
        "PRIMARY",
        "http://w/health",
        False,
    )
    healthy["hc-west"] = False
    now[0] = 5.9
    stale = resolver.resolve("api.example.com")
    assert (stale.region, stale.cached) == ("us-west-2", True)  # a resolver keeps the dead region until TTL
    now[0] = 6.1
    fresh = resolver.resolve("api.example.com")
    assert (fresh.region, fresh.failover, fresh.cached) == ("us-east-1", "SECONDARY", False)
    with pytest.raises(NoSuchName):
        resolver.resolve("nope.example.com")


def test_no_caching_with_latency_none() -> None:
    healthy = {"hc-west": True, "hc-east": True}
    resolver = Resolver(LatencyProfile("none"), lambda hc: healthy[hc], candidates=lambda name: [P, S])
    assert resolver.resolve("api.example.com").set_identifier == "west"
    healthy["hc-west"] = False
    assert resolver.resolve("api.example.com").set_identifier == "east"


def test_http_endpoint_resolves_and_serves_region_health() -> None:
    resolver = Resolver(
        LatencyProfile("none"),
        lambda hc: True,
        regions_by_value={"lb-west.example.com": "us-west-2"},
        candidates=lambda name: [P, S] if name == "api.example.com" else [],
    )
    server = ResolverServer(resolver, health=lambda region: region == "us-west-2").start()
    try:
        with urllib.request.urlopen(f"{server.url}/resolve?name=api.example.com", timeout=5) as resp:
            body = json.loads(resp.read())
        assert (body["value"], body["region"]) == ("lb-west.example.com", "us-west-2")
        with pytest.raises(urllib.error.HTTPError) as nx:
            urllib.request.urlopen(f"{server.url}/resolve?name=nope.example.com", timeout=5)
        assert nx.value.code == 404
        with urllib.request.urlopen(f"{server.url}/regions/us-west-2/health", timeout=5) as resp:
            assert resp.status == 200
        with pytest.raises(urllib.error.HTTPError) as down:
            urllib.request.urlopen(f"{server.url}/regions/us-east-1/health", timeout=5)
        assert down.value.code == 503
    finally:
        server.stop()
