"""Which region serves the public name (its Route53 failover records and health checks), and
what moving it changes: the model :mod:`dr.procedures.dns` gates on and the traffic steps
(:mod:`dr.steps.traffic`) re-read before they act."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from dr.aws.route53 import (
    HealthCheck,
    HealthStatus,
    HostedZone,
    RecordSet,
    Route53,
    effective_healthy,
)
from dr.errors import BadInput

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.topology import Estate

_REGION_RE = re.compile(r"\b([a-z]{2}(?:-gov)?-[a-z]+-\d)\b")


@dataclass
class FailoverRecord:
    record: RecordSet
    region: str
    check: HealthCheck | None
    status: HealthStatus | None

    @property
    def role(self) -> str:
        return self.record.failover or "NONE"

    @property
    def endpoint_healthy(self) -> bool | None:
        return None if self.status is None else self.status.endpoint_healthy

    @property
    def healthy(self) -> bool:
        """Route53's view (no health check: always healthy).

        An alias with ``EvaluateTargetHealth`` is also only as healthy as its target: the ALB
        checks the same ``/health`` as the health check, so a failing endpoint makes the record
        unhealthy whatever the check's Disabled/Inverted say."""
        if self.record.evaluate_target_health and self.endpoint_healthy is False:
            return False
        if self.check is None or self.status is None:
            return True
        return effective_healthy(self.check, self.status)

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "region": self.region,
            "set_identifier": self.record.set_identifier,
            "type": self.record.type,
            "target": self.record.target,
            "health_check": None
            if self.check is None
            else {
                "id": self.check.id,
                "name": self.check.name,
                "inverted": self.check.inverted,
                "disabled": self.check.disabled,
                "endpoint_healthy": self.endpoint_healthy,
                "observations": None
                if self.status is None
                else f"{self.status.successes}/{self.status.observations} ok",
            },
            "healthy": self.healthy,
        }


@dataclass
class DnsState:
    zone: HostedZone
    name: str
    records: list[FailoverRecord]
    active_region: str
    answer: list[str] | None = None
    answer_region: str | None = None
    notes: list[str] = field(default_factory=list)

    def by_region(self, region: str) -> FailoverRecord | None:
        return next((r for r in self.records if r.region == region), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "zone": self.zone.name,
            "zone_id": self.zone.id,
            "record": self.name,
            "active_region": self.active_region,
            "records": [r.to_dict() for r in self.records],
            "test_dns_answer": self.answer,
            "answer_region": self.answer_region,
            "notes": self.notes,
        }


def region_of(rec: RecordSet, estate: Estate) -> str:
    """Which site a record points at: region in the target name, else ALB/site names, else its role."""
    texts = [rec.target.lower(), (rec.set_identifier or "").lower()]
    for text in texts:
        match = _REGION_RE.search(text)
        if match and match.group(1) in estate.regions:
            return match.group(1)
        for view in (estate.primary, estate.secondary):
            if view.edge.alb_name.lower() in text or view.site.name.lower() in text:
                return view.region
    return estate.primary.region if rec.failover != "SECONDARY" else estate.secondary.region


def _answer_region(answer: list[str], state_records: list[FailoverRecord], estate: Estate) -> str | None:
    for rec in state_records:
        targets = {rec.record.alias_dns_name or "", *rec.record.values}
        if any(a in targets or (rec.record.alias_dns_name or "-") in a for a in answer):
            return rec.region
    for a in answer:
        match = _REGION_RE.search(a)
        if match and match.group(1) in estate.regions:
            return match.group(1)
    return None


def read_state(clients: ClientProvider, estate: Estate, *, use_test_dns: bool = True) -> DnsState:
    """Evaluate which region Route53 serves ``app.record`` from (read-only)."""
    r53 = Route53(clients)
    zone = r53.find_zone(estate.app.domain)
    name = estate.app.record
    recs = [r for r in r53.records(zone, name) if r.failover in ("PRIMARY", "SECONDARY")]
    if not recs:
        raise BadInput(
            f"{name} has no PRIMARY/SECONDARY failover records in hosted zone {zone.name} ({zone.id})",
            resource=name,
            hint="deploy the dns component of both stacks (pulumi up --stack prod / dr)",
        )
    rtype = "A" if any(r.type == "A" for r in recs) else recs[0].type
    recs = [r for r in recs if r.type == rtype]
    out: list[FailoverRecord] = []
    for rec in recs:
        check = status = None
        if rec.health_check_id:
            check = r53.health_check(rec.health_check_id)
            status = r53.health_status(rec.health_check_id)
        out.append(FailoverRecord(rec, region_of(rec, estate), check, status))
    out.sort(key=lambda r: (r.role != "PRIMARY", r.region))
    primary = next((r for r in out if r.role == "PRIMARY"), None)
    secondary = next((r for r in out if r.role == "SECONDARY"), None)
    notes: list[str] = []
    if primary is not None and (primary.healthy or secondary is None or not secondary.healthy):
        active = primary.region
        if not primary.healthy:
            notes.append("both failover records are unhealthy: Route53 answers with PRIMARY")
    else:
        assert secondary is not None
        active = secondary.region
    state = DnsState(zone, name, out, active, notes=notes)
    if use_test_dns:
        answer = r53.test_dns_answer(zone, name, rtype)
        if answer:
            state.answer = answer
            state.answer_region = _answer_region(answer, out, estate)
            if state.answer_region and state.answer_region != active:
                notes.append(f"TestDNSAnswer says {state.answer_region}; health checks say {active}")
                active = state.answer_region
                state.active_region = active
    return state


@dataclass
class DnsMove:
    """A validated move of the public name to ``target_region`` (pre-flight result)."""

    target_region: str
    method: Literal["healthcheck", "records"]
    before: DnsState
    # (health check id, name, desired Inverted, desired Disabled)
    inversions: list[tuple[str, str, bool, bool]]
    # role per set identifier after the move (records method)
    roles: dict[str, str]
    forced: bool
    warnings: list[str] = field(default_factory=list)
    # Forced move to an unhealthy target: records method, and the other regions' healthy checks
    # inverted so every record is unhealthy and Route53 answers the (target) PRIMARY.
    pin_target: bool = False

    @property
    def noop(self) -> bool:
        return not self.inversions and not self.roles and self.before.active_region == self.target_region

    def to_dict(self) -> dict[str, Any]:
        return {
            "target_region": self.target_region,
            "method": self.method,
            "active_region_before": self.before.active_region,
            "health_check_changes": [
                {"id": hid, "name": name, "inverted": inv, "disabled": dis}
                for hid, name, inv, dis in self.inversions
            ],
            "record_roles": self.roles,
            "forced": self.forced,
            "pin_target": self.pin_target,
            "warnings": self.warnings,
        }


def desired_changes(
    state: DnsState, target: str, method: str, *, pin_target: bool = False
) -> tuple[list[tuple[str, str, bool, bool]], dict[str, str]]:
    """Health-check settings (Inverted, Disabled) and record roles that make ``target`` served."""
    changes: list[tuple[str, str, bool, bool]] = []
    roles: dict[str, str] = {}
    tgt = state.by_region(target)
    assert tgt is not None
    if method == "records":
        for rec in state.records:
            want = "PRIMARY" if rec.region == target else "SECONDARY"
            if rec.role != want:
                roles[rec.record.set_identifier or rec.region] = want
    target_role = "PRIMARY" if method == "records" else tgt.role
    for rec in state.records:
        if rec.check is None:
            continue
        role = ("PRIMARY" if rec.region == target else "SECONDARY") if method == "records" else rec.role
        # healthcheck method: force the PRIMARY record of another region unhealthy
        want_inverted = rec.region != target and target_role == "SECONDARY" and role == "PRIMARY"
        if pin_target and rec.region != target:
            # forced to a failing target (records method): another region whose endpoint answers
            # is made unhealthy, so Route53 falls back to the PRIMARY; inverting a failing one
            # would make it healthy
            want_inverted = rec.endpoint_healthy is not False
        want_disabled = False
        if (rec.check.inverted, rec.check.disabled) != (want_inverted, want_disabled):
            changes.append((rec.check.id, rec.check.name or rec.check.id, want_inverted, want_disabled))
    return changes, roles


def move_satisfied(state: DnsState, move: DnsMove) -> bool:
    inversions, roles = desired_changes(state, move.target_region, move.method, pin_target=move.pin_target)
    return not inversions and not roles


def swap_changes(records: list[FailoverRecord], roles: dict[str, str]) -> list[dict[str, Any]]:
    """One batch giving the records ``roles`` (set identifier -> PRIMARY/SECONDARY): every
    DELETE (of the record exactly as listed) before every CREATE, so no intermediate state has
    two records of one role."""
    changed = [r for r in records if (r.record.set_identifier or r.region) in roles]
    deletes = [{"Action": "DELETE", "ResourceRecordSet": copy.deepcopy(r.record.raw)} for r in changed]
    creates = []
    for rec in changed:
        raw = copy.deepcopy(rec.record.raw)
        raw["Failover"] = roles[rec.record.set_identifier or rec.region]
        creates.append({"Action": "CREATE", "ResourceRecordSet": raw})
    return deletes + creates
