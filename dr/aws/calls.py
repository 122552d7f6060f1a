"""Helpers shared by every AWS adapter: error translation, timestamps, poll intervals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dr.aws.session import client_error_type
from dr.errors import from_client_error


@contextmanager
def aws_errors(*, resource: str, region: str | None, action: str) -> Iterator[None]:
    """Translate botocore ``ClientError`` raised inside the block into a typed DrError."""
    client_error = client_error_type()
    try:
        yield
    except client_error as err:
        raise from_client_error(err, resource=resource, region=region, action=action) from None


def aware(value: Any) -> dt.datetime | None:
    """A timezone-aware UTC datetime from an API timestamp (None when it is not one)."""
    if not isinstance(value, dt.datetime):
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def backoff(first: float = 0.2, factor: float = 1.6, cap: float = 10.0) -> Iterator[float]:
    """Adaptive poll intervals: fast first polls, geometric growth, capped."""
    interval = first
    while True:
        yield min(interval, cap)
        interval *= factor
