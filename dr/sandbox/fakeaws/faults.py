"""Injected faults: throttling, 5xx, IAM refusals and unreachable regions, per region/service/operation."""

from __future__ import annotations

import logging
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from dr.sandbox.fakeaws.wire import GLOBAL_SERVICES, AwsRequest

log = logging.getLogger("dr.sandbox.fakeaws")


FaultKind = Literal["throttle", "error", "unreachable", "denied"]


@dataclass
class FaultRule:
    """One injected fault. ``None`` in region/service/operation matches anything."""

    kind: FaultKind
    rate: float = 1.0
    region: str | None = None
    service: str | None = None
    operation: str | None = None
    # unreachable: "refuse" drops the connection at once; "hang" holds it hang_seconds first.
    mode: Literal["refuse", "hang"] = "refuse"
    hang_seconds: float = 30.0
    # denied: the error code answered (default: the service's own AccessDenied code); e.g.
    # ExpiredToken, UnrecognizedClientException (an opt-in region), OptInRequired.
    code: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def __post_init__(self) -> None:
        if self.kind not in ("throttle", "error", "unreachable", "denied"):
            raise ValueError(f"unknown fault kind {self.kind!r}: use throttle, error, unreachable or denied")
        if not 0.0 <= float(self.rate) <= 1.0:
            raise ValueError(f"fault rate must be within [0, 1], got {self.rate}")
        if self.mode not in ("refuse", "hang"):
            raise ValueError(f"unknown unreachable mode {self.mode!r}: use refuse or hang")

    def matches(self, req: AwsRequest) -> bool:
        if self.kind == "unreachable" and req.service in GLOBAL_SERVICES:
            return False
        return (
            (self.region is None or self.region == req.region)
            and (self.service is None or self.service == req.service)
            and (self.operation is None or self.operation == req.operation)
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultRule:
        known = {"kind", "rate", "region", "service", "operation", "mode", "hang_seconds", "code", "id"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault field(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)


class Faults:
    """Thread-safe set of fault rules plus counters of what was injected."""

    def __init__(self, seed: int | None = None) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.injected: dict[str, int] = {"throttle": 0, "error": 0, "unreachable": 0, "denied": 0}
        self.listeners: list[Callable[[str, bool], None]] = []

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
        if rule.kind == "unreachable" and rule.region and rule.rate >= 1.0:
            self._notify(rule.region, False)
        return rule

    def remove(self, rule_id: str) -> bool:
        with self._lock:
            before = list(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            removed = [r for r in before if r.id == rule_id]
        for rule in removed:
            if rule.kind == "unreachable" and rule.region and not self.region_down(rule.region):
                self._notify(rule.region, True)
        return bool(removed)

    def clear(self) -> None:
        with self._lock:
            downs = {r.region for r in self._rules if r.kind == "unreachable" and r.region}
            self._rules = []
        for region in downs:
            if region:
                self._notify(region, True)

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def set_region_down(self, region: str, mode: Literal["refuse", "hang"] = "refuse") -> FaultRule:
        return self.add(FaultRule(kind="unreachable", region=region, mode=mode))

    def set_region_up(self, region: str) -> None:
        with self._lock:
            self._rules = [r for r in self._rules if not (r.kind == "unreachable" and r.region == region)]
        self._notify(region, True)

    def region_down(self, region: str) -> bool:
        with self._lock:
            return any(
                r.kind == "unreachable" and r.region == region and r.rate >= 1.0 and r.service is None
                for r in self._rules
            )

    def pick(self, req: AwsRequest) -> FaultRule | None:
        """The fault to inject for this request, if any (each rule rolls its own rate)."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(req) and (rule.rate >= 1.0 or self._rng.random() < rule.rate):
                    self.injected[rule.kind] += 1
                    return rule
        return None

    def _notify(self, region: str, up: bool) -> None:
        for listener in list(self.listeners):
            try:
                listener(region, up)
            except Exception:  # a listener must not break fault injection
                log.exception("region %s listener failed", region)
