"""Traffic: wait until the target's Route53 health check is healthy, move the failover records
(and clear health-check inversions), verify the name resolves to the target."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from dr.aws.route53 import Route53
from dr.runbook.plan import Operation, Step, StepContext
from dr.steps.base import IamRead, StepKind, clients_of
from dr.steps.dns_records import desired_changes, move_satisfied, read_state, swap_changes

if TYPE_CHECKING:
    from dr.runbook.asl import AslEmitter
    from dr.steps.dns_records import DnsMove
    from dr.topology import Estate

# Output keys (journaled): the Route53 change a resumed run waits for; the region verified.
OUT_CHANGE_ID = "change_id"
OUT_ACTIVE_REGION = "active_region"

# Route53 considers an endpoint healthy when MORE than 18 % of its checkers report it healthy.
_HEALTHY_PERCENT = 18
# Checker observations the health Choice decides for (Route53 reports about 16-24); more: not done.
_MAX_CHECKERS = 256
# read_state: the zone, its failover records, their health checks, their tags (which site)
_STATE_READS = (
    IamRead("route53:ListHostedZonesByName", "global"),
    IamRead("route53:ListResourceRecordSets", "global"),
    IamRead("route53:GetHealthCheck", "global"),
    IamRead("route53:GetHealthCheckStatus", "global"),
    IamRead("route53:ListTagsForResource", "global"),  # a health check's Name tag
)


def _mark_reports(items: str, result: str, fail: str, names: tuple[str, str, str]) -> dict[str, Any]:
    """Map each checker observation to "Y" (its report starts with ``Success``) or "N".
    ``names``: the inner states' (machine-wide unique) names: the test, success, failure."""
    test, yes, no = names
    return {
        "Type": "Map",
        "ItemsPath": items,
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "INLINE"},
            "StartAt": test,
            "States": {
                test: {
                    "Type": "Choice",
                    "Choices": [
                        {
                            "And": [
                                {"Variable": "$.StatusReport.Status", "IsPresent": True},
                                {"Variable": "$.StatusReport.Status", "StringMatches": "Success*"},
                            ],
                            "Next": yes,
                        }
                    ],
                    "Default": no,
                },
                yes: {"Type": "Pass", "Result": "Y", "End": True},
                no: {"Type": "Pass", "Result": "N", "End": True},
            },
        },
        "ResultPath": result,
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": fail}],
    }


def _healthy_checkers(n: str, split: str) -> dict[str, Any]:
    """Choice rule: successes (``split`` - 1) > 18 % of ``n`` observations, exactly.

    ASL has no multiplication: for each run of ``n`` sharing one threshold t = floor(18 n / 100)
    + 1 (the fewest successes over 18 %), the rule is n in that run and split >= t + 1."""
    runs: dict[int, list[int]] = {}
    for count in range(1, _MAX_CHECKERS + 1):
        runs.setdefault(count * _HEALTHY_PERCENT // 100 + 1, []).append(count)
    return {
        "Or": [
            {
                "And": [
                    {"Variable": n, "NumericGreaterThanEquals": counts[0]},
                    {"Variable": n, "NumericLessThanEquals": counts[-1]},
                    {"Variable": split, "NumericGreaterThanEquals": least + 1},
                ]
            }
            for least, counts in sorted(runs.items())
        ]
    }


def health_poll(
    em: AslEmitter, states: dict[str, Any], sid: str, op: Operation, nxt: str | None, fail: str
) -> str:
    """Poll ``GetHealthCheckStatus`` until Route53's own rule says healthy: more than 18 % of the
    checkers' observations report ``Success`` (a Map marks each report, ``States.StringSplit``
    counts the marks; the Choice compares without arithmetic)."""
    k = "$.seen." + em.safe(f"{sid}_health")
    marks = em.name(f"{sid}: mark each checker's report")
    count = em.name(f"{sid}: count healthy checkers")
    return str(
        em.poll(
            states,
            sid,
            "health",
            (
                em.sdk_resource("route53", "GetHealthCheckStatus"),
                {"HealthCheckId": op.params["HealthCheckId"]},
                "route53",
            ),
            _healthy_checkers(f"{k}.count.n", f"{k}.count.split"),
            None,
            nxt,
            fail,
            selector={"obs.$": "$.HealthCheckObservations"},
            between=[
                (
                    marks,
                    _mark_reports(
                        f"{k}.obs",
                        f"{k}.marks",
                        fail,
                        (
                            em.name(f"{sid}: report says success?"),
                            em.name(f"{sid}: checker reports success"),
                            em.name(f"{sid}: checker reports failure"),
                        ),
                    ),
                ),
                (
                    count,
                    {
                        "Type": "Pass",
                        "Parameters": {
                            "n.$": f"States.ArrayLength({k}.obs)",
                            # one "Y" per successful report: the JSON text of the marks
                            # split on "Y" has (successes + 1) pieces
                            "split.$": f"States.ArrayLength(States.StringSplit("
                            f"States.JsonToString({k}.marks), 'Y'))",
                        },
                        "ResultPath": f"{k}.count",
                    },
                ),
            ],
        )
    )


class TargetHealthy(StepKind):
    """Wait until Route53's health checkers see the target endpoint healthy."""

    name: ClassVar[str] = "target-healthy"

    def build(self, region: str, health_check_id: str, *, timeout: float) -> Step:
        def wait(ctx: StepContext) -> bool:
            return Route53(clients_of(ctx)).health_status(health_check_id).endpoint_healthy

        return Step(
            id="target-healthy",
            title=f"Wait for health check {health_check_id} of {region} to report healthy",
            region=None,
            service="route53",
            changes="nothing (waits)",
            operations=(
                Operation("route53", "GetHealthCheckStatus", None, {"HealthCheckId": health_check_id}, False),
            ),
            wait=wait,
            timeout=timeout,
            estimate=30.0,
            tags={"phase": "verify"},
            kind=self,
        )

    def lower(
        self, emitter: AslEmitter, states: dict[str, Any], step: Step, next_name: str | None, fail: str
    ) -> str:
        blocks = [
            (lambda nxt, op=op: health_poll(emitter, states, step.id, op, nxt, fail))
            for op in step.operations
            if op.action == "GetHealthCheckStatus" and op.params.get("HealthCheckId")
        ]
        return str(emitter.sequence(states, step, blocks, next_name))


class MoveRecords(StepKind):
    """Serve the public name from the target: one change batch swapping the failover records'
    roles (records method) and/or health-check inversions set or cleared; wait until INSYNC.
    Check and action re-read the records, so a resumed run repeats nothing."""

    name: ClassVar[str] = "move-records"
    outputs: ClassVar[tuple[str, ...]] = (OUT_CHANGE_ID,)
    reads: ClassVar[tuple[IamRead, ...]] = (
        *_STATE_READS,
        IamRead("route53:UpdateHealthCheck", "global"),  # declared only when a check is inverted
    )
    conditional: ClassVar[dict[str, str]] = {
        "route53:UpdateHealthCheck": "a health check is inverted (a game-day leftover): un-inverted first",
    }

    def build(self, estate: Estate, move: DnsMove, *, timeout: float) -> Step:
        target = move.target_region
        zone = move.before.zone

        def check(ctx: StepContext) -> bool:
            state = read_state(clients_of(ctx), estate, use_test_dns=False)
            return move_satisfied(state, move)

        def action(ctx: StepContext) -> Any:
            clients = clients_of(ctx)
            r53 = Route53(clients)
            state = read_state(clients, estate, use_test_dns=False)
            inversions, roles = desired_changes(state, target, move.method, pin_target=move.pin_target)
            done: dict[str, Any] = {"health_checks": [], "change_id": None}
            if roles:
                changes = swap_changes(state.records, roles)
                change_id = r53.change(zone, changes, f"dr dns: serve {state.name} from {target}")
                ctx.set(OUT_CHANGE_ID, change_id)
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
            change_id = ctx.get(OUT_CHANGE_ID)
            if not change_id:
                return True
            return Route53(clients_of(ctx)).change_status(str(change_id)) == "INSYNC"

        def verify(ctx: StepContext) -> bool:
            state = read_state(clients_of(ctx), estate)
            ctx.set(OUT_ACTIVE_REGION, state.active_region)
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
                            {"Action": "CREATE", "SetIdentifier": k, "Failover": v}
                            for k, v in move.roles.items()
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
        return Step(
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
            kind=self,
        )

    def lower(
        self, emitter: AslEmitter, states: dict[str, Any], step: Step, next_name: str | None, fail: str
    ) -> str:
        em, sid = emitter, step.id
        blocks = []
        for op in (op for op in step.operations if op.mutating):
            if op.action == "ChangeResourceRecordSets":
                blocks.append(lambda nxt, op=op: self._swap(em, states, sid, op, nxt, fail))
            else:  # UpdateHealthCheck: its Name is for humans, not a parameter

                def update(nxt: str | None, op: Operation = op) -> str:
                    params = dict(op.params)
                    params.pop("Name", None)
                    name = em.name(f"{sid}: {op.service} {op.action}")
                    em.sdk_task(states, name, op, params, sid=sid, fail=fail)
                    em.chain(states, [name], nxt)
                    return str(name)

                blocks.append(update)
        return str(em.sequence(states, step, blocks, next_name))

    @staticmethod
    def _swap(
        em: AslEmitter, states: dict[str, Any], sid: str, op: Operation, next_name: str | None, fail: str
    ) -> str:
        """One change batch per zone built from the records as they are at run time: each record
        DELETEd exactly as listed, then CREATEd with its new role (Route53 validates the batch as a
        whole; never an intermediate state with two records of one role)."""
        zone = str(op.params["HostedZoneId"])
        changes = [c for c in op.params.get("Changes") or [] if c.get("Action") != "DELETE"]
        record = em.o.record
        if not record:
            raise ValueError(
                f"step {sid}: AslOptions.record (the failover record name) is required for Route53 changes"
            )
        fqdn = record.rstrip(".") + "."
        key = em.safe(sid)
        read = em.name(f"{sid}: read {record} records")
        pick = em.name(f"{sid}: build change batch")
        change = em.name(f"{sid}: route53 ChangeResourceRecordSets")
        em.task(
            states,
            read,
            em.sdk_resource("route53", "ListResourceRecordSets"),
            {"HostedZoneId": zone, "StartRecordName": fqdn, "StartRecordType": "A", "MaxItems": "10"},
            service="route53",
            read=True,
            result_path=f"$.r53.{key}",
            fail=fail,
            result_selector={"sets.$": "$.ResourceRecordSets"},
        )
        picks: dict[str, Any] = {}
        built: dict[str, Any] = {}
        # The listing starts at the record but runs on into the names after it: every pick
        # matches the record's own name (Route53 lists names lower-case, with the final dot).
        named = f"@.Name == '{fqdn.lower().replace(chr(39), '')}'"
        for i, ch in enumerate(changes):
            ident = str(ch["SetIdentifier"]).replace("'", "")
            target = (em.o.target_set_identifier or "").replace("'", "")
            if target and ident != target and len(changes) == 2:
                # Two sites: "the other" record is whichever is not the target's (its set
                # identifier need not be known when the definition is compiled).
                picks[f"r{i}.$"] = (
                    f"$.r53.{key}.sets[?({named} && @.SetIdentifier != '{target}' && @.Type == 'A' && @.Failover)]"
                )
            else:
                picks[f"r{i}.$"] = f"$.r53.{key}.sets[?({named} && @.SetIdentifier == '{ident}')]"
            picks[f"role{i}"] = {"Failover": str(ch["Failover"])}
            built[f"d{i}"] = {
                "Action": "DELETE",
                "ResourceRecordSet.$": f"States.ArrayGetItem($.pick.{key}.r{i}, 0)",
            }
            built[f"c{i}"] = {
                "Action": "CREATE",
                "ResourceRecordSet.$": f"States.JsonMerge(States.ArrayGetItem($.pick.{key}.r{i}, 0), "
                f"$.pick.{key}.role{i}, false)",
            }
        build = em.name(f"{sid}: set new roles")
        states[pick] = {"Type": "Pass", "Parameters": picks, "ResultPath": f"$.pick.{key}", "Next": build}
        states[build] = {"Type": "Pass", "Parameters": built, "ResultPath": f"$.batch.{key}"}
        batch_params = {
            "HostedZoneId": zone,
            "ChangeBatch": {
                "Comment": f"dr-toolkit step functions: {sid}",
                "Changes.$": "States.Array("
                + ", ".join(
                    [f"$.batch.{key}.d{i}" for i in range(len(changes))]
                    + [f"$.batch.{key}.c{i}" for i in range(len(changes))]
                )
                + ")",
            },
        }
        em.task(
            states,
            change,
            em.sdk_resource("route53", "ChangeResourceRecordSets"),
            batch_params,
            service="route53",
            read=False,
            result_path=f"$.r53change.{key}",
            fail=fail,
            result_selector={"id.$": "$.ChangeInfo.Id"},
        )
        states[read]["Next"] = pick
        states[build]["Next"] = change
        k = "$.seen." + em.safe(f"{sid}_change")
        waiter = em.poll(
            states,
            sid,
            "change",
            (em.sdk_resource("route53", "GetChange"), {"Id.$": f"$.r53change.{key}.id"}, "route53"),
            {"Variable": f"{k}.status", "StringEquals": "INSYNC"},
            None,
            next_name,
            fail,
            selector={"status.$": "$.ChangeInfo.Status"},
        )
        states[change]["Next"] = waiter
        return str(read)


class VerifyDns(StepKind):
    """Wait until the name resolves to the target (records, health checks and TestDNSAnswer)."""

    name: ClassVar[str] = "verify-dns"
    outputs: ClassVar[tuple[str, ...]] = (OUT_ACTIVE_REGION,)
    reads: ClassVar[tuple[IamRead, ...]] = (*_STATE_READS, IamRead("route53:TestDNSAnswer", "global"))

    def build(self, estate: Estate, name: str, target: str, *, timeout: float) -> Step:
        def verify(ctx: StepContext) -> bool:
            state = read_state(clients_of(ctx), estate)
            ctx.set(OUT_ACTIVE_REGION, state.active_region)
            return state.active_region == target

        return Step(
            id="verify-dns",
            title=f"Verify {name} resolves to {target}",
            region=None,
            service="route53",
            changes="none (reads records and health checks)",
            operations=(Operation("route53", "GetHealthCheckStatus", None, {}, mutating=False),),
            wait=verify,
            timeout=timeout,
            estimate=90.0,
            tags={"phase": "dns"},
            kind=self,
        )
