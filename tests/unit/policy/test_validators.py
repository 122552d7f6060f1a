"""The DR policy pack's validators on good and bad resource inputs (no Pulumi CLI)."""

from __future__ import annotations

from typing import Any

import pytest

from dr.policy import validators as v

GOOD_PRIMARY: dict[str, Any] = {
    "identifier": "app-primary",
    "multiAz": True,
    "backupRetentionPeriod": 7,
    "deletionProtection": True,
    "storageEncrypted": True,
    "tags": {"dr:role": "primary"},
}
GOOD_REPLICA: dict[str, Any] = {
    **{k: x for k, x in GOOD_PRIMARY.items() if k != "backupRetentionPeriod"},
    "identifier": "app-replica",
    "replicateSourceDb": "arn:aws:rds:us-west-2:123456789012:db:app-primary",
    "region": "us-east-1",
    "tags": {"dr:role": "standby"},
}
GOOD_REDIS: dict[str, Any] = {"replicationGroupId": "app-redis", "atRestEncryptionEnabled": True}
GOOD_RECORD: dict[str, Any] = {
    "name": "api.example.com",
    "setIdentifier": "prod",
    "failoverRoutingPolicies": [{"type": "PRIMARY"}],
    "healthCheckId": "abc-123",
    "aliases": [{"name": "alb.example", "zoneId": "Z1", "evaluateTargetHealth": True}],
}


@pytest.mark.parametrize(
    ("rtype", "props"),
    [(v.RDS, GOOD_PRIMARY), (v.RDS, GOOD_REPLICA), (v.REDIS, GOOD_REDIS), (v.RECORD, GOOD_RECORD)],
)
def test_compliant_resources_pass_every_rule(rtype: str, props: dict[str, Any]) -> None:
    assert v.violations(rtype, props, "us-east-1") == []


@pytest.mark.parametrize(
    ("rule", "rtype", "props"),
    [
        ("rds-multi-az", v.RDS, {**GOOD_PRIMARY, "multiAz": False}),
        ("rds-multi-az", v.RDS, {k: x for k, x in GOOD_PRIMARY.items() if k != "multiAz"}),
        ("rds-backup-retention", v.RDS, {**GOOD_PRIMARY, "backupRetentionPeriod": 6}),
        ("rds-backup-retention", v.RDS, {**GOOD_PRIMARY, "backupRetentionPeriod": 0}),
        # RDS refuses automated backups on a PostgreSQL read replica (engine inherited or named).
        ("rds-replica-no-backups", v.RDS, {**GOOD_REPLICA, "backupRetentionPeriod": 7}),
        ("rds-replica-no-backups", v.RDS, {**GOOD_REPLICA, "backupRetentionPeriod": 1, "engine": "postgres"}),
        # RDS would rotate a managed password in a secret the DR region cannot read.
        ("rds-estate-owned-password", v.RDS, {**GOOD_PRIMARY, "manageMasterUserPassword": True}),
        ("rds-estate-owned-password", v.RDS, {**GOOD_REPLICA, "manageMasterUserPassword": "true"}),
        ("prod-deletion-protection", v.RDS, {**GOOD_PRIMARY, "deletionProtection": False}),
        # Untagged data stores are treated as production.
        ("prod-deletion-protection", v.RDS, {**GOOD_PRIMARY, "deletionProtection": False, "tags": {}}),
        ("prod-deletion-protection", v.DYNAMO, {"name": "lock", "deletionProtectionEnabled": False}),
        ("encryption-at-rest", v.RDS, {**GOOD_PRIMARY, "storageEncrypted": False}),
        ("encryption-at-rest", v.REDIS, {**GOOD_REDIS, "atRestEncryptionEnabled": False}),
        ("encryption-at-rest", v.REDIS, {**GOOD_REDIS, "atRestEncryptionEnabled": "false"}),
        ("replica-other-region", v.RDS, {**GOOD_REPLICA, "region": "us-west-2"}),
        ("replica-other-region", v.RDS, {**GOOD_REPLICA, "replicateSourceDb": "app-primary"}),
        ("failover-health-checks", v.RECORD, {k: x for k, x in GOOD_RECORD.items() if k != "healthCheckId"}),
        ("failover-health-checks", v.RECORD, {**GOOD_RECORD, "healthCheckId": ""}),
        ("record-ttl", v.RECORD, {"name": "api.example.com", "type": "CNAME", "ttl": 300, "records": ["x"]}),
    ],
)
def test_each_rule_rejects_its_bad_input(rule: str, rtype: str, props: dict[str, Any]) -> None:
    found = v.violations(rtype, props, "us-east-1")
    assert [name for name, _ in found] == [rule], found
    message = found[0][1]
    name = props.get("identifier") or props.get("replicationGroupId") or props.get("name")
    assert name in message, "a violation must name the resource"


def test_replica_region_comes_from_the_provider_when_props_lack_it() -> None:
    props = {k: x for k, x in GOOD_REPLICA.items() if k != "region"}
    assert v.replica_in_other_region(v.RDS, props, "us-east-1") == []
    assert v.replica_in_other_region(v.RDS, props, "us-west-2")
    # Unknown region: refuse rather than pass silently.
    assert v.replica_in_other_region(v.RDS, props, None)


def test_replica_backups_follow_what_the_engine_supports() -> None:
    # no retention, or 0: compliant; MySQL/MariaDB replicas keep backups and are held to the minimum
    assert v.violations(v.RDS, {**GOOD_REPLICA, "backupRetentionPeriod": 0}, "us-east-1") == []
    mysql = {**GOOD_REPLICA, "engine": "mysql"}
    assert [n for n, _ in v.violations(v.RDS, mysql, "us-east-1")] == ["rds-backup-retention"]
    assert v.violations(v.RDS, {**mysql, "backupRetentionPeriod": 7}, "us-east-1") == []


def test_a_password_from_the_estate_secret_is_compliant() -> None:
    props = {**GOOD_PRIMARY, "password": {"__secret__": "digest"}, "manageMasterUserPassword": False}
    assert v.violations(v.RDS, props, "us-east-1") == []


def test_standby_data_stores_are_not_held_to_prod_deletion_protection() -> None:
    props = {**GOOD_REPLICA, "deletionProtection": False}
    assert v.deletion_protection(v.RDS, props) == []


def test_ttl_boundary_and_alias_records() -> None:
    assert v.record_ttl(v.RECORD, {"name": "a.example.com", "ttl": 60}) == []
    assert v.record_ttl(v.RECORD, {"name": "a.example.com", "ttl": 61})
    assert v.record_ttl(v.RECORD, GOOD_RECORD) == []  # alias: no TTL


def test_other_resource_types_are_ignored() -> None:
    assert v.violations("aws:s3/bucket:Bucket", {"multiAz": False, "ttl": 3600}) == []


def test_pack_policies_report_through_the_pulumi_policy_api() -> None:
    from pulumi_policy import (
        PolicyCustomTimeouts,
        PolicyProviderResource,
        PolicyResourceOptions,
        ResourceValidationArgs,
    )

    from dr.policy.pack import policies

    pols = {p.name: p for p in policies()}
    assert set(pols) == {rule.name for rule in v.RULES}
    provider = PolicyProviderResource("pulumi:providers:aws", {"region": "us-west-2"}, "urn:p", "default")
    opts = PolicyResourceOptions(
        protect=True,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
    )
    props = {k: x for k, x in GOOD_REPLICA.items() if k != "region"}
    args = ResourceValidationArgs(v.RDS, props, "urn:db", "db", opts, provider)
    reported: list[str] = []
    pols["replica-other-region"].validate(args, lambda msg, urn=None: reported.append(msg))
    assert len(reported) == 1 and "us-west-2" in reported[0]
    reported.clear()
    pols["rds-multi-az"].validate(args, lambda msg, urn=None: reported.append(msg))
    assert reported == []
