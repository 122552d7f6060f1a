"""Database: RDS PostgreSQL — the Multi-AZ primary, or the cross-region read replica of it.

Reconciliation contract (``dr reconcile`` relies on it; see docs/pulumi.md):

* The component's logical name, the instance's logical name (``db``), its KMS key (``data-key``)
  and its physical identifier (``site.database.identifier``) never depend on the stack's role.
* The only role-dependent inputs are the primary-only settings (engine, version, master user,
  managed password, final snapshot, automated backups) and ``replicate_source_db`` (standby only).

So after a failover has promoted the replica, switching ``dr-toolkit:role`` of that stack from
``standby`` to ``primary`` keeps the same URN and identifier; Pulumi's diff drops
``replicate_source_db`` (the AWS provider treats that as "promote", an in-place update) and adds
the primary-only settings (in-place updates too: backup retention and window…), and nothing is
replaced — ``protect=True`` would refuse a replacement anyway.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from dr.infra._common import child, data_store, db_subnet_group, kms_alias, tags
from dr.topology import (
    DB_LOG_EXPORTS,
    DB_PERFORMANCE_INSIGHTS_RETENTION_DAYS,
    DB_STORAGE_TYPE,
    StackConfig,
)


@dataclass
class DatabaseArgs:
    cfg: StackConfig
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    # Standby only: the primary's DB instance ARN and its RDS-managed master secret (from the
    # StackReference), and the primary's region (where that secret lives).
    source_db_arn: pulumi.Input[str] | None = None
    source_master_secret_arn: pulumi.Input[str] | None = None
    source_region: pulumi.Input[str] | None = None


class Database(pulumi.ComponentResource):
    """The site's RDS instance, its own KMS key and the app's connection descriptor secret."""

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("dr:infra:Database", name, None, opts)
        cfg, site, app_db = args.cfg, args.cfg.site, args.cfg.app.database
        spec = site.database
        standby = cfg.role == "standby"
        if standby and args.source_db_arn is None:
            raise ValueError(
                f"{cfg.path}: role standby needs the primary's DB ARN (dr-toolkit:primaryStackRef)"
            )

        # One key per region: a cross-region replica must be encrypted with a key of ITS region.
        self.key = aws.kms.Key(
            "data-key",
            description=f"{site.name}: RDS, Performance Insights, ElastiCache, Secrets Manager",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=tags(cfg),
            opts=data_store(self),
        )
        aws.kms.Alias("data-key", name=kms_alias(site), target_key_id=self.key.key_id, opts=child(self))
        subnets = aws.rds.SubnetGroup(
            "subnets",
            name=db_subnet_group(site),
            subnet_ids=args.subnet_ids,
            tags=tags(cfg),
            opts=child(self),
        )

        common: dict[str, Any] = {
            "identifier": spec.identifier,
            "instance_class": spec.instance_class,
            "multi_az": spec.multi_az,
            "storage_encrypted": True,
            "kms_key_id": self.key.arn,
            "maintenance_window": "sun:05:00-sun:06:00",
            "deletion_protection": spec.deletion_protection,
            "performance_insights_enabled": True,
            "performance_insights_kms_key_id": self.key.arn,
            "performance_insights_retention_period": DB_PERFORMANCE_INSIGHTS_RETENTION_DAYS,
            "db_subnet_group_name": subnets.name,
            "vpc_security_group_ids": [args.security_group_id],
            "copy_tags_to_snapshot": True,
            "auto_minor_version_upgrade": True,
            "publicly_accessible": False,
            "port": app_db.port,
            "tags": tags(cfg),
        }
        if standby:
            role_specific: dict[str, Any] = {
                "replicate_source_db": args.source_db_arn,
                # RDS refuses a final snapshot of a read replica.
                "skip_final_snapshot": True,
            }
        else:
            role_specific = {
                "engine": "postgres",
                "engine_version": app_db.engine_version,
                "allocated_storage": spec.allocated_storage,
                "storage_type": DB_STORAGE_TYPE,
                "db_name": app_db.db_name,
                "username": app_db.username,
                # RDS generates and stores the password in Secrets Manager: no plaintext anywhere.
                "manage_master_user_password": True,
                "master_user_secret_kms_key_id": self.key.arn,
                "skip_final_snapshot": False,
                "final_snapshot_identifier": f"{spec.identifier}-final",
                "enabled_cloudwatch_logs_exports": list(DB_LOG_EXPORTS),
                # Automated backups are primary-only: RDS refuses them on a PostgreSQL read replica
                # ("DB Backups not supported on a read replica for engine postgres"); the DR
                # region's recovery point is the replicated backups below. After a promotion,
                # `dr reconcile` makes this stack primary and these are set in place.
                "backup_retention_period": spec.backup_retention_days,
                "backup_window": "03:00-04:00",
            }
        self.instance = aws.rds.Instance(
            "db",
            **common,
            **role_specific,
            opts=data_store(self),
        )

        if standby:
            # Point-in-time recovery IN this region: a logical corruption replicates to the read
            # replica too, and a lost primary region takes its backups with it. The primary's
            # automated backups and transaction logs are replicated here, encrypted with this
            # region's key (`dr readiness` counts their newest restorable time as a recovery point).
            self.backups = aws.rds.InstanceAutomatedBackupsReplication(
                "backups",
                source_db_instance_arn=args.source_db_arn,
                kms_key_id=self.key.arn,
                retention_period=spec.backup_retention_days,
                opts=child(self),
            )
            self.master_secret_arn: pulumi.Output[str] = pulumi.Output.from_input(
                args.source_master_secret_arn or ""
            )
            self.master_secret_region: pulumi.Output[str] = pulumi.Output.from_input(
                args.source_region or cfg.region
            )
        else:
            self.master_secret_arn = self.instance.master_user_secrets.apply(
                lambda secrets: secrets[0].secret_arn if secrets and secrets[0].secret_arn else ""
            )
            self.master_secret_region = pulumi.Output.from_input(cfg.region)

        # The runbook's `<app>/database` secret, one per region: where to connect and which
        # RDS-managed secret holds the password. It never contains the password itself.
        self.app_secret = aws.secretsmanager.Secret(
            "app-secret",
            name=cfg.app.db_secret.secrets_manager_id,
            description=f"{cfg.app.name} database connection in {cfg.region} (password: masterUserSecretArn)",
            kms_key_id=self.key.arn,
            recovery_window_in_days=7,
            tags=tags(cfg),
            opts=child(self),
        )
        aws.secretsmanager.SecretVersion(
            "app-secret",
            secret_id=self.app_secret.id,
            secret_string=pulumi.Output.all(
                self.instance.address, self.master_secret_arn, self.master_secret_region
            ).apply(
                lambda a: json.dumps(
                    {
                        "engine": "postgres",
                        "host": a[0],
                        "port": app_db.port,
                        "dbname": app_db.db_name,
                        "username": app_db.username,
                        "dbInstanceIdentifier": spec.identifier,
                        "masterUserSecretArn": a[1],
                        "masterUserSecretRegion": a[2],
                    },
                    sort_keys=True,
                )
            ),
            opts=child(self),
        )
        self.register_outputs(
            {
                "identifier": self.instance.identifier,
                "arn": self.instance.arn,
                "endpoint": self.instance.endpoint,
                "kmsKeyArn": self.key.arn,
                "masterSecretArn": self.master_secret_arn,
            }
        )
