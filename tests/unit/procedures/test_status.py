"""`dr status` procedure: moto (both regions) + the fake Kubernetes APIs."""

from __future__ import annotations

from typing import Any

from dr.aws.session import ClientProvider
from dr.kube import KubeFactory
from dr.procedures.status import collect_status, gather
from tests.unit.procedures.status_fixtures import Full, full

__all__ = ["full"]


class DeadRegion(ClientProvider):
    """Every call to ``dead`` fails to connect, as when a whole AWS region is lost."""

    dead: str = ""
    services: tuple[str, ...] = ()  # only these services (default: all)

    def client(self, service: str, region: str) -> Any:
        client = super().client(service, region)
        hit = region == self.dead and (not self.services or service in self.services)
        if hit and not getattr(client, "_dr_dead", False):
            from botocore.exceptions import EndpointConnectionError

            def refuse(request: Any, **_: Any) -> None:
                raise EndpointConnectionError(endpoint_url=request.url)

            client.meta.events.register_first("before-send", refuse)
            client._dr_dead = True
        return client


def _status(
    full: Full, clients: ClientProvider | None = None, kube: KubeFactory | None = None
) -> dict[str, Any]:
    report = collect_status(full.estate, clients or full.clients, kube or full.kube)
    return report.to_dict()


def test_baseline_then_resolver_pods_lag_and_failover(full: Full) -> None:
    full.seeded.put_lag(1.5)
    start = len(full.recorder)
    data = _status(full)
    p, s = full.estate.primary, full.estate.secondary
    assert data["active_region"] == p.region
    prim, sec = data["regions"][p.region], data["regions"][s.region]
    assert prim["serving"] is True and sec["serving"] is False
    assert prim["reachable"] and sec["reachable"]
    assert prim["cluster"]["status"] == "ACTIVE"
    ng = p.cluster.nodegroup
    assert (prim["nodegroup"]["min"], prim["nodegroup"]["desired"], prim["nodegroup"]["max"]) == (
        ng.min_size,
        ng.desired_size,
        ng.max_size,
    )
    assert sec["nodegroup"]["desired"] == s.cluster.nodegroup.desired_size
    api = full.estate.app.api
    assert prim["api_pods"]["desired"] == full.estate.replica_count(p, api)
    assert sec["api_pods"]["desired"] == full.estate.replica_count(s, api)
    assert prim["api_pods"]["ready"] == prim["api_pods"]["desired"]
    assert prim["database"]["role"] == "writer" and prim["database"]["replica_lag_seconds"] is None
    assert sec["database"]["role"] == "replica" and sec["database"]["replica_lag_seconds"] == 1.5
    assert sec["database"]["state"] == "ok"
    assert prim["redis"]["status"] == "available"
    assert prim["alb_targets"]["total"] == 0 and prim["alb_targets"]["state"] == "warn"
    assert prim["health_check"]["failover"] == "PRIMARY" and prim["health_check"]["route53_healthy"] is True
    assert sec["health_check"]["failover"] == "SECONDARY"
    assert sec["waf"]["web_acl"] == s.edge.web_acl_name and sec["waf"]["ip_set_entries"] == 2
    # read-only: not one mutating call
    assert [c for c in full.recorder.since(start) if c.mutating] == []

    # -- the resolver's answer is reported; no Kubernetes access is one probe's error
    dr_region = s.region
    report = collect_status(full.estate, full.clients, None, resolver=lambda: (["alb.example"], dr_region))
    for region in report.regions:
        assert region.probes["api_pods"].state == "error"
        assert region.probes["cluster"].state == "ok"
    data = report.to_dict()
    assert data["resolves_to"] == {
        "name": full.estate.app.record,
        "answer": ["alb.example"],
        "region": dr_region,
        "source": "resolver",
        "error": None,
    }
    # the resolver disagrees with Route53's failover choice: said so
    assert any("resolves to" in n for n in data["notes"])

    # -- API pods short of desired
    app = full.estate.app
    api = full.api(s.region)
    api.capacity_fn = lambda _cluster: 3  # the nodes hold 3 pods (all namespaces)
    api.set_scale(app.namespace, app.api.name, 6)
    api.reconcile()
    sec = _status(full)["regions"][s.region]
    assert sec["api_pods"]["desired"] == 6
    assert 0 < sec["api_pods"]["ready"] < 6
    assert sec["api_pods"]["state"] == "warn"

    # -- lag over the RPO budget
    full.seeded.put_lag(full.estate.app.objectives.rpo_seconds + 10)
    sec = _status(full)["regions"][full.estate.secondary.region]
    assert sec["database"]["state"] == "warn"
    assert sec["database"]["replica_lag_seconds"] == full.estate.app.objectives.rpo_seconds + 10

    # -- the active region follows Route53's failover evaluation
    r53 = full.clients.client("route53", "us-east-1")
    hc = full.seeded.health_checks[full.estate.primary.region]
    r53.update_health_check(HealthCheckId=hc, Inverted=True)
    data = _status(full)
    assert data["active_region"] == s.region
    assert data["regions"][s.region]["serving"] is True
    # unhealthy (inverted) on the side traffic left: a warning, not an outage
    hc_p = data["regions"][p.region]["health_check"]
    assert (hc_p["state"], hc_p["route53_healthy"], hc_p["inverted"]) == ("warn", False, True)
    assert data["regions"][s.region]["health_check"]["state"] == "ok"
    # both unhealthy: Route53 answers PRIMARY, whose unhealthy check is now where traffic goes
    r53.update_health_check(HealthCheckId=full.seeded.health_checks[s.region], Inverted=True)
    data = _status(full)
    assert data["active_region"] == p.region
    assert data["regions"][p.region]["health_check"]["state"] == "fail"
    assert any("both failover records are unhealthy" in n for n in data["notes"])


def test_unreachable_region_and_unreadable_route53(full: Full) -> None:
    p, s = full.estate.primary.region, full.estate.secondary.region
    dead = DeadRegion(_session=full.clients._session, max_attempts=1, retry_mode="standard")
    dead.dead = p
    kube = KubeFactory(kubeconfig=full.kubeconfig, clients=dead, read_only=True)
    try:
        data = _status(full, dead, kube)
    finally:
        kube.close()
    prim, sec = data["regions"][p], data["regions"][s]
    assert prim["reachable"] is False and prim["state"] == "unreachable"
    assert "EndpointConnectionError" in prim["error"]
    for probe in ("cluster", "nodegroup", "database", "redis", "alb_targets", "waf"):
        assert prim[probe]["state"] == "unreachable", probe
    assert sec["reachable"] is True
    assert sec["database"]["role"] == "replica" and sec["cluster"]["status"] == "ACTIVE"
    # Route53 is global (its API is not in the lost region here): the active region is still known
    assert data["active_region"] == p
    assert any(p in note and "unreachable" in note for note in data["notes"])

    # -- Route53's API lives in us-east-1: losing that region (here: DR) makes the failover records unreadable
    from dr.aws.route53 import REGION

    dead = DeadRegion(_session=full.clients._session, max_attempts=1, retry_mode="standard")
    dead.dead = REGION
    report = collect_status(full.estate, dead, full.kube, resolver=lambda: (["alb"], p))
    data = report.to_dict()
    assert data["dns"] is None and "EndpointConnectionError" in data["dns_error"]
    assert data["active_region"] == p
    assert any("Route53 unreadable" in n for n in data["notes"])
    assert report.region(p).probes["health_check"].state == "error"


def test_one_failing_probe_is_reported_alone(full: Full) -> None:
    s = full.estate.secondary
    waf = full.clients.client("wafv2", s.region)
    acl = next(a for a in waf.list_web_acls(Scope="REGIONAL")["WebACLs"] if a["Name"] == s.edge.web_acl_name)
    lock = waf.get_web_acl(Name=acl["Name"], Scope="REGIONAL", Id=acl["Id"])["LockToken"]
    waf.delete_web_acl(Name=acl["Name"], Scope="REGIONAL", Id=acl["Id"], LockToken=lock)
    full.clients.client("elbv2", s.region).delete_target_group(TargetGroupArn=full.ids[f"tg-{s.region}"])
    full.clients.client("elasticache", s.region).delete_replication_group(
        ReplicationGroupId=s.cache.replication_group_id
    )
    sec = _status(full)["regions"][s.region]
    assert sec["waf"]["state"] == "fail" and sec["waf"]["web_acl"] is None
    assert sec["alb_targets"]["state"] == "error"
    assert s.edge.target_group_name in sec["alb_targets"]["error"]
    assert sec["redis"]["state"] == "fail" and sec["redis"]["status"] == "deleting"
    assert sec["reachable"] is True
    assert sec["database"]["state"] in ("ok", "warn") and sec["cluster"]["state"] == "ok"


def test_gather_isolates_failures() -> None:
    def boom() -> None:
        raise RuntimeError("kaput")

    out = gather({"a": lambda: 1, "b": boom})
    assert out["a"].value == 1 and out["a"].ok
    assert not out["b"].ok and "kaput" in (out["b"].error or "") and not out["b"].unreachable


def test_some_endpoints_down_is_a_degraded_region_not_a_lost_one(full: Full) -> None:
    full.seeded.put_lag(2.0)
    s = full.estate.secondary.region
    dead = DeadRegion(_session=full.clients._session, max_attempts=1, retry_mode="standard")
    dead.dead, dead.services = s, ("elasticache", "cloudwatch")
    data = _status(full, dead)
    sec = data["regions"][s]
    assert sec["reachable"] is True and sec["state"] != "unreachable"
    assert sec["redis"]["state"] == "unreachable"
    # CloudWatch not answering hides the lag, not the database's role and status
    assert sec["database"]["role"] == "replica" and sec["database"]["status"] == "available"
    assert (
        sec["database"]["replica_lag_seconds"] is None
        and "EndpointConnectionError" in sec["database"]["error"]
    )
    assert sec["database"]["state"] == "warn"
    assert any("1 of 6 AWS probes did not answer" in n for n in data["notes"])


def test_two_writable_databases_are_named_with_the_unserved_one(full: Full) -> None:
    """After a failover the old primary may be writable again beside the serving database: the
    status report says which one Route53 does not serve and which commands settle it."""
    s = full.estate.secondary
    assert not [n for n in _status(full)["notes"] if "two writable" in n]
    full.clients.client("rds", s.region).promote_read_replica(DBInstanceIdentifier=s.database.identifier)
    (note,) = [n for n in _status(full)["notes"] if "two writable" in n]
    assert s.database.identifier in note and s.region in note  # Route53 still serves the primary
    assert f"dr ops stop-writes --region {s.region}" in note and f"dr reprotect --region {s.region}" in note
