"""RDS operations: promotion, replicas, reboot, modify, delete and snapshots, with their transitions
and the validations real RDS performs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from dr.sandbox.fakeaws.backends import find_db_by_arn, rds_backend
from dr.sandbox.fakeaws.rds_models import (
    begin_creating,
    begin_snapshot,
    db_status,
    describe_db_as,
    find_db,
    managed_password_conflict,
    rewrite_db_instances,
    snapshot_status,
)
from dr.sandbox.fakeaws.wire import AwsError, AwsRequest, Reply, rewrite_status, utcnow

if TYPE_CHECKING:
    from dr.sandbox.fakeaws.layer import Handler, Layer, SeedingHandler


def promote_read_replica(layer: Layer, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
    ident = req.params.get("DBInstanceIdentifier", "")
    db = find_db(req.region, ident)
    if db is None:
        return None  # moto answers DBInstanceNotFound
    if not db.is_replica:
        raise AwsError("InvalidDBInstanceState", f"DB Instance {ident} is not a read replica.")
    if db.status != "available":
        raise AwsError(
            "InvalidDBInstanceState",
            f"DB Instance {ident} is not in available state (status: {db.status}).",
        )
    retention = req.params.get("BackupRetentionPeriod")
    db.status = "modifying"

    def complete() -> None:
        apply_promote(layer, req.region, ident, retention)

    layer.transitions.begin(
        "rds.promote", req.region, ident, "modifying", layer.profile.duration("rds.promote"), complete
    )
    return describe_db_as(layer, environ, req.region, ident, "PromoteReadReplica")


def apply_promote(layer: Layer, region: str, ident: str, retention: str | None) -> None:
    backend = rds_backend(region)
    db = backend.databases.get(ident)
    if db is None:
        return
    # PromoteReadReplica's BackupRetentionPeriod defaults to 1 day (a PostgreSQL replica has
    # none of its own): the new primary keeps only what the caller asked for.
    kwargs: dict[str, Any] = {
        "db_instance_identifier": ident,
        "backup_retention_period": int(retention) if retention not in (None, "") else 1,
    }
    backend.promote_read_replica(kwargs)
    layer.rds.backups_since[db.db_instance_arn] = utcnow()  # a replica had no automated backups
    source = db.source_db_instance_identifier
    if source:
        found = (
            find_db_by_arn(source) if source.startswith("arn:") else (region, backend.databases.get(source))
        )
        if found and found[1] is not None:
            src = found[1]
            for entry in (db.db_instance_arn, ident):
                if entry in src.replicas:
                    src.replicas.remove(entry)
    db.source_db_instance_identifier = None
    layer.emit("rds.promoted", region=region, identifier=ident)
    db.status = "available"


def describe_db_instances(layer: Layer, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
    status, headers, body = layer.call_inner(environ)
    if status != 200:
        return status, headers, body
    data = rewrite_db_instances(layer, body.decode(), req.region).encode()
    headers = [(k, v) for k, v in headers if k.lower() != "content-length"] + [
        ("Content-Length", str(len(data)))
    ]
    return status, headers, data


def restore_db_instance_from_db_snapshot(
    layer: Layer, req: AwsRequest, environ: dict[str, Any]
) -> Reply | None:
    snap_id = req.params.get("DBSnapshotIdentifier", "")
    snap = rds_backend(req.region).database_snapshots.get(snap_id.split(":")[-1])
    if snap is not None and snap.status != "available":
        raise AwsError(
            "InvalidDBSnapshotState", f"Snapshot {snap_id} is not available (status: {snap.status})."
        )
    reply = layer.call_inner(environ)
    if reply[0] == 200:
        target = req.params.get("DBInstanceIdentifier", "")
        begin_creating(
            layer, req.region, target, "rds.restore", "rds.restored_from_snapshot", snapshot=snap_id
        )
        reply = rewrite_status(reply, "DBInstanceStatus", db_status(req.region, target))
    return reply


def create_db_snapshot(layer: Layer, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
    ident = req.params.get("DBInstanceIdentifier", "")
    db = find_db(req.region, ident)
    if db is not None and db.status not in ("available", "backing-up"):
        raise AwsError(
            "InvalidDBInstanceState",
            f"DB Instance {ident} is not in available state (status: {db.status}).",
        )
    reply = layer.call_inner(environ)
    if reply[0] == 200:
        snap = req.params.get("DBSnapshotIdentifier", "")
        begin_snapshot(layer, req.region, snap, "rds.snapshot", "rds.snapshot_created", identifier=ident)
        reply = rewrite_status(reply, "Status", snapshot_status(req.region, snap))
    return reply


def copy_db_snapshot(layer: Layer, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
    source = req.params.get("SourceDBSnapshotIdentifier", "")
    src_region = source.split(":")[3] if source.startswith("arn:") else req.region
    src = rds_backend(src_region).database_snapshots.get(source.split(":")[-1])
    if src is not None and src.status != "available":
        raise AwsError(
            "InvalidDBSnapshotState", f"Snapshot {source} is not available (status: {src.status})."
        )
    reply = layer.call_inner(environ)
    if reply[0] == 200:
        target = req.params.get("TargetDBSnapshotIdentifier", "")
        what = "rds.snapshot_copy" if src_region != req.region else "rds.snapshot"
        begin_snapshot(layer, req.region, target, what, "rds.snapshot_copied", source=source)
        reply = rewrite_status(reply, "Status", snapshot_status(req.region, target))
    return reply


def delete_db_snapshot(layer: Layer, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
    snap_id = req.params.get("DBSnapshotIdentifier", "")
    snap = rds_backend(req.region).database_snapshots.get(snap_id)
    if snap is not None and snap.status != "available":
        raise AwsError(
            "InvalidDBSnapshotState", f"Snapshot {snap_id} cannot be deleted while it is {snap.status}."
        )
    for tr in layer.transitions.active():
        if tr.kind == "rds.restore" and tr.info.get("snapshot") in (snap_id,) and tr.region == req.region:
            raise AwsError(
                "InvalidDBSnapshotState", f"Snapshot {snap_id} is in use by the restore of {tr.resource}."
            )
    return None


def reboot_db_instance(layer: Layer, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
    ident = req.params.get("DBInstanceIdentifier", "")
    db = find_db(req.region, ident)
    if db is None:
        return None
    failover = req.params.get("ForceFailover", "false").lower() == "true"
    if failover and not db.multi_az:
        raise AwsError(
            "InvalidParameterCombination", f"Cannot force a failover of {ident}: it is not Multi-AZ."
        )
    if db.status != "available":
        raise AwsError(
            "InvalidDBInstanceState",
            f"DB Instance {ident} is not in available state (status: {db.status}).",
        )
    reply = layer.call_inner(environ)
    if reply[0] == 200:
        db.status = "rebooting"

        def complete() -> None:
            db.status = "available"
            layer.emit("rds.rebooted", region=req.region, identifier=ident, failover=failover)

        duration = layer.profile.duration("rds.reboot_failover") * (1.0 if failover else 0.5)
        layer.transitions.begin("rds.reboot", req.region, ident, "rebooting", duration, complete)
        reply = rewrite_status(reply, "DBInstanceStatus", str(db.status))
    return reply


def modify_db_instance(layer: Layer, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
    ident = req.params.get("DBInstanceIdentifier", "")
    db = find_db(req.region, ident)
    if db is None:
        return None
    conflict = managed_password_conflict(db, req.params)
    if conflict is not None:
        raise conflict
    if db.status not in ("available",):
        raise AwsError(
            "InvalidDBInstanceState",
            f"DB Instance {ident} is not in available state (status: {db.status}).",
        )
    reply = layer.call_inner(environ)
    if reply[0] == 200:
        new_ident = req.params.get("NewDBInstanceIdentifier") or ident
        target = find_db(req.region, new_ident)
        params = dict(req.params)
        if target is not None:
            target.status = "modifying"

            def complete() -> None:
                target.status = "available"
                layer.emit("rds.modified", region=req.region, identifier=new_ident, params=params)

            layer.transitions.begin(
                "rds.modify",
                req.region,
                new_ident,
                "modifying",
                layer.profile.duration("rds.modify"),
                complete,
            )
            reply = rewrite_status(reply, "DBInstanceStatus", str(target.status))
    return reply


def create_replica_in_destination(layer: Layer, req: AwsRequest, environ: dict[str, Any]) -> Reply:
    """``CreateDBInstanceReadReplica`` with the subnet group resolved where real RDS does.

    moto copies the source instance and sets ``DBSubnetGroupName`` *before* it moves the copy
    to the destination backend, so a cross-region replica's group is looked up in the source
    region (``DBSubnetGroupNotFound`` for a group that exists where the replica is created).
    Here the group is checked in the request's (destination) region, left out of the call to
    moto, and set on the new instance afterwards — so DescribeDBInstances reports it.
    Applies while seeding too (a moto bug, not a behaviour the latency profile models).
    """
    group = req.params.get("DBSubnetGroupName") or ""
    source = req.params.get("SourceDBInstanceIdentifier", "")
    src_region = source.split(":")[3] if source.startswith("arn:") and source.count(":") >= 6 else None
    if not group or src_region in (None, req.region):
        return layer.call_inner(environ)
    backend = rds_backend(req.region)
    if group not in backend.subnet_groups:
        raise AwsError("DBSubnetGroupNotFoundFault", f"DBSubnetGroup {group} not found.", 404)
    params = {k: v for k, v in req.params.items() if k != "DBSubnetGroupName"}
    reply = layer.call_inner(environ, urlencode(params).encode())
    ident = params.get("DBInstanceIdentifier", "").lower()
    db = backend.databases.get(ident)
    if reply[0] != 200 or db is None:
        return reply
    db.db_subnet_group = backend.subnet_groups[group]
    db._db_subnet_group_name = group
    return describe_db_as(layer, environ, req.region, ident, "CreateDBInstanceReadReplica")


def create_db_instance_read_replica(layer: Layer, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
    ident = req.params.get("DBInstanceIdentifier", "").lower()
    reply = create_replica_in_destination(layer, req, environ)
    if reply[0] == 200:
        # moto's replica is a copy of its source, creation time included; RDS's is created now
        # (moved-aside names and the restorable window derive from it).
        db = find_db(req.region, ident)
        if db is not None:
            db.created = db.instance_create_time = utcnow().replace(tzinfo=None)  # naive, as moto keeps it
        source = req.params.get("SourceDBInstanceIdentifier", "")
        begin_creating(layer, req.region, ident, "rds.create_replica", "rds.replica_created", source=source)
        reply = rewrite_status(reply, "DBInstanceStatus", db_status(req.region, ident))
    return reply


def delete_db_instance(layer: Layer, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
    ident = req.params.get("DBInstanceIdentifier", "")
    db = find_db(req.region, ident)
    if db is not None and getattr(db, "deletion_protection", False):
        raise AwsError(
            "InvalidParameterCombination",
            f"Cannot delete protected DB Instance {ident}, please disable deletion protection and try again.",
        )
    reply = layer.call_inner(environ)
    if reply[0] == 200:
        layer.emit("rds.deleted", region=req.region, identifier=ident)
    return reply


HANDLERS: dict[tuple[str, str], Handler] = {
    ("rds", "PromoteReadReplica"): promote_read_replica,
    ("rds", "DescribeDBInstances"): describe_db_instances,
    ("rds", "RestoreDBInstanceFromDBSnapshot"): restore_db_instance_from_db_snapshot,
    ("rds", "CreateDBSnapshot"): create_db_snapshot,
    ("rds", "CopyDBSnapshot"): copy_db_snapshot,
    ("rds", "DeleteDBSnapshot"): delete_db_snapshot,
    ("rds", "RebootDBInstance"): reboot_db_instance,
    ("rds", "ModifyDBInstance"): modify_db_instance,
    ("rds", "CreateDBInstanceReadReplica"): create_db_instance_read_replica,
    ("rds", "DeleteDBInstance"): delete_db_instance,
}
# While seeding: no transition, but the moto workaround still applies.
SEEDING_HANDLERS: dict[tuple[str, str], SeedingHandler] = {
    ("rds", "CreateDBInstanceReadReplica"): create_replica_in_destination,
}
