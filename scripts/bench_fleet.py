"""Fleet failover benchmark (P4): N replicas + M records on the sandbox, under AWS's rate limits.

``fleet_benchmark()`` starts a fresh background sandbox (``dr sandbox up``'s process: moto's server
behind the realism layer, no PostgreSQL), builds a fleet on it through boto3 clients pointed at its
endpoint (N source DBs in the estate's primary region, N cross-region read replicas in its DR
region, M CNAME records over ``zones`` hosted zones), injects AWS-side throttling the sandbox does
not model (``AwsSideThrottle``: RDS ~12 mutating calls/s after a burst of 40; Route53 5 req/s,
``PriorRequestNotComplete`` on concurrent writes to one zone), runs the fleet failover with the
toolkit's rate limiter, and returns:

* ``wall_seconds`` — the run's wall time;
* ``lower_bound_seconds`` — the least time those calls need under the limits
  (per service: (calls - burst) / rate; the maximum over services; ``lower_bound_by_service``);
* ``ratio`` — wall ÷ lower bound (goal <= 1.2);
* ``api_calls`` / ``mutating_calls`` / ``change_batches`` / ``throttled`` (errors AWS would have sent);
* ``target: "sandbox"`` and ``latency``: the sandbox's latency profile and how long it takes an RDS
  promotion and a Route53 change (``none``: both complete within the API call, so the rate limit
  alone bounds the run; ``fast``: 0.2 s status transitions the run's waits must observe).

Run: ``.venv/bin/python scripts/bench_fleet.py [--dbs 100] [--records 200] [--zones 2] [--runs N]
[--latency none|fast]``. With ``--runs N`` it runs N times (a fresh sandbox each time) and reports
the WORST run, with every run's ratio under ``ratios``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STACK = "prod"  # the sandbox's estate: its primary region holds the sources, its DR region the replicas


def build_fleet(clients: Any, *, dbs: int, records: int, zones: int, source: str, target: str) -> Any:
    """Create the fleet through ``clients`` (sources in ``source``, cross-region replicas in
    ``target``; hosted zones ``fleet<z>.example.com``) and return it. Works on moto in-process
    (``mock_aws``) and on the sandbox alike."""
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


def wait_replicas_ready(clients: Any, fleet: Any, timeout: float = 120.0) -> None:
    """Wait (adaptive polling) until every fleet database is an ``available`` read replica: the
    realism layer models CreateDBInstanceReadReplica as ``creating`` for a while, and a promotion
    of a replica that is not ``available`` is refused, as RDS refuses it."""
    from dr.procedures.fleet import describe_many
    from dr.runbook.poll import wait_until

    def ready() -> bool:
        for region in fleet.regions():
            ids = [d.identifier for d in fleet.databases if d.region == region]
            found = describe_many(clients, region, ids)
            if any(
                i not in found
                or found[i].get("DBInstanceStatus") != "available"
                or not found[i].get("ReadReplicaSourceDBInstanceIdentifier")
                for i in ids
            ):
                return False
        return True

    wait_until(ready, timeout, what="the fleet's read replicas to be available")


def _sandbox_clients(state: dict[str, Any], **kwargs: Any) -> Any:
    from dr.aws.session import ClientProvider
    from dr.target import SANDBOX_CREDENTIALS

    return ClientProvider(endpoint_url=state["aws_endpoint"], credentials=dict(SANDBOX_CREDENTIALS), **kwargs)


def fleet_benchmark(
    dbs: int = 100,
    records: int = 200,
    zones: int = 2,
    *,
    latency: str = "none",
) -> dict[str, Any]:
    """Run the fleet failover once on a fresh sandbox with AWS's limits injected; see the module
    docstring."""
    from dr.aws.session import CallRecorder
    from dr.procedures.fleet import run_fleet
    from dr.runbook.poll import PollPolicy
    from dr.runbook.ratelimit import DEFAULT_LIMITS, AwsSideThrottle, RateLimiter, rate_lower_bound
    from dr.sandbox.daemon import start_background, stop_background
    from dr.sandbox.latency import profile
    from dr.topology import load_estate

    estate = load_estate(ROOT / "stacks", STACK)
    source, target = estate.primary.region, estate.secondary.region
    timing = profile(latency)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dr-bench-fleet-") as tmp:
        directory = Path(tmp) / "sandbox"
        state, _ = start_background(
            directory,
            stack_dir=ROOT / "stacks",
            stack=STACK,
            latency=latency,
            postgres=False,
            parent_pid=os.getpid(),
            timeout=180,
        )
        try:
            setup = _sandbox_clients(state)
            fleet = build_fleet(setup, dbs=dbs, records=records, zones=zones, source=source, target=target)
            wait_replicas_ready(setup, fleet)
            setup_seconds = time.monotonic() - t0
            # The run's own clients (created inside the measured run, as a fresh `dr` process does).
            clients = _sandbox_clients(state, retry_mode="standard", max_attempts=10)
            aws = AwsSideThrottle()
            aws.attach(clients)
            recorder = clients.add_recorder(CallRecorder())
            start, start_epoch = time.monotonic(), time.time()
            result = run_fleet(
                clients,
                fleet,
                limiter=RateLimiter(),
                recorder=recorder,
                poll=PollPolicy(first=0.05, factor=1.5, cap=1.0, floor=0.05, fraction=0.1),
            )
            wall = time.monotonic() - start
            calls = recorder.since(0)
        finally:
            stop_background(directory)
    by_service = {svc: rate_lower_bound(calls, {svc: limit}) for svc, limit in DEFAULT_LIMITS.items()}
    bound = rate_lower_bound(calls, DEFAULT_LIMITS)
    return {
        "status": result.status,
        "target": "sandbox",
        "latency": {
            "profile": latency,
            "rds_promote_seconds": timing.duration("rds.promote"),
            "route53_insync_seconds": timing.duration("route53.insync"),
        },
        "databases": dbs,
        "records": records,
        "zones": zones,
        "regions": {"sources": source, "replicas": target},
        "setup_seconds": round(setup_seconds, 1),
        "wall_seconds": round(wall, 3),
        "lower_bound_seconds": round(bound, 3),
        "lower_bound_by_service": {k: round(v, 3) for k, v in by_service.items()},
        "ratio": round(wall / bound, 3) if bound > 0 else None,
        "api_calls": len(calls),
        "mutating_calls": sum(1 for c in calls if c.mutating),
        "change_batches": sum(1 for c in calls if c.operation == "ChangeResourceRecordSets"),
        "throttled": dict(aws.throttled),
        "timeline": _timeline(calls, start_epoch, wall),
    }


def _timeline(calls: list[Any], start: float, wall: float) -> dict[str, float | None]:
    """Where the wall time goes: seconds from the run's start to the first and the last
    PromoteReadReplica (the limiter's span between them is (promotions - burst + margin) / rate),
    and from the last one to the end of the run (its wait, the last zone's change batch)."""
    promotes = sorted(c.at for c in calls if c.operation == "PromoteReadReplica")
    if not promotes:
        return {"first_promote": None, "last_promote": None, "after_last_promote": None}
    return {
        "first_promote": round(promotes[0] - start, 3),
        "last_promote": round(promotes[-1] - start, 3),
        "after_last_promote": round(start + wall - promotes[-1], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dbs", type=int, default=100)
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--zones", type=int, default=2)
    parser.add_argument("--runs", type=int, default=1, help="repeat (fresh sandbox each); report the worst")
    parser.add_argument(
        "--latency",
        choices=("none", "fast"),
        default="none",
        help="the sandbox's latency profile (none: promotions and DNS changes complete at once)",
    )
    args = parser.parse_args()
    runs = [
        fleet_benchmark(args.dbs, args.records, args.zones, latency=args.latency)
        for _ in range(max(1, args.runs))
    ]
    worst = max(runs, key=lambda r: r["ratio"] or 0.0)
    if len(runs) > 1:
        worst = {**worst, "runs": len(runs), "ratios": [r["ratio"] for r in runs]}
    print(json.dumps(worst, indent=2))


if __name__ == "__main__":
    main()
