"""A psycopg connection that answers every query with one row: (in recovery, WAL position).

What :mod:`dr.procedures.walpos` reads (``pg_is_in_recovery()`` and a WAL position) from a database
that is idle and caught up; shared by the unit tests' and the reliability harness's fakes."""

from __future__ import annotations

from typing import Any

POSITION = "5/1000"


class FixedWalConn:
    def __init__(self, in_recovery: bool, position: str = POSITION) -> None:
        self.row = (in_recovery, position)

    def cursor(self) -> FixedWalConn:
        return self

    def __enter__(self) -> FixedWalConn:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def execute(self, sql: str) -> None:
        return None

    def fetchone(self) -> tuple[Any, ...]:
        return self.row

    def close(self) -> None:
        return None
