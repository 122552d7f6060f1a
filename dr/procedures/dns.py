"""Which region serves the public name, and moving it (failover / failback).

The estate publishes ``app.record`` as a pair of Route53 *failover* record sets (PRIMARY in the
primary region, SECONDARY in the DR region), each tied to a health check. Route53 answers with
the PRIMARY record while its health check is healthy, else the SECONDARY one (both unhealthy:
PRIMARY). :func:`read_state` evaluates exactly that (see :func:`dr.aws.route53.effective_healthy`),
and cross-checks with ``TestDNSAnswer`` when the API offers it.

Two ways to move traffic (``method``):

* ``healthcheck`` (preferred, no record rewrite): invert the health check of the region losing
  traffic, so Route53 considers it unhealthy; failback clears the inversion. Only valid while that
  region's endpoint is *healthy* — inverting a failing check would make it healthy.
* ``records``: one change batch per zone swapping the PRIMARY/SECONDARY roles, so the target
  region is PRIMARY (flap-proof when the old region is dead or flapping); inversions are cleared.
  The batch DELETEs both records as listed and CREATEs them with the roles exchanged: Route53
  validates a batch as a whole, while UPSERTing a record to the role the other one still holds has
  been refused ("Invalid request", boto/boto3#1347).
* ``auto`` picks ``healthcheck`` when it is valid, else ``records`` (and ``records`` for a failback
  whose roles were swapped, restoring the roles the stack files declare).

A forced move (``force``) to a target whose endpoint fails always uses ``records``: the records are
aliases with ``EvaluateTargetHealth`` (the ALB checks the same ``/health``), so neither disabling
nor inverting the target's check makes it healthy. The target becomes PRIMARY and the other
region's healthy check is inverted: with every record unhealthy Route53 answers the PRIMARY. The
next move clears the inversion.

Pre-flight refuses (exit 3) when the target region's endpoint is not healthy, unless ``force``.
"""

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
from dr.errors import BadInput, GateRefused
from dr.procedures.support import clients_of
from dr.runbook.plan import Operation, Plan, Step, StepContext

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.topology import Estate, SiteView

Method = Literal["auto", "healthcheck", "records"]
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


def _region_of(rec: RecordSet, estate: Estate) -> str:
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
        out.append(FailoverRecord(rec, _region_of(rec, estate), check, status))
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


# ---------------------------------------------------------------------------------------------
# failover / failback
# ---------------------------------------------------------------------------------------------


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


def _desired(
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


def prepare_move(
    clients: ClientProvider,
    estate: Estate,
    target: SiteView,
    *,
    method: Method = "auto",
    force: bool = False,
    pin_unhealthy_target: bool = False,
) -> DnsMove:
    """Pre-flight of a failover/failback (read-only). BadInput exit 2, GateRefused exit 3.

    ``force`` skips the target-health gate. ``pin_unhealthy_target`` (the CLI's ``--force``) also
    makes the name move to a target that fails *now* (records method, the other region's check
    inverted); plans that make the target healthy before their DNS step (``dr failover``) leave it
    False.
    """
    state = read_state(clients, estate)
    tgt = state.by_region(target.region)
    if tgt is None:
        raise BadInput(
            f"{state.name} in zone {state.zone.name} has no failover record pointing at {target.region}",
            resource=state.name,
            region=target.region,
            hint=f"deploy the dns component of stack {target.stack}",
        )
    warnings: list[str] = []
    if tgt.endpoint_healthy is False:
        who = tgt.check.name or tgt.check.id if tgt.check else "-"
        if not force:
            raise GateRefused(
                f"health check {who} of {target.region} reports its endpoint unhealthy "
                f"({tgt.status.successes if tgt.status else 0}/{tgt.status.observations if tgt.status else 0} checkers ok): "
                f"refusing to send {state.name} there",
                resource=who,
                region=target.region,
                hint=f"fix {target.region} first (`dr status`), or --force to move traffic anyway",
            )
        warnings.append(f"target {target.region} is unhealthy: moved anyway (--force)")
    others = [r for r in state.records if r.region != target.region]
    chosen: Literal["healthcheck", "records"]
    # Inverting the check of a region whose endpoint is failing would make it *healthy*.
    blocking = [
        r
        for r in others
        if tgt.role == "SECONDARY"
        and r.role == "PRIMARY"
        and (r.check is None or (r.endpoint_healthy is False and not r.check.inverted))
    ]
    pin = force and pin_unhealthy_target and tgt.endpoint_healthy is False
    if pin and method == "healthcheck":
        raise BadInput(
            f"--method healthcheck cannot force {state.name} onto {target.region}: its endpoint fails, "
            "and with EvaluateTargetHealth neither disabling nor inverting its check makes it healthy",
            resource=state.name,
            region=target.region,
            hint="use --method records (or auto): the target becomes PRIMARY",
        )
    if method == "records" or pin:
        chosen = "records"
    elif method == "healthcheck":
        if blocking:
            raise BadInput(
                f"--method healthcheck cannot move {state.name} off {blocking[0].region}: its health check "
                f"{'is missing' if blocking[0].check is None else 'already fails'} "
                "(inverting it would not route away from it, or would route back when it recovers)",
                resource=state.name,
                region=blocking[0].region,
                hint="use --method records (swaps the PRIMARY/SECONDARY roles in one batched change)",
            )
        chosen = "healthcheck"
    elif tgt.role == "PRIMARY":
        chosen = "healthcheck"  # only inversions to clear
    elif blocking or target.role == "primary":
        # a dead/flapping old region (inverting its failing check would make it healthy), or a
        # failback that restores the PRIMARY/SECONDARY roles the stack files declare
        chosen = "records"
    else:
        chosen = "healthcheck"
    inversions, roles = _desired(state, target.region, chosen, pin_target=pin)
    return DnsMove(target.region, chosen, state, inversions, roles, force, warnings, pin_target=pin)


def _satisfied(state: DnsState, move: DnsMove) -> bool:
    inversions, roles = _desired(state, move.target_region, move.method, pin_target=move.pin_target)
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


def move_plan(estate: Estate, move: DnsMove, *, timeout: float = 600.0) -> Plan:
    """Plan: route (inversions / one UPSERT batch, wait INSYNC) → verify the served region."""
    target = move.target_region
    zone = move.before.zone

    def check(ctx: StepContext) -> bool:
        state = read_state(clients_of(ctx), estate, use_test_dns=False)
        return _satisfied(state, move)

    def action(ctx: StepContext) -> Any:
        clients = clients_of(ctx)
        r53 = Route53(clients)
        state = read_state(clients, estate, use_test_dns=False)
        inversions, roles = _desired(state, target, move.method, pin_target=move.pin_target)
        done: dict[str, Any] = {"health_checks": [], "change_id": None}
        if roles:
            changes = swap_changes(state.records, roles)
            change_id = r53.change(zone, changes, f"dr dns: serve {state.name} from {target}")
            ctx.set("change_id", change_id)
            done["change_id"] = change_id
        for hid, name, inverted, disabled in inversions:
            current = r53.health_check(hid)
            if (current.inverted, current.disabled) != (inverted, disabled):
                r53.update_health_check(current, inverted=inverted, disabled=disabled)
                done["health_checks"].append(
                    {"id": hid, "name": name, "inverted": inverted, "disabled": disabled}
                )
        return done

    def wait(ctx: StepContext) -> bool:
        change_id = ctx.get("change_id")
        if not change_id:
            return True
        return Route53(clients_of(ctx)).change_status(str(change_id)) == "INSYNC"

    def verify(ctx: StepContext) -> bool:
        state = read_state(clients_of(ctx), estate)
        ctx.set("active_region", state.active_region)
        return state.active_region == target

    ops: list[Operation] = []
    if move.roles:
        ops.append(
            Operation(
                "route53",
                "ChangeResourceRecordSets",
                None,
                {
                    "HostedZoneId": zone.id,
                    "Changes": [{"Action": "DELETE", "SetIdentifier": k} for k in move.roles]
                    + [
                        {"Action": "CREATE", "SetIdentifier": k, "Failover": v} for k, v in move.roles.items()
                    ],
                },
            )
        )
    for hid, name, inverted, disabled in move.inversions:
        ops.append(
            Operation(
                "route53",
                "UpdateHealthCheck",
                None,
                {"HealthCheckId": hid, "Name": name, "Inverted": inverted, "Disabled": disabled},
            )
        )
    if move.roles:
        ops.append(Operation("route53", "GetChange", None, {}, mutating=False))
    changes = ", ".join(
        [f"{n}: Inverted={i} Disabled={d}" for _, n, i, d in move.inversions]
        + [f"{k} → {v}" for k, v in move.roles.items()]
    )
    steps = [
        Step(
            id="route-traffic",
            title=f"Serve {move.before.name} from {target} ({move.method})",
            region=None,
            service="route53",
            changes=changes or "nothing (already in place)",
            operations=tuple(ops),
            check=check,
            action=action,
            wait=wait,
            timeout=timeout,
            estimate=60.0,
            tags={"phase": "dns"},
        ),
        Step(
            id="verify-dns",
            title=f"Verify {move.before.name} resolves to {target}",
            region=None,
            service="route53",
            changes="none (reads records and health checks)",
            depends_on=("route-traffic",),
            operations=(Operation("route53", "GetHealthCheckStatus", None, {}, mutating=False),),
            wait=verify,
            timeout=timeout,
            estimate=90.0,
            tags={"phase": "dns"},
        ),
    ]
    return Plan("dns-failover", steps, f"Move {move.before.name} to {target} by {move.method}")
