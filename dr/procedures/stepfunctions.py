"""Failover as a Step Functions state machine: the failover plan compiled by :mod:`dr.runbook.asl`.

* :func:`failover_definition` — from a live pre-flight (``dr failover --export asl``).
* :func:`static_preflight` — the unplanned failover's pre-flight built from the topology alone
  (no API call), for the DR stack's orchestrator (``dr.infra.orchestrator``): the state machine
  is deployed before any failure, so it must not depend on state read at deploy time.

Either way the definition only calls the target region's APIs and Route53.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from dr.aws.route53 import HostedZone
from dr.procedures.failover import failover_plan
from dr.procedures.failover_gates import FailoverPreflight, RedisReadiness
from dr.procedures.promote import PromotePreflight
from dr.runbook.asl import AslOptions, compile_plan
from dr.steps.dns_records import DnsMove, DnsState

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
    options = asl_options(estate, pre.target, journal_bucket=journal_bucket, **kw)
    if pre.mode == "planned":  # stop-writes steps call the source cluster (it is up in planned mode)
        options = replace(options, clusters={**options.clusters, pre.source.region: pre.source.cluster.name})
    return plan, compile_plan(plan, options)


# ---------------------------------------------------------------------------------------------
# `dr failover --via stepfunctions`: start the deployed state machine and follow it
# ---------------------------------------------------------------------------------------------


def state_machine_arn(clients: Any, estate: Estate, target: SiteView) -> str:
    """ARN of the orchestrator's state machine in ``target``'s region (found by name)."""
    from dr.aws.calls import aws_errors
    from dr.errors import NotFound

    name = f"{estate.app.name}-dr-failover"
    sfn = clients.client("stepfunctions", target.region)
    with aws_errors(resource=f"state machine {name}", region=target.region, action="list"):
        for page in sfn.get_paginator("list_state_machines").paginate():
            for sm in page.get("stateMachines", []):
                if sm["name"] == name:
                    return str(sm["stateMachineArn"])
    raise NotFound(
        f"state machine {name} does not exist in {target.region}",
        resource=name,
        region=target.region,
        hint=f"deploy the orchestrator with the {target.stack} stack (pulumi up), or run without --via",
    )


def run_via_stepfunctions(
    clients: Any,
    estate: Estate,
    target: SiteView,
    *,
    timeout: float = 1800.0,
    on_state: Any = None,
    poll: Any = None,
    lease_seconds: float | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """Start the failover state machine in ``target``'s region and follow it to the end.

    ``resume``: the execution continues an interrupted failover (input ``{"resume": true}``): a DR
    database already promoted is waited for instead of refused.

    ``on_state(name, status)`` is called as states are entered/exited (the CLI's progress view).
    Returns {"execution", "status", "error", "cause", "states": [...]}.
    """
    import json
    import time

    from dr.aws.calls import aws_errors
    from dr.runbook.poll import PollPolicy, wait_until

    arn = state_machine_arn(clients, estate, target)
    sfn = clients.client("stepfunctions", target.region)
    lease = time.time() + (lease_seconds if lease_seconds is not None else timeout)
    name = f"dr-failover-{int(time.time())}"
    with aws_errors(resource=f"state machine {arn}", region=target.region, action="start"):
        execution = sfn.start_execution(
            stateMachineArn=arn,
            name=name,
            input=json.dumps({"lockExpiresAt": int(lease), **({"resume": True} if resume else {})}),
        )["executionArn"]
    seen: list[dict[str, Any]] = []
    last: dict[str, Any] = {}
    token: dict[str, int] = {"events": 0}

    def done() -> bool:
        events = sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
        for ev in events[token["events"] :]:
            kind = str(ev.get("type", ""))
            details = ev.get("stateEnteredEventDetails") or ev.get("stateExitedEventDetails") or {}
            if details.get("name"):
                status = "running" if kind.endswith("Entered") else "done"
                seen.append({"state": details["name"], "status": status})
                if on_state is not None:
                    on_state(details["name"], status)
        token["events"] = len(events)
        last.update(sfn.describe_execution(executionArn=execution))
        return last.get("status") != "RUNNING"

    wait_until(
        done,
        timeout,
        poll or PollPolicy(),
        what=f"Step Functions execution {name}",
        region=target.region,
        resource=execution,
    )
    return {
        "execution": execution,
        "status": last.get("status"),
        "error": last.get("error"),
        "cause": last.get("cause"),
        "states": seen,
    }
