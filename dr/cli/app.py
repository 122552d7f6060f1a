"""What every command receives: global options, the estate, and lazily built clients."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.target import Target
    from dr.topology import Estate


@dataclass
class AppContext:
    stack_dir: Path
    # None: the one primary stack of stack_dir (dr.topology.default_stack), resolved when needed.
    stack: str | None
    output: str = "table"
    profile: str | None = None
    target_name: str = "aws"
    extra: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def stack_name(self) -> str:
        """--stack, else the one primary stack of --stack-dir (exit 2 when ambiguous)."""
        from dr.topology import default_stack

        return self.stack or default_stack(self.stack_dir)

    @cached_property
    def estate(self) -> Estate:
        from dr.topology import load_estate

        return load_estate(self.stack_dir, self.stack_name)

    def command(self, *args: str) -> str:
        """A ``dr`` command line carrying the options this one ran with (--stack-dir, --stack,
        --target, --profile), so a printed "next:" hint works when copied as is."""
        import shlex

        words = ["dr", "--stack-dir", str(self.stack_dir), "--stack", self.stack_name]
        if self.target_name != "aws":
            words += ["--target", self.target_name]
        if self.profile:
            words += ["--profile", self.profile]
        return shlex.join([*words, *args])

    @cached_property
    def target(self) -> Target:
        from dr.target import resolve_target

        return resolve_target(self.target_name)

    def clients(self, *, read_only: bool = False) -> ClientProvider:
        """A ClientProvider for the target; ``read_only`` for dry runs (mutating calls refused)."""
        from dr.aws.session import ClientProvider

        target = self.target
        return ClientProvider(
            profile=self.profile,
            endpoint_url=target.endpoint_url,
            credentials=target.credentials,
            read_only=read_only,
        )

    @property
    def json(self) -> bool:
        return self.output == "json"


pass_app = click.make_pass_decorator(AppContext)
