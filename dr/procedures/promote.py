"""Promote the DR read replica to a standalone, writable primary.

Pre-flight (read-only, before anything changes):

* the instance must exist (exit 2) and really be a read replica (exit 2) — moto would promote
  anything; real RDS refuses, and so do we. An instance this toolkit already promoted (tagged
  ``dr:promoted-from``) is *done*: the step is skipped (idempotent re-run);
* its lag (CloudWatch ``ReplicaLag``) must be within ``max_lag`` — over budget, or no recent
  datapoint at all, is refused with exit 3 unless ``force``.

The step promotes, tags the instance (source, time, lag), and waits until RDS reports it
``available`` with no replication source — trusting ``available`` only after a transition was
seen or after two consecutive confirmations (after PromoteReadReplica the status can read
``available`` before it moves to ``modifying``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dr.aws.cloudwatch import replica_lag
from dr.aws.rds import DbInstance, Rds
from dr.errors import BadInput, GateRefused, OperationFailed
from dr.procedures.support import (
    TAG_CREATED_BY,
    TAG_PROMOTED_AT,
    TAG_PROMOTED_FROM,
    TAG_RESTORED_FROM,
    TAG_SUPERSEDED_BY,
    iso,
    utcnow,
)
from dr.runbook.plan import Plan
from dr.steps import PROMOTE_REPLICA
from dr.steps.db_promotion import RDS_BROKEN

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider


@dataclass
class PromotePreflight:
    """What pre-flight learned; becomes part of the result."""

    db: str
    region: str
    already_promoted: bool
    source: str | None
    lag_seconds: float | None
    lag_at: dt.datetime | None
    lag_source: str
    max_lag_seconds: float
    forced: bool
    warnings: list[str] = field(default_factory=list)
    # already promoted and left behind by a failback (its dr:superseded-by run id): stale
    superseded_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "db": self.db,
            "region": self.region,
            "already_promoted": self.already_promoted,
            "replica_source": self.source,
            "lag_seconds": self.lag_seconds,
            "lag_at": iso(self.lag_at) if self.lag_at else None,
            "lag_source": self.lag_source,
            "max_lag_seconds": self.max_lag_seconds,
            "rpo_estimate_seconds": self.lag_seconds,
            "forced": self.forced,
            "warnings": self.warnings,
        }


# Seconds the replica is behind, measured on the replica itself: 0 when everything received is
# replayed (an idle primary would otherwise look "behind" by the time since its last commit).
REPLAY_LAG_SQL = (
    "SELECT CASE WHEN NOT pg_is_in_recovery() THEN NULL "
    "WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 "
    "ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) END"
)

LagProbe = Callable[[DbInstance], float | None]


def pg_replay_lag_probe(
    clients: ClientProvider, *, secret_id: str, db_name: str, connect: Callable[..., Any] | None = None
) -> LagProbe:
    """A probe reading the replica's own replay lag with psycopg (credentials from Secrets Manager,
    never printed). Raises on connection failure; :func:`preflight` turns that into a warning."""
    from dr.procedures.pg_session import connect_master

    def probe(inst: DbInstance) -> float | None:
        if not inst.endpoint:
            raise OperationFailed(f"DB instance {inst.identifier} has no endpoint", region=inst.region)
        conn = connect_master(clients, inst, secret_id=secret_id, db_name=db_name, connect=connect)
        try:
            with conn.cursor() as cur:
                cur.execute(REPLAY_LAG_SQL)
                row = cur.fetchone()
        finally:
            conn.close()
        return None if row is None or row[0] is None else float(row[0])

    return probe


def preflight(
    clients: ClientProvider,
    *,
    db: str,
    region: str,
    max_lag: dt.timedelta,
    force: bool,
    probe: LagProbe | None = None,
) -> PromotePreflight:
    """Validate the promotion (read-only). Raises BadInput (exit 2) or GateRefused (exit 3).

    The lag is CloudWatch ``ReplicaLag``; with ``probe`` also the replica's own replay lag, and the
    larger of the two is gated on (an unreachable database only adds a warning).
    """
    inst = Rds(clients, region).describe_instance(db)
    budget = max_lag.total_seconds()
    if not inst.is_replica:
        tags = Rds(clients, region).tags(inst) if inst.arn else {}
        if TAG_PROMOTED_FROM in tags:
            return PromotePreflight(
                db,
                region,
                True,
                tags[TAG_PROMOTED_FROM],
                None,
                None,
                "none (already promoted)",
                budget,
                force,
                [
                    f"{db} was already promoted at {tags.get(TAG_PROMOTED_AT, '?')} from {tags[TAG_PROMOTED_FROM]}"
                ],
                superseded_by=tags.get(TAG_SUPERSEDED_BY),
            )
        if tags.get(TAG_CREATED_BY) == "dr-toolkit" and TAG_RESTORED_FROM in tags:
            # A restore of ours (e.g. PITR from replicated backups when the replica is corrupt):
            # standalone and writable from the start, so there is nothing to promote.
            return PromotePreflight(
                db,
                region,
                True,
                tags[TAG_RESTORED_FROM],
                None,
                None,
                "none (a restored, standalone instance)",
                budget,
                force,
                [f"{db} was restored by dr-toolkit from {tags[TAG_RESTORED_FROM]}: nothing to promote"],
            )
        raise BadInput(
            f"DB instance {db} in {region} is not a read replica (status {inst.status}); refusing to promote it",
            resource=db,
            region=region,
            hint="pass --db/--region of the cross-region read replica (default: the DR replica of the stack files); "
            "nothing was changed",
        )
    if inst.status in RDS_BROKEN:
        raise BadInput(
            f"read replica {db} in {region} is {inst.status}; RDS cannot promote it in that state",
            resource=db,
            region=region,
            hint="fix the instance first (see the RDS console events), or restore from a snapshot",
        )
    point = replica_lag(clients, region, db)
    warnings: list[str] = []
    lag = None if point is None else point.value
    lag_at = None if point is None else point.timestamp
    sources = [] if point is None else ["cloudwatch:AWS/RDS/ReplicaLag"]
    if probe is not None:
        try:
            measured = probe(inst)
        except Exception as exc:  # unreachable from here: CloudWatch alone decides
            warnings.append(
                f"pg_last_xact_replay_timestamp() not read ({type(exc).__name__}): database not reachable"
            )
        else:
            if measured is not None:
                sources.append("postgres:pg_last_xact_replay_timestamp")
                if lag is None or measured > lag:
                    lag, lag_at = measured, utcnow()
    if lag is None:
        if not force:
            raise GateRefused(
                f"no ReplicaLag datapoint for {db} in {region} in the last 10 minutes: cannot show the "
                f"lag is within the {budget:g}s budget",
                resource=db,
                region=region,
                hint="check CloudWatch AWS/RDS ReplicaLag (replication may be broken or the source region down); "
                "re-run with --force to promote anyway and accept unknown data loss",
            )
        warnings.append("no lag measurement: promoted with --force, RPO unknown")
    elif lag > budget:
        if not force:
            raise GateRefused(
                f"replica {db} in {region} lags {lag:g}s (at {iso(lag_at)}), over the {budget:g}s budget",
                resource=db,
                region=region,
                hint="wait for it to catch up (stop writes on the primary first), raise --max-lag, or "
                "--force to accept that much data loss",
            )
        warnings.append(f"lag {lag:g}s over budget {budget:g}s: promoted with --force")
    return PromotePreflight(
        db,
        region,
        False,
        inst.replica_source,
        lag,
        lag_at,
        "+".join(sources) or "none",
        budget,
        force,
        warnings,
    )


def promote_plan(
    pre: PromotePreflight, *, timeout: float = 1800.0, backup_retention_days: int | None = None
) -> Plan:
    """Plan: one step promoting ``pre.db`` and waiting until it is standalone and available."""
    step = PROMOTE_REPLICA.build(
        pre.db,
        pre.region,
        source=pre.source,
        lag_seconds=pre.lag_seconds,
        timeout=timeout,
        backup_retention_days=backup_retention_days,
        guard=False,
        sid="promote-replica",
    )
    return Plan("promote", [step], f"Promote {pre.db} in {pre.region} (lag {pre.lag_seconds}s at pre-flight)")
