"""Route53 adapter: hosted zones, failover record sets, health checks and change status.

Health-check semantics used by :func:`effective_healthy` (Route53's, as documented):

* a *disabled* health check is always considered healthy;
* an *inverted* health check is considered unhealthy when its endpoint is healthy and vice versa;
* the endpoint status is what the health checkers observe (``GetHealthCheckStatus``): healthy when
  MORE than 18 % of the observations report ``Success`` (18 % or fewer: unhealthy), the rule in
  the Route53 Developer Guide, "How Amazon Route 53 determines whether a health check is healthy".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dr.aws.calls import aws_errors
from dr.aws.session import ClientProvider
from dr.errors import BadInput, NotFound

REGION = "us-east-1"  # Route53 is global; its API lives in us-east-1.
# Route53 considers an endpoint healthy when more than this percentage of its checkers report it
# healthy (DeveloperGuide, dns-failover-determining-health-of-endpoints).
HEALTHY_PERCENT = 18


# ChangeResourceRecordSets limits (Route53 Developer Guide, DNSLimitations): at most 1,000
# ResourceRecord elements and 32,000 characters in all Value elements per request; an UPSERT
# counts each of its ResourceRecord elements and each character of its Values twice.
MAX_BATCH_RECORDS = 1000
MAX_BATCH_VALUE_CHARS = 32000


def change_cost(change: dict[str, Any]) -> tuple[int, int]:
    """(ResourceRecord elements, Value characters) one change counts against a batch's limits."""
    weight = 2 if change.get("Action") == "UPSERT" else 1
    values = [
        str(r.get("Value", "")) for r in (change.get("ResourceRecordSet") or {}).get("ResourceRecords") or ()
    ]
    return weight * len(values), weight * sum(len(v) for v in values)


def change_batches(changes: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``changes`` split, in order, into the fewest consecutive batches Route53 accepts."""
    batches: list[list[dict[str, Any]]] = []
    records = chars = 0
    for change in changes:
        cost_records, cost_chars = change_cost(change)
        if cost_records > MAX_BATCH_RECORDS or cost_chars > MAX_BATCH_VALUE_CHARS:
            name = (change.get("ResourceRecordSet") or {}).get("Name", "?")
            raise BadInput(
                f"the change to {name} alone exceeds Route53's batch limits "
                f"({cost_records} ResourceRecord elements / {cost_chars} value characters counted; "
                f"limits {MAX_BATCH_RECORDS} / {MAX_BATCH_VALUE_CHARS}, UPSERT counting twice)",
                resource=str(name),
                hint="split the record set's values over several names",
            )
        if (
            batches
            and records + cost_records <= MAX_BATCH_RECORDS
            and chars + cost_chars <= MAX_BATCH_VALUE_CHARS
        ):
            batches[-1].append(change)
            records += cost_records
            chars += cost_chars
        else:
            batches.append([change])
            records, chars = cost_records, cost_chars
    return batches


def _strip_dot(name: str) -> str:
    return name.rstrip(".").lower()


@dataclass(frozen=True)
class HostedZone:
    id: str
    name: str
    private: bool

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "private": self.private}


@dataclass(frozen=True)
class RecordSet:
    name: str
    type: str
    set_identifier: str | None = None
    failover: str | None = None  # PRIMARY | SECONDARY | None
    health_check_id: str | None = None
    alias_dns_name: str | None = None
    alias_zone_id: str | None = None
    evaluate_target_health: bool = False
    ttl: int | None = None
    values: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> RecordSet:
        alias = raw.get("AliasTarget") or {}
        return cls(
            name=_strip_dot(raw["Name"]),
            type=raw["Type"],
            set_identifier=raw.get("SetIdentifier"),
            failover=raw.get("Failover"),
            health_check_id=raw.get("HealthCheckId"),
            alias_dns_name=_strip_dot(alias["DNSName"]) if alias.get("DNSName") else None,
            alias_zone_id=alias.get("HostedZoneId"),
            evaluate_target_health=bool(alias.get("EvaluateTargetHealth", False)),
            ttl=raw.get("TTL"),
            values=tuple(r["Value"] for r in raw.get("ResourceRecords") or ()),
            raw=raw,
        )

    @property
    def target(self) -> str:
        return self.alias_dns_name or ",".join(self.values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "set_identifier": self.set_identifier,
            "failover": self.failover,
            "health_check_id": self.health_check_id,
            "target": self.target,
        }


@dataclass(frozen=True)
class HealthCheck:
    id: str
    type: str
    fqdn: str | None
    inverted: bool
    disabled: bool
    version: int
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "fqdn": self.fqdn,
            "inverted": self.inverted,
            "disabled": self.disabled,
        }


@dataclass(frozen=True)
class HealthStatus:
    """What the checkers observe for one health check."""

    health_check_id: str
    observations: int
    successes: int
    reports: tuple[str, ...] = ()  # each checker's StatusReport.Status

    @property
    def endpoint_healthy(self) -> bool:
        return checkers_healthy(self.successes, self.observations)

    @property
    def answering(self) -> int:
        """Checkers whose request got an HTTP answer (a success, or an error status such as 503)."""
        return sum(1 for r in self.reports if answered(r))

    @property
    def endpoint_unreachable(self) -> bool:
        """Most checkers got no answer at all (timeout, refused, unresolvable): nothing serves there."""
        return bool(self.reports) and self.answering * 2 <= len(self.reports)


def checkers_healthy(successes: int, observations: int) -> bool:
    """Route53's verdict from its checkers: strictly more than 18 % report success (exact integers)."""
    return observations > 0 and successes * 100 > HEALTHY_PERCENT * observations


def answered(report: str) -> bool:
    """Did the endpoint answer? ``Success: …`` or ``Failure: HTTP Status Code 503 …`` (an answer);
    ``Failure: Connection timed out …`` / ``… refused`` / ``… resolve …`` (no answer)."""
    text = report.lower()
    return text.startswith("success") or "http status code" in text


def effective_healthy(check: HealthCheck, status: HealthStatus) -> bool:
    """Route53's view of the check after applying Disabled and Inverted."""
    if check.disabled:
        return True
    return status.endpoint_healthy != check.inverted


class Route53:
    """Route53 calls (global service; the client lives in us-east-1)."""

    def __init__(self, clients: ClientProvider) -> None:
        self.clients = clients

    @property
    def client(self) -> Any:
        return self.clients.client("route53", REGION)

    def find_zone(self, domain: str, *, private: bool = False) -> HostedZone:
        """The hosted zone named ``domain``; NotFound (exit 2) naming the zone otherwise."""
        wanted = _strip_dot(domain)
        with aws_errors(resource=f"hosted zone {wanted}", region=None, action="find"):
            raw = self.client.list_hosted_zones_by_name(DNSName=wanted + ".", MaxItems="100")
        for zone in raw.get("HostedZones", []):
            if (
                _strip_dot(zone["Name"]) == wanted
                and bool(zone.get("Config", {}).get("PrivateZone")) == private
            ):
                return HostedZone(zone["Id"].split("/")[-1], wanted, private)
        raise NotFound(
            f"hosted zone {wanted} not found in Route53",
            resource=f"hosted zone {wanted}",
            hint=f"create the {'private' if private else 'public'} zone {wanted} (stack dns) or fix app.domain in the stack files",
        )

    def records(self, zone: HostedZone, name: str | None = None, rtype: str | None = None) -> list[RecordSet]:
        """Record sets of ``zone`` (only ``name``/``rtype`` when given).

        With ``name``, listing starts at it and stops at the first other name: Route53 lists in
        its sort order (reversed labels, then type) from ``StartRecordName``, so every record of
        ``name`` comes before any other name. The rest of the zone is never paged through (each
        page counts against Route53's 5 requests/s per account).
        """
        out: list[RecordSet] = []
        wanted = _strip_dot(name) if name else None
        with aws_errors(resource=f"records of hosted zone {zone.name}", region=None, action="list"):
            paginator = self.client.get_paginator("list_resource_record_sets")
            kwargs: dict[str, Any] = {"HostedZoneId": zone.id}
            if wanted:
                kwargs["StartRecordName"] = wanted + "."
            for page in paginator.paginate(**kwargs):
                for raw in page.get("ResourceRecordSets", []):
                    rec = RecordSet.from_api(raw)
                    if wanted and rec.name != wanted:
                        return out
                    if rtype and rec.type != rtype:
                        continue
                    out.append(rec)
        return out

    def health_check(self, health_check_id: str) -> HealthCheck:
        with aws_errors(resource=f"health check {health_check_id}", region=None, action="describe"):
            raw = self.client.get_health_check(HealthCheckId=health_check_id)["HealthCheck"]
            tags = self.client.list_tags_for_resource(ResourceType="healthcheck", ResourceId=health_check_id)
        name = next(
            (t["Value"] for t in tags.get("ResourceTagSet", {}).get("Tags", []) if t.get("Key") == "Name"),
            None,
        )
        cfg = raw.get("HealthCheckConfig", {})
        return HealthCheck(
            id=raw["Id"],
            type=cfg.get("Type", ""),
            fqdn=cfg.get("FullyQualifiedDomainName") or cfg.get("IPAddress"),
            inverted=bool(cfg.get("Inverted", False)),
            disabled=bool(cfg.get("Disabled", False)),
            version=int(raw.get("HealthCheckVersion", 1)),
            name=name,
        )

    def health_status(self, health_check_id: str) -> HealthStatus:
        with aws_errors(resource=f"health check {health_check_id}", region=None, action="read status of"):
            raw = self.client.get_health_check_status(HealthCheckId=health_check_id)
        reports = tuple(
            str((o.get("StatusReport") or {}).get("Status", ""))
            for o in raw.get("HealthCheckObservations", [])
        )
        ok = sum(1 for r in reports if r.lower().startswith("success"))
        return HealthStatus(health_check_id, len(reports), ok, reports)

    def update_health_check(
        self, check: HealthCheck, *, inverted: bool | None = None, disabled: bool | None = None
    ) -> HealthCheck:
        """Set Inverted/Disabled, guarded by the version we read (concurrent edits fail loudly)."""
        kwargs: dict[str, Any] = {"HealthCheckId": check.id, "HealthCheckVersion": check.version}
        if inverted is not None:
            kwargs["Inverted"] = inverted
        if disabled is not None:
            kwargs["Disabled"] = disabled
        with aws_errors(resource=f"health check {check.name or check.id}", region=None, action="update"):
            self.client.update_health_check(**kwargs)
        return self.health_check(check.id)

    def change(self, zone: HostedZone, changes: list[dict[str, Any]], comment: str) -> str:
        """One batched change; returns the change id to poll with :meth:`change_status`."""
        with aws_errors(resource=f"hosted zone {zone.name}", region=None, action="change records in"):
            raw = self.client.change_resource_record_sets(
                HostedZoneId=zone.id, ChangeBatch={"Comment": comment, "Changes": changes}
            )
        change_id: str = raw["ChangeInfo"]["Id"].split("/")[-1]
        return change_id

    def change_status(self, change_id: str) -> str:
        with aws_errors(resource=f"change {change_id}", region=None, action="read"):
            status: str = self.client.get_change(Id=change_id)["ChangeInfo"]["Status"]
        return status

    def test_dns_answer(self, zone: HostedZone, name: str, rtype: str) -> list[str] | None:
        """What Route53 answers for ``name`` (TestDNSAnswer); None when the API is unavailable."""
        from dr.aws.session import ReadOnlyViolation, client_error_type

        client_error = client_error_type()
        try:
            raw = self.client.test_dns_answer(HostedZoneId=zone.id, RecordName=name, RecordType=rtype)
        except (client_error, ReadOnlyViolation):
            # Not offered (moto: 404), or refused by a read-only provider: session.py classifies
            # operations by prefix and "Test…" is not a read prefix (ElastiCache TestFailover mutates).
            return None
        return [_strip_dot(r) for r in raw.get("RecordData", [])]
