"""A delaying TCP proxy: the "cross-region link" of the sandbox.

:class:`DelayProxy` listens on ``127.0.0.1`` (ephemeral port) and forwards every connection to an
upstream address. Every chunk read on one side is held *in the proxy* for the configured delay
before it is written to the other side, so bytes really are "in flight" for that long:

* WAL shipped from the primary to the replica arrives ``delay`` seconds late → real replica lag;
* :meth:`DelayProxy.cut` closes every connection and the listening socket at once, and drops
  whatever was still held → losing the region really loses the un-shipped WAL;
* :meth:`DelayProxy.restore` listens again on the same port.

The delay can be changed at run time (:meth:`DelayProxy.set_delay`); held chunks are released
according to the *current* delay, in order. The proxy runs an asyncio loop in one daemon thread;
every public method is thread-safe and synchronous.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024
T = TypeVar("T")


@dataclass(frozen=True)
class ProxyStats:
    """Counters of a :class:`DelayProxy` (bytes actually written to the other side)."""

    bytes_upstream: int  # client -> server (e.g. replica -> primary: feedback)
    bytes_downstream: int  # server -> client (e.g. primary -> replica: WAL)
    bytes_dropped: int  # held in the proxy when it was cut, never delivered
    connections_total: int
    connections_open: int
    cut: bool


class _Pipe:
    """One direction of one connection: a FIFO of (arrival time, bytes) released after the delay."""

    def __init__(
        self, proxy: DelayProxy, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, downstream: bool
    ) -> None:
        self.proxy = proxy
        self.reader = reader
        self.writer = writer
        self.downstream = downstream
        self.held: deque[tuple[float, bytes]] = deque()
        self.eof = False
        self.wakeup = asyncio.Event()

    def delay(self) -> float:
        return self.proxy._delay_down if self.downstream else self.proxy._delay_up

    def held_bytes(self) -> int:
        return sum(len(b) for _, b in self.held)

    async def read_loop(self) -> None:
        try:
            while True:
                data = await self.reader.read(_CHUNK)
                if not data:
                    break
                self.held.append((time.monotonic(), data))
                self.wakeup.set()
        except (ConnectionError, OSError):
            pass
        finally:
            self.eof = True
            self.wakeup.set()

    async def write_loop(self) -> None:
        try:
            while True:
                if not self.held:
                    if self.eof:
                        break
                    self.wakeup.clear()
                    await self.wakeup.wait()
                    continue
                arrived, data = self.held[0]
                due = arrived + self.delay() - time.monotonic()
                if due > 0:
                    # Re-evaluate at least every 50 ms so a changed delay takes effect.
                    self.wakeup.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wakeup.wait(), timeout=min(due, 0.05))
                    continue
                self.held.popleft()
                self.proxy._count(self.downstream, len(data))  # before write: readers may check stats at once
                self.writer.write(data)
                await self.writer.drain()
            if self.writer.can_write_eof():
                with contextlib.suppress(OSError):
                    self.writer.write_eof()
        except (ConnectionError, OSError):
            pass


class DelayProxy:
    """TCP proxy ``127.0.0.1:<port>`` → ``upstream`` that delays bytes and can be cut.

    ``delay`` applies to server→client bytes (downstream: the WAL stream); ``upstream_delay``
    (default: the same as ``delay``) to client→server bytes. Use ``start()``/``close()`` or a
    ``with`` block. ``port`` is the listening port (ephemeral unless given).
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        delay: float = 0.0,
        upstream_delay: float | None = None,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        name: str = "proxy",
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.listen_host = listen_host
        self.name = name
        self._delay_down = max(0.0, delay)
        self._delay_up = max(0.0, delay if upstream_delay is None else upstream_delay)
        self._requested_port = listen_port
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._conns: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter, _Pipe, _Pipe]] = set()
        self._lock = threading.Lock()
        self._up_bytes = 0
        self._down_bytes = 0
        self._dropped = 0
        self._total = 0
        self._cut = False
        self._cut_at: float | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> DelayProxy:
        """Start the loop thread and listen; returns self (``port`` is then set)."""
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name=f"delay-proxy-{self.name}", daemon=True)
        self._thread.start()
        self._call(self._listen(self._requested_port))
        return self

    def close(self) -> None:
        """Drop every connection, stop listening and stop the loop thread."""
        if self._loop is None or self._thread is None:
            return
        with contextlib.suppress(Exception):
            self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
        self._loop = None
        self._thread = None

    def __enter__(self) -> DelayProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- controls --------------------------------------------------------------------------
    def set_delay(self, seconds: float, *, upstream: float | None = None) -> None:
        """Change the delay (downstream, and upstream unless given separately); applies at once."""
        self._delay_down = max(0.0, seconds)
        self._delay_up = max(0.0, seconds if upstream is None else upstream)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake_all)

    @property
    def delay(self) -> float:
        """Current downstream delay in seconds."""
        return self._delay_down

    def cut(self) -> int:
        """Lose the link: close all connections, drop held bytes, refuse new connections.

        Returns the number of bytes that were in flight and are now lost.
        """
        self._cut = True
        self._cut_at = time.monotonic()
        return self._call(self._cut_all())

    def restore(self) -> None:
        """Heal a cut link: listen again on the same port."""
        if not self._cut:
            return
        self._cut = False
        self._cut_at = None
        self._call(self._listen(self.port))

    @property
    def is_cut(self) -> bool:
        return self._cut

    @property
    def cut_seconds_ago(self) -> float | None:
        """Seconds since the link was cut (None while it is up)."""
        return None if self._cut_at is None else time.monotonic() - self._cut_at

    def stats(self) -> ProxyStats:
        """Bytes forwarded in each direction, bytes lost to cuts, connection counts."""
        with self._lock:
            return ProxyStats(
                bytes_upstream=self._up_bytes,
                bytes_downstream=self._down_bytes,
                bytes_dropped=self._dropped,
                connections_total=self._total,
                connections_open=len(self._conns),
                cut=self._cut,
            )

    def pending(self) -> tuple[int, float]:
        """(bytes held downstream, age in seconds of the oldest held downstream chunk)."""
        now = time.monotonic()
        held = 0
        oldest = now
        for conn in list(self._conns):
            pipe = conn[3]
            for arrived, data in list(pipe.held):
                held += len(data)
                oldest = min(oldest, arrived)
        return held, (now - oldest if held else 0.0)

    def __repr__(self) -> str:
        return f"DelayProxy({self.name!r}, 127.0.0.1:{self.port} -> {self.upstream[0]}:{self.upstream[1]}, delay={self._delay_down:.3f}s, cut={self._cut})"

    # -- internals (run on the loop) ---------------------------------------------------------
    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        assert self._loop is not None, "proxy not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def _count(self, downstream: bool, n: int) -> None:
        with self._lock:
            if downstream:
                self._down_bytes += n
            else:
                self._up_bytes += n

    def _wake_all(self) -> None:
        for conn in self._conns:
            conn[2].wakeup.set()
            conn[3].wakeup.set()

    async def _listen(self, port: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.listen_host, port))
        self._server = await asyncio.start_server(self._handle, sock=sock)
        self.port = sock.getsockname()[1]

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self._cut:
            client_w.close()
            return
        try:
            server_r, server_w = await asyncio.open_connection(*self.upstream)
        except OSError as exc:
            log.debug("%s: upstream %s:%s unreachable: %s", self.name, *self.upstream, exc)
            client_w.close()
            return
        up = _Pipe(self, client_r, server_w, downstream=False)
        down = _Pipe(self, server_r, client_w, downstream=True)
        conn = (client_w, server_w, up, down)
        self._conns.add(conn)
        with self._lock:
            self._total += 1
        try:
            await asyncio.gather(up.read_loop(), up.write_loop(), down.read_loop(), down.write_loop())
        except asyncio.CancelledError:
            pass  # close(): end quietly (the stream callback would report a cancelled task)
        finally:
            self._conns.discard(conn)
            for w in (client_w, server_w):
                with contextlib.suppress(Exception):
                    w.close()

    async def _cut_all(self) -> int:
        if self._server is not None:
            self._server.close()
            self._server = None
        dropped = 0
        for client_w, server_w, up, down in list(self._conns):
            dropped += up.held_bytes() + down.held_bytes()
            up.held.clear()
            down.held.clear()
            for w in (client_w, server_w):
                transport = w.transport
                with contextlib.suppress(Exception):
                    transport.abort()
        with self._lock:
            self._dropped += dropped
        return dropped

    async def _shutdown(self) -> None:
        await self._cut_all()
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
