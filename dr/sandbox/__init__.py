"""The embedded sandbox: the two-region estate on one machine (see docs/sandbox.md).

Heavy modules (moto, PostgreSQL, the Kubernetes fake) load only when used::

    from dr.sandbox import Sandbox          # in-process (dr.sandbox.manager.Sandbox)
    from dr.sandbox import SandboxAdmin     # admin API client of a running sandbox
"""

from __future__ import annotations

from typing import Any

__all__ = ["Sandbox", "SandboxAdmin"]


def __getattr__(name: str) -> Any:
    if name == "Sandbox":
        from dr.sandbox.manager import Sandbox

        return Sandbox
    if name == "SandboxAdmin":
        from dr.sandbox.admin import SandboxAdmin

        return SandboxAdmin
    raise AttributeError(f"module 'dr.sandbox' has no attribute {name!r}")
