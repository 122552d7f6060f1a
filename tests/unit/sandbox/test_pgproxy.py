"""DelayProxy: bytes are held in flight for the delay, a cut loses them, stats count them."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from dr.sandbox.pgproxy import DelayProxy


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A tiny echo server on an ephemeral port."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                return

            def echo(c: socket.socket = conn) -> None:
                with c:
                    try:
                        while data := c.recv(4096):
                            c.sendall(data)
                    except OSError:
                        pass

            threading.Thread(target=echo, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()[1]
    stop.set()
    srv.close()


def _roundtrip(port: int, payload: bytes = b"ping") -> tuple[bytes, float]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        t0 = time.monotonic()
        c.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = c.recv(4096)
            if not chunk:
                break
            got += chunk
        return got, time.monotonic() - t0


def test_forwards_without_delay(echo_port: int) -> None:
    with DelayProxy("127.0.0.1", echo_port) as proxy:
        got, _ = _roundtrip(proxy.port, b"hello world")
        assert got == b"hello world"
        stats = proxy.stats()
        assert stats.bytes_upstream == 11 and stats.bytes_downstream == 11
        assert stats.bytes_dropped == 0 and not stats.cut


def test_downstream_delay_holds_bytes(echo_port: int) -> None:
    with DelayProxy("127.0.0.1", echo_port, delay=0.3, upstream_delay=0.0) as proxy:
        got, elapsed = _roundtrip(proxy.port)
        assert got == b"ping"
        assert elapsed >= 0.25  # held at least (about) the delay; no upper bound asserted


def test_delay_applies_in_both_directions_by_default(echo_port: int) -> None:
    with DelayProxy("127.0.0.1", echo_port, delay=0.2) as proxy:
        _, elapsed = _roundtrip(proxy.port)
        assert elapsed >= 0.35


def test_set_delay_at_runtime_releases_held_bytes(echo_port: int) -> None:
    with DelayProxy("127.0.0.1", echo_port, delay=30.0, upstream_delay=0.0) as proxy:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as c:
            c.sendall(b"held")
            deadline = time.monotonic() + 5
            while proxy.pending()[0] == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            held, age = proxy.pending()
            assert held == 4 and 0.0 <= age < 5.0  # held since the send, not a timestamp
            proxy.set_delay(0.0)  # would otherwise be held 30 s
            assert c.recv(10) == b"held"
        assert proxy.delay == 0.0


def test_cut_drops_in_flight_bytes_and_refuses_new_connections(echo_port: int) -> None:
    with DelayProxy("127.0.0.1", echo_port, delay=30.0, upstream_delay=0.0) as proxy:
        c = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        c.sendall(b"x" * 100)
        deadline = time.monotonic() + 5
        while proxy.pending()[0] < 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        lost = proxy.cut()
        assert lost == 100
        assert c.recv(10) == b""  # the connection is gone, the bytes never arrive
        c.close()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        stats = proxy.stats()
        assert stats.cut and stats.bytes_dropped == 100 and stats.bytes_downstream == 0
        port = proxy.port
        proxy.restore()
        proxy.set_delay(0.0)
        assert proxy.port == port
        assert _roundtrip(proxy.port)[0] == b"ping"


def test_upstream_unreachable_closes_client() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    with (
        DelayProxy("127.0.0.1", dead) as proxy,
        socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as c,
    ):
        assert c.recv(10) == b""
