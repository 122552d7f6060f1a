"""RDS point-in-time restore and automated backups, including their cross-region replication
(which moto lacks entirely)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from dr.sandbox.fakeaws.backends import find_db_by_arn, rds_backend
from dr.sandbox.fakeaws.rds_models import (
    begin_creating,
    db_status,
    drop_replica_source,
    find_db,
    query_reply,
    restorable_window,
)
from dr.sandbox.fakeaws.wire import (
    ACCOUNT_ID,
    AwsError,
    AwsRequest,
    Reply,
    iso_time,
    parse_time,
    rewrite_status,
    utcnow,
    xml_escape,
)

if TYPE_CHECKING:
    from dr.sandbox.fakeaws.layer import Handler, Layer, SeedingHandler


def restore_db_instance_to_point_in_time(
    layer: Layer, req: AwsRequest, environ: dict[str, Any]
) -> Reply | None:
    p = req.params
    source = p.get("SourceDBInstanceIdentifier", "")
    target = p.get("TargetDBInstanceIdentifier", "")
    restore_time = p.get("RestoreTime")
    use_latest = p.get("UseLatestRestorableTime", "false").lower() == "true"
    if restore_time and use_latest:
        raise AwsError(
            "InvalidParameterCombination", "Cannot specify both RestoreTime and UseLatestRestorableTime."
        )
    if not restore_time and not use_latest:
        raise AwsError(
            "InvalidParameterCombination",
            "Either RestoreTime or UseLatestRestorableTime must be specified.",
        )
    if p.get("SourceDBInstanceAutomatedBackupsArn"):
        return restore_from_automated_backups(layer, req, environ, use_latest)
    db = find_db(req.region, source)
    if db is None:
        return None  # moto: DBInstanceNotFound
    if int(db.backup_retention_period or 0) == 0:
        raise AwsError(
            "PointInTimeRestoreNotEnabled",
            f"Point-in-time restore is not enabled for {source}: its backup retention period is 0.",
        )
    when: dt.datetime | None = None
    if restore_time:
        try:
            when = parse_time(restore_time)
        except ValueError:
            raise AwsError(
                "InvalidParameterValue", f"RestoreTime {restore_time!r} is not a valid timestamp."
            ) from None
        earliest, latest = restorable_window(layer, db)
        if not earliest <= when <= latest:
            raise AwsError(
                "InvalidRestoreTime",
                f"Restore time {iso_time(when)} is outside the restorable window of {source}: "
                f"[{iso_time(earliest)}, {iso_time(latest)}].",
            )
    reply = layer.call_inner(environ)
    if reply[0] == 200:
        restored = find_db(req.region, target)
        if restored is not None:
            # moto copies the request's SourceDBInstanceIdentifier onto the new instance, which
            # then describes as a read replica of its source; a restored instance is standalone.
            restored.source_db_instance_identifier = None
            reply = drop_replica_source(reply)
        begin_creating(
            layer,
            req.region,
            target,
            "rds.restore",
            "rds.restored",
            source=source,
            restore_time=when,
            use_latest=use_latest,
        )
        reply = rewrite_status(reply, "DBInstanceStatus", db_status(req.region, target))
    return reply


def auto_backup_arn(region: str, source_arn: str) -> str:
    """A stable ``arn:aws:rds:<region>:<acct>:auto-backup:ab-…`` for a source instance's backups."""
    import base64
    import hashlib

    digest = base64.b32encode(hashlib.sha256(f"{region}|{source_arn}".encode()).digest()).decode()
    return f"arn:aws:rds:{region}:{ACCOUNT_ID}:auto-backup:ab-{digest.lower().rstrip('=')[:40]}"


def replicated_window(layer: Layer, rec: dict[str, Any]) -> tuple[dt.datetime, dt.datetime] | None:
    """RestoreWindow of replicated backups: what the DR region's copy of the WAL archive covers
    (the local PostgreSQL's, when wired), else replication start ... now - replication lag."""
    if layer.rds.replicated_window_fn is not None:
        return layer.rds.replicated_window_fn(rec["region"], rec["source_arn"])
    started: dt.datetime = rec["started_at"]
    latest = utcnow() - dt.timedelta(seconds=layer.rds.replicated_lag)
    return (started, latest) if latest >= started else None


def start_db_instance_automated_backups_replication(
    layer: Layer, req: AwsRequest, environ: dict[str, Any]
) -> Reply:
    source_arn = req.params.get("SourceDBInstanceArn", "")
    found = find_db_by_arn(source_arn) if source_arn.startswith("arn:") else None
    if found is None:
        raise AwsError("DBInstanceNotFound", f"DBInstance {source_arn or '(none)'} not found.", 404)
    src_region, db = found
    if src_region == req.region:
        raise AwsError(
            "InvalidParameterValue",
            f"The source DB instance {source_arn} is in {req.region}: replicate its automated "
            "backups to another AWS Region.",
        )
    if db.is_replica or int(db.backup_retention_period or 0) == 0:
        raise AwsError(
            "InvalidDBInstanceState",
            f"Automated backups are not enabled on DB instance {db.db_instance_identifier}.",
        )
    arn = auto_backup_arn(req.region, source_arn)
    if arn in layer.rds.backup_replications:
        raise AwsError(
            "InvalidDBInstanceAutomatedBackupState",
            f"Automated backups of {db.db_instance_identifier} are already replicated to {req.region}.",
        )
    layer.rds.backup_replications[arn] = {
        "arn": arn,
        "region": req.region,
        "source_arn": source_arn,
        "source_region": src_region,
        "identifier": db.db_instance_identifier,
        "dbi_resource_id": db.dbi_resource_id,
        "engine": db.engine,
        "engine_version": db.engine_version,
        "instance_class": db.db_instance_class,
        "allocated_storage": db.allocated_storage,
        "master_username": db.master_username,
        "db_name": db.db_name,
        "port": db.port,
        "storage_type": db.storage_type,
        "encrypted": bool(db.storage_encrypted),
        "kms_key_id": req.params.get("KmsKeyId") or "",
        "retention": int(req.params.get("BackupRetentionPeriod") or 7),
        "started_at": utcnow(),
    }
    layer.rds.backups_since.setdefault(source_arn, utcnow())
    body = f"<DBInstanceAutomatedBackup>{auto_backup_xml(layer, layer.rds.backup_replications[arn])}</DBInstanceAutomatedBackup>"
    return query_reply("StartDBInstanceAutomatedBackupsReplication", body)


def stop_db_instance_automated_backups_replication(
    layer: Layer, req: AwsRequest, environ: dict[str, Any]
) -> Reply:
    source_arn = req.params.get("SourceDBInstanceArn", "")
    arn = auto_backup_arn(req.region, source_arn)
    rec = layer.rds.backup_replications.pop(arn, None)
    if rec is None:
        raise AwsError(
            "DBInstanceAutomatedBackupNotFound",
            f"No automated backups of {source_arn} are replicated to {req.region}.",
            404,
        )
    body = f"<DBInstanceAutomatedBackup>{auto_backup_xml(layer, rec)}</DBInstanceAutomatedBackup>"
    return query_reply("StopDBInstanceAutomatedBackupsReplication", body)


def auto_backup_xml(layer: Layer, rec: dict[str, Any]) -> str:
    window = replicated_window(layer, rec)
    restore = (
        f"<RestoreWindow><EarliestTime>{iso_time(window[0])}</EarliestTime>"
        f"<LatestTime>{iso_time(window[1])}</LatestTime></RestoreWindow>"
        if window
        else "<RestoreWindow/>"
    )
    fields = {
        "DBInstanceArn": rec["source_arn"],
        "DbiResourceId": rec["dbi_resource_id"],
        "Region": rec["source_region"],
        "DBInstanceIdentifier": rec["identifier"],
        "Status": "replicating" if window else "pending",
        "Engine": rec["engine"],
        "EngineVersion": rec["engine_version"],
        "AllocatedStorage": rec["allocated_storage"],
        "MasterUsername": rec["master_username"],
        "Port": rec["port"],
        "StorageType": rec["storage_type"],
        "Encrypted": str(rec["encrypted"]).lower(),
        "KmsKeyId": rec["kms_key_id"],
        "BackupRetentionPeriod": rec["retention"],
        "DBInstanceAutomatedBackupsArn": rec["arn"],
    }
    return restore + "".join(
        f"<{k}>{xml_escape(str(v))}</{k}>" for k, v in fields.items() if v not in (None, "")
    )


def own_backups_xml(layer: Layer, region: str, db: Any) -> tuple[str, str]:
    """(auto-backup ARN, XML members) of an instance's automated backups in its own region."""
    arn = auto_backup_arn(region, db.db_instance_arn)
    earliest, latest = restorable_window(layer, db)
    replications = "".join(
        f"<DBInstanceAutomatedBackupsReplication><DBInstanceAutomatedBackupsArn>{r['arn']}"
        "</DBInstanceAutomatedBackupsArn></DBInstanceAutomatedBackupsReplication>"
        for r in layer.rds.backup_replications.values()
        if r["source_arn"] == db.db_instance_arn
    )
    fields = {
        "DBInstanceArn": db.db_instance_arn,
        "DbiResourceId": db.dbi_resource_id,
        "Region": region,
        "DBInstanceIdentifier": db.db_instance_identifier,
        "Status": "active",
        "Engine": db.engine,
        "EngineVersion": db.engine_version,
        "Port": db.port,
        "BackupRetentionPeriod": db.backup_retention_period,
        "DBInstanceAutomatedBackupsArn": arn,
    }
    xml = (
        f"<RestoreWindow><EarliestTime>{iso_time(earliest)}</EarliestTime>"
        f"<LatestTime>{iso_time(latest)}</LatestTime></RestoreWindow>"
        + "".join(f"<{k}>{xml_escape(str(v))}</{k}>" for k, v in fields.items() if v not in (None, ""))
        + (
            f"<DBInstanceAutomatedBackupsReplications>{replications}</DBInstanceAutomatedBackupsReplications>"
            if replications
            else ""
        )
    )
    return arn, xml


def describe_db_instance_automated_backups(layer: Layer, req: AwsRequest, environ: dict[str, Any]) -> Reply:
    """This region's instances' automated backups (retention > 0, not a replica) and those
    replicated into it from another region, each with its RestoreWindow (moto has neither)."""
    p = req.params
    entries: list[tuple[str, str, str, str]] = []  # (arn, identifier, dbi resource id, xml)
    for db in list(rds_backend(req.region).databases.values()):
        if db.is_replica or int(db.backup_retention_period or 0) == 0:
            continue
        arn, xml = own_backups_xml(layer, req.region, db)
        entries.append((arn, db.db_instance_identifier, db.dbi_resource_id, xml))
    for rec in list(layer.rds.backup_replications.values()):
        if rec["region"] == req.region:
            entries.append(
                (rec["arn"], rec["identifier"], rec["dbi_resource_id"], auto_backup_xml(layer, rec))
            )
    wanted = {
        0: p.get("DBInstanceAutomatedBackupsArn"),
        1: p.get("DBInstanceIdentifier"),
        2: p.get("DbiResourceId"),
    }
    chosen = [e for e in entries if all(v is None or e[i] == v for i, v in wanted.items())]
    if not chosen and any(wanted.values()):
        raise AwsError(
            "DBInstanceAutomatedBackupNotFound",
            f"No automated backups match {', '.join(v for v in wanted.values() if v)} in {req.region}.",
            404,
        )
    body = (
        "<DBInstanceAutomatedBackups>"
        + "".join(f"<DBInstanceAutomatedBackup>{e[3]}</DBInstanceAutomatedBackup>" for e in chosen)
        + "</DBInstanceAutomatedBackups>"
    )
    return query_reply("DescribeDBInstanceAutomatedBackups", body)


def restore_from_automated_backups(
    layer: Layer, req: AwsRequest, environ: dict[str, Any], use_latest: bool
) -> Reply:
    """PITR from automated backups named by ARN — replicated into this region (the DR region's
    recovery point when the primary region is lost). The source instance is not needed: what
    the new instance is made of was recorded when the replication started."""

    p = req.params
    arn = p["SourceDBInstanceAutomatedBackupsArn"]
    target = p.get("TargetDBInstanceIdentifier", "")
    rec = layer.rds.backup_replications.get(arn)
    if rec is None or rec["region"] != req.region:
        raise AwsError(
            "DBInstanceAutomatedBackupNotFound",
            f"Automated backups {arn} not found in {req.region}.",
            404,
        )
    window = replicated_window(layer, rec)
    if window is None:
        raise AwsError(
            "InvalidRestoreFault",
            f"The replicated automated backups {arn} have no restorable time yet.",
        )
    when = window[1]
    if not use_latest:
        try:
            when = parse_time(p.get("RestoreTime", ""))
        except ValueError:
            raise AwsError(
                "InvalidParameterValue", f"RestoreTime {p.get('RestoreTime')!r} is not a valid timestamp."
            ) from None
        if not window[0] <= when <= window[1]:
            raise AwsError(
                "InvalidRestoreTime",
                f"Restore time {iso_time(when)} is outside the restorable window of {arn}: "
                f"[{iso_time(window[0])}, {iso_time(window[1])}].",
            )
    if find_db(req.region, target) is not None:
        raise AwsError("DBInstanceAlreadyExists", f"DB instance already exists: {target}")
    copied = (
        "DBInstanceClass",
        "DBSubnetGroupName",
        "DBParameterGroupName",
        "MultiAZ",
        "PubliclyAccessible",
        "DeletionProtection",
        "StorageType",
        "CopyTagsToSnapshot",
    )
    params = {k: v for k, v in p.items() if k in copied or k.startswith(("VpcSecurityGroupIds.", "Tags."))}
    params.update(
        {
            "Action": "CreateDBInstance",
            "Version": "2014-10-31",
            "DBInstanceIdentifier": target,
            "DBInstanceClass": p.get("DBInstanceClass") or rec["instance_class"],  # RDS: the source's
            "Engine": rec["engine"],
            "EngineVersion": rec["engine_version"],
            "AllocatedStorage": str(rec["allocated_storage"] or 20),
            "MasterUsername": rec["master_username"] or "postgres",
            "MasterUserPassword": uuid.uuid4().hex,  # the backup's own password comes with the data
            "BackupRetentionPeriod": p.get("BackupRetentionPeriod") or "1",
            "Port": str(rec["port"] or 5432),
            "StorageEncrypted": str(rec["encrypted"]).lower(),
        }
    )
    if rec["db_name"]:
        params["DBName"] = rec["db_name"]
    if rec["kms_key_id"]:
        params["KmsKeyId"] = rec["kms_key_id"]
    status, headers, body = layer.call_inner(
        environ,
        urlencode(params).encode(),
        CONTENT_TYPE="application/x-www-form-urlencoded; charset=utf-8",
    )
    if status != 200:
        return status, headers, body
    text = body.decode().replace("CreateDBInstance", "RestoreDBInstanceToPointInTime")
    begin_creating(
        layer,
        req.region,
        target,
        "rds.restore",
        "rds.restored",
        source=arn,
        restore_time=when,
        use_latest=use_latest,
        replicated_from=rec["source_arn"],
    )
    data = text.encode()
    headers = [(k, v) for k, v in headers if k.lower() != "content-length"] + [
        ("Content-Length", str(len(data)))
    ]
    return rewrite_status((status, headers, data), "DBInstanceStatus", db_status(req.region, target))


HANDLERS: dict[tuple[str, str], Handler] = {
    ("rds", "RestoreDBInstanceToPointInTime"): restore_db_instance_to_point_in_time,
    ("rds", "StartDBInstanceAutomatedBackupsReplication"): start_db_instance_automated_backups_replication,
    ("rds", "StopDBInstanceAutomatedBackupsReplication"): stop_db_instance_automated_backups_replication,
    ("rds", "DescribeDBInstanceAutomatedBackups"): describe_db_instance_automated_backups,
}
# Operations moto lacks entirely: answered even while seeding.
SEEDING_HANDLERS: dict[tuple[str, str], SeedingHandler] = {
    ("rds", "StartDBInstanceAutomatedBackupsReplication"): start_db_instance_automated_backups_replication,
    ("rds", "StopDBInstanceAutomatedBackupsReplication"): stop_db_instance_automated_backups_replication,
    ("rds", "DescribeDBInstanceAutomatedBackups"): describe_db_instance_automated_backups,
}
