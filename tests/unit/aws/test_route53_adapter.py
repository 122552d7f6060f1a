"""Route53 adapter against moto."""

from __future__ import annotations

import pytest
from moto import mock_aws

from dr.aws.route53 import Route53
from dr.aws.session import ClientProvider
from dr.errors import NotFound


@pytest.fixture
def r53():  # type: ignore[no-untyped-def]
    with mock_aws():
        yield Route53(ClientProvider())


def test_zone_lookup_names_the_zone(r53: Route53) -> None:
    with pytest.raises(NotFound) as err:
        r53.find_zone("example.com")
    assert "example.com" in err.value.message
    r53.client.create_hosted_zone(Name="example.com", CallerReference="1")
    r53.client.create_hosted_zone(Name="notexample.com", CallerReference="2")
    zone = r53.find_zone("example.com.")
    assert zone.name == "example.com" and not zone.private


def test_health_check_update_and_change_status(r53: Route53) -> None:
    hc = r53.client.create_health_check(
        CallerReference="a",
        HealthCheckConfig={"Type": "HTTPS", "FullyQualifiedDomainName": "a.example.com", "Port": 443},
    )["HealthCheck"]["Id"]
    r53.client.change_tags_for_resource(
        ResourceType="healthcheck", ResourceId=hc, AddTags=[{"Key": "Name", "Value": "site-health"}]
    )
    check = r53.health_check(hc)
    assert check.name == "site-health" and not check.inverted
    assert r53.health_status(hc).endpoint_healthy
    after = r53.update_health_check(check, inverted=True)
    assert after.inverted and not after.disabled
    r53.client.create_hosted_zone(Name="example.com", CallerReference="z")
    z = r53.find_zone("example.com")
    change = r53.change(
        z,
        [
            {
                "Action": "UPSERT",
                "ResourceRecordSet": {
                    "Name": "api.example.com",
                    "Type": "A",
                    "TTL": 60,
                    "ResourceRecords": [{"Value": "192.0.2.1"}],
                },
            }
        ],
        "test",
    )
    assert r53.change_status(change) == "INSYNC"
    recs = r53.records(z, "api.example.com")
    assert [(r.name, r.type, r.values) for r in recs] == [("api.example.com", "A", ("192.0.2.1",))]
    assert r53.test_dns_answer(z, "api.example.com", "A") is None  # moto: not offered


def test_records_of_a_name_stop_paging_past_it(r53: Route53) -> None:
    """Route53 allows 5 requests/s per account: reading one name must not page the whole zone."""
    r53.client.create_hosted_zone(Name="example.com", CallerReference="z")
    zone = r53.find_zone("example.com")

    def a(name: str, ip: str, **extra: object) -> dict[str, object]:
        rrs = {"Name": name, "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": ip}], **extra}
        return {"Action": "CREATE", "ResourceRecordSet": rrs}

    wanted = [
        a("api.example.com", "192.0.2.1", SetIdentifier="p", Failover="PRIMARY"),
        a("api.example.com", "192.0.2.2", SetIdentifier="s", Failover="SECONDARY"),
    ]
    # 700 names sorting after api.example.com (reversed labels: com.example.api < com.example.db-…)
    after = [a(f"db-{i:04d}.example.com", "192.0.2.9") for i in range(700)]
    for i in range(0, len(after), 100):
        r53.client.change_resource_record_sets(
            HostedZoneId=zone.id, ChangeBatch={"Changes": after[i : i + 100]}
        )
    r53.client.change_resource_record_sets(HostedZoneId=zone.id, ChangeBatch={"Changes": wanted})
    pages: list[str] = []
    r53.client.meta.events.register(
        "before-call.route53.ListResourceRecordSets", lambda **kw: pages.append(kw["model"].name)
    )
    recs = r53.records(zone, "api.example.com")
    assert sorted(r.set_identifier or "" for r in recs) == ["p", "s"]
    assert len(pages) == 1  # the first page (300 records) already passed the name
    assert [r.name for r in r53.records(zone, "db-0699.example.com")] == ["db-0699.example.com"]
