"""Failover as a Step Functions state machine: the failover plan compiled by :mod:`dr.runbook.asl`.

* :func:`failover_definition` — from a live pre-flight (``dr failover --export asl``).
* :func:`static_preflight` — the unplanned failover's pre-flight built from the topology alone
  (no API call), for the DR stack's orchestrator (``dr.infra.orchestrator``): the state machine
  is deployed before any failure, so it must not depend on state read at deploy time.

Either way the definition only calls the target region's APIs and Route53.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dr.aws.route53 import HostedZone
from dr.procedures.dns import DnsMove, DnsState
from dr.procedures.failover import FailoverPreflight, RedisReadiness, failover_plan
from dr.procedures.promote import PromotePreflight
from dr.runbook.asl import AslOptions, compile_plan

if TYPE_CHECKING:
    from dr.runbook.plan import Plan
    from dr.topology import Estate, SiteView


def asl_options(
    estate: Estate, target: SiteView, *, journal_bucket: str | None = None, **kw: Any
) -> AslOptions:
    """Compiler options from the topology (cluster, namespace, record, journal bucket of ``target``)."""
    return AslOptions(
        clusters={target.region: target.cluster.name},
        namespace=estate.app.namespace,
        record=estate.app.record,
        target_set_identifier=target.site.name,
        journal_bucket=journal_bucket if journal_bucket is not None else estate.journal_bucket(target.region),
        **kw,
    )


def static_preflight(
    estate: Estate, target: SiteView, *, zone_id: str, health_check_id: str, timeout_lag: float = 0.0
) -> FailoverPreflight:
    """An *unplanned* failover pre-flight from the topology only (no API call).

    Gates are the state machine's job at run time (the promote guard, the health wait); DNS uses the
    ``records`` method (the source region is presumed dead): the target's record becomes PRIMARY.
    """
    source = estate.other(target)
    db = target.database.identifier
    promote = PromotePreflight(
        db, target.region, False, None, None, None, "none (compiled ahead of time)", timeout_lag, True
    )
    redis = RedisReadiness(target.cache.replication_group_id, target.region, None, "wait")
    state = DnsState(HostedZone(zone_id, estate.app.domain, False), estate.app.record, [], source.region)
    move = DnsMove(
        target.region,
        "records",
        state,
        [],
        {target.site.name: "PRIMARY", source.site.name: "SECONDARY"},
        True,
    )
    return FailoverPreflight(
        source=source,
        target=target,
        mode="unplanned",
        db=db,
        promote=promote,
        cluster_status="ACTIVE",
        redis=redis,
        dns=move,
        health_check_id=health_check_id,
    )


def failover_definition(
    estate: Estate,
    pre: FailoverPreflight,
    *,
    timeout: float = 1800.0,
    journal_bucket: str | None = None,
    **kw: Any,
) -> tuple[Plan, dict[str, Any]]:
    """(plan, ASL definition) of the failover ``pre`` describes."""
    plan = failover_plan(estate, pre, timeout=timeout)
    return plan, compile_plan(plan, asl_options(estate, pre.target, journal_bucket=journal_bucket, **kw))
