"""The run lock: one DynamoDB item per lock name, written with a conditional PutItem.

Item: ``{name, holder, run_id, host, pid, started_at, expires_at}`` in the table
``Estate.lock_table``, in one copy of that global table for every command (see
:func:`lock_region`: the DR region's, unless an unplanned run moves away from it). The lease
(``expires_at``) is renewed by a daemon thread every ``lease_seconds / 3`` while the run lives.

* A free lock (no item) is taken with ``attribute_not_exists(name)``.
* A live lease (``expires_at >= now``) is never taken: :class:`dr.errors.LockHeld` (exit 3)
  names the holder, its run id and when it started — even with ``--break-lock``.
* A stale lease (expired: its run died without releasing) is taken over only with
  ``break_lock=True`` (the CLI's ``--break-lock``, after a confirmation); the write is
  conditional on the stale item being unchanged, so two breakers cannot both win.
* Resuming the run that holds the lock, when its process is provably dead (same host, pid gone),
  takes the lock back without waiting for the lease to expire.

The table is created by the Pulumi program (stack of the surviving region) or the sandbox; the
lock never creates it implicitly — :func:`create_lock_table` exists for the sandbox and tests.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dr.errors import LockHeld, NotFound, OperationFailed, from_client_error

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.topology import Estate


def default_holder() -> str:
    """``user@host`` of this process (shown to whoever finds the lock held)."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")


def pid_alive(pid: int | None) -> bool:
    """Whether process ``pid`` runs on this host: it exists and is not a zombie (exited, not yet
    reaped). No pid (``None`` or 0) is no process."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by another user
    try:
        with open(f"/proc/{int(pid)}/stat") as fh:
            # "pid (comm) state ...": comm may itself contain ")".
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _holder_dead(pid: int) -> bool:
    """Whether a lock item's holder process is provably gone (an item without a pid proves nothing)."""
    return pid != 0 and not pid_alive(pid)


def lock_region(estate: Estate, *, target_region: str | None = None, unplanned: bool = False) -> str:
    """The region whose copy of the (global) lock table every command of ``estate`` locks in.

    A global table replicates asynchronously and a conditional write is only atomic within one
    copy, so two runs exclude each other only if they lock in the *same* copy. That copy is the DR
    (secondary) site's: it survives the loss of the primary, and planned runs (failback, planned
    switchovers), ``dr ops``, promote, DNS and fleet runs all need both regions or the DR one
    anyway. The one exception is an *unplanned* run that moves away from the DR region (``dr
    failover --to primary --mode unplanned``): the DR region may be the one that is lost, so it
    locks in its target's copy.
    """
    home = estate.secondary.region
    if unplanned and target_region and target_region != home:
        return target_region
    return home


def estate_lock(
    clients: ClientProvider,
    estate: Estate,
    *,
    target_region: str | None = None,
    unplanned: bool = False,
    holder: str | None = None,
) -> DynamoLock:
    """The estate's run lock (one name per app) in the copy :func:`lock_region` chooses."""
    return DynamoLock(
        clients,
        table=estate.lock_table,
        region=lock_region(estate, target_region=target_region, unplanned=unplanned),
        name=f"{estate.app.name}-dr",
        holder=holder,
    )


def create_lock_table(clients: ClientProvider, table: str, region: str) -> None:
    """Create the lock table (sandbox/tests; in AWS the Pulumi program owns it)."""
    client = clients.client("dynamodb", region)
    client.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "name", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "name", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 30})


class DynamoLock:
    """A leased lock; use as a context manager or call :meth:`acquire` / :meth:`release`."""

    def __init__(
        self,
        clients: ClientProvider,
        *,
        table: str,
        region: str,
        name: str,
        holder: str | None = None,
        lease_seconds: float = 60,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.clients = clients
        self.table = table
        self.region = region
        self.name = name
        self.holder = holder or default_holder()
        self.lease_seconds = float(lease_seconds)
        self.clock = clock
        self.run_id: str | None = None
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.held = False
        self.started_at: float | None = None
        # Set when a renewal finds the lock taken by someone else: the run must stop.
        self.lost = threading.Event()
        self._stop_renew = threading.Event()
        self._renewer: threading.Thread | None = None

    # -- AWS plumbing ---------------------------------------------------------------------------
    def _client(self) -> Any:
        return self.clients.client("dynamodb", self.region)

    def _translate(self, exc: Exception, action: str) -> Exception:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        if code == "ResourceNotFoundException":
            return NotFound(
                f"lock table {self.table} does not exist in {self.region}",
                resource=self.table,
                region=self.region,
                code=code,
                hint=(
                    "create it with the Pulumi program of the surviving region's stack (`pulumi up`), "
                    f"`dr sandbox up`, or: aws dynamodb create-table --region {self.region} "
                    f"--table-name {self.table} --attribute-definitions AttributeName=name,AttributeType=S "
                    "--key-schema AttributeName=name,KeyType=HASH --billing-mode PAY_PER_REQUEST"
                ),
            )
        return from_client_error(
            exc, resource=f"lock {self.name} in table {self.table}", region=self.region, action=action
        )

    @staticmethod
    def _is_conditional(exc: Exception) -> bool:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        return code == "ConditionalCheckFailedException"

    def peek(self) -> dict[str, Any] | None:
        """The current lock item (plain values), or None when the lock is free."""
        from dr.aws.session import client_error_type

        try:
            resp = self._client().get_item(
                TableName=self.table, Key={"name": {"S": self.name}}, ConsistentRead=True
            )
        except client_error_type() as exc:
            raise self._translate(exc, "read") from None
        item = resp.get("Item")
        if not item:
            return None
        out: dict[str, Any] = {}
        for key, typed in item.items():
            (kind, value), *_ = typed.items()
            out[key] = float(value) if kind == "N" else value
        return out

    def _item(self, now: float) -> dict[str, Any]:
        return {
            "name": {"S": self.name},
            "holder": {"S": self.holder},
            "run_id": {"S": self.run_id or ""},
            "host": {"S": self.host},
            "pid": {"N": str(self.pid)},
            "started_at": {"N": repr(now)},
            "expires_at": {"N": repr(now + self.lease_seconds)},
        }

    def _held_error(self, item: dict[str, Any], now: float, *, stale: bool) -> LockHeld:
        started = _iso(float(item.get("started_at", 0)))
        expires = float(item.get("expires_at", 0))
        who = f"{item.get('holder', '?')} (run {item.get('run_id') or '?'}, pid {int(item.get('pid', 0))})"
        if stale:
            return LockHeld(
                f"lock {self.name} is held by {who} since {started}, but its lease expired at "
                f"{_iso(expires)} (the run died without releasing it)",
                resource=f"{self.table}/{self.name}",
                region=self.region,
                hint="make sure that run is gone, then re-run with --break-lock to take over",
            )
        return LockHeld(
            f"lock {self.name} is held by {who} since {started}; lease valid until {_iso(expires)}",
            resource=f"{self.table}/{self.name}",
            region=self.region,
            hint="wait for that run to finish (or resume it with --resume on its host); "
            "--break-lock only takes over an expired lease",
        )

    # -- public API -----------------------------------------------------------------------------
    def acquire(self, *, break_lock: bool = False, run_id: str | None = None) -> None:
        """Take the lock or raise :class:`LockHeld` (exit 3). See the module doc for the rules."""
        from dr.aws.session import client_error_type

        if run_id is not None:
            self.run_id = run_id
        client_error = client_error_type()
        now = self.clock()
        for _attempt in range(3):
            try:
                self._client().put_item(
                    TableName=self.table,
                    Item=self._item(now),
                    ConditionExpression="attribute_not_exists(#n)",
                    ExpressionAttributeNames={"#n": "name"},
                )
                break
            except client_error as exc:
                if not self._is_conditional(exc):
                    raise self._translate(exc, "acquire") from None
            if self._take_over(now, break_lock=break_lock):
                break
        else:
            raise LockHeld(f"lock {self.name} in {self.table} ({self.region}) keeps changing hands; retry")
        self.held = True
        self.started_at = now
        self.lost.clear()
        self._start_renewer()

    def _take_over(self, now: float, *, break_lock: bool) -> bool:
        """Take a stale/dead-holder lock; False when the item vanished (retry the plain write)."""
        from dr.aws.session import client_error_type

        item = self.peek()
        if item is None:
            return False
        expired = float(item.get("expires_at", 0)) < now
        same_run_dead = (
            self.run_id is not None
            and item.get("run_id") == self.run_id
            and item.get("host") == self.host
            and _holder_dead(int(item.get("pid", 0)))
        )
        if not same_run_dead and not (expired and break_lock):
            raise self._held_error(item, now, stale=expired)
        try:
            self._client().put_item(
                TableName=self.table,
                Item=self._item(now),
                ConditionExpression="#h = :h AND #r = :r AND #e = :e",
                ExpressionAttributeNames={"#h": "holder", "#r": "run_id", "#e": "expires_at"},
                ExpressionAttributeValues={
                    ":h": {"S": str(item.get("holder", ""))},
                    ":r": {"S": str(item.get("run_id", ""))},
                    ":e": {"N": repr(float(item.get("expires_at", 0)))},
                },
            )
        except client_error_type() as exc:
            if self._is_conditional(exc):
                latest = self.peek() or item
                raise self._held_error(latest, now, stale=False) from None
            raise self._translate(exc, "take over") from None
        return True

    def renew(self) -> None:
        """Extend the lease to now + lease_seconds; sets :attr:`lost` if someone else holds it."""
        from dr.aws.session import client_error_type

        if not self.held:
            return
        now = self.clock()
        try:
            self._client().update_item(
                TableName=self.table,
                Key={"name": {"S": self.name}},
                UpdateExpression="SET #e = :e",
                ConditionExpression="#h = :h AND #p = :p AND #r = :r",
                ExpressionAttributeNames={"#e": "expires_at", "#h": "holder", "#p": "pid", "#r": "run_id"},
                ExpressionAttributeValues={
                    ":e": {"N": repr(now + self.lease_seconds)},
                    ":h": {"S": self.holder},
                    ":p": {"N": str(self.pid)},
                    ":r": {"S": self.run_id or ""},
                },
            )
        except client_error_type() as exc:
            if self._is_conditional(exc):
                self.lost.set()
                self.held = False
                return
            raise self._translate(exc, "renew") from None

    def _start_renewer(self) -> None:
        self._stop_renew.clear()

        def loop() -> None:
            while not self._stop_renew.wait(self.lease_seconds / 3):
                try:
                    self.renew()
                except Exception:
                    # Transient: the next renewal retries; the lease covers three periods.
                    continue
                if self.lost.is_set():
                    return

        self._renewer = threading.Thread(target=loop, name=f"lock-renew-{self.name}", daemon=True)
        self._renewer.start()

    def release(self) -> None:
        """Delete the item if we still hold it (idempotent)."""
        from dr.aws.session import client_error_type

        self._stop_renew.set()
        if self._renewer is not None and self._renewer is not threading.current_thread():
            self._renewer.join(timeout=5)
        if not self.held:
            return
        self.held = False
        try:
            self._client().delete_item(
                TableName=self.table,
                Key={"name": {"S": self.name}},
                ConditionExpression="#h = :h AND #p = :p AND #r = :r",
                ExpressionAttributeNames={"#h": "holder", "#p": "pid", "#r": "run_id"},
                ExpressionAttributeValues={
                    ":h": {"S": self.holder},
                    ":p": {"N": str(self.pid)},
                    ":r": {"S": self.run_id or ""},
                },
            )
        except client_error_type() as exc:
            if not self._is_conditional(exc):  # taken over by someone else: not ours to delete
                raise OperationFailed(
                    f"could not release lock {self.name} in {self.table} ({self.region}): {exc}",
                    resource=self.table,
                    region=self.region,
                ) from None

    def __enter__(self) -> DynamoLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
