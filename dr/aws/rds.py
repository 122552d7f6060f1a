"""RDS adapter: DB instances, snapshots, point-in-time restore and replica promotion.

Thin functions over a client from ``ClientProvider.client("rds", region)``. Every ``ClientError``
becomes a typed :mod:`dr.errors` error naming the resource, the region and the AWS code; list calls
paginate; results are small frozen dataclasses.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dr.aws.calls import aware as _aware
from dr.aws.calls import aws_errors
from dr.aws.session import ClientProvider, client_error_type
from dr.errors import from_client_error


@dataclass(frozen=True)
class DbInstance:
    """What the procedures need to know about one DB instance."""

    identifier: str
    region: str
    arn: str
    status: str
    engine: str
    engine_version: str | None
    instance_class: str
    multi_az: bool
    encrypted: bool
    kms_key_id: str | None
    endpoint: str | None
    port: int | None
    # ARN or id of the source when this is a read replica (instance or Aurora cluster source).
    replica_source: str | None
    replicas: tuple[str, ...]
    latest_restorable_time: dt.datetime | None
    backup_retention_days: int
    created: dt.datetime | None
    subnet_group: str | None
    security_groups: tuple[str, ...]
    parameter_group: str | None
    deletion_protection: bool
    storage_type: str | None = None
    publicly_accessible: bool = False
    # The RDS-managed master secret (ManageMasterUserPassword); None when the caller owns the password.
    master_user_secret_arn: str | None = None

    @property
    def is_replica(self) -> bool:
        return bool(self.replica_source)

    def to_dict(self) -> dict[str, Any]:
        return {
            "identifier": self.identifier,
            "region": self.region,
            "arn": self.arn,
            "status": self.status,
            "engine": self.engine,
            "engine_version": self.engine_version,
            "instance_class": self.instance_class,
            "multi_az": self.multi_az,
            "encrypted": self.encrypted,
            "kms_key_id": self.kms_key_id,
            "endpoint": self.endpoint,
            "port": self.port,
            "replica_source": self.replica_source,
            "replicas": list(self.replicas),
            "latest_restorable_time": self.latest_restorable_time,
            "backup_retention_days": self.backup_retention_days,
            "created": self.created,
            "subnet_group": self.subnet_group,
            "security_groups": list(self.security_groups),
            "parameter_group": self.parameter_group,
            "deletion_protection": self.deletion_protection,
        }

    @classmethod
    def from_api(cls, raw: dict[str, Any], region: str) -> DbInstance:
        endpoint = raw.get("Endpoint") or {}
        groups = raw.get("DBParameterGroups") or []
        return cls(
            identifier=raw["DBInstanceIdentifier"],
            region=region,
            arn=raw.get("DBInstanceArn", ""),
            status=raw.get("DBInstanceStatus", "unknown"),
            engine=raw.get("Engine", ""),
            engine_version=raw.get("EngineVersion"),
            instance_class=raw.get("DBInstanceClass", ""),
            multi_az=bool(raw.get("MultiAZ", False)),
            encrypted=bool(raw.get("StorageEncrypted", False)),
            kms_key_id=raw.get("KmsKeyId"),
            endpoint=endpoint.get("Address"),
            port=endpoint.get("Port"),
            replica_source=raw.get("ReadReplicaSourceDBInstanceIdentifier")
            or raw.get("ReadReplicaSourceDBClusterIdentifier"),
            replicas=tuple(raw.get("ReadReplicaDBInstanceIdentifiers") or ()),
            latest_restorable_time=_aware(raw.get("LatestRestorableTime")),
            backup_retention_days=int(raw.get("BackupRetentionPeriod") or 0),
            created=_aware(raw.get("InstanceCreateTime")),
            subnet_group=(raw.get("DBSubnetGroup") or {}).get("DBSubnetGroupName"),
            security_groups=tuple(
                g["VpcSecurityGroupId"]
                for g in raw.get("VpcSecurityGroups") or ()
                if "VpcSecurityGroupId" in g
            ),
            parameter_group=groups[0].get("DBParameterGroupName") if groups else None,
            deletion_protection=bool(raw.get("DeletionProtection", False)),
            storage_type=raw.get("StorageType"),
            publicly_accessible=bool(raw.get("PubliclyAccessible", False)),
            master_user_secret_arn=(raw.get("MasterUserSecret") or {}).get("SecretArn"),
        )


@dataclass(frozen=True)
class DbSnapshot:
    """An RDS DB snapshot (manual or automated)."""

    identifier: str
    region: str
    arn: str
    instance: str
    status: str
    snapshot_type: str
    created: dt.datetime | None
    size_gb: int | None
    encrypted: bool
    kms_key_id: str | None
    source_region: str | None = None
    source_snapshot: str | None = None
    progress: int | None = None
    kind: str = field(default="rds")

    @property
    def automated(self) -> bool:
        return self.snapshot_type != "manual"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.identifier,
            "kind": self.kind,
            "region": self.region,
            "arn": self.arn,
            "source": self.instance,
            "status": self.status,
            "type": self.snapshot_type,
            "created": self.created,
            "size_gb": self.size_gb,
            "encrypted": self.encrypted,
            "kms_key_id": self.kms_key_id,
            "copied_from": self.source_snapshot,
            "source_region": self.source_region,
        }

    @classmethod
    def from_api(cls, raw: dict[str, Any], region: str) -> DbSnapshot:
        return cls(
            identifier=raw["DBSnapshotIdentifier"],
            region=region,
            arn=raw.get("DBSnapshotArn", ""),
            instance=raw.get("DBInstanceIdentifier", ""),
            status=raw.get("Status", "unknown"),
            snapshot_type=raw.get("SnapshotType", "manual"),
            created=_aware(raw.get("SnapshotCreateTime")) or _aware(raw.get("OriginalSnapshotCreateTime")),
            size_gb=raw.get("AllocatedStorage"),
            encrypted=bool(raw.get("Encrypted", False)),
            kms_key_id=raw.get("KmsKeyId"),
            source_region=raw.get("SourceRegion"),
            source_snapshot=raw.get("SourceDBSnapshotIdentifier"),
            progress=raw.get("PercentProgress"),
        )


@dataclass(frozen=True)
class ReplicatedBackups:
    """Automated backups of an instance (``DescribeDBInstanceAutomatedBackups``): its own, in its
    region, or replicated into another region (``source_region`` differs from ``region``)."""

    instance: str
    source_arn: str
    status: str  # replicating | pending | active | retained | ...
    earliest: dt.datetime | None
    latest: dt.datetime | None
    # DBInstanceAutomatedBackupsArn (arn:aws:rds:<region>:<acct>:auto-backup:ab-...)
    arn: str = ""
    region: str = ""  # where these backups are (the region asked)
    source_region: str = ""

    @property
    def replicated(self) -> bool:
        return bool(self.source_region) and self.source_region != self.region

    @property
    def identifier(self) -> str:
        when = f"{self.latest:%Y-%m-%d %H:%M} UTC" if self.latest else "?"
        kind = "replicated" if self.replicated else "in-region"
        return f"automated backups of {self.instance} ({kind}, restorable to {when})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "source_arn": self.source_arn,
            "arn": self.arn,
            "region": self.region,
            "source_region": self.source_region,
            "status": self.status,
            "earliest": self.earliest,
            "latest": self.latest,
        }

    @classmethod
    def from_api(cls, raw: dict[str, Any], region: str) -> ReplicatedBackups:
        arn = str(raw.get("DBInstanceArn") or "")
        window = raw.get("RestoreWindow") or {}
        return cls(
            instance=str(raw.get("DBInstanceIdentifier") or arn.split(":")[-1]),
            source_arn=arn,
            status=str(raw.get("Status") or ""),
            earliest=_aware(window.get("EarliestTime")),
            latest=_aware(window.get("LatestTime")),
            arn=str(raw.get("DBInstanceAutomatedBackupsArn") or ""),
            region=region,
            source_region=str(raw.get("Region") or (arn.split(":")[3] if arn.count(":") >= 6 else "")),
        )

    @property
    def created(self) -> dt.datetime | None:
        """The newest restorable time: the recovery point's age is counted from it."""
        return self.latest


class Rds:
    """RDS calls in one region."""

    def __init__(self, clients: ClientProvider, region: str) -> None:
        self.clients = clients
        self.region = region

    @property
    def client(self) -> Any:
        return self.clients.client("rds", self.region)

    # -- instances ---------------------------------------------------------------------------
    def describe_instance(self, identifier: str) -> DbInstance:
        """The instance, or :class:`dr.errors.NotFound` naming it and the region."""
        with aws_errors(resource=f"DB instance {identifier}", region=self.region, action="describe"):
            raw = self.client.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"]
        return DbInstance.from_api(raw[0], self.region)

    def _unless_not_found(self, resource: str, call: Callable[[], Any]) -> Any:
        """``call()``, or None when RDS answers a ``*NotFound*`` error (others name ``resource``)."""
        client_error = client_error_type()
        try:
            return call()
        except client_error as err:
            code = err.response.get("Error", {}).get("Code", "")  # type: ignore[attr-defined]
            if "NotFound" in code:
                return None
            raise from_client_error(err, resource=resource, region=self.region, action="describe") from None

    def find_instance(self, identifier: str) -> DbInstance | None:
        raw = self._unless_not_found(
            f"DB instance {identifier}",
            lambda: self.client.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"],
        )
        return DbInstance.from_api(raw[0], self.region) if raw else None

    def subnet_group_vpc(self, name: str) -> str | None:
        """The VPC of DB subnet group ``name`` (None when the group does not exist)."""
        groups = self._unless_not_found(
            f"DB subnet group {name}",
            lambda: self.client.describe_db_subnet_groups(DBSubnetGroupName=name).get("DBSubnetGroups"),
        )
        return str(groups[0].get("VpcId") or "") or None if groups else None

    def list_instances(self) -> list[DbInstance]:
        """Every DB instance of the region (all pages)."""
        with aws_errors(resource="DB instances", region=self.region, action="describe"):
            pages = list(self.client.get_paginator("describe_db_instances").paginate())
        return [DbInstance.from_api(raw, self.region) for page in pages for raw in page["DBInstances"]]

    def promote(self, identifier: str, *, backup_retention_days: int | None = None) -> DbInstance:
        kwargs: dict[str, Any] = {"DBInstanceIdentifier": identifier}
        if backup_retention_days is not None:
            kwargs["BackupRetentionPeriod"] = backup_retention_days
        with aws_errors(resource=f"DB instance {identifier}", region=self.region, action="promote"):
            raw = self.client.promote_read_replica(**kwargs)["DBInstance"]
        return DbInstance.from_api(raw, self.region)

    def delete_instance(self, identifier: str, *, lift_protection: bool = False) -> None:
        """Delete a (restored, throw-away) instance without a final snapshot.

        ``lift_protection`` first turns deletion protection off — only for instances this toolkit
        created (restore testing), whose protection was inherited by accident.
        """
        if lift_protection and self.describe_instance(identifier).deletion_protection:
            with aws_errors(resource=f"DB instance {identifier}", region=self.region, action="unprotect"):
                self.client.modify_db_instance(
                    DBInstanceIdentifier=identifier, DeletionProtection=False, ApplyImmediately=True
                )
        with aws_errors(resource=f"DB instance {identifier}", region=self.region, action="delete"):
            self.client.delete_db_instance(
                DBInstanceIdentifier=identifier, SkipFinalSnapshot=True, DeleteAutomatedBackups=True
            )

    @staticmethod
    def _inherit(source: DbInstance) -> dict[str, Any]:
        """Settings a restored instance takes from its source (RDS would otherwise use defaults)."""
        kwargs: dict[str, Any] = {
            "DBInstanceClass": source.instance_class,
            "MultiAZ": source.multi_az,
            "DeletionProtection": False,
            "PubliclyAccessible": source.publicly_accessible,
        }
        if source.subnet_group:
            kwargs["DBSubnetGroupName"] = source.subnet_group
        if source.security_groups:
            kwargs["VpcSecurityGroupIds"] = list(source.security_groups)
        if source.parameter_group:
            kwargs["DBParameterGroupName"] = source.parameter_group
        return kwargs

    def restore_to_time(
        self, source: DbInstance, target: str, *, restore_time: dt.datetime | None, tags: dict[str, str]
    ) -> DbInstance:
        """Point-in-time restore of ``source`` into a new instance ``target`` (None = latest)."""
        kwargs = self._inherit(source)
        kwargs["SourceDBInstanceIdentifier"] = source.identifier
        # An ISO string (botocore parses it) so the journal records the exact time asked for.
        return self._pitr(kwargs, target, restore_time, tags, what=source.identifier, fraction=False)

    def _pitr(
        self,
        kwargs: dict[str, Any],
        target: str,
        restore_time: dt.datetime | None,
        tags: dict[str, str],
        *,
        what: str,
        fraction: bool,
    ) -> DbInstance:
        """RestoreDBInstanceToPointInTime with ``kwargs`` naming the source; ``fraction`` keeps
        the milliseconds of ``restore_time`` (else whole seconds)."""
        kwargs = {**kwargs, "TargetDBInstanceIdentifier": target}
        kwargs["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
        if restore_time is None:
            kwargs["UseLatestRestorableTime"] = True
        else:
            stamp = restore_time.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
            kwargs["RestoreTime"] = (stamp[:-3] if fraction else stamp[:-7]) + "Z"
        with aws_errors(
            resource=f"DB instance {target} (PITR of {what})", region=self.region, action="restore"
        ):
            raw = self.client.restore_db_instance_to_point_in_time(**kwargs)["DBInstance"]
        return DbInstance.from_api(raw, self.region)

    def restore_from_automated_backups(
        self,
        backups: ReplicatedBackups,
        target: str,
        *,
        restore_time: dt.datetime | None,
        settings: dict[str, Any],
        tags: dict[str, str],
    ) -> DbInstance:
        """Point-in-time restore from automated backups named by ARN (``SourceDBInstanceAutomated
        BackupsArn``) — replicated ones restore in this region with the source region gone.
        ``settings``: class, subnet group, security groups, parameter group of *this* region."""
        kwargs = {**settings, "SourceDBInstanceAutomatedBackupsArn": backups.arn}
        # Milliseconds kept: "just before the corruption" must not round down a whole second.
        what = f"{backups.instance} from {backups.arn}"
        return self._pitr(kwargs, target, restore_time, tags, what=what, fraction=True)

    def restore_from_snapshot(
        self, snapshot: DbSnapshot, target: str, *, like: DbInstance | None, tags: dict[str, str]
    ) -> DbInstance:
        kwargs = self._inherit(like) if like is not None else {}
        kwargs.update(
            DBSnapshotIdentifier=snapshot.identifier,
            DBInstanceIdentifier=target,
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )
        with aws_errors(
            resource=f"DB instance {target} (from snapshot {snapshot.identifier})",
            region=self.region,
            action="restore",
        ):
            raw = self.client.restore_db_instance_from_db_snapshot(**kwargs)["DBInstance"]
        return DbInstance.from_api(raw, self.region)

    # -- snapshots ---------------------------------------------------------------------------
    def list_snapshots(self, *, instance: str | None = None) -> list[DbSnapshot]:
        """Manual and automated snapshots (of ``instance`` when given), all pages."""
        kwargs: dict[str, Any] = {}
        if instance:
            kwargs["DBInstanceIdentifier"] = instance
        out: list[DbSnapshot] = []
        with aws_errors(
            resource=f"DB snapshots of {instance or 'all instances'}", region=self.region, action="list"
        ):
            for page in self.client.get_paginator("describe_db_snapshots").paginate(**kwargs):
                out.extend(DbSnapshot.from_api(s, self.region) for s in page.get("DBSnapshots", []))
        return out

    def tags(self, inst: DbInstance) -> dict[str, str]:
        """The instance's tags (``ListTagsForResource`` on its ARN)."""
        with aws_errors(resource=f"DB instance {inst.identifier}", region=self.region, action="read tags of"):
            raw = self.client.list_tags_for_resource(ResourceName=inst.arn)
        return {t["Key"]: t["Value"] for t in raw.get("TagList", [])}

    def add_tags(self, inst: DbInstance, tags: dict[str, str]) -> None:
        """Set tags on the instance (``AddTagsToResource`` on its ARN; existing keys are overwritten)."""
        with aws_errors(resource=f"DB instance {inst.identifier}", region=self.region, action="tag"):
            self.client.add_tags_to_resource(
                ResourceName=inst.arn, Tags=[{"Key": k, "Value": v} for k, v in tags.items()]
            )

    def automated_backups(self, *, instance: str | None = None) -> list[ReplicatedBackups]:
        """Every automated-backups entry of this region (its instances' own and those replicated
        into it), each with its RestoreWindow; ``instance`` filters by DB instance identifier."""
        kwargs: dict[str, Any] = {"DBInstanceIdentifier": instance} if instance else {}
        out: list[ReplicatedBackups] = []
        client_error = client_error_type()
        with aws_errors(
            resource=f"automated backups of {instance or 'all instances'}", region=self.region, action="list"
        ):
            try:
                pages = self.client.get_paginator("describe_db_instance_automated_backups").paginate(**kwargs)
                for page in pages:
                    out.extend(
                        ReplicatedBackups.from_api(raw, self.region)
                        for raw in page.get("DBInstanceAutomatedBackups", [])
                    )
            except client_error as err:
                if err.response.get("Error", {}).get("Code") == "DBInstanceAutomatedBackupNotFound":  # type: ignore[attr-defined]
                    return []
                raise
        return out

    def replicated_backups(self, source_region: str) -> list[ReplicatedBackups]:
        """Automated backups replicated into this region from instances in ``source_region``
        (``StartDBInstanceAutomatedBackupsReplication``): point-in-time recovery here."""
        return [b for b in self.automated_backups() if b.source_region == source_region and b.replicated]

    def describe_snapshot(self, identifier: str) -> DbSnapshot:
        with aws_errors(resource=f"DB snapshot {identifier}", region=self.region, action="describe"):
            raw = self.client.describe_db_snapshots(DBSnapshotIdentifier=identifier)["DBSnapshots"]
        return DbSnapshot.from_api(raw[0], self.region)

    def find_snapshot(self, identifier: str) -> DbSnapshot | None:
        client_error = client_error_type()
        try:
            raw = self.client.describe_db_snapshots(DBSnapshotIdentifier=identifier)["DBSnapshots"]
        except client_error as err:
            code = err.response.get("Error", {}).get("Code", "")  # type: ignore[attr-defined]
            if "NotFound" in code:
                return None
            raise from_client_error(
                err, resource=f"DB snapshot {identifier}", region=self.region, action="describe"
            ) from None
        return DbSnapshot.from_api(raw[0], self.region) if raw else None

    def create_snapshot(self, instance: str, identifier: str, *, tags: dict[str, str]) -> DbSnapshot:
        with aws_errors(
            resource=f"DB snapshot {identifier} of {instance}", region=self.region, action="create"
        ):
            raw = self.client.create_db_snapshot(
                DBInstanceIdentifier=instance,
                DBSnapshotIdentifier=identifier,
                Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
            )["DBSnapshot"]
        return DbSnapshot.from_api(raw, self.region)

    def copy_snapshot_from(
        self,
        source: DbSnapshot,
        target: str,
        *,
        kms_key_id: str | None,
        tags: dict[str, str],
    ) -> DbSnapshot:
        """Copy ``source`` (maybe in another region) into this region as ``target``.

        Cross-region copies pass ``SourceRegion``: botocore then signs the ``PreSignedUrl`` the
        API needs for encrypted snapshots. Encrypted copies need a KMS key of *this* region.
        """
        kwargs: dict[str, Any] = {
            "SourceDBSnapshotIdentifier": source.arn if source.region != self.region else source.identifier,
            "TargetDBSnapshotIdentifier": target,
            "CopyTags": not tags,
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
        }
        if kms_key_id:
            kwargs["KmsKeyId"] = kms_key_id
        if source.region != self.region:
            kwargs["SourceRegion"] = source.region
        with aws_errors(
            resource=f"DB snapshot {target} (copy of {source.identifier} from {source.region})",
            region=self.region,
            action="copy",
        ):
            raw = self.client.copy_db_snapshot(**kwargs)["DBSnapshot"]
        return DbSnapshot.from_api(raw, self.region)

    def delete_snapshot(self, identifier: str) -> None:
        with aws_errors(resource=f"DB snapshot {identifier}", region=self.region, action="delete"):
            self.client.delete_db_snapshot(DBSnapshotIdentifier=identifier)


def rotate_managed_password(clients: ClientProvider, region: str, identifier: str) -> str:
    """ModifyDBInstance RotateMasterUserPassword (ApplyImmediately) on an instance whose password
    RDS manages in Secrets Manager: RDS generates the new password and stores it in its secret.
    Returns the status right after."""
    with aws_errors(
        resource=f"DB instance {identifier}", region=region, action="rotate the managed password of"
    ):
        raw = clients.client("rds", region).modify_db_instance(
            DBInstanceIdentifier=identifier,
            RotateMasterUserPassword=True,
            ApplyImmediately=True,
        )["DBInstance"]
    return str(raw.get("DBInstanceStatus", "unknown"))


def modify_master_password(clients: ClientProvider, region: str, identifier: str, password: str) -> str:
    """ModifyDBInstance MasterUserPassword (ApplyImmediately); returns the status right after.

    Only for an instance whose password the caller owns: RDS refuses it
    (InvalidParameterCombination) while ManageMasterUserPassword is on — use
    :func:`rotate_managed_password` there. The password is sent once and never recorded (the
    session's recorder drops *Password params).
    """
    with aws_errors(resource=f"DB instance {identifier}", region=region, action="modify master password of"):
        raw = clients.client("rds", region).modify_db_instance(
            DBInstanceIdentifier=identifier, MasterUserPassword=password, ApplyImmediately=True
        )["DBInstance"]
    return str(raw.get("DBInstanceStatus", "unknown"))
