from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from moto import mock_aws

from dr.aws.session import ClientProvider
from dr.errors import LockHeld, NotFound
from dr.runbook.lock import DynamoLock, create_lock_table, pid_alive
from dr.runbook.poll import PollPolicy, wait_until

TABLE, REGION = "app-dr-lock", "us-east-1"


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clients() -> Iterator[ClientProvider]:
    with mock_aws():
        provider = ClientProvider()
        create_lock_table(provider, TABLE, REGION)
        yield provider


def make(clients: ClientProvider, holder: str, clock: Clock | None = None, lease: float = 60) -> DynamoLock:
    return DynamoLock(
        clients,
        table=TABLE,
        region=REGION,
        name="failover",
        holder=holder,
        lease_seconds=lease,
        clock=clock or Clock(),
    )


def test_acquire_then_a_second_run_is_refused_naming_the_holder(clients: ClientProvider) -> None:
    clock = Clock()
    first = make(clients, "alice@ops-1", clock)
    first.acquire(run_id="20261124T071500Z-aaaaaa")
    try:
        clock.now += 10
        with pytest.raises(LockHeld) as info:
            make(clients, "bob@ops-2", clock).acquire(run_id="20261124T071510Z-bbbbbb")
        err = info.value
        assert err.exit_code == 3
        assert "alice@ops-1" in err.message
        assert "20261124T071500Z-aaaaaa" in err.message
        assert "since 2027-01-15T08:00:00+00:00" in err.message
        item = first.peek()
        assert item is not None and item["holder"] == "alice@ops-1"
    finally:
        first.release()
    assert first.peek() is None


def test_break_lock_never_takes_a_live_lease(clients: ClientProvider) -> None:
    clock = Clock()
    make(clients, "alice@ops-1", clock).acquire(run_id="r1")
    clock.now += 59  # still inside the 60 s lease
    with pytest.raises(LockHeld, match="alice@ops-1") as info:
        make(clients, "bob@ops-2", clock).acquire(break_lock=True, run_id="r2")
    assert "only takes over an expired lease" in (info.value.hint or "")


def test_stale_lease_needs_break_lock_then_is_taken_over(clients: ClientProvider) -> None:
    clock = Clock()
    dead = make(clients, "alice@ops-1", clock)
    dead.acquire(run_id="r1")
    dead._stop_renew.set()  # the process "died": no more renewals
    clock.now += 61
    bob = make(clients, "bob@ops-2", clock)
    with pytest.raises(LockHeld, match="expired") as info:
        bob.acquire(run_id="r2")
    assert "--break-lock" in (info.value.hint or "")
    bob.acquire(break_lock=True, run_id="r2")
    item = bob.peek()
    assert item is not None and item["holder"] == "bob@ops-2" and item["run_id"] == "r2"
    # The old holder's renewal now fails: it learns it lost the lock, and its release is harmless.
    dead.renew()
    assert dead.lost.is_set()
    dead.release()
    assert bob.peek() is not None
    bob.release()
    assert bob.peek() is None


def test_renew_extends_the_lease_with_an_injected_clock(clients: ClientProvider) -> None:
    clock = Clock()
    alice = make(clients, "alice@ops-1", clock)
    alice.acquire(run_id="r1")
    alice._stop_renew.set()  # drive renewals by hand
    clock.now += 50
    alice.renew()
    clock.now += 50  # 100 s after acquiring; lease would have expired without the renewal
    with pytest.raises(LockHeld, match="lease valid until"):
        make(clients, "bob@ops-2", clock).acquire(break_lock=True, run_id="r2")
    assert not alice.lost.is_set()


def test_background_thread_renews_the_lease(clients: ClientProvider) -> None:
    lock = DynamoLock(clients, table=TABLE, region=REGION, name="bg", holder="me", lease_seconds=0.3)
    lock.acquire(run_id="r1")
    try:
        first = lock.peek()
        assert first is not None
        wait_until(
            lambda: (lock.peek() or {}).get("expires_at", 0) > first["expires_at"],
            timeout=5,
            policy=PollPolicy(first=0.02, cap=0.05, floor=0.05),
            what="a lease renewal",
        )
    finally:
        lock.release()


def test_resuming_the_run_of_a_dead_local_process_retakes_its_lock(clients: ClientProvider) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(proc.stdout)
    clock = Clock()
    crashed = make(clients, "alice@ops-1", clock)
    crashed.pid = dead_pid
    crashed.acquire(run_id="r1")
    crashed._stop_renew.set()
    resumed = make(clients, "alice@ops-1", clock)
    resumed.acquire(run_id="r1")  # same run, holder process gone: no need to wait for expiry
    item = resumed.peek()
    assert item is not None and int(item["pid"]) == resumed.pid
    # A different run may not do that.
    with pytest.raises(LockHeld):
        make(clients, "alice@ops-1", clock).acquire(run_id="r2")
    resumed.release()


def test_missing_table_is_a_clear_not_found() -> None:
    with mock_aws():
        lock = DynamoLock(ClientProvider(), table="nope-lock", region="eu-west-1", name="x", holder="me")
        with pytest.raises(NotFound) as info:
            lock.acquire(run_id="r1")
    err = info.value
    assert err.exit_code == 2
    assert "nope-lock" in err.message and "eu-west-1" in err.message
    assert "create-table" in (err.hint or "")


def test_context_manager_releases(clients: ClientProvider) -> None:
    lock = make(clients, "me")
    with lock:
        assert lock.peek() is not None
    assert lock.peek() is None


def test_every_run_locks_in_one_copy_unless_an_unplanned_run_leaves_the_dr_region() -> None:
    """A conditional write is atomic only within one copy of a global table: failback, planned and
    unplanned failovers to DR, and `dr ops` must all lock in the same (DR) copy."""
    from dr.runbook.lock import estate_lock, lock_region
    from dr.topology import load_estate
    from tests.unit.procedures.estate_seed import STACKS

    estate = load_estate(STACKS, "prod")
    home, other = estate.secondary.region, estate.primary.region
    assert lock_region(estate) == home  # ops, promote, dns, fleet
    assert lock_region(estate, target_region=home, unplanned=True) == home  # failover to DR
    assert lock_region(estate, target_region=other) == home  # failback / planned switch back
    # the DR region may be the one lost: an unplanned run away from it locks where it goes
    assert lock_region(estate, target_region=other, unplanned=True) == other
    lock = estate_lock(ClientProvider(), estate, target_region=other)
    assert (lock.table, lock.region, lock.name) == (estate.lock_table, home, f"{estate.app.name}-dr")


def testpid_alive_detects_dead_and_zombie_processes() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(None)
    assert not pid_alive(0)  # no pid is no process (not this process group)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not pid_alive(proc.pid)
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    # Not reaped yet: exited but still in the process table.
    os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)
    assert not pid_alive(zombie.pid)
    zombie.wait()
