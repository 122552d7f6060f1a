"""A caught-up PostgreSQL for the ``dr`` processes of the reliability harness (moto, no database).

With ``DR_RELIABILITY_FAKE_PG=caught-up`` in its environment, a forked ``dr`` (zygote.py) connects
to a fake instead of psycopg: every database answers at one WAL position, in recovery exactly while
the (moto) RDS API says it is a read replica. A planned switchover can then prove RPO 0 by WAL
position, as it must (it is refused where the positions cannot be read).
"""

from __future__ import annotations

from typing import Any


def connect(**kw: Any) -> Any:
    from dr.aws.session import ClientProvider
    from dr.target import resolve_target
    from tests.unit.procedures.pgfake import FixedWalConn

    target = resolve_target("sandbox")  # the harness's moto (DR_SANDBOX_DIR/state.json)
    clients = ClientProvider(endpoint_url=target.endpoint_url, credentials=target.credentials)
    host = str(kw["host"])  # moto: <identifier>.aaaaaaaaaa.<region>.rds.amazonaws.com
    ident, region = host.split(".")[0], host.split(".")[2]
    raw = clients.client("rds", region).describe_db_instances(DBInstanceIdentifier=ident)
    return FixedWalConn(bool(raw["DBInstances"][0].get("ReadReplicaSourceDBInstanceIdentifier")))


def install() -> None:
    import dr.procedures.pg_session as pg_session

    pg_session.default_connect = connect  # type: ignore[assignment]
