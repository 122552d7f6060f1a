"""Client of a running sandbox's admin API (``<aws_endpoint>/_sandbox``), stdlib only.

Drills and tests use it to inject faults into a sandbox started by ``dr sandbox up`` (another
process) or by the pytest fixture::

    admin = SandboxAdmin.from_state(read_sandbox_state())
    admin.region_down("us-west-2")                  # AWS API of the region unreachable, its DBs killed
    admin.add_fault("throttle", rate=0.3, service="rds")
    admin.clear_faults()
    admin.resolve("api.example.com")               # what the public name answers now

Every method raises :class:`SandboxAdminError` with the server's message on a 4xx/5xx.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode


class SandboxAdminError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"sandbox admin API answered {status}: {message}")
        self.status = status


class SandboxAdmin:
    def __init__(self, admin_url: str, timeout: float = 30.0) -> None:
        self.url = admin_url.rstrip("/")
        self.timeout = timeout

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SandboxAdmin:
        return cls(str(state["admin_url"]))

    def call(self, method: str, path: str, payload: dict[str, Any] | None = None, **query: Any) -> Any:
        url = self.url + path + (f"?{urlencode(query)}" if query else "")
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            try:
                message = json.loads(err.read()).get("error", err.reason)
            except ValueError:
                message = str(err.reason)
            raise SandboxAdminError(err.code, str(message)) from None

    # -- faults ----------------------------------------------------------------------------------
    def faults(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", "/faults")
        return result

    def add_fault(self, kind: str, **rule: Any) -> dict[str, Any]:
        """kind: throttle | error | unreachable; rule: rate, region, service, operation, mode, hang_seconds."""
        added: dict[str, Any] = self.call("POST", "/faults", {"kind": kind, **rule})["added"][0]
        return added

    def remove_fault(self, rule_id: str) -> bool:
        return bool(self.call("DELETE", "/faults", id=rule_id)["removed"])

    def clear_faults(self) -> None:
        self.call("DELETE", "/faults")

    def region_down(self, region: str, mode: str = "refuse") -> dict[str, Any]:
        result: dict[str, Any] = self.call("POST", f"/regions/{region}/down", {"mode": mode})
        return result

    def region_up(self, region: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("POST", f"/regions/{region}/up", {})
        return result

    # -- observation -------------------------------------------------------------------------------
    def ready(self) -> bool:
        try:
            return bool(self.call("GET", "/ready").get("ready"))
        except (OSError, SandboxAdminError):
            return False

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", "/state")
        return result

    def transitions(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/transitions")["active"])

    def fast_forward(self, kind: str = "") -> int:
        """Complete active transitions (whose kind starts with ``kind``) now."""
        return int(self.call("POST", "/transitions/fast-forward", {"kind": kind})["completed"])

    def set_latency(self, **overrides: float) -> dict[str, float]:
        """Override durations (seconds, before time scale), e.g. ``set_latency(**{"rds.promote": 30})``."""
        result: dict[str, float] = self.call("POST", "/latency", {"overrides": overrides})["overrides"]
        return result

    def reset_latency(self) -> None:
        self.call("DELETE", "/latency")

    def health_checks(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", "/health-checks")
        return result

    def capacity(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.call("GET", "/capacity").items()}

    def resolve(self, name: str | None = None) -> dict[str, Any]:
        query: dict[str, Any] = {"name": name} if name else {}
        result: dict[str, Any] = self.call("GET", "/resolve", **query)
        return result

    # -- the real PostgreSQL -------------------------------------------------------------------------
    def postgres(self, instance: str | None = None, action: str | None = None, **params: Any) -> Any:
        """GET state (no args) or POST ``kill`` / ``stop`` / ``promote`` / ``delay`` (seconds=...)."""
        if instance is None:
            return self.call("GET", "/postgres")
        return self.call("POST", f"/postgres/{instance}/{action}", params)
