"""Secrets Manager (values never printed), ACM name matching, ELBv2 target health."""

from __future__ import annotations

import json
from typing import Any

import boto3
from moto import mock_aws

from dr.aws import acm, elbv2, secretsmanager
from dr.aws.session import ClientProvider

REGION = "us-west-2"


def test_secret_value_never_prints_itself() -> None:
    value = secretsmanager.SecretValue("hunter2-very-secret")
    for text in (repr(value), str(value), f"{value}", repr([value]), repr({"v": value})):
        assert "hunter2" not in text
    assert value.reveal() == "hunter2-very-secret"
    assert secretsmanager.SecretValue('{"password": "x"}').json() == {"password": "x"}
    assert secretsmanager.SecretValue("not json").json() == {}


def test_get_and_put_secret() -> None:
    with mock_aws():
        boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="app/db", SecretString=json.dumps({"password": "s3cr3t-pa55"})
        )
        clients = ClientProvider()
        info = secretsmanager.get_secret(clients, REGION, "app/db")
        assert info.value.json() == {"password": "s3cr3t-pa55"} and "s3cr3t" not in repr(info)
        secretsmanager.put_secret(
            clients, REGION, "app/db", secretsmanager.SecretValue(json.dumps({"password": "b"}))
        )
        assert secretsmanager.get_secret(clients, REGION, "app/db").value.json() == {"password": "b"}


def test_acm_covers_wildcards_and_lists_matching_certificates() -> None:
    assert acm.covers("*.example.com", "api.example.com")
    assert not acm.covers("*.example.com", "a.b.example.com")
    assert not acm.covers("*.example.com", "example.com")
    assert acm.covers("API.example.com.", "api.example.com")
    with mock_aws():
        client = boto3.client("acm", region_name=REGION)
        client.request_certificate(DomainName="*.example.com")
        client.request_certificate(DomainName="other.org")
        certs = acm.certificates_for(ClientProvider(), REGION, "api.example.com")
        assert [c.domain for c in certs] == ["*.example.com"]
        assert certs[0].status == "PENDING_VALIDATION"


def test_acm_lists_ec_and_large_rsa_certificates(monkeypatch: Any) -> None:
    """ListCertificates without Includes.keyTypes returns RSA_1024/RSA_2048 only (ACM's default
    filter; moto returns everything, so the fake is made to filter as ACM does)."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from moto.acm.models import AWSCertificateManagerBackend

    from tests.unit.cli.test_ops_cmd import _self_signed

    listed = AWSCertificateManagerBackend.list_certificates

    def acm_default(self: Any, statuses: list[str], includes: dict[str, Any]) -> Any:
        return listed(self, statuses, includes or {"keyTypes": ["RSA_1024", "RSA_2048"]})

    monkeypatch.setattr(AWSCertificateManagerBackend, "list_certificates", acm_default)
    keys = {
        "ec.example.com": ec.generate_private_key(ec.SECP256R1()),
        "rsa4096.example.com": rsa.generate_private_key(public_exponent=65537, key_size=4096),
        "rsa2048.example.com": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    }
    with mock_aws():
        client = boto3.client("acm", region_name=REGION)
        for name, key in keys.items():
            cert, pem_key = _self_signed(name, (-1, 90), key)
            client.import_certificate(Certificate=cert, PrivateKey=pem_key)
        found = {c.domain for name in keys for c in acm.certificates_for(ClientProvider(), REGION, name)}
        assert found == set(keys)


def test_target_health() -> None:
    with mock_aws():
        elb = boto3.client("elbv2", region_name=REGION)
        elb.create_target_group(Name="tg", TargetType="lambda")
        health = elbv2.target_health(ClientProvider(), REGION, "tg")
        assert health.name == "tg" and health.targets == () and health.healthy == 0
