"""The RDS hooks reach the right PostgreSQL server (no PostgreSQL needed: a fake records the calls)."""

from __future__ import annotations

from dr.sandbox.rds_bridge import RdsBridge


class _FakePg:
    """What RdsBridge asks of the PostgreSQL estate: which server is in recovery; rewinds recorded."""

    def __init__(self, recovering: dict[str, bool | None]) -> None:
        self.recovering = recovering
        self.instances = dict.fromkeys(recovering)
        self.rewound: list[str] = []
        self.upstreams: dict[str, str] = {}

    def in_recovery(self, name: str) -> bool | None:
        return self.recovering[name]

    def upstream_of(self, name: str) -> str:
        return self.upstreams.get(name) or ("replica" if name == "primary" else "primary")

    def rewind_as_replica(self, name: str, *, source: str | None = None) -> None:
        self.rewound.append(name if source is None else f"{name}<-{source}")
        self.recovering[name] = True
        if source is None:
            self.upstreams.pop(name, None)
        else:
            self.upstreams[name] = source


def test_a_replica_created_beside_a_diverged_server_rewinds_it_and_takes_its_identity() -> None:
    """CreateDBInstanceReadReplica in a region whose server is standalone while the other one
    writes (failback: the old primary; `dr reprotect`: the stale DR server) re-seeds that server and
    maps the new identifier to it; a replica created beside a server that still streams does not."""
    from dr.topology import load_estate
    from tests.conftest import STACKS

    estate = load_estate(STACKS, "prod")
    prod, dr = estate.primary, estate.secondary
    # steady state: DR streams from the primary; another replica in DR changes nothing
    pg = _FakePg({"primary": False, "replica": True})
    link = RdsBridge(pg, estate)
    link.on_replica_created(dr.region, "reporting-replica")
    assert pg.rewound == [] and link.instance(dr.region, "reporting-replica") is None
    assert link.instance(dr.region, dr.database.identifier) == "replica"
    # after a failback: DR is a stale writer, the primary writes again -> reprotect re-seeds DR
    pg.recovering.update(primary=False, replica=False)
    link.on_replica_created(dr.region, dr.database.identifier)
    assert pg.rewound == ["replica"] and link.instance(dr.region, dr.database.identifier) == "replica"
    # after a failover: the primary region's server diverged -> failback re-seeds it (new name)
    pg.recovering.update(primary=None, replica=False)
    link.on_replica_created(prod.region, f"{prod.database.identifier}-failback")
    assert pg.rewound == ["replica", "primary"]
    assert link.instance(prod.region, f"{prod.database.identifier}-failback") == "primary"
    assert link.instance(prod.region, prod.database.identifier) is None


def test_a_replica_of_a_restored_server_streams_from_it() -> None:
    """After a failover onto a point-in-time restore (its own server), `dr reprotect` creates the
    primary region's replica from that instance (source ARN): the killed old primary is rewound
    against the restored server, not the (corrupt, still recovering) DR replica; a second replica
    of it beside one that already streams from it changes nothing."""
    from dr.topology import load_estate
    from tests.conftest import STACKS

    estate = load_estate(STACKS, "prod")
    prod, dr = estate.primary, estate.secondary
    restored = f"{dr.database.identifier}-pitr-120000"
    pg = _FakePg({"primary": None, "replica": True, restored: False})
    link = RdsBridge(pg, estate)
    link.names[(dr.region, restored)] = restored
    link.region_of[restored] = dr.region
    arn = f"arn:aws:rds:{dr.region}:123456789012:db:{restored}"
    link.on_replica_created(prod.region, prod.database.identifier, source=arn)
    assert pg.rewound == [f"primary<-{restored}"] and pg.upstream_of("primary") == restored
    assert link.instance(prod.region, prod.database.identifier) == "primary"
    link.on_replica_created(prod.region, prod.database.identifier, source=arn)
    assert pg.rewound == [f"primary<-{restored}"]
    # without the source, the default pair is used: DR does not write, nothing to stream from
    pg2 = _FakePg({"primary": None, "replica": True, restored: False})
    RdsBridge(pg2, estate).on_replica_created(prod.region, prod.database.identifier)
    assert pg2.rewound == []
