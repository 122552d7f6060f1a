"""Fake drill providers, registered for the duration of a test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dr.cli.drill_cmd import load_activities
from dr.drills import registry
from dr.drills.drill_context import DrillContext

load_activities()  # every provider, the sandbox's included (as `dr drill` registers them)

NAMES = {
    "action": ["t-record", "t-fault", "t-recover", "t-fail", "t-interrupt", "t-wait"],
    "probe": ["t-value", "t-world-ok", "t-flag"],
}


@pytest.fixture
def fake_providers() -> Iterator[list[str]]:
    calls: list[str] = []

    @registry.register_action("t-record")
    def record(ctx: DrillContext, tag: str = "") -> str:
        calls.append(tag)
        return tag

    @registry.register_action("t-fault")
    def fault(ctx: DrillContext) -> None:
        calls.append("fault")
        ctx.services["world"].lose_primary()

    @registry.register_action("t-recover")
    def recover(ctx: DrillContext) -> None:
        calls.append("recover")
        ctx.services["world"].promote()

    @registry.register_action("t-fail")
    def fail(ctx: DrillContext) -> None:
        raise RuntimeError("boom: postgresql://app:pw123@db/x")

    @registry.register_action("t-interrupt")
    def interrupt(ctx: DrillContext) -> None:
        raise KeyboardInterrupt

    @registry.register_action("t-wait")
    def wait(ctx: DrillContext, seconds: float = 5.0) -> bool:
        calls.append("wait")
        return ctx.wait(seconds)

    @registry.register_probe("t-value")
    def value(ctx: DrillContext, value: Any = True) -> Any:
        return value

    @registry.register_probe("t-world-ok")
    def world_ok(ctx: DrillContext) -> bool:
        return bool(ctx.services["world"].endpoint_ok)

    @registry.register_probe("t-flag")
    def flag(ctx: DrillContext, key: str = "flag") -> Any:
        return ctx.services.get(key, 0)

    yield calls
    for kind, names in NAMES.items():
        for name in names:
            registry.unregister(kind, name)  # type: ignore[arg-type]
