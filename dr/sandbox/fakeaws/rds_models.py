"""RDS state the fake keeps beside moto's: instances' statuses in transition, restorable windows,
and the rewriting of moto's DBInstance replies (endpoint, LatestRestorableTime)."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import TYPE_CHECKING, Any

from dr.sandbox.fakeaws.backends import rds_backend
from dr.sandbox.fakeaws.wire import AwsError, Reply, iso_time, jsonable, parse_time, utcnow

if TYPE_CHECKING:
    from dr.sandbox.fakeaws.layer import Layer


def managed_password_conflict(db: Any, params: dict[str, Any]) -> AwsError | None:
    """RDS's rule that moto does not enforce: ``ModifyDBInstance MasterUserPassword`` is refused
    while RDS manages the instance's password in Secrets Manager ("Can't be specified if
    ManageMasterUserPassword is turned on"), unless the same call turns management off."""
    managed = bool(
        getattr(db, "manage_master_user_password", False) and getattr(db, "master_user_secret", None)
    )
    if not managed or not params.get("MasterUserPassword"):
        return None
    if str(params.get("ManageMasterUserPassword", "")).lower() == "false":
        return None
    return AwsError(
        "InvalidParameterCombination",
        "You can't specify MasterUserPassword for an instance that manages its master user password "
        "with AWS Secrets Manager. Use RotateMasterUserPassword instead.",
    )


def find_db(region: str, ident: str) -> Any:
    return rds_backend(region).databases.get(ident)


def snapshot_status(region: str, snap_id: str) -> str:
    snap = rds_backend(region).database_snapshots.get(snap_id)
    return str(snap.status) if snap is not None else "available"


def db_status(region: str, ident: str) -> str:
    db = find_db(region, ident)
    return str(db.status) if db is not None else "available"


def describe_db_as(layer: Layer, environ: dict[str, Any], region: str, ident: str, action: str) -> Reply:
    status, headers, body = layer.query(
        environ, {"Action": "DescribeDBInstances", "Version": "2014-10-31", "DBInstanceIdentifier": ident}
    )
    text = rewrite_db_instances(layer, body.decode(), region)
    text = text.replace("DescribeDBInstancesResponse", f"{action}Response")
    text = text.replace("DescribeDBInstancesResult", f"{action}Result")
    text = re.sub(r"</?DBInstances>", "", text)
    data = text.encode()
    headers = [(k, v) for k, v in headers if k.lower() != "content-length"] + [
        ("Content-Length", str(len(data)))
    ]
    return status, headers, data


def latest_restorable(layer: Layer) -> dt.datetime:
    return utcnow() - dt.timedelta(seconds=layer.rds.restorable_lag)


def restorable_window(layer: Layer, db: Any) -> tuple[dt.datetime, dt.datetime]:
    """[earliest, latest] restorable times of an instance: its first backup (creation, or its
    promotion for a promoted replica) or ``now - retention`` days, whichever is later."""
    created = db.instance_create_time
    if isinstance(created, str):
        created = parse_time(created)
    if created.tzinfo is None:
        created = created.replace(tzinfo=dt.UTC)
    created = max(created, layer.rds.backups_since.get(db.db_instance_arn, created))
    retention = int(db.backup_retention_period or 0)
    earliest = max(created, utcnow() - dt.timedelta(days=retention))
    return earliest, max(earliest, latest_restorable(layer))


def rewrite_db_instances(layer: Layer, xml: str, region: str) -> str:
    def one(match: re.Match[str]) -> str:
        block = match.group(0)
        ident_m = re.search(r"<DBInstanceIdentifier>([^<]+)</DBInstanceIdentifier>", block)
        if not ident_m:
            return block
        ident = ident_m.group(1)
        db = find_db(region, ident)
        if layer.endpoint_fn is not None:
            endpoint = layer.endpoint_fn(region, ident)
            if endpoint is not None:
                host, port = endpoint
                block = re.sub(
                    r"<Endpoint>.*?</Endpoint>",
                    f"<Endpoint><Address>{host}</Address><Port>{port}</Port></Endpoint>",
                    block,
                    flags=re.S,
                )
                block = re.sub(
                    r"<DbInstancePort>\d+</DbInstancePort>",
                    f"<DbInstancePort>{port}</DbInstancePort>",
                    block,
                )
        if db is not None and int(db.backup_retention_period or 0) > 0 and not db.is_replica:
            latest = iso_time(latest_restorable(layer))
            if "<LatestRestorableTime>" in block:
                block = re.sub(
                    r"<LatestRestorableTime>[^<]*</LatestRestorableTime>",
                    f"<LatestRestorableTime>{latest}</LatestRestorableTime>",
                    block,
                )
            else:
                block = block.replace(
                    "</DBInstance>", f"<LatestRestorableTime>{latest}</LatestRestorableTime></DBInstance>"
                )
        else:
            block = re.sub(r"<LatestRestorableTime>[^<]*</LatestRestorableTime>", "", block)
        return block

    return re.sub(r"<DBInstance>.*?</DBInstance>", one, xml, flags=re.S)


def begin_creating(layer: Layer, region: str, ident: str, what: str, event: str, **info: Any) -> None:
    db = find_db(region, ident)
    if db is None:
        return
    db.status = "creating"

    def complete() -> None:
        layer.emit(event, region=region, identifier=ident, **info)
        current = find_db(region, ident)
        if current is not None:
            current.status = "available"

    layer.transitions.begin(
        what, region, ident, "creating", layer.profile.duration(what), complete, **jsonable(info)
    )


def begin_snapshot(layer: Layer, region: str, snap_id: str, what: str, event: str, **info: Any) -> None:
    snap = rds_backend(region).database_snapshots.get(snap_id)
    if snap is None:
        return
    snap.status = "creating"

    def complete() -> None:
        layer.emit(event, region=region, snapshot=snap_id, **info)
        current = rds_backend(region).database_snapshots.get(snap_id)
        if current is not None:
            current.status = "available"

    layer.transitions.begin(what, region, snap_id, "creating", layer.profile.duration(what), complete, **info)


def query_reply(action: str, result_xml: str) -> Reply:
    """A 200 answer of the RDS query protocol for an operation the realism layer implements."""
    body = (
        f'<{action}Response xmlns="http://rds.amazonaws.com/doc/2014-10-31/">'
        f"<{action}Result>{result_xml}</{action}Result>"
        f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>"
        f"</{action}Response>"
    ).encode()
    return 200, [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))], body


def drop_replica_source(reply: Reply) -> Reply:
    status, headers, body = reply
    text = re.sub(
        r"<ReadReplicaSourceDBInstanceIdentifier>[^<]*</ReadReplicaSourceDBInstanceIdentifier>",
        "",
        body.decode(),
    )
    data = text.encode()
    headers = [(k, v) for k, v in headers if k.lower() != "content-length"] + [
        ("Content-Length", str(len(data)))
    ]
    return status, headers, data
