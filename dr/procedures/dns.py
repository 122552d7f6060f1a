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

from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from dr.errors import BadInput, GateRefused
from dr.runbook.plan import Plan
from dr.steps import MOVE_RECORDS, VERIFY_DNS

# The model of the failover records, shared with the traffic steps (defined in the catalogue).
from dr.steps.dns_records import DnsMove, desired_changes, read_state

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.topology import Estate, SiteView

Method = Literal["auto", "healthcheck", "records"]


# ---------------------------------------------------------------------------------------------
# failover / failback
# ---------------------------------------------------------------------------------------------


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
    inversions, roles = desired_changes(state, target.region, chosen, pin_target=pin)
    return DnsMove(target.region, chosen, state, inversions, roles, force, warnings, pin_target=pin)


def move_plan(estate: Estate, move: DnsMove, *, timeout: float = 600.0) -> Plan:
    """Plan: route (inversions / one change batch, wait INSYNC) → verify the served region."""
    route = MOVE_RECORDS.build(estate, move, timeout=timeout)
    verify = replace(
        VERIFY_DNS.build(estate, move.before.name, move.target_region, timeout=timeout),
        depends_on=(route.id,),
    )
    return Plan(
        "dns-failover", [route, verify], f"Move {move.before.name} to {move.target_region} by {move.method}"
    )
