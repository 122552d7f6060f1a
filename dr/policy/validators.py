"""DR invariants as plain functions over (resource type, props) — no Pulumi import.

Each validator returns a list of violation messages (empty = compliant). ``props`` are the
engine's camelCase resource properties, as a policy pack (and ``dr.infra.mockrun``) sees them.
The policy pack in ``dr/policy/__main__.py`` wraps each one in a ``ResourceValidationPolicy``;
``tests/unit/policy`` runs them on good and bad inputs without the Pulumi CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

RDS = "aws:rds/instance:Instance"
REDIS = "aws:elasticache/replicationGroup:ReplicationGroup"
RECORD = "aws:route53/record:Record"
DYNAMO = "aws:dynamodb/table:Table"

MIN_BACKUP_RETENTION_DAYS = 7
MAX_FAILOVER_TTL = 60

Props = Mapping[str, Any]


def _truthy(value: Any) -> bool:
    """Booleans may arrive as strings from some providers/config ("true")."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _label(props: Props, *keys: str) -> str:
    for key in keys:
        if props.get(key):
            return str(props[key])
    return "<unnamed>"


def _role(props: Props) -> str:
    tags = props.get("tags") or {}
    return str(tags.get("dr:role", "")) if isinstance(tags, Mapping) else ""


def _arn_region(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[3] if len(parts) > 5 and parts[0] == "arn" and parts[3] else None


def rds_multi_az(resource_type: str, props: Props, region: str | None = None) -> list[str]:
    if resource_type != RDS:
        return []
    if not _truthy(props.get("multiAz")):
        return [
            f"RDS instance {_label(props, 'identifier')} is single-AZ: set multi_az=True "
            "(an AZ loss must not need a regional failover)"
        ]
    return []


# Engines whose read replicas can keep automated backups (RDS user guide, read replica
# differences between engines); PostgreSQL replicas cannot.
REPLICA_BACKUP_ENGINES = frozenset({"mysql", "mariadb"})


def _replica_without_backups(props: Props) -> bool:
    """A read replica whose engine cannot keep automated backups. A replica inherits its engine
    and usually does not declare it: undeclared counts as such an engine (this estate is PostgreSQL)."""
    engine = str(props.get("engine") or "").lower()
    return bool(props.get("replicateSourceDb")) and engine not in REPLICA_BACKUP_ENGINES


def rds_backup_retention(resource_type: str, props: Props, region: str | None = None) -> list[str]:
    if resource_type != RDS or _replica_without_backups(props):
        return []
    days = props.get("backupRetentionPeriod")
    if days is None or int(days) < MIN_BACKUP_RETENTION_DAYS:
        return [
            f"RDS instance {_label(props, 'identifier')} keeps backups {days or 0} day(s): "
            f"set backup_retention_period >= {MIN_BACKUP_RETENTION_DAYS} (PITR window of the runbook)"
        ]
    return []


def rds_replica_backups(resource_type: str, props: Props, region: str | None = None) -> list[str]:
    """RDS refuses automated backups on a PostgreSQL read replica ("DB Backups not supported on a
    read replica for engine postgres"): the AWS provider sets them after the create, and `pulumi up`
    fails there (or drifts on every preview)."""
    if resource_type != RDS or not _replica_without_backups(props):
        return []
    days = props.get("backupRetentionPeriod")
    if days is not None and int(days) > 0:
        engine = props.get("engine") or "postgres (inherited)"
        return [
            f"RDS read replica {_label(props, 'identifier')} ({engine}) declares backup_retention_period="
            f"{days}: RDS supports automated backups only on MySQL/MariaDB replicas; omit it (the DR "
            "region's recovery point is aws.rds.InstanceAutomatedBackupsReplication of the source)"
        ]
    return []


def deletion_protection(resource_type: str, props: Props, region: str | None = None) -> list[str]:
    """Primary data stores (tag dr:role=primary, or untagged = assume prod) refuse deletion."""
    if _role(props) == "standby":
        return []
    if resource_type == RDS and not _truthy(props.get("deletionProtection")):
        return [f"RDS instance {_label(props, 'identifier')} (prod data) has no deletion_protection"]
    if resource_type == DYNAMO and not _truthy(props.get("deletionProtectionEnabled")):
        return [f"DynamoDB table {_label(props, 'name')} (prod data) has no deletion_protection_enabled"]
    return []


def rds_estate_owned_password(resource_type: str, props: Props, region: str | None = None) -> list[str]:
    """No RDS-managed master password in a DR estate: RDS rotates it (every 7 days by default) in
    a secret Secrets Manager cannot replicate, so the DR region never holds the current one."""
    if resource_type != RDS or not _truthy(props.get("manageMasterUserPassword")):
        return []
    return [
        f"RDS instance {_label(props, 'identifier')} sets manage_master_user_password: RDS would rotate "
        "the password in a secret the DR region cannot read; take it from the estate's multi-region "
        "secret (password=..., rotation with `dr ops rotate-db-secret`)"
    ]


def encryption_at_rest(resource_type: str, props: Props, region: str | None = None) -> list[str]:
    if resource_type == RDS and not _truthy(props.get("storageEncrypted")):
        # A replica inherits encryption from its source only when it names a key; be explicit.
        return [f"RDS instance {_label(props, 'identifier')} is not storage_encrypted (KMS)"]
    if resource_type == REDIS and not _truthy(props.get("atRestEncryptionEnabled")):
        return [
            f"ElastiCache replication group {_label(props, 'replicationGroupId')} has no at-rest encryption"
        ]
    return []


def replica_in_other_region(resource_type: str, props: Props, region: str | None = None) -> list[str]:
    """A DR replica must live in another region than its source (an identifier = same region)."""
    if resource_type != RDS or not props.get("replicateSourceDb"):
        return []
    source = str(props["replicateSourceDb"])
    here = props.get("region") or region
    source_region = _arn_region(source)
    name = _label(props, "identifier")
    if source_region is None:
        return [
            f"RDS replica {name} replicates {source!r} by identifier, i.e. in its own region: "
            "a DR replica must name the source ARN in another region"
        ]
    if here is None:
        return [f"RDS replica {name}: cannot tell its region to compare with the source's ({source_region})"]
    if source_region == here:
        return [f"RDS replica {name} is in {here}, the same region as its source {source}: no regional DR"]
    return []


def failover_records_have_health_checks(
    resource_type: str, props: Props, region: str | None = None
) -> list[str]:
    if resource_type != RECORD or not props.get("failoverRoutingPolicies"):
        return []
    if not props.get("healthCheckId"):
        return [
            f"Route53 failover record {_label(props, 'name')} ({_label(props, 'setIdentifier')}) has no "
            "health check: Route53 would never fail over away from it"
        ]
    return []


def record_ttl(resource_type: str, props: Props, region: str | None = None) -> list[str]:
    if resource_type != RECORD or props.get("ttl") is None:
        return []
    ttl = int(props["ttl"])
    if ttl > MAX_FAILOVER_TTL:
        return [
            f"Route53 record {_label(props, 'name')} has TTL {ttl}s: use <= {MAX_FAILOVER_TTL}s so resolvers "
            "follow a failover within the RTO"
        ]
    return []


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    check: Callable[[str, Props, str | None], list[str]]


RULES: tuple[Rule, ...] = (
    Rule("rds-multi-az", "RDS instances are Multi-AZ.", rds_multi_az),
    Rule(
        "rds-backup-retention",
        f"RDS primaries keep automated backups for at least {MIN_BACKUP_RETENTION_DAYS} days.",
        rds_backup_retention,
    ),
    Rule(
        "rds-replica-no-backups",
        "RDS read replicas (other than MySQL/MariaDB) declare no automated backups.",
        rds_replica_backups,
    ),
    Rule(
        "rds-estate-owned-password",
        "RDS master passwords come from the estate's multi-region secret, not RDS-managed secrets.",
        rds_estate_owned_password,
    ),
    Rule("prod-deletion-protection", "Production data stores have deletion protection.", deletion_protection),
    Rule("encryption-at-rest", "RDS and ElastiCache encrypt data at rest.", encryption_at_rest),
    Rule(
        "replica-other-region",
        "RDS read replicas are in another region than their source.",
        replica_in_other_region,
    ),
    Rule(
        "failover-health-checks",
        "Route53 failover records carry a health check.",
        failover_records_have_health_checks,
    ),
    Rule("record-ttl", f"Route53 records have a TTL of at most {MAX_FAILOVER_TTL}s.", record_ttl),
)


def violations(resource_type: str, props: Props, region: str | None = None) -> list[tuple[str, str]]:
    """Every (rule name, message) the resource violates."""
    return [(rule.name, msg) for rule in RULES for msg in rule.check(resource_type, props, region)]
