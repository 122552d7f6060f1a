"""Database: RDS PostgreSQL — the Multi-AZ primary, or the cross-region read replica of it.

Reconciliation contract (``dr reconcile`` relies on it; see docs/pulumi.md):

* The component's logical name, the instance's logical name (``db``), its KMS key (``data-key``)
  and its physical identifier (``site.database.identifier``) never depend on the stack's role.
* The only role-dependent inputs are the primary-only settings (engine, version, master user,
  master password, final snapshot, automated backups) and ``replicate_source_db`` (standby only).
* The app's secret (the master credentials) belongs to the *home* stack whatever its role, like
  the zone and the lock table: it is a multi-region secret whose primary copy lives in the home
  stack's region and whose replica Secrets Manager keeps in the peer's region.

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


@dataclass(frozen=True)
class SecretReplica:
    region: str
    kms_key_id: str


@dataclass
class DatabaseArgs:
    cfg: StackConfig
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    # Standby only: the primary's DB instance ARN (from the StackReference).
    source_db_arn: pulumi.Input[str] | None = None
    # Home stack only: where the app's secret is replicated (the peer's region) and the KMS key
    # the replica is encrypted with there (the peer site's data key, by alias). None = the peer
    # stack owns the secret and this stack reads its replica in its own region.
    secret_replica: SecretReplica | None = None


class DatabaseComponent(pulumi.ComponentResource):
    """The site's RDS instance, its own KMS key and the app's master credentials (see ``_app_secret``)."""

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
        self.key_alias = aws.kms.Alias(
            "data-key", name=kms_alias(site), target_key_id=self.key.key_id, opts=child(self)
        )
        subnets = aws.rds.SubnetGroup(
            "subnets",
            name=db_subnet_group(site),
            subnet_ids=args.subnet_ids,
            tags=tags(cfg),
            opts=child(self),
        )

        self._app_secret(cfg, args.secret_replica)

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
                # The estate's secret holds the password (never `manage_master_user_password`:
                # RDS would rotate it behind the toolkit's back, in a secret that cannot be
                # replicated to the DR region).
                "password": self.credentials.apply(_password),
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
            # Pulumi sets the master password only when it creates the instance; from then on
            # `dr ops rotate-db-secret` owns it (ModifyDBInstance + the secret), and a `pulumi up`
            # must never send a password back (a promoted replica also gets none on reconcile:
            # its state has no password, so ignore_changes leaves it out of the update).
            opts=data_store(self, ignore_changes=["password"]),
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
        self.register_outputs(
            {
                "identifier": self.instance.identifier,
                "arn": self.instance.arn,
                "endpoint": self.instance.endpoint,
                "kmsKeyArn": self.key.arn,
                "appSecretArn": self.app_secret_arn,
            }
        )

    def _app_secret(self, cfg: StackConfig, replica: SecretReplica | None) -> None:
        """The app's master credentials: ``self.credentials`` (their CURRENT value in this region,
        a Pulumi secret), ``self.app_secret_arn`` and, in the home stack, the secret itself.

        Invariant: Pulumi writes the secret's value once, when it creates the secret (a random
        password); afterwards only `dr ops rotate-db-secret` writes it (``ignore_changes``), and
        every reader takes the version current in ITS OWN region, so a `pulumi up` never restores
        an old password and the peer stack deploys without the home region.
        """
        app = cfg.app
        secret_id = app.db_secret.secrets_manager_id
        here = pulumi.InvokeOutputOptions(parent=self)
        if replica is None:
            # The peer (home) stack owns the secret; read the replica Secrets Manager keeps here,
            # encrypted with this site's key: on a new estate the key must exist first (the
            # replica fails without it; docs/pulumi.md, "First deployment").
            current = aws.secretsmanager.get_secret_version_output(
                secret_id=secret_id,
                region=cfg.region,
                opts=pulumi.InvokeOutputOptions(parent=self, depends_on=[self.key_alias]),
            )
            self.app_secret: aws.secretsmanager.Secret | None = None
            self.app_secret_arn: pulumi.Output[str] = current.secret_arn
            self.credentials: pulumi.Output[str] = pulumi.Output.secret(current.secret_string)
            return
        self.app_secret = aws.secretsmanager.Secret(
            "app-secret",
            name=secret_id,
            description=f"{app.name} database master credentials (primary copy {cfg.region}, replica {replica.region})",
            kms_key_id=self.key.arn,
            replicas=[
                aws.secretsmanager.SecretReplicaArgs(region=replica.region, kms_key_id=replica.kms_key_id)
            ],
            recovery_window_in_days=7,
            tags=tags(cfg),
            opts=data_store(self),
        )
        # A new random password on every run, used only when the version is created: the
        # SecretVersion ignores later values, and the instance takes its password from the
        # secret's current value (so an instance created in a later run than the secret still
        # gets the password the secret holds).
        initial = aws.secretsmanager.get_random_password_output(
            password_length=40, exclude_punctuation=True, opts=here
        ).random_password
        version = aws.secretsmanager.SecretVersion(
            "app-secret",
            secret_id=self.app_secret.id,
            secret_string=pulumi.Output.secret(initial).apply(
                lambda password: json.dumps(
                    {
                        "engine": "postgres",
                        "port": app.database.port,
                        "dbname": app.database.db_name,
                        "username": app.database.username,
                        "password": password,
                        "dbInstanceIdentifier": cfg.site.database.identifier,
                    },
                    sort_keys=True,
                )
            ),
            opts=child(self, ignore_changes=["secret_string"]),
        )
        current = aws.secretsmanager.get_secret_version_output(
            secret_id=self.app_secret.arn,
            region=cfg.region,
            opts=pulumi.InvokeOutputOptions(parent=self, depends_on=[version]),
        )
        self.app_secret_arn = self.app_secret.arn
        self.credentials = pulumi.Output.secret(current.secret_string)


def _password(secret_string: str) -> str | None:
    """The ``password`` of the app's secret (None: a secret from before the estate owned it)."""
    value = json.loads(secret_string).get("password")
    return str(value) if value else None
