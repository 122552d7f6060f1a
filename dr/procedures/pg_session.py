"""PostgreSQL sessions as an instance's master user, and the checks a verification runs over them.

The master credentials come from the estate's Secrets Manager secret in the instance's region and
go to the driver only: never logged, never in an error message of ours. Restore verification,
the WAL-position catch-up gate and promotion all connect through :func:`connect_master`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dr.aws.calls import aws_errors
from dr.aws.rds import DbInstance
from dr.errors import BadInput

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider


@dataclass(frozen=True)
class Check:
    """One verification: ``table`` must hold at least ``min_rows`` rows, or ``sql`` must return true."""

    name: str
    sql: str | None = None
    table: str | None = None
    min_rows: int = 1

    @classmethod
    def parse_table(cls, spec: str) -> Check:
        """``schema.table`` or ``table`` with an optional ``:MIN`` (default 1 row)."""
        name, _, minimum = spec.partition(":")
        try:
            min_rows = int(minimum) if minimum else 1
        except ValueError:
            raise BadInput(
                f"--check-table {spec!r}: {minimum!r} is not a row count",
                resource="--check-table",
                hint="use TABLE or TABLE:MIN_ROWS, e.g. orders:1000",
            ) from None
        return cls(name=f"rows({name}) >= {min_rows}", table=name, min_rows=min_rows)


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


def run_checks(conn: Any, checks: list[Check]) -> list[CheckResult]:
    """Run ``checks`` on an open DB-API connection (psycopg 3); each failure is reported, not raised."""
    from psycopg import sql as pgsql

    out: list[CheckResult] = []
    for check in checks:
        try:
            with conn.cursor() as cur:
                if check.table:
                    parts = check.table.split(".")
                    ident = pgsql.SQL(".").join(pgsql.Identifier(p) for p in parts)
                    cur.execute(pgsql.SQL("SELECT count(*) FROM {}").format(ident))
                    count = int(cur.fetchone()[0])
                    out.append(CheckResult(check.name, count >= check.min_rows, f"{count} rows"))
                else:
                    cur.execute(check.sql)
                    row = cur.fetchone()
                    value = row[0] if row else None
                    out.append(CheckResult(check.name, bool(value), f"returned {value!r}"))
        except Exception as exc:  # a failing check is a result, the others still run
            out.append(CheckResult(check.name, False, f"{type(exc).__name__}: {str(exc).splitlines()[0]}"))
            rollback = getattr(conn, "rollback", None)
            if callable(rollback):
                rollback()
    return out


def master_credentials(clients: ClientProvider, region: str, secret_id: str) -> tuple[str, str]:
    """(username, password) from the Secrets Manager secret; the values are never logged."""
    with aws_errors(resource=f"secret {secret_id}", region=region, action="read"):
        raw = clients.client("secretsmanager", region).get_secret_value(SecretId=secret_id)
    try:
        doc = json.loads(raw.get("SecretString") or "{}")
    except json.JSONDecodeError:
        raise BadInput(
            f"secret {secret_id} in {region} is not JSON with username/password",
            resource=secret_id,
            region=region,
        ) from None
    user, password = doc.get("username"), doc.get("password")
    if not user or not password:
        raise BadInput(
            f"secret {secret_id} in {region} has no username/password keys",
            resource=secret_id,
            region=region,
        )
    return str(user), str(password)


Connector = Callable[..., Any]


def default_connect(**kwargs: Any) -> Any:
    import psycopg

    return psycopg.connect(**kwargs)


def connect_master(
    clients: ClientProvider,
    inst: DbInstance,
    *,
    secret_id: str,
    db_name: str,
    connect: Connector | None = None,
    connect_timeout: int = 5,
    **options: Any,
) -> Any:
    """A connection to ``inst`` (its RDS endpoint) as the master user of ``secret_id`` in its region.

    The credentials go to the driver only: never logged, never in an error message of ours."""
    user, password = master_credentials(clients, inst.region, secret_id)
    return (connect or default_connect)(
        host=inst.endpoint,
        port=inst.port or 5432,
        dbname=db_name,
        user=user,
        password=password,
        connect_timeout=connect_timeout,
        **options,
    )
