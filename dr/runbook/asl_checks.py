"""Checks of a States Language definition: the structure the compiler promises
(:func:`validate_definition`) and, offline, the rules AWS's ``ValidateStateMachineDefinition``
applies (:func:`aws_rule_problems`). :mod:`dr.runbook.asl` compiles; this module judges."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

# Step Functions' aws-sdk error prefixes (the service's SDK class name).
SDK_ERROR_PREFIX = {
    "rds": "Rds",
    "route53": "Route53",
    "eks": "Eks",
    "elasticache": "ElastiCache",
    "secretsmanager": "SecretsManager",
    "cloudwatch": "CloudWatch",
    "s3": "S3",
    "dynamodb": "DynamoDb",
}

# ---------------------------------------------------------------------------------------------
# Structural validation (tests, and `dr failover --export asl` before printing)
# ---------------------------------------------------------------------------------------------


def _targets(state: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    if "Next" in state:
        out.append(state["Next"])
    for c in state.get("Choices", []):
        out.append(c["Next"])
    if "Default" in state:
        out.append(state["Default"])
    for c in state.get("Catch", []):
        out.append(c["Next"])
    return out


def validate_definition(definition: Mapping[str, Any]) -> list[str]:
    """Problems with a definition: missing targets, unreachable states, states that neither end nor
    continue, cycles not passing through a Wait (i.e. anything but a poll loop). Empty = valid."""
    problems: list[str] = []

    def check(block: Mapping[str, Any], where: str) -> None:
        states: Mapping[str, Any] = block.get("States", {})
        start = block.get("StartAt")
        if start not in states:
            problems.append(f"{where}: StartAt {start!r} is not a state")
            return
        for name, st in states.items():
            if len(name) > 80:
                problems.append(f"{where}: state name over 80 characters: {name!r}")
            kind = st.get("Type")
            if kind in ("Fail", "Succeed"):
                if "Next" in st or "End" in st:
                    problems.append(f"{where}: terminal state {name!r} has Next/End")
            elif kind == "Choice":
                if not st.get("Choices"):
                    problems.append(f"{where}: Choice {name!r} has no choices")
            elif ("Next" in st) == bool(st.get("End")):
                problems.append(f"{where}: state {name!r} must have exactly one of Next / End")
            for t in _targets(st):
                if t not in states:
                    problems.append(f"{where}: {name!r} -> {t!r}, which does not exist")
            for i, branch in enumerate(st.get("Branches", [])):
                check(branch, f"{where}/{name}[{i}]")
        # reachability
        seen: set[str] = set()
        todo: list[str] = [str(start)]
        while todo:
            cur = todo.pop()
            if cur in seen or cur not in states:
                continue
            seen.add(cur)
            todo.extend(_targets(states[cur]))
        for name in states:
            if name not in seen:
                problems.append(f"{where}: state {name!r} is unreachable")
        # cycles must contain a Wait state (the poll loops)
        graph = {n: [t for t in _targets(st) if t in states] for n, st in states.items()}
        no_wait = {
            n: [t for t in ts if states[t].get("Type") != "Wait"]
            for n, ts in graph.items()
            if states[n].get("Type") != "Wait"
        }
        color: dict[str, int] = {}

        def dfs(n: str) -> None:
            color[n] = 1
            for t in no_wait.get(n, []):
                if color.get(t) == 1:
                    problems.append(f"{where}: cycle without a Wait through {n!r} -> {t!r}")
                elif t not in color:
                    dfs(t)
            color[n] = 2

        for n in no_wait:
            if n not in color:
                dfs(n)

    check(definition, "definition")
    return problems


# ---------------------------------------------------------------------------------------------
# Offline checks of the rules AWS's ValidateStateMachineDefinition applies
# ---------------------------------------------------------------------------------------------

_SDK_ARN = re.compile(r"^arn:aws:states:::aws-sdk:(?P<service>[a-z0-9]+):(?P<action>[a-z][A-Za-z0-9]*)$")
# Optimised integrations the compiler emits, with the parameters each takes.
_OPTIMISED: dict[str, set[str]] = {
    "arn:aws:states:::eks:call": {
        "ClusterName",
        "CertificateAuthority",
        "Endpoint",
        "Method",
        "Path",
        "QueryParameters",
        "RequestBody",
    },
    "arn:aws:states:::dynamodb:putItem": {
        "TableName",
        "Item",
        "ConditionExpression",
        "ExpressionAttributeNames",
        "ExpressionAttributeValues",
        "ReturnValues",
    },
    "arn:aws:states:::dynamodb:deleteItem": {
        "TableName",
        "Key",
        "ConditionExpression",
        "ExpressionAttributeNames",
        "ExpressionAttributeValues",
        "ReturnValues",
    },
}
_INTRINSICS = frozenset(
    {
        "States.Format",
        "States.StringToJson",
        "States.JsonToString",
        "States.Array",
        "States.ArrayPartition",
        "States.ArrayContains",
        "States.ArrayRange",
        "States.ArrayGetItem",
        "States.ArrayLength",
        "States.ArrayUnique",
        "States.Base64Encode",
        "States.Base64Decode",
        "States.Hash",
        "States.JsonMerge",
        "States.MathRandom",
        "States.MathAdd",
        "States.StringSplit",
        "States.UUID",
    }
)
_STATES_ERRORS = frozenset(
    {
        "States.ALL",
        "States.DataLimitExceeded",
        "States.ExceedToleratedFailureThreshold",
        "States.HeartbeatTimeout",
        "States.Http.Socket",
        "States.IntrinsicFailure",
        "States.ItemReaderFailed",
        "States.NoChoiceMatched",
        "States.ParameterPathFailure",
        "States.Permissions",
        "States.ResultPathMatchFailure",
        "States.ResultWriterFailed",
        "States.Runtime",
        "States.TaskFailed",
        "States.Timeout",
    }
)
_SERVICE_ERROR = re.compile(r"^(?P<prefix>[A-Z][A-Za-z0-9]*)\.[A-Z][A-Za-z0-9]*Exception$")


def _path_ok(value: str) -> bool:
    """A ``.$`` value: a JSONPath (``$…``), a context path (``$$…``) or an intrinsic call."""
    if value.startswith("$"):
        return bool(re.fullmatch(r"\$\$?(\.[^.\s]|\[|$).*", value)) and value.count("[") == value.count("]")
    match = re.match(r"^(States\.[A-Za-z]+)\(", value)
    if not match or match.group(1) not in _INTRINSICS or not value.endswith(")"):
        return False
    depth = 0
    quoted = False
    for ch in value:  # balanced parentheses outside quoted strings
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
            if depth < 0:
                return False
    nested = re.findall(r"(States\.[A-Za-z]+)\(", value)
    return depth == 0 and not quoted and all(n in _INTRINSICS for n in nested)


def _walk_params(
    params: Any, shape: Mapping[str, Any] | None, shapes: Mapping[str, Any], where: str, problems: list[str]
) -> None:
    """Parameter names: PascalCase members of ``shape`` (botocore input shape), ``.$`` values valid."""
    if not isinstance(params, Mapping):
        return
    members = (shape or {}).get("members") if shape and shape.get("type") == "structure" else None
    for key, value in params.items():
        name = key[:-2] if key.endswith(".$") else key
        if key.endswith(".$") and (not isinstance(value, str) or not _path_ok(value)):
            problems.append(f"{where}: {key!r} is not a valid path or intrinsic function: {value!r}")
        if shape is None or members is None:
            continue
        if not name[:1].isupper():
            problems.append(f"{where}: parameter {name!r} must be PascalCase")
            continue
        # Step Functions spells every member in PascalCase, even for camelCase APIs (EKS)
        member = {m[:1].upper() + m[1:]: spec for m, spec in members.items()}.get(name)
        if member is None:
            problems.append(
                f"{where}: {name!r} is not a member of {shape.get('_name', 'the input')} ({sorted(members)})"
            )
            continue
        if not key.endswith(".$"):
            sub = dict(shapes.get(member["shape"], {}))
            sub["_name"] = member["shape"]
            if sub.get("type") == "list" and isinstance(value, list):
                item = dict(shapes.get(sub["member"]["shape"], {}))
                item["_name"] = sub["member"]["shape"]
                for i, v in enumerate(value):
                    _walk_params(v, item, shapes, f"{where}.{name}[{i}]", problems)
            elif sub.get("type") == "structure":
                _walk_params(value, sub, shapes, f"{where}.{name}", problems)


def _all_blocks(block: Mapping[str, Any], where: str) -> Iterable[tuple[str, str, Mapping[str, Any]]]:
    for name, st in block.get("States", {}).items():
        yield where, name, st
        for i, branch in enumerate(st.get("Branches", [])):
            yield from _all_blocks(branch, f"{where}/{name}[{i}]")
        for key in ("ItemProcessor", "Iterator"):
            if key in st:
                yield from _all_blocks(st[key], f"{where}/{name}")


def aws_rule_problems(definition: Mapping[str, Any]) -> list[str]:
    """What AWS's ``ValidateStateMachineDefinition`` would reject, among the rules checkable offline:
    state names of at most 80 characters and unique in the whole machine; ``aws-sdk:`` Resources
    naming a botocore service and the camelCase of one of its operations; Task parameters in
    PascalCase that exist in the operation's input shape; ``.$`` values that are paths or known
    intrinsic functions (also in Pass/Map ``Parameters`` and ``ResultSelector``); Retry/Catch error
    names ``States.*`` or ``<Service>.<Name>Exception``; every Next/Default/Catch target existing in
    its block. Empty = nothing found."""
    from dr.aws.session import service_model

    problems: list[str] = []
    seen: dict[str, str] = {}
    models: dict[str, dict[str, Any] | None] = {}
    prefixes = set(SDK_ERROR_PREFIX.values())

    def check_block(block: Mapping[str, Any], where: str) -> None:
        states = block.get("States", {})
        if block.get("StartAt") not in states:
            problems.append(f"{where}: StartAt {block.get('StartAt')!r} is not a state")
        for name, st in states.items():
            for target in _targets(st):
                if target not in states:
                    problems.append(f"{where}: {name!r} -> {target!r}, which is not a state of its block")

    check_block(definition, "definition")
    for where, name, st in _all_blocks(definition, "definition"):
        if len(name) > 80:
            problems.append(f"{where}: state name over 80 characters ({len(name)}): {name!r}")
        if name in seen:
            problems.append(f"{where}: state name {name!r} also used in {seen[name]}")
        seen.setdefault(name, where)
        for key in ("Branches",):
            for i, branch in enumerate(st.get(key, [])):
                check_block(branch, f"{where}/{name}[{i}]")
        if "ItemProcessor" in st:
            check_block(st["ItemProcessor"], f"{where}/{name}")
        here = f"{where}/{name}"
        for rule in [*st.get("Retry", []), *st.get("Catch", [])]:
            for err in rule.get("ErrorEquals", []):
                if err.startswith("States."):
                    if err not in _STATES_ERRORS:
                        problems.append(f"{here}: unknown Step Functions error {err!r}")
                    continue
                match = _SERVICE_ERROR.match(err)
                if not match or match.group("prefix") not in prefixes:
                    problems.append(
                        f"{here}: error {err!r} can never match (expected States.* or <Service>.<Name>Exception)"
                    )
        for key in ("Parameters", "ResultSelector"):
            if st.get("Type") != "Task" or key == "ResultSelector":
                _walk_params(st.get(key), None, {}, f"{here}.{key}", problems)
        if st.get("Type") != "Task":
            continue
        resource = str(st.get("Resource", ""))
        params = st.get("Parameters") or {}
        if resource in _OPTIMISED:
            allowed = _OPTIMISED[resource]
            for key in params:
                if key.removesuffix(".$") not in allowed:
                    problems.append(f"{here}: {resource} takes no parameter {key!r}")
            _walk_params(params, None, {}, f"{here}.Parameters", problems)
            continue
        match = _SDK_ARN.match(resource)
        if not match:
            problems.append(
                f"{here}: Resource {resource!r} is not arn:aws:states:::aws-sdk:<service>:<action>"
            )
            continue
        service, action = match.group("service"), match.group("action")
        if service not in models:
            models[service] = service_model(service)
        model = models[service]
        if model is None:
            problems.append(f"{here}: {service!r} is not an AWS SDK service")
            continue
        operation = action[:1].upper() + action[1:]
        op = model["operations"].get(operation)
        if op is None:
            problems.append(f"{here}: {service} has no operation {operation} (Resource {resource!r})")
            continue
        shapes = model["shapes"]
        shape = dict(shapes.get(op.get("input", {}).get("shape", ""), {"type": "structure", "members": {}}))
        shape["_name"] = f"{operation}'s input"
        _walk_params(params, shape, shapes, f"{here}.Parameters", problems)
    return problems
