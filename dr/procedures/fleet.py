"""Fleet failover: promote many read replicas and repoint many DNS records, within API rate limits.

The topology describes one database per site; real estates have fleets. A fleet is given as data
(``Fleet``, or ``--fleet FILE`` YAML)::

    databases:
      - {identifier: orders-replica-1, region: us-east-1}
    records:
      - {zoneId: Z123, name: orders-1.db.example.com, db: orders-replica-1}   # CNAME -> endpoint

The plan keeps the number of API calls near the minimum, so a fleet failover is bounded by the
RDS/Route53 rate limits (see :mod:`dr.runbook.ratelimit`) and not by polling:

* ``inventory-<region>`` — one paginated ``DescribeDBInstances`` (filter by id, 100 per page);
* ``promote-<db>`` — one ``PromoteReadReplica`` each (skipped when the inventory shows it done);
* ``promoted-<region>`` — waits with the same paginated describe for the whole region;
* ``dns-<zone>`` — ONE ``ChangeResourceRecordSets`` per hosted zone (all its records UPSERTed to
  the promoted endpoints; over 500 changes it splits into batches of 500), then ``GetChange``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dr.aws.rds import aws_errors
from dr.errors import BadInput
from dr.procedures.common import clients_of
from dr.runbook.plan import Operation, Plan, Step, StepContext

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider

BATCH = 500  # Route53 allows 1000 ResourceRecord elements per change batch; UPSERT counts twice.
_FILTER_MAX = 100  # DescribeDBInstances: at most 100 values per filter


@dataclass(frozen=True)
class FleetDb:
    identifier: str
    region: str


@dataclass(frozen=True)
class FleetRecord:
    zone_id: str
    name: str
    db: str
    type: str = "CNAME"
    ttl: int = 60


@dataclass
class Fleet:
    databases: list[FleetDb]
    records: list[FleetRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        ids = [d.identifier for d in self.databases]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise BadInput(f"fleet lists database(s) twice: {', '.join(dupes)}", resource=dupes[0])
        known = set(ids)
        for rec in self.records:
            if rec.db not in known:
                raise BadInput(
                    f"fleet record {rec.name} points at database {rec.db}, which the fleet does not list",
                    resource=rec.name,
                    hint="add the database under `databases:` or fix the record's `db:`",
                )

    def regions(self) -> list[str]:
        return sorted({d.region for d in self.databases})

    def zones(self) -> dict[str, list[FleetRecord]]:
        out: dict[str, list[FleetRecord]] = defaultdict(list)
        for rec in self.records:
            out[rec.zone_id].append(rec)
        return dict(out)


def load_fleet(path: str | Path) -> Fleet:
    """Read a fleet YAML file (see the module docstring). Bad content: exit 2."""
    import yaml

    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
        dbs = [FleetDb(str(d["identifier"]), str(d["region"])) for d in raw.get("databases") or []]
        recs = [
            FleetRecord(
                str(r.get("zoneId") or r["zone_id"]),
                str(r["name"]).rstrip("."),
                str(r["db"]),
                str(r.get("type", "CNAME")),
                int(r.get("ttl", 60)),
            )
            for r in raw.get("records") or []
        ]
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise BadInput(
            f"fleet file {path}: {type(exc).__name__}: {exc}",
            resource=str(path),
            hint="databases: [{identifier, region}], records: [{zoneId, name, db}]",
        ) from None
    if not dbs:
        raise BadInput(f"fleet file {path} lists no databases", resource=str(path))
    return Fleet(dbs, recs)


def describe_many(clients: ClientProvider, region: str, ids: list[str]) -> dict[str, dict[str, Any]]:
    """{identifier: raw instance} for ``ids`` in ``region``, 100 identifiers per call (paginated)."""
    out: dict[str, dict[str, Any]] = {}
    client = clients.client("rds", region)
    for i in range(0, len(ids), _FILTER_MAX):
        chunk = ids[i : i + _FILTER_MAX]
        with aws_errors(resource=f"{len(chunk)} DB instances", region=region, action="describe"):
            pages = client.get_paginator("describe_db_instances").paginate(
                Filters=[{"Name": "db-instance-id", "Values": chunk}]
            )
            for page in pages:
                for inst in page.get("DBInstances", []):
                    out[inst["DBInstanceIdentifier"]] = inst
    return out


def _summary(inst: dict[str, Any]) -> dict[str, Any]:
    return {
        "replica": bool(inst.get("ReadReplicaSourceDBInstanceIdentifier")),
        "status": inst.get("DBInstanceStatus"),
        "endpoint": (inst.get("Endpoint") or {}).get("Address"),
    }


def _inventory_step(region: str, ids: list[str]) -> Step:
    def action(ctx: StepContext) -> Any:
        found = describe_many(clients_of(ctx), region, ids)
        missing = sorted(set(ids) - set(found))
        if missing:
            raise BadInput(
                f"{len(missing)} fleet database(s) do not exist in {region}: {', '.join(missing[:5])}",
                resource=missing[0],
                region=region,
                hint="fix the fleet file; nothing was changed",
            )
        ctx.set(f"inventory:{region}", {i: _summary(found[i]) for i in ids})
        return {"databases": len(found)}

    return Step(
        id=f"inventory-{region}",
        title=f"Read the state of {len(ids)} fleet databases in {region}",
        region=region,
        service="rds",
        changes="nothing (reads)",
        operations=(
            Operation("rds", "DescribeDBInstances", region, {"DBInstanceIdentifier": ids[0]}, False),
        ),
        action=action,
        estimate=1.0,
        tags={"phase": "database"},
    )


def _promote_step(db: FleetDb) -> Step:
    ident, region = db.identifier, db.region

    def check(ctx: StepContext) -> bool:
        inv = ctx.get(f"inventory:{region}") or {}
        return ident in inv and not inv[ident]["replica"]

    def action(ctx: StepContext) -> Any:
        from dr.aws.session import client_error_type

        try:
            clients_of(ctx).client("rds", region).promote_read_replica(DBInstanceIdentifier=ident)
        except client_error_type() as err:
            code = str(getattr(err, "response", {}).get("Error", {}).get("Code", ""))
            if code == "InvalidDBInstanceState" and "read replica" in str(err).lower():
                return {"promote": "already standalone"}
            from dr.errors import from_client_error

            raise from_client_error(
                err, resource=f"DB instance {ident}", region=region, action="promote"
            ) from None
        return {"promote": ident}

    return Step(
        id=f"promote-{ident}",
        title=f"Promote {ident} ({region})",
        region=region,
        service="rds",
        changes=f"{ident} becomes a standalone writable primary",
        depends_on=(f"inventory-{region}",),
        operations=(Operation("rds", "PromoteReadReplica", region, {"DBInstanceIdentifier": ident}),),
        check=check,
        action=action,
        estimate=0.1,
        tags={"phase": "database"},
    )


def _promoted_step(region: str, ids: list[str], *, timeout: float) -> Step:
    def wait(ctx: StepContext) -> bool:
        found = describe_many(clients_of(ctx), region, ids)
        states = {i: _summary(found[i]) for i in ids if i in found}
        pending = [
            i for i in ids if i not in states or states[i]["replica"] or states[i]["status"] != "available"
        ]
        if pending:
            return False
        ctx.set(f"endpoints:{region}", {i: s["endpoint"] for i, s in states.items()})
        return True

    return Step(
        id=f"promoted-{region}",
        title=f"Wait until the {len(ids)} fleet databases in {region} are standalone and available",
        region=region,
        service="rds",
        changes="nothing (waits)",
        depends_on=tuple(f"promote-{i}" for i in ids),
        operations=(
            Operation("rds", "DescribeDBInstances", region, {"DBInstanceIdentifier": ids[0]}, False),
        ),
        wait=wait,
        timeout=timeout,
        estimate=5.0,
        tags={"phase": "database"},
    )


def _dns_step(zone: str, records: list[FleetRecord], regions: dict[str, str], *, timeout: float) -> Step:
    deps = tuple(sorted({f"promoted-{regions[r.db]}" for r in records}))

    def changes(ctx: StepContext) -> list[dict[str, Any]]:
        out = []
        for rec in records:
            endpoint = (ctx.get(f"endpoints:{regions[rec.db]}") or {}).get(rec.db)
            if not endpoint:
                raise BadInput(
                    f"no endpoint known for {rec.db} (record {rec.name})",
                    resource=rec.db,
                    region=regions[rec.db],
                )
            out.append(
                {
                    "Action": "UPSERT",
                    "ResourceRecordSet": {
                        "Name": rec.name,
                        "Type": rec.type,
                        "TTL": rec.ttl,
                        "ResourceRecords": [{"Value": endpoint}],
                    },
                }
            )
        return out

    def action(ctx: StepContext) -> Any:
        client = clients_of(ctx).client("route53", "us-east-1")
        ids = []
        all_changes = changes(ctx)
        for i in range(0, len(all_changes), BATCH):
            with aws_errors(resource=f"hosted zone {zone}", region="global", action="change records in"):
                resp = client.change_resource_record_sets(
                    HostedZoneId=zone,
                    ChangeBatch={"Comment": "dr fleet failover", "Changes": all_changes[i : i + BATCH]},
                )
            ids.append(resp["ChangeInfo"]["Id"])
        ctx.set(f"changes:{zone}", ids)
        return {"zone": zone, "records": len(all_changes), "batches": len(ids)}

    def wait(ctx: StepContext) -> bool:
        client = clients_of(ctx).client("route53", "us-east-1")
        pending = [
            c
            for c in ctx.get(f"changes:{zone}") or []
            if client.get_change(Id=c)["ChangeInfo"]["Status"] != "INSYNC"
        ]
        ctx.set(f"changes:{zone}", pending)
        return not pending

    return Step(
        id=f"dns-{zone}",
        title=f"Point {len(records)} records of zone {zone} at the promoted databases (one change batch)",
        region=None,
        service="route53",
        changes=f"UPSERT {len(records)} records",
        depends_on=deps,
        operations=(
            Operation(
                "route53",
                "ChangeResourceRecordSets",
                None,
                {"HostedZoneId": zone, "Changes": [{"Action": "UPSERT", "Name": r.name} for r in records]},
                resources=(f"arn:aws:route53:::hostedzone/{zone}",),
            ),
            Operation("route53", "GetChange", None, {}, False),
        ),
        action=action,
        wait=wait,
        timeout=timeout,
        estimate=30.0,
        tags={"phase": "dns"},
    )


def fleet_plan(fleet: Fleet, *, timeout: float = 1800.0) -> Plan:
    """The fleet failover plan (see the module docstring)."""
    steps: list[Step] = []
    regions = {d.identifier: d.region for d in fleet.databases}
    for region in fleet.regions():
        ids = [d.identifier for d in fleet.databases if d.region == region]
        steps.append(_inventory_step(region, ids))
        steps += [_promote_step(d) for d in fleet.databases if d.region == region]
        steps.append(_promoted_step(region, ids, timeout=timeout))
    for zone, records in sorted(fleet.zones().items()):
        steps.append(_dns_step(zone, records, regions, timeout=timeout))
    return Plan(
        "fleet-failover",
        steps,
        f"promote {len(fleet.databases)} replicas, repoint {len(fleet.records)} records in "
        f"{len(fleet.zones())} zone(s)",
    )


def run_fleet(
    clients: ClientProvider,
    fleet: Fleet,
    *,
    limiter: Any = None,
    recorder: Any = None,
    max_workers: int = 16,
    poll: Any = None,
    timeout: float = 1800.0,
) -> Any:
    """Run the fleet plan under ``limiter`` (a :class:`dr.runbook.ratelimit.RateLimiter`; default
    limits when None). Returns the executor's RunResult."""
    from dr.runbook.executor import Executor
    from dr.runbook.journal import new_run_id
    from dr.runbook.ratelimit import RateLimiter

    plan = fleet_plan(fleet, timeout=timeout)
    ctx = StepContext(run_id=new_run_id(), services={"clients": clients})
    return Executor(
        plan,
        ctx,
        max_workers=max_workers,
        poll=poll,
        recorder=recorder,
        rate_limiter=limiter if limiter is not None else RateLimiter(),
    ).run()
