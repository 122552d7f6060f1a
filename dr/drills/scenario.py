"""Drill scenarios: the schema (Chaos Toolkit's shape) and a loader whose errors carry line numbers.

A scenario file::

    title: Loss of the primary region
    mode: unplanned                  # planned | unplanned | none (a hint for reports and gates)
    target: [sandbox, aws]           # where the drill may run
    objectives: {rto_seconds: 900, rpo_seconds: 5}   # default: the estate's app.objectives
    steady-state-hypothesis:
      title: the API answers and takes writes
      probes:
        - {name: api-healthy, type: probe, provider: endpoint, tolerance: true}
    method:                          # ordered: fault injection, then the recovery procedure
      - {name: lose-primary, type: action, provider: region-loss, fault: true,
         arguments: {site: primary}}
      - {name: failover, type: action, provider: failover, recovery: true,
         arguments: {to: secondary, mode: unplanned}}
    verification:
      probes: [...]
    rollbacks:                       # run after the method, even on failure or Ctrl-C, but only
      - {name: fail-back, type: action, provider: failback,   # to undo what it did: ``undoes``
         undoes: failover}           # names the method step; no ``undoes``: any method step
    end-state: {serving: secondary}  # where DNS should be after a completed method (default:
                                     # where it was at the start); checked after every drill
    stop-conditions:                 # checked in the background during the method
      interval: 1.0
      probes: [...]

Providers are names resolved through :mod:`dr.drills.registry` (the drills' own are imported
here; the sandbox's register when the drill command loads them); an unknown name, a bad argument
or a duplicated activity name is an error that names the file and the line.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dr.drills import builtin_actions, procedure_actions, procedure_probes, registry
from dr.errors import ConfigError

# Imported for what they register (the activities scenarios name).
_ACTIVITY_MODULES = (builtin_actions, procedure_actions, procedure_probes)
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
Loc = tuple[str | int, ...]
TargetName = Literal["aws", "sandbox"]
_ALL_TARGETS: tuple[TargetName, ...] = ("aws", "sandbox")


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# A bound may name one of the estate's objectives instead of a number: ``{max: rpo}`` is the
# estate's app.objectives.rpoSeconds (``rto``: rtoSeconds), bound when the drill is planned or
# run (:func:`with_budgets`). A number overrides the estate's budget for that one probe.
Budget = Literal["rpo", "rto"]
BUDGET_KEYS: dict[str, str] = {"rpo": "rpo_seconds", "rto": "rto_seconds"}


class ToleranceSpec(_M):
    """Structured tolerance: one of range / min / max / regex / equals."""

    range: tuple[float, float] | None = None
    min: float | Budget | None = None
    max: float | Budget | None = None
    regex: str | None = None
    equals: Any = None

    @model_validator(mode="after")
    def _one(self) -> ToleranceSpec:
        given = [k for k in ("range", "min", "max", "regex", "equals") if getattr(self, k) is not None]
        if not given:
            raise ValueError("a tolerance mapping needs one of range, min, max, regex, equals")
        if self.range is not None and self.range[0] > self.range[1]:
            raise ValueError(f"tolerance range {list(self.range)} is empty (low > high)")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"tolerance regex {self.regex!r} does not compile: {exc}") from None
        return self


Tolerance = bool | int | float | str | list[Any] | ToleranceSpec


def within_tolerance(value: Any, tolerance: Tolerance | None) -> bool:
    """Chaos Toolkit semantics: bool/number/string = equality, list = membership, spec = rule."""
    if tolerance is None:
        return bool(value)
    if isinstance(tolerance, bool):
        return bool(value) is tolerance if isinstance(value, bool) else bool(value) == tolerance
    if isinstance(tolerance, (int, float)):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value == tolerance
    if isinstance(tolerance, str):
        return value == tolerance
    if isinstance(tolerance, list):
        return value in tolerance
    if tolerance.equals is not None:
        return bool(value == tolerance.equals)
    if tolerance.regex is not None:
        return re.search(tolerance.regex, str(value)) is not None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    if tolerance.range is not None:
        return tolerance.range[0] <= value <= tolerance.range[1]
    if isinstance(tolerance.min, str) or isinstance(tolerance.max, str):
        raise ValueError(f"tolerance {tolerance.model_dump(exclude_none=True)} names a budget not bound yet")
    if tolerance.min is not None and value < tolerance.min:
        return False
    return not (tolerance.max is not None and value > tolerance.max)


class Pauses(_M):
    before: Annotated[float, Field(ge=0)] = 0.0
    after: Annotated[float, Field(ge=0)] = 0.0


class Activity(_M):
    """One action or probe. ``fault`` marks the fault injection (RTO starts there)."""

    name: str
    type: Literal["action", "probe"]
    provider: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    tolerance: Any = None
    description: str = ""
    fault: bool = False
    recovery: bool = False
    timeout: Annotated[float, Field(gt=0)] | None = None
    pauses: Pauses = Field(default_factory=Pauses)
    # Rollbacks only: the method step this rollback undoes. It runs only when that step started
    # (a step that never started changed nothing); without it, only when any method step started.
    undoes: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"activity name {value!r}: use lowercase letters, digits, '.', '_' or '-'")
        return value

    @field_validator("tolerance")
    @classmethod
    def _tolerance(cls, value: Any) -> Tolerance | None:
        if value is None or isinstance(value, (bool, int, float, str, list)):
            return value
        if isinstance(value, dict):
            return ToleranceSpec.model_validate(value)
        raise ValueError(
            f"tolerance {value!r}: use true/false, a number, a string, a list or {{min|max|range|regex|equals}}"
        )

    @model_validator(mode="after")
    def _consistent(self) -> Activity:
        if self.type == "action" and self.tolerance is not None:
            raise ValueError(f"{self.name}: only probes have a tolerance")
        if self.type == "probe" and (self.fault or self.recovery):
            raise ValueError(f"{self.name}: fault/recovery mark actions, not probes")
        return self


class Probes(_M):
    title: str = ""
    # only probes belong here: the loader checks it (with the item's line)
    probes: list[Activity] = Field(default_factory=list)


class StopConditions(Probes):
    interval: Annotated[float, Field(gt=0, le=60)] = 1.0


class Objectives(_M):
    rto_seconds: Annotated[float, Field(gt=0)] | None = None
    rpo_seconds: Annotated[float, Field(ge=0)] | None = None


class Measure(_M):
    """What the drill measures while it runs."""

    heartbeat: bool = True
    prober: bool = True
    heartbeat_interval: Annotated[float, Field(gt=0, le=10)] = 0.1
    probe_interval: Annotated[float, Field(gt=0, le=10)] = 0.25
    # Consecutive successful probes that count as "recovered".
    sustained: Annotated[int, Field(ge=1, le=100)] = 4
    # How long after the method to wait for sustained success (default: the RTO objective).
    recovery_timeout: Annotated[float, Field(gt=0)] | None = None
    # Which acknowledged writes the RPO counts: up to the loss (default), or only those before the
    # drill's first corruption (a restore to before it discards the later ones on purpose).
    rpo_until: Literal["loss", "corruption"] = "loss"


class EndState(_M):
    """What the post-drill invariant check expects once the method completed (a drill that did not
    complete its method must leave the estate serving where it started)."""

    serving: Literal["primary", "secondary"] | None = None


class Scenario(_M):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    version: Literal[1] = 1
    title: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    mode: Literal["planned", "unplanned", "none"] = "none"
    target: list[TargetName] = Field(default_factory=lambda: list(_ALL_TARGETS))
    objectives: Objectives = Field(default_factory=Objectives)
    measure: Measure = Field(default_factory=Measure)
    steady_state_hypothesis: Probes | None = Field(default=None, alias="steady-state-hypothesis")
    method: Annotated[list[Activity], Field(min_length=1)]
    verification: Probes | None = None
    rollbacks: list[Activity] = Field(default_factory=list)
    stop_conditions: StopConditions | None = Field(default=None, alias="stop-conditions")
    end_state: EndState = Field(default_factory=EndState, alias="end-state")

    @field_validator("target", mode="before")
    @classmethod
    def _target_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    # -- views ---------------------------------------------------------------------------------
    def phases(self) -> Iterable[tuple[str, Loc, list[Activity]]]:
        """(phase, location in the file, activities) for every phase, in execution order."""
        if self.steady_state_hypothesis:
            yield "hypothesis", ("steady-state-hypothesis", "probes"), self.steady_state_hypothesis.probes
        yield "method", ("method",), self.method
        if self.verification:
            yield "verification", ("verification", "probes"), self.verification.probes
        yield "rollbacks", ("rollbacks",), self.rollbacks
        if self.stop_conditions:
            yield "stop-conditions", ("stop-conditions", "probes"), self.stop_conditions.probes

    @property
    def fault_step(self) -> Activity | None:
        return next((a for a in self.method if a.fault), None)


def estate_budgets(estate: Any | None) -> dict[str, float]:
    """``{"rpo": seconds, "rto": seconds}`` from the estate's app.objectives (no estate: the
    objectives' defaults)."""
    if estate is not None:
        objectives = estate.app.objectives
    else:
        from dr.topology import Objectives as EstateObjectives

        objectives = EstateObjectives()
    return {name: float(getattr(objectives, key)) for name, key in BUDGET_KEYS.items()}


def _bind(node: Any, budgets: dict[str, float]) -> Any:
    if isinstance(node, dict):
        out = {k: _bind(v, budgets) for k, v in node.items()}
        tol = out.get("tolerance")
        if isinstance(tol, dict):
            out["tolerance"] = {
                k: budgets[v] if k in ("min", "max") and isinstance(v, str) else v for k, v in tol.items()
            }
        return out
    if isinstance(node, list):
        return [_bind(v, budgets) for v in node]
    return node


def with_budgets(loaded: LoadedScenario, budgets: dict[str, float]) -> LoadedScenario:
    """``loaded`` with every tolerance bound that names a budget (``{max: rpo}``) replaced by the
    estate's number (see :func:`estate_budgets`)."""
    raw = loaded.scenario.model_dump(by_alias=True)
    bound = _bind(raw, budgets)
    if bound == raw:
        return loaded
    return replace(loaded, scenario=Scenario.model_validate(bound))


# ---------------------------------------------------------------------------------------------
# Loading with line numbers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Issue:
    line: int
    path: str
    message: str

    def format(self, source: str) -> str:
        where = f" {self.path}:" if self.path else ""
        return f"{source}:{self.line}:{where} {self.message}"


class ScenarioError(ConfigError):
    """A scenario file is invalid (exit 2); ``issues`` carry the line numbers."""

    def __init__(self, source: str, issues: Sequence[Issue]) -> None:
        self.source = source
        self.issues = list(issues)
        lines = "\n".join("  " + i.format(source) for i in self.issues)
        super().__init__(
            f"scenario {source} is invalid:\n{lines}",
            resource=source,
            hint="fix the lines above; `dr drill list` shows the shipped scenarios as examples",
        )


@dataclass
class LoadedScenario:
    name: str
    source: str
    scenario: Scenario
    sha256: str
    lines: dict[Loc, int] = field(default_factory=dict, repr=False)

    def line_of(self, loc: Loc) -> int:
        return _line_for(self.lines, loc)


def _line_map(node: yaml.Node, path: Loc, out: dict[Loc, int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key: str | int = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            out[(*path, key)] = key_node.start_mark.line + 1
            _line_map(value_node, (*path, key), out)
            # the key line wins for the key's own path (values may start on the next line)
            out[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, (*path, i), out)


def _line_for(lines: dict[Loc, int], loc: Loc) -> int:
    """Line of the deepest prefix of ``loc`` present in the file (union tags are skipped)."""
    best: Loc = ()
    cur: Loc = ()
    for part in loc:
        cand = (*cur, part)
        if cand in lines:
            cur = cand
            best = cur
        # anything else (pydantic union tags such as 'list[any]') is skipped
    return lines.get(best, 1)


def _fmt_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _clean_loc(loc: Loc, lines: dict[Loc, int]) -> Loc:
    """``loc`` without pydantic's union tags (``list[any]``, ``function-after[…]``)."""
    cur: Loc = ()
    for part in loc:
        if (*cur, part) in lines or isinstance(part, int) or _IDENT.match(part):
            cur = (*cur, part)
    return cur


def _pydantic_issues(exc: ValidationError, lines: dict[Loc, int], base: Loc = ()) -> list[Issue]:
    issues = []
    for err in exc.errors():
        loc = (*base, *err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {loc[-1]!r}"
        issues.append(Issue(_line_for(lines, loc), _fmt_loc(_clean_loc(loc, lines)), msg))
    # one issue per (line, message): unions report each member's failure
    seen: set[tuple[int, str, str]] = set()
    out = []
    for issue in issues:
        key = (issue.line, issue.path, issue.message)
        if key not in seen:
            seen.add(key)
            out.append(issue)
    return out


_PHASE_LOCS: tuple[Loc, ...] = (
    ("steady-state-hypothesis", "probes"),
    ("method",),
    ("verification", "probes"),
    ("rollbacks",),
    ("stop-conditions", "probes"),
)


def _dig(data: Any, loc: Loc) -> Any:
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        else:
            return None
    return data


def _semantic_issues(data: dict[str, Any], lines: dict[Loc, int]) -> list[Issue]:
    """Provider names, provider arguments, unique names, one fault — on the raw data, so these
    are reported together with the schema errors."""
    issues: list[Issue] = []
    seen: dict[str, Loc] = {}

    def add(loc: Loc, message: str) -> None:
        issues.append(Issue(_line_for(lines, loc), _fmt_loc(loc), message))

    for base in _PHASE_LOCS:
        activities = _dig(data, base)
        if not isinstance(activities, list):
            continue
        for i, act in enumerate(activities):
            if not isinstance(act, dict):
                continue
            loc = (*base, i)
            name = act.get("name")
            if isinstance(name, str):
                if name in seen:
                    add(
                        (*loc, "name"),
                        f"activity name {name!r} is already used at line {_line_for(lines, seen[name])}",
                    )
                else:
                    seen[name] = (*loc, "name")
            kind, provider = act.get("type"), act.get("provider")
            if base[-1] == "probes" and kind == "action":
                add((*loc, "type"), f"{base[0]} holds only probes; {name!r} is an action")
            if kind not in ("action", "probe") or not isinstance(provider, str):
                continue
            prov = registry.get(kind, provider)
            if prov is None:
                known = ", ".join(registry.names(kind)) or "none"
                add((*loc, "provider"), f"unknown {kind} provider {provider!r} (known: {known})")
                continue
            arguments = act.get("arguments", {})
            if not isinstance(arguments, dict):
                continue
            try:
                prov.validate_args(arguments)
            except ValidationError as exc:
                issues.extend(_pydantic_issues(exc, lines, (*loc, "arguments")))
    method = data.get("method")
    method_names = (
        {a.get("name") for a in method if isinstance(a, dict)} if isinstance(method, list) else set()
    )
    for base in _PHASE_LOCS:
        acts = _dig(data, base)
        for i, act in enumerate(acts if isinstance(acts, list) else []):
            undoes = act.get("undoes") if isinstance(act, dict) else None
            if undoes is None:
                continue
            if base != ("rollbacks",):
                add((*base, i, "undoes"), "only rollbacks undo a method step")
            elif undoes not in method_names:
                known = ", ".join(sorted(str(n) for n in method_names)) or "none"
                add(
                    (*base, i, "undoes"), f"undoes {undoes!r}: no method step has that name (method: {known})"
                )
    if isinstance(method, list):
        faults = [i for i, a in enumerate(method) if isinstance(a, dict) and a.get("fault") is True]
        if len(faults) > 1:
            add(
                ("method", faults[1], "fault"),
                "only one method action may be marked fault: true (RTO starts there)",
            )
    return issues


def parse_scenario(text: str, source: str = "<scenario>", name: str | None = None) -> LoadedScenario:
    """Parse and validate a scenario; raise :class:`ScenarioError` with line numbers."""
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ScenarioError(source, [Issue(line, "", f"YAML syntax error: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(source, [Issue(1, "", f"YAML error: {exc}")]) from None
    if not isinstance(data, dict):
        raise ScenarioError(source, [Issue(1, "", "a scenario is a mapping with title, method, …")])
    lines: dict[Loc, int] = {}
    if node is not None:
        _line_map(node, (), lines)
    issues = _semantic_issues(data, lines)
    scenario: Scenario | None = None
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        issues.extend(_pydantic_issues(exc, lines))
    if issues or scenario is None:
        raise ScenarioError(source, sorted(issues, key=lambda i: i.line))
    stem = name or Path(source).name.removesuffix(".yaml").removesuffix(".yml")
    return LoadedScenario(
        name=stem,
        source=source,
        scenario=scenario,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        lines=lines,
    )


def load_scenario_file(path: Path) -> LoadedScenario:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read scenario {path}: {exc.strerror}", resource=str(path)) from None
    return parse_scenario(text, str(path))


# ---------------------------------------------------------------------------------------------
# Finding scenarios: shipped (package data) and --scenario-dir
# ---------------------------------------------------------------------------------------------


def shipped_scenarios() -> dict[str, str]:
    """name -> YAML text of the scenarios shipped in ``dr/drills/scenarios``."""
    root = resources.files("dr.drills") / "scenarios"
    out = {}
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")):
            out[entry.name.rsplit(".", 1)[0]] = entry.read_text()
    return out


def discover(scenario_dirs: Sequence[Path] = ()) -> dict[str, tuple[str, str]]:
    """name -> (source, text); files in ``scenario_dirs`` override shipped ones of the same name."""
    found = {name: (f"shipped:{name}.yaml", text) for name, text in shipped_scenarios().items()}
    for directory in scenario_dirs:
        if not directory.is_dir():
            raise ConfigError(f"scenario directory {directory} does not exist", resource=str(directory))
        for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
            found[path.name.rsplit(".", 1)[0]] = (str(path), path.read_text())
    return found


def resolve(ref: str, scenario_dirs: Sequence[Path] = ()) -> LoadedScenario:
    """A scenario by file path or by name (shipped or in ``scenario_dirs``)."""
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return load_scenario_file(path)
    found = discover(scenario_dirs)
    if ref not in found:
        from dr.errors import NotFound

        raise NotFound(
            f"no drill scenario named {ref!r}",
            resource=ref,
            hint=f"known: {', '.join(sorted(found))}; or pass a path to a .yaml file",
        )
    source, text = found[ref]
    return parse_scenario(text, source, name=ref)
