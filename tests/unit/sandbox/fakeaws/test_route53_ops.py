"""Route53 change batches as the fake reads them."""

from __future__ import annotations

from dr.sandbox.fakeaws.route53_ops import parse_changes


def test_parse_route53_changes() -> None:
    body = b"""<?xml version="1.0"?><ChangeResourceRecordSetsRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/">
    <ChangeBatch><Changes><Change><Action>CREATE</Action><ResourceRecordSet><Name>api.example.com</Name>
    <Type>CNAME</Type><SetIdentifier>east</SetIdentifier><Failover>SECONDARY</Failover><TTL>60</TTL>
    <ResourceRecords><ResourceRecord><Value>lb.example.com</Value></ResourceRecord></ResourceRecords>
    </ResourceRecordSet></Change></Changes></ChangeBatch></ChangeResourceRecordSetsRequest>"""
    assert parse_changes(body) == [
        {
            "action": "CREATE",
            "name": "api.example.com",
            "type": "CNAME",
            "set_identifier": "east",
            "failover": "SECONDARY",
        }
    ]
    assert parse_changes(b"not xml") == []
