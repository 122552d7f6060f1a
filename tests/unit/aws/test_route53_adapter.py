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
