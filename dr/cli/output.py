"""Rendering, kept apart from logic: rich tables for people, ``--output json`` for programs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def to_jsonable(obj: Any) -> Any:
    if hasattr(obj, "to_dict") and callable(obj.to_dict):
        return to_jsonable(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            f.name: to_jsonable(getattr(obj, f.name))
            for f in dataclasses.fields(obj)
            if not f.name.startswith("_")
        }
    if hasattr(obj, "model_dump"):
        return to_jsonable(obj.model_dump(mode="json", by_alias=False))
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = [to_jsonable(v) for v in obj]
        return sorted(items, key=str) if isinstance(obj, (set, frozenset)) else items
    if isinstance(obj, (dt.datetime, dt.date)):
        return obj.isoformat()
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps(obj: Any) -> str:
    return json.dumps(to_jsonable(obj), indent=2, sort_keys=False)


# Width of tables written to a pipe or a file: wide enough that no cell is ever cut or shortened
# ("…"); a table is only as wide as its content (no table expands), so this is an upper bound.
PIPE_WIDTH = 100_000


def console(stderr: bool = False) -> Console:
    """A console for people. On a terminal it fits the terminal; into a pipe or a file it renders
    at :data:`PIPE_WIDTH` (whatever ``COLUMNS`` says), so CI logs and ``| cat`` keep every cell whole."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if _isatty(stream) else PIPE_WIDTH
    return Console(stderr=stderr, highlight=False, soft_wrap=False, width=width)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def write_json(data: Any) -> None:
    """Plain JSON on stdout: never through rich (no wrapping at the terminal width, no colour)."""
    sys.stdout.write(dumps(data) + "\n")
    sys.stdout.flush()


def end_partial(denied: list[str], *, profile: str | None, command: str) -> None:
    """After a report printed in full: one message on stderr naming the reads IAM refused, exit 3
    (stdout keeps the one report document)."""
    if not denied:
        return
    import click

    from dr.errors import partial_report_denied

    err = partial_report_denied(denied, profile=profile, command=command)
    click.echo(f"Error: {err.format_message()}", err=True)
    raise click.exceptions.Exit(err.exit_code)


def emit(output: str, data: Any, table: Callable[[Any, Console], None]) -> None:
    """Print ``data`` as JSON (``--output json``) or through ``table`` for humans."""
    if output == "json":
        write_json(data)
    else:
        table(data, console())


def simple_table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    for col in columns:
        t.add_column(col)
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    return t
