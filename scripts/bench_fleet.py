"""Fleet failover benchmark: N replicas + M records under AWS's rate limits (simulated).

``fleet_benchmark()`` builds a fleet in moto (in-process: N cross-region read replicas, M CNAME
records over ``zones`` hosted zones), injects AWS-side throttling (RDS ~12 mutating calls/s after
a burst of 40; Route53 5 req/s, ``PriorRequestNotComplete`` on concurrent writes to one zone), runs
the fleet failover with the toolkit's rate limiter, and returns:

* ``wall_seconds`` — the run's wall time;
* ``lower_bound_seconds`` — the least time those calls need under the limits
  (per service: (calls - burst) / rate; the maximum over services);
* ``ratio`` — wall ÷ lower bound (goal <= 1.2);
* ``api_calls`` / ``mutating_calls`` / ``change_batches`` / ``throttled`` (errors AWS would have sent).

Run: ``.venv/bin/python scripts/bench_fleet.py [--dbs 100] [--records 200] [--zones 2] [--runs N]``.
With ``--runs N`` it runs N times (fresh moto each time) and reports the WORST run, with every
run's ratio under ``ratios``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def moto_promote_like_rds() -> None:
    """moto's PromoteReadReplica leaves ReadReplicaSourceDBInstanceIdentifier set; RDS clears it
    when the promotion completes. Make moto do that (the fleet's wait checks it)."""
    from moto.rds.models import RDSBackend

    if getattr(RDSBackend.promote_read_replica, "_dr_fixed", False):
        return
    original = RDSBackend.promote_read_replica

    def promote(self: Any, db_kwargs: dict[str, Any]) -> Any:
        database = self.databases[db_kwargs["db_instance_identifier"]]
        was_replica = database.is_replica
        result = original(self, db_kwargs)
        if was_replica:
            database.source_db_instance_identifier = None
        return result

    promote._dr_fixed = True  # type: ignore[attr-defined]
    RDSBackend.promote_read_replica = promote  # type: ignore[method-assign]


def build_fleet(clients: Any, *, dbs: int, records: int, zones: int, source: str, target: str) -> Any:
    """Create the fleet in moto (sources in ``source``, replicas in ``target``) and return it."""
    from dr.procedures.fleet import Fleet, FleetDb, FleetRecord

    src, dst = clients.client("rds", source), clients.client("rds", target)
    r53 = clients.client("route53", "us-east-1")
    zone_ids = [
        r53.create_hosted_zone(Name=f"fleet{z}.example.com", CallerReference=f"fleet-{z}")["HostedZone"][
            "Id"
        ].split("/")[-1]
        for z in range(zones)
    ]
    members: list[FleetDb] = []
    for i in range(dbs):
        arn = src.create_db_instance(
            DBInstanceIdentifier=f"fleet-{i:03d}",
            DBInstanceClass="db.t3.micro",
            Engine="postgres",
            MasterUsername="admin_user",
            MasterUserPassword="not-a-real-password-1",
            AllocatedStorage=20,
        )["DBInstance"]["DBInstanceArn"]
        dst.create_db_instance_read_replica(
            DBInstanceIdentifier=f"fleet-{i:03d}-replica", SourceDBInstanceIdentifier=arn
        )
        members.append(FleetDb(f"fleet-{i:03d}-replica", target))
    recs = [
        FleetRecord(
            zone_ids[j % zones], f"db{j:03d}.fleet{j % zones}.example.com", members[j % dbs].identifier
        )
        for j in range(records)
    ]
    return Fleet(members, recs)


def fleet_benchmark(
    dbs: int = 100,
    records: int = 200,
    zones: int = 2,
    *,
    source: str = "us-west-2",
    target: str = "us-east-1",
) -> dict[str, Any]:
    """Run the fleet failover once against moto with AWS's limits injected; see the module docstring."""
    import time

    from moto import mock_aws

    from dr.aws.session import CallRecorder, ClientProvider
    from dr.procedures.fleet import run_fleet
    from dr.runbook.poll import PollPolicy
    from dr.runbook.ratelimit import DEFAULT_LIMITS, AwsSideThrottle, RateLimiter, rate_lower_bound

    moto_promote_like_rds()
    with mock_aws():
        setup = ClientProvider()
        fleet = build_fleet(setup, dbs=dbs, records=records, zones=zones, source=source, target=target)
        clients = ClientProvider(retry_mode="standard", max_attempts=10)
        aws = AwsSideThrottle()
        aws.attach(clients)
        recorder = clients.add_recorder(CallRecorder())
        start = time.monotonic()
        result = run_fleet(
            clients,
            fleet,
            limiter=RateLimiter(),
            recorder=recorder,
            poll=PollPolicy(first=0.05, factor=1.5, cap=1.0, floor=0.05, fraction=0.1),
        )
        wall = time.monotonic() - start
        calls = recorder.since(0)
    bound = rate_lower_bound(calls, DEFAULT_LIMITS)
    return {
        "status": result.status,
        "databases": dbs,
        "records": records,
        "zones": zones,
        "wall_seconds": round(wall, 3),
        "lower_bound_seconds": round(bound, 3),
        "ratio": round(wall / bound, 3) if bound > 0 else None,
        "api_calls": len(calls),
        "mutating_calls": sum(1 for c in calls if c.mutating),
        "change_batches": sum(1 for c in calls if c.operation == "ChangeResourceRecordSets"),
        "throttled": dict(aws.throttled),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dbs", type=int, default=100)
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--zones", type=int, default=2)
    parser.add_argument("--runs", type=int, default=1, help="repeat; report the worst run")
    args = parser.parse_args()
    runs = [fleet_benchmark(args.dbs, args.records, args.zones) for _ in range(max(1, args.runs))]
    worst = max(runs, key=lambda r: r["ratio"] or 0.0)
    if len(runs) > 1:
        worst = {**worst, "runs": len(runs), "ratios": [r["ratio"] for r in runs]}
    print(json.dumps(worst, indent=2))


if __name__ == "__main__":
    main()
