"""Compile a :class:`~dr.runbook.plan.Plan` into Amazon States Language (Step Functions).

``compile_plan(plan, options) -> dict`` produces a state machine definition that runs the plan's
API calls from inside AWS (so a failover does not depend on an operator's laptop):

* **Structure** — the plan's DAG becomes nested ``Parallel`` / sequence blocks. A DAG that is
  series-parallel is represented exactly. Any other DAG is approximated: a series split is made at a
  downward-closed cut (every dependency is still honoured), choosing the cut that loses the least
  parallelism by the steps' estimates; :func:`structure_loss` reports the estimated cost.
* **Steps** — each step's kind (``Step.kind``, the catalogue in :mod:`dr.steps`) emits its own
  states through this module's generic helpers (:meth:`AslEmitter.task`, ``poll``, ``chain``,
  ``sequence``, the ``eks:call`` mapping); a step without a kind gets :meth:`AslEmitter.generic`.
* **Calls** — each mutating :class:`~dr.runbook.plan.Operation` becomes an AWS SDK integration Task
  ``arn:aws:states:::aws-sdk:<service>:<camelCaseAction>`` (parameters in PascalCase, as Step
  Functions expects). Kubernetes operations become ``arn:aws:states:::eks:call`` Tasks; the cluster
  endpoint and CA are read at the start of the execution with ``eks:describeCluster`` in the
  cluster's own region, so nothing is baked in and nothing is read from another region.
* **Waits** — a kind whose action has a known completion condition emits a poll loop:
  Describe Task -> Choice (done / failed / timed out) -> Wait (back-off doubling up to a cap) -> Describe.
  These loops are the only cycles in the definition.
* **Idempotency** — ``rds:PromoteReadReplica`` is guarded by its kind (Describe; when no longer a replica,
  an execution started with input ``{"resume": true}`` waits for the promotion it resumes, any
  other fails ``DrNotAReadReplica``: the instance may be stale since a failback); UPSERTs, scaling
  and patches are idempotent by nature.
* **Retries** — every Task retries throttling errors (``Rds.ThrottlingException``,
  ``Route53.PriorRequestNotCompleteException`` …) with exponential back-off and full jitter; read
  calls also retry ``States.TaskFailed`` a few times.
* **Failure** — a Catch on every Task ends the branch; the top level records the error (S3 object in
  the journal bucket when ``journal_bucket`` is given) and fails the execution.

Known approximations (docs/stepfunctions-iam-fleets.md): the DB connection *secret* is not
written by the state machine (execution history would hold the password) — its step annotates the
secret with the promoted endpoint; a CloudWatch lag gate is a single read. Route53 health is
Route53's own rule, more than 18 % of the checkers' observations report ``Success`` (a Map marks
each report, ``States.StringSplit`` counts the marks; the Choice compares without arithmetic).
"""

from __future__ import annotations

import functools
import itertools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dr.runbook.asl_checks import SDK_ERROR_PREFIX
from dr.runbook.plan import Operation, Plan, Step

__all__ = [
    "AslOptions",
    "compile_plan",
    "sdk_resource",
    "structure",
    "structure_loss",
]

# Step Functions names an aws-sdk error <Service>.<Code>, with "Exception" appended when the code
# lacks it: names without the suffix ("Rds.Throttling") never match.
_THROTTLE_CODES = (
    "ThrottlingException",
    "TooManyRequestsException",
    "PriorRequestNotCompleteException",
)
_RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


@dataclass(frozen=True)
class AslOptions:
    """How to compile.

    ``clusters``: EKS cluster name per region (Kubernetes steps call it through ``eks:call``).
    ``namespace``: the app's Kubernetes namespace. ``first_wait``/``max_wait``: poll back-off
    (seconds); ``max_polls``: polls before a wait fails with ``DrTimeout``.
    """

    clusters: Mapping[str, str] = field(default_factory=dict)
    namespace: str = "default"
    # Route53 record name (FQDN) and the set identifier of the site that must become PRIMARY.
    record: str | None = None
    target_set_identifier: str | None = None
    journal_bucket: str | None = None
    # The run lock (DynamoDB table of dr.runbook.lock): taken first, released at the end and on
    # failure. The execution input must carry ``lockExpiresAt`` (epoch seconds: the lease end).
    lock_table: str | None = None
    lock_name: str | None = None
    first_wait: int = 5
    max_wait: int = 60
    max_polls: int = 120
    comment: str | None = None


def sdk_resource(service: str, action: str) -> str:
    """``arn:aws:states:::aws-sdk:rds:promoteReadReplica`` for ``rds`` / ``PromoteReadReplica``."""
    return f"arn:aws:states:::aws-sdk:{service}:{action[:1].lower()}{action[1:]}"


def _pascal(value: Any) -> Any:
    """Step Functions' aws-sdk integrations take PascalCase member names (EKS's API is camelCase)."""
    if isinstance(value, Mapping):
        return {(k[:1].upper() + k[1:]): _pascal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_pascal(v) for v in value]
    return value


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


# ---------------------------------------------------------------------------------------------
# DAG -> series/parallel structure
# ---------------------------------------------------------------------------------------------

Node = tuple[str, Any]  # ("step", id) | ("seq", [Node]) | ("par", [Node])


def _components(ids: list[str], deps: Mapping[str, set[str]]) -> list[list[str]]:
    parent = {i: i for i in ids}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i in ids:
        for d in deps[i]:
            if d in parent:
                parent[find(i)] = find(d)
    groups: dict[str, list[str]] = {}
    for i in ids:
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def _longest(ids: Iterable[str], deps: Mapping[str, set[str]], weight: Mapping[str, float]) -> float:
    finish: dict[str, float] = {}
    members = set(ids)

    def f(x: str) -> float:
        if x not in finish:
            finish[x] = weight[x] + max((f(d) for d in deps[x] if d in members), default=0.0)
        return finish[x]

    return max((f(i) for i in members), default=0.0)


def structure(plan: Plan) -> Node:
    """The plan as nested ``seq``/``par`` nodes honouring every dependency."""
    weight = {s.id: max(s.estimate, 0.001) for s in plan.steps}
    order = plan.order()
    index = {sid: i for i, sid in enumerate(order)}
    all_deps = {s.id: set(s.depends_on) for s in plan.steps}

    def build(ids: list[str]) -> Node:
        ids = sorted(ids, key=index.__getitem__)
        if len(ids) == 1:
            return ("step", ids[0])
        members = set(ids)
        deps = {i: all_deps[i] & members for i in ids}
        comps = _components(ids, deps)
        if len(comps) > 1:
            return ("par", [build(c) for c in sorted(comps, key=lambda c: index[c[0]])])
        # Candidate series cuts: the down-set of each step and each depth prefix.
        depth: dict[str, int] = {}
        for i in ids:
            depth[i] = 1 + max((depth[d] for d in deps[i]), default=-1)
        candidates: list[frozenset[str]] = []
        for i in ids:
            down = {i}
            todo = list(deps[i])
            while todo:
                cur = todo.pop()
                if cur not in down:
                    down.add(cur)
                    todo.extend(deps[cur])
            candidates.append(frozenset(down))
        for k in range(max(depth.values())):
            candidates.append(frozenset(i for i in ids if depth[i] <= k))
        best: tuple[float, int, frozenset[str]] | None = None
        for cand in candidates:
            if not cand or cand == members:
                continue
            rest = members - cand
            cost = _longest(cand, deps, weight) + _longest(rest, deps, weight)
            key = (cost, -len(cand), cand)
            if best is None or key[:2] < best[:2]:
                best = key
        assert best is not None  # a connected DAG of >1 node has a proper down-set
        first, second = best[2], members - best[2]
        parts: list[Node] = []
        for part in (build(list(first)), build(list(second))):
            parts.extend(part[1] if part[0] == "seq" else [part])
        return ("seq", parts)

    if not plan.steps:
        return ("seq", [])
    return build(list(plan.ids))


def _node_length(node: Node, weight: Mapping[str, float]) -> float:
    kind, body = node
    if kind == "step":
        return weight[body]
    lengths = [_node_length(n, weight) for n in body]
    if kind == "seq":
        return sum(lengths)
    return max(lengths, default=0.0)


def structure_loss(plan: Plan) -> float:
    """Estimated critical path of the compiled structure ÷ the plan's (1.0 = exact)."""
    weight = {s.id: max(s.estimate, 0.001) for s in plan.steps}
    _, cp = plan.critical_path(weight)
    return _node_length(structure(plan), weight) / cp if cp else 1.0


# ---------------------------------------------------------------------------------------------
# Emitting states
# ---------------------------------------------------------------------------------------------


def _retry(service: str, *, read: bool) -> list[dict[str, Any]]:
    prefix = SDK_ERROR_PREFIX.get(service, service.capitalize())
    retry: list[dict[str, Any]] = [
        {
            "ErrorEquals": [f"{prefix}.{code}" for code in _THROTTLE_CODES],
            "IntervalSeconds": 1,
            "BackoffRate": 2.0,
            "MaxAttempts": 8,
            "MaxDelaySeconds": 30,
            "JitterStrategy": "FULL",
        }
    ]
    if read:
        retry.append(
            {"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 2, "BackoffRate": 2.0, "MaxAttempts": 3}
        )
    return retry


class AslEmitter:
    """Emits the states of one plan: the generic helpers every kind's lowering uses."""

    def __init__(self, plan: Plan, options: AslOptions) -> None:
        self.plan = plan
        self.o = options
        self.names: set[str] = set()

    # -- naming -----------------------------------------------------------------------------------
    def name(self, text: str) -> str:
        base = re.sub(r"\s+", " ", text)[:76]
        out, n = base, 1
        while out in self.names:
            n += 1
            out = f"{base[:72]} #{n}"
        self.names.add(out)
        return out

    # -- building blocks ---------------------------------------------------------------------------
    def task(
        self,
        states: dict[str, Any],
        name: str,
        resource: str,
        params: Mapping[str, Any],
        *,
        service: str,
        read: bool,
        result_path: str | None,
        fail: str,
        result_selector: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        state: dict[str, Any] = {
            "Type": "Task",
            "Resource": resource,
            "Parameters": dict(params),
            "ResultPath": result_path,
            "Retry": _retry(service, read=read),
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": fail}],
        }
        if result_selector:
            state["ResultSelector"] = dict(result_selector)
        states[name] = state
        return state

    def chain(self, states: dict[str, Any], names: list[str], end: str | None) -> None:
        """Link ``names`` (already in ``states``, without Next) in order, then to ``end``."""
        for cur, nxt in zip(names, [*names[1:], end], strict=True):
            st = states[cur]
            if st["Type"] in ("Choice", "Fail", "Succeed"):
                continue
            if "Next" in st or st.get("End"):
                continue
            if nxt is None:
                st["End"] = True
            else:
                st["Next"] = nxt

    def poll(
        self,
        states: dict[str, Any],
        sid: str,
        label: str,
        describe: tuple[str, Mapping[str, Any], str],
        done: dict[str, Any],
        failed: dict[str, Any] | None,
        next_name: str | None,
        fail: str,
        *,
        selector: Mapping[str, Any] | None = None,
        between: Iterable[tuple[str, dict[str, Any]]] = (),
    ) -> str:
        """Describe -> Choice(done | failed | out of polls | else Wait+back-off -> Describe).

        ``between``: (name, state) pairs run in order after each Describe, before the Choice
        (they derive what the Choice compares from the Describe's result)."""
        key = _safe(f"{sid}_{label}")
        resource, params, service = describe
        init = self.name(f"{sid}: start polling {label}")
        desc = self.name(f"{sid}: poll {label}")
        choice = self.name(f"{sid}: {label} done?")
        wait = self.name(f"{sid}: wait before polling {label}")
        bump = self.name(f"{sid}: back off {label}")
        cap = self.name(f"{sid}: cap back-off {label}")
        capped = self.name(f"{sid}: back-off capped {label}")
        timeout = self.name(f"{sid}: {label} timed out")
        broken = self.name(f"{sid}: {label} failed")
        after = next_name
        states[init] = {
            "Type": "Pass",
            "Result": {"wait": self.o.first_wait, "left": self.o.max_polls},
            "ResultPath": f"$.poll.{key}",
            "Next": desc,
        }
        self.task(
            states,
            desc,
            resource,
            params,
            service=service,
            read=True,
            result_path=f"$.seen.{key}",
            fail=fail,
            result_selector=selector,
        )
        between = list(between)
        links = [desc, *(name for name, _ in between), choice]
        for name, state in between:
            states[name] = state
        for cur, nxt in itertools.pairwise(links):
            states[cur]["Next"] = nxt
        choices: list[dict[str, Any]] = [{**done, "Next": after if after else self._end(states)}]
        if failed is not None:
            choices.append({**failed, "Next": broken})
            states[broken] = {
                "Type": "Fail",
                "Error": "DrWaitFailed",
                "Cause": f"step {sid}: {label} reached a failed state",
            }
        choices.append({"Variable": f"$.poll.{key}.left", "NumericLessThanEquals": 0, "Next": timeout})
        states[choice] = {"Type": "Choice", "Choices": choices, "Default": wait}
        states[timeout] = {
            "Type": "Fail",
            "Error": "DrTimeout",
            "Cause": f"step {sid}: {label} not done after {self.o.max_polls} polls",
        }
        states[wait] = {"Type": "Wait", "SecondsPath": f"$.poll.{key}.wait", "Next": bump}
        states[bump] = {
            "Type": "Pass",
            "Parameters": {
                "wait.$": f"States.MathAdd($.poll.{key}.wait, $.poll.{key}.wait)",
                "left.$": f"States.MathAdd($.poll.{key}.left, -1)",
            },
            "ResultPath": f"$.poll.{key}",
            "Next": cap,
        }
        states[cap] = {
            "Type": "Choice",
            "Choices": [
                {"Variable": f"$.poll.{key}.wait", "NumericGreaterThan": self.o.max_wait, "Next": capped}
            ],
            "Default": desc,
        }
        states[capped] = {
            "Type": "Pass",
            "Parameters": {"wait": self.o.max_wait, "left.$": f"$.poll.{key}.left"},
            "ResultPath": f"$.poll.{key}",
            "Next": desc,
        }
        return init

    def _end(self, states: dict[str, Any]) -> str:
        """A Succeed state ending the current block (a Choice cannot say End)."""
        name = self.name("block done")
        states[name] = {"Type": "Succeed"}
        return name

    # -- Kubernetes --------------------------------------------------------------------------------
    def cluster_key(self, region: str | None) -> str:
        cluster = self.o.clusters.get(region or "")
        if cluster is None:
            raise ValueError(
                f"plan {self.plan.name!r} has Kubernetes steps in {region} but AslOptions.clusters names no "
                f"cluster for that region"
            )
        return _safe(cluster)

    def eks_call(self, op: Operation, method: str, path: str, body: Any = None) -> dict[str, Any]:
        key = self.cluster_key(op.region)
        params: dict[str, Any] = {
            "ClusterName": self.o.clusters[op.region or ""],
            "CertificateAuthority.$": f"$.clusters.{key}.ca",
            "Endpoint.$": f"$.clusters.{key}.endpoint",
            "Method": method,
            "Path": path,
        }
        if body is not None:
            params["RequestBody"] = body
        return params

    def k8s(self, op: Operation, sid: str) -> tuple[str, str, Any]:
        """(method, path, body) of one Kubernetes operation of the plan."""
        ns, p = self.o.namespace, op.params
        body: dict[str, Any]
        apps = f"/apis/apps/v1/namespaces/{ns}/deployments"
        if op.action == "PatchDeploymentScale":
            return "PATCH", f"{apps}/{p['name']}/scale", {"spec": {"replicas": int(p["replicas"])}}
        if op.action == "PatchHorizontalPodAutoscaler":
            body = {"spec": {"minReplicas": int(p["minReplicas"])}}
            return (
                "PATCH",
                f"/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers/{p['deployment']}",
                body,
            )
        if op.action == "PatchDeployment":
            if p.get("annotation") == _RESTARTED_AT:
                body = {
                    "spec": {
                        "template": {
                            "metadata": {"annotations": {f"{_RESTARTED_AT}.$": "$$.State.EnteredTime"}}
                        }
                    }
                }
                return "PATCH", f"{apps}/{p['name']}", body
            return (
                "PATCH",
                f"{apps}/{p['name']}",
                {"metadata": {"annotations": {f"{p['annotation']}.$": "$$.Execution.Name"}}},
            )
        if op.action == "PatchSecret":
            # Only the endpoint, never credentials: the execution history would hold them.
            body = {"metadata": {"annotations": {"dr-toolkit/db-endpoint.$": "$.endpoint"}}}
            return "PATCH", f"/api/v1/namespaces/{ns}/secrets/{p['name']}", body
        if op.action == "GetDeployment":
            return "GET", f"{apps}/{p['name']}", None
        raise ValueError(f"step {sid}: no Step Functions mapping for Kubernetes operation {op.action}")

    # -- one step ----------------------------------------------------------------------------------
    def step(self, states: dict[str, Any], step: Step, next_name: str | None, fail: str) -> str:
        """Emit the states of ``step`` (its kind's lowering); returns its first state."""
        if step.kind is not None:
            return step.kind.lower(self, states, step, next_name, fail)
        return self.generic(states, step, next_name, fail)

    def generic(self, states: dict[str, Any], step: Step, next_name: str | None, fail: str) -> str:
        """A step without its own lowering: each mutating operation one Task (Kubernetes ones
        through ``eks:call``); a read-only step makes its first callable read once."""
        sid = step.id
        blocks: list[Callable[[str | None], str]] = []
        for op in (op for op in step.operations if op.mutating):
            blocks.append(functools.partial(self.mutation, states, sid, op, fail=fail))
        if not step.mutating:
            reads = [op for op in step.operations if op.params and op.service != "k8s"]
            if reads:
                blocks.append(functools.partial(self.single_read, states, sid, reads[0], fail=fail))
        return self.sequence(states, step, blocks, next_name)

    def sequence(
        self,
        states: dict[str, Any],
        step: Step,
        blocks: Iterable[Callable[[str | None], str]],
        next_name: str | None,
    ) -> str:
        """Chain ``blocks`` (each emits its states given its successor, returns its first) in
        order, then to ``next_name``; no block: a Pass naming the step."""
        todo = list(blocks)
        if not todo:
            name = self.name(f"{step.id}: nothing to call")
            states[name] = {"Type": "Pass", "Comment": step.title}
            self.chain(states, [name], next_name)
            return name
        nxt = next_name
        for block in reversed(todo):
            nxt = block(nxt)
        assert nxt is not None
        return nxt

    def mutation(
        self, states: dict[str, Any], sid: str, op: Operation, next_name: str | None, fail: str
    ) -> str:
        """One mutating call, nothing waited for (Kubernetes through ``eks:call``)."""
        if op.service == "k8s":
            name = self.k8s_task(states, sid, op, fail)
        else:
            name = self.name(f"{sid}: {op.service} {op.action}")
            self.sdk_task(states, name, op, dict(op.params), sid=sid, fail=fail)
        self.chain(states, [name], next_name)
        return name

    def sdk_task(
        self,
        states: dict[str, Any],
        name: str,
        op: Operation,
        params: Mapping[str, Any],
        *,
        sid: str,
        fail: str,
    ) -> dict[str, Any]:
        """The aws-sdk Task of a mutating ``op`` with ``params`` (PascalCased); result under ``$.out``."""
        return self.task(
            states,
            name,
            sdk_resource(op.service, op.action),
            _pascal(dict(params)),
            service=op.service,
            read=False,
            result_path=f"$.out.{_safe(sid)}",
            fail=fail,
        )

    def k8s_task(self, states: dict[str, Any], sid: str, op: Operation, fail: str) -> str:
        """The ``eks:call`` Task of a Kubernetes ``op`` (not linked)."""
        method, path, body = self.k8s(op, sid)
        name = self.name(
            f"{sid}: {op.action} {op.params.get('name') or op.params.get('deployment', '')}".strip()
        )
        self.task(
            states,
            name,
            "arn:aws:states:::eks:call",
            self.eks_call(op, method, path, body),
            service="eks",
            read=False,
            result_path=None,
            fail=fail,
        )
        return name

    def single_read(
        self, states: dict[str, Any], sid: str, op: Operation, next_name: str | None, fail: str
    ) -> str:
        name = self.name(f"{sid}: {op.service} {op.action}")
        self.task(
            states,
            name,
            sdk_resource(op.service, op.action),
            _pascal(dict(op.params)),
            service=op.service,
            read=True,
            result_path=None,
            fail=fail,
        )
        self.chain(states, [name], next_name)
        return name

    # Shared with the kinds' lowerings (dr.steps), which do not import this module.
    sdk_resource = staticmethod(sdk_resource)
    pascal = staticmethod(_pascal)
    safe = staticmethod(_safe)

    # -- structure -------------------------------------------------------------------------------
    def node(self, states: dict[str, Any], node: Node, next_name: str | None, fail: str) -> str:
        kind, body = node
        if kind == "step":
            return self.step(states, self.plan.step(body), next_name, fail)
        if kind == "seq":
            nxt = next_name
            for child in reversed(body):
                nxt = self.node(states, child, nxt, fail)
            if nxt is None:  # an empty sequence
                name = self.name("nothing to do")
                states[name] = {"Type": "Pass", "End": True}
                return name
            return nxt
        branches = []
        for child in body:
            bstates: dict[str, Any] = {}
            bfail = self.name(f"branch failed: {_first_step(child)}")
            bstates[bfail] = {
                "Type": "Fail",
                "Error": "DrStepFailed",
                "Cause": f"a step of the branch starting at {_first_step(child)} failed",
            }
            start = self.node(bstates, child, None, bfail)
            branches.append({"StartAt": start, "States": bstates})
        name = self.name("parallel: " + ", ".join(_first_step(c) for c in body))
        state: dict[str, Any] = {
            "Type": "Parallel",
            "Branches": branches,
            "ResultPath": None,
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": fail}],
        }
        if next_name is None:
            state["End"] = True
        else:
            state["Next"] = next_name
        states[name] = state
        return name


def _first_step(node: Node) -> str:
    kind, body = node
    if kind == "step":
        return str(body)
    return _first_step(body[0]) if body else "-"


def compile_plan(plan: Plan, options: AslOptions | None = None) -> dict[str, Any]:
    """The plan as a Step Functions state machine definition (a JSON-able dict)."""
    o = options or AslOptions()
    em = AslEmitter(plan, o)
    states: dict[str, Any] = {}
    record = em.name("Record failure")
    failed = em.name("Failed")
    states[failed] = {
        "Type": "Fail",
        "Error": "DrPlanFailed",
        "Cause": f"plan {plan.name} failed (see the recorded error)",
    }
    if o.journal_bucket:
        states[record] = {
            "Type": "Task",
            "Resource": sdk_resource("s3", "PutObject"),
            "Parameters": {
                "Bucket": o.journal_bucket,
                "Key.$": f"States.Format('stepfunctions/{plan.name}/{{}}.failure.json', $$.Execution.Name)",
                "Body.$": "States.JsonToString($.error)",
                "ContentType": "application/json",
            },
            "ResultPath": None,
            "Retry": _retry("s3", read=False),
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.recordError", "Next": failed}],
            "Next": failed,
        }
    else:
        states[record] = {
            "Type": "Pass",
            "Parameters": {"plan": plan.name, "error.$": "$.error", "execution.$": "$$.Execution.Id"},
            "ResultPath": "$.failure",
            "Next": failed,
        }
    done = em.name("Succeeded")
    states[done] = {"Type": "Succeed"}
    summary = em.name("Summarize")
    # The execution's output: a small summary, not every response the run read.
    states[summary] = {
        "Type": "Pass",
        "Parameters": {"plan": plan.name, "status": "succeeded", "execution.$": "$$.Execution.Id"},
        "Next": done,
    }
    after_plan = summary
    lock_start: str | None = None
    take_name = ""
    if o.lock_table:
        lock_name = o.lock_name or plan.name
        key = {"name": {"S": lock_name}}
        release_ok, release_failed = em.name("Release lock"), em.name("Release lock after failure")
        for rel, nxt in ((release_ok, summary), (release_failed, failed)):
            states[rel] = {
                "Type": "Task",
                "Resource": "arn:aws:states:::dynamodb:deleteItem",
                "Parameters": {"TableName": o.lock_table, "Key": key},
                "ResultPath": None,
                "Retry": _retry("dynamodb", read=False),
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.releaseError", "Next": nxt}],
                "Next": nxt,
            }
        states[record]["Next"] = release_failed
        if "Catch" in states[record]:
            states[record]["Catch"][0]["Next"] = release_failed
        after_plan = release_ok
        lock_start = em.name("Lock lease given?")
        take = take_name = em.name("Take lock")
        held = em.name("Lock held")
        no_lease = em.name("No lock lease in the input")
        states[held] = {
            "Type": "Fail",
            "Error": "DrLockHeld",
            "Cause": f"lock {lock_name} in {o.lock_table} is held by another run",
        }
        states[no_lease] = {
            "Type": "Fail",
            "Error": "DrBadInput",
            "Cause": 'start the execution with input {"lockExpiresAt": <epoch seconds>}',
        }
        states[lock_start] = {
            "Type": "Choice",
            "Choices": [{"Variable": "$.lockExpiresAt", "IsPresent": True, "Next": take}],
            "Default": no_lease,
        }
        states[take] = {
            "Type": "Task",
            "Resource": "arn:aws:states:::dynamodb:putItem",
            "Parameters": {
                "TableName": o.lock_table,
                "Item": {
                    **key,
                    "holder": {"S.$": "States.Format('stepfunctions:{}', $$.Execution.Name)"},
                    "run_id": {"S.$": "$$.Execution.Name"},
                    "host": {"S": "stepfunctions"},
                    "pid": {"N": "0"},
                    "started_at": {"N": "0"},
                    "expires_at": {"N.$": "States.Format('{}', $.lockExpiresAt)"},
                },
                "ConditionExpression": "attribute_not_exists(#n)",
                "ExpressionAttributeNames": {"#n": "name"},
            },
            "ResultPath": None,
            "Retry": _retry("dynamodb", read=False),
            "Catch": [
                {
                    "ErrorEquals": ["DynamoDB.ConditionalCheckFailedException"],
                    "ResultPath": "$.error",
                    "Next": held,
                },
                {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": record},
            ],
        }
    start = em.node(states, structure(plan), after_plan, record)
    # Kubernetes steps: read each cluster's endpoint/CA first (in the cluster's own region).
    k8s_regions = sorted({op.region or "" for op in plan.operations() if op.service == "k8s"})
    for region in reversed(k8s_regions):
        cluster = o.clusters.get(region)
        if cluster is None:
            raise ValueError(
                f"plan {plan.name!r}: no EKS cluster named for region {region} (AslOptions.clusters)"
            )
        name = em.name(f"read cluster {cluster}")
        states[name] = {
            "Type": "Task",
            "Resource": sdk_resource("eks", "DescribeCluster"),
            "Parameters": {"Name": cluster},
            "ResultSelector": {
                "endpoint.$": "$.Cluster.Endpoint",
                "ca.$": "$.Cluster.CertificateAuthority.Data",
            },
            "ResultPath": f"$.clusters.{_safe(cluster)}",
            "Retry": _retry("eks", read=True),
            "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": record}],
            "Next": start,
        }
        start = name
    if lock_start is not None:
        states[take_name]["Next"] = start
        start = lock_start
    return {
        "Comment": o.comment or f"dr-toolkit plan {plan.name}: {plan.description}"[:1000],
        "StartAt": start,
        "TimeoutSeconds": int(sum(s.timeout for s in plan.steps)) or 3600,
        "States": states,
    }


def dumps(definition: Mapping[str, Any]) -> str:
    return json.dumps(definition, indent=2, sort_keys=False)
