"""Route53 operations: change batches validated as Route53 does and PENDING until INSYNC, and
GetHealthCheckStatus answered from the health evaluator."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from dr.sandbox.fakeaws.backends import route53_backend
from dr.sandbox.fakeaws.health_checks import HEALTH_CHECKER_REGIONS, http_report
from dr.sandbox.fakeaws.wire import R53_NS, AwsError, AwsRequest, Reply, iso_time, utcnow, xml_escape

if TYPE_CHECKING:
    from dr.sandbox.fakeaws.layer import Handler, Layer

# ChangeResourceRecordSets limits per request (Route53 DNSLimitations), which moto does not enforce:
# ResourceRecord elements and characters in all Value elements, an UPSERT counting both twice.
R53_MAX_RECORDS = 1000
R53_MAX_VALUE_CHARS = 32000


def change_resource_record_sets(layer: Layer, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
    zone_id = req.path.strip("/").split("/")[2]
    changes = parse_changes(req.body)
    try:
        zone = route53_backend().get_hosted_zone(zone_id)
    except Exception:
        return None  # moto answers NoSuchHostedZone
    records, chars = batch_size(req.body)
    if records > R53_MAX_RECORDS:
        raise AwsError(
            "InvalidChangeBatch",
            f"[Number of records limit of {R53_MAX_RECORDS} exceeded: the batch counts {records} "
            "ResourceRecord elements (UPSERT counts each twice)]",
        )
    if chars > R53_MAX_VALUE_CHARS:
        raise AwsError(
            "InvalidChangeBatch",
            f"[Number of characters limit of {R53_MAX_VALUE_CHARS} in Value elements exceeded: the "
            f"batch counts {chars} (UPSERT counts each character twice)]",
        )
    deleted: set[tuple[str, str, str | None]] = set()  # a batch applies as a whole, in order
    for change in changes:
        name = change["name"].rstrip(".").lower()
        key = (name, change["type"], change["set_identifier"] or None)
        if change["action"] == "DELETE":
            deleted.add(key)
            continue
        if change["action"] != "CREATE" or key in deleted:
            continue
        for rr in zone.rrsets:
            if (
                rr.name.rstrip(".").lower() == name
                and rr.type == change["type"]
                and (rr.set_identifier or None) == (change["set_identifier"] or None)
            ):
                ident = f", set-identifier='{change['set_identifier']}'" if change["set_identifier"] else ""
                raise AwsError(
                    "InvalidChangeBatch",
                    f"[Tried to create resource record set [name='{name}.', type='{change['type']}'{ident}] "
                    "but it already exists]",
                )
    reply = layer.call_inner(environ)
    if reply[0] != 200:
        return reply
    change_id = "C" + uuid.uuid4().hex[:20].upper()
    tr = layer.transitions.begin(
        "route53.insync",
        "global",
        change_id,
        "PENDING",
        layer.profile.duration("route53.insync"),
        lambda: layer.emit("route53.changed", change_id=change_id, changes=changes),
    )
    with layer.lock:
        layer.changes[change_id] = tr
    return rewrite_change(reply, change_id, "INSYNC" if tr.done else "PENDING")


def get_change(layer: Layer, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
    change_id = req.path.rstrip("/").rsplit("/", 1)[-1]
    with layer.lock:
        tr = layer.changes.get(change_id)
    if tr is None:
        return None
    reply = layer.call_inner(environ)
    return rewrite_change(reply, change_id, "INSYNC" if tr.done else "PENDING")


def get_health_check_status(layer: Layer, req: AwsRequest, environ: dict[str, Any]) -> Reply | None:
    hc_id = req.path.strip("/").split("/")[2]
    if route53_backend().health_checks.get(hc_id) is None:
        return None  # moto answers NoSuchHealthCheck
    region = layer.health_check_region(hc_id)
    checked = iso_time(utcnow())
    status = layer.health.report(region) if (layer.health and region) else http_report(200)[1]
    observations = "".join(
        f"<HealthCheckObservation><Region>{r}</Region><IPAddress>127.0.0.1</IPAddress><StatusReport>"
        f"<Status>{xml_escape(status)}</Status><CheckedTime>{checked}</CheckedTime></StatusReport>"
        "</HealthCheckObservation>"
        for r in HEALTH_CHECKER_REGIONS
    )
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<GetHealthCheckStatusResponse xmlns="{R53_NS}">'
        f"<HealthCheckObservations>{observations}</HealthCheckObservations></GetHealthCheckStatusResponse>"
    ).encode()
    return 200, [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))], body


def rewrite_change(reply: Reply, change_id: str, status_value: str) -> Reply:
    status, headers, body = reply
    text = body.decode()
    text = re.sub(r"<Id>/change/[^<]*</Id>", f"<Id>/change/{change_id}</Id>", text, count=1)
    text = re.sub(r"<Status>[^<]*</Status>", f"<Status>{status_value}</Status>", text, count=1)
    data = text.encode()
    headers = [(k, v) for k, v in headers if k.lower() != "content-length"] + [
        ("Content-Length", str(len(data)))
    ]
    return status, headers, data


def batch_size(body: bytes) -> tuple[int, int]:
    """(ResourceRecord elements, Value characters) a ChangeResourceRecordSets body counts."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return 0, 0
    records = chars = 0
    for change in root.iter():
        if change.tag.rsplit("}", 1)[-1] != "Change":
            continue
        action = next((c.text for c in change if c.tag.rsplit("}", 1)[-1] == "Action"), "")
        weight = 2 if (action or "").strip() == "UPSERT" else 1
        for elem in change.iter():
            tag = elem.tag.rsplit("}", 1)[-1]
            if tag == "ResourceRecord":
                records += weight
            elif tag == "Value":
                chars += weight * len(elem.text or "")
    return records, chars


def parse_changes(body: bytes) -> list[dict[str, str]]:
    import xml.etree.ElementTree as ET

    out: list[dict[str, str]] = []
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return out

    def local(tag: str) -> str:
        return tag.rsplit("}", 1)[-1]

    for change in root.iter():
        if local(change.tag) != "Change":
            continue
        entry = {"action": "", "name": "", "type": "", "set_identifier": "", "failover": ""}
        for child in change.iter():
            name = local(child.tag)
            text = (child.text or "").strip()
            if name == "Action":
                entry["action"] = text
            elif name == "Name" and not entry["name"]:
                entry["name"] = text
            elif name == "Type" and not entry["type"]:
                entry["type"] = text
            elif name == "SetIdentifier":
                entry["set_identifier"] = text
            elif name == "Failover":
                entry["failover"] = text
        out.append(entry)
    return out


HANDLERS: dict[tuple[str, str], Handler] = {
    ("route53", "ChangeResourceRecordSets"): change_resource_record_sets,
    ("route53", "GetChange"): get_change,
    ("route53", "GetHealthCheckStatus"): get_health_check_status,
}
