"""A small real plan for engine tests: RDS snapshots in moto, with idempotent checks."""

from __future__ import annotations

from typing import Any

from dr.aws.session import ClientProvider, client_error_type
from dr.runbook.plan import Operation, Plan, Step, StepContext

REGION = "us-east-1"
DB = "db1"


class Crash(BaseException):
    """Simulates the process dying (not an error the executor may handle)."""


def create_db(clients: ClientProvider) -> None:
    clients.client("rds", REGION).create_db_instance(
        DBInstanceIdentifier=DB,
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="app",
        MasterUserPassword="not-a-real-password-1",
        AllocatedStorage=20,
    )


def snapshot_exists(clients: ClientProvider, name: str) -> bool:
    try:
        clients.client("rds", REGION).describe_db_snapshots(DBSnapshotIdentifier=name)
    except client_error_type() as exc:
        if "NotFound" in str(getattr(exc, "response", {}).get("Error", {}).get("Code", "")):
            return False
        raise
    return True


def snapshot_plan(
    clients: ClientProvider, names: tuple[str, ...] = ("s1", "s2", "s3"), crash: dict[str, str] | None = None
) -> Plan:
    """A chain of snapshot steps; ``crash={"s2": "after_call"|"after_action"}`` kills the run there."""
    crash = crash or {}
    steps: list[Step] = []
    prev: tuple[str, ...] = ()
    for sid in names:
        snap = f"manual-snapshot-{sid}"

        def check(ctx: StepContext, snap: str = snap) -> bool:
            return snapshot_exists(clients, snap)

        def action(ctx: StepContext, snap: str = snap, sid: str = sid) -> Any:
            resp = clients.client("rds", REGION).create_db_snapshot(
                DBInstanceIdentifier=DB, DBSnapshotIdentifier=snap
            )
            if crash.get(sid) == "after_call":
                raise Crash(sid)
            ctx.set(f"{sid}_arn", resp["DBSnapshot"]["DBSnapshotArn"])

        def wait(ctx: StepContext, snap: str = snap, sid: str = sid) -> bool:
            if crash.get(sid) == "in_wait":
                raise Crash(sid)
            snaps = clients.client("rds", REGION).describe_db_snapshots(DBSnapshotIdentifier=snap)
            return bool(snaps["DBSnapshots"][0]["Status"] == "available")

        steps.append(
            Step(
                id=sid,
                title=f"snapshot {snap}",
                region=REGION,
                service="rds",
                changes=f"creates DB snapshot {snap} of {DB}",
                depends_on=prev,
                operations=(
                    Operation(
                        "rds",
                        "CreateDBSnapshot",
                        REGION,
                        {"DBInstanceIdentifier": DB, "DBSnapshotIdentifier": snap},
                    ),
                ),
                check=check,
                action=action,
                wait=wait,
                timeout=30,
            )
        )
        prev = (sid,)
    return Plan("snapshots", steps)
