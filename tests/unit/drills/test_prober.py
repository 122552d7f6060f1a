"""The endpoint prober and its HTTP check against a local server (ephemeral port)."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator

import pytest

from dr.drills.metrics import compute_rto
from dr.drills.prober import CheckOutcome, EndpointProber, HttpCheck, samples_from_log


class _State:
    health = 200
    write = 201


@pytest.fixture
def server() -> Iterator[tuple[str, type[_State]]]:
    state = type("S", (_State,), {})

    class Handler(http.server.BaseHTTPRequestHandler):
        def _reply(self, code: int) -> None:
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            self._reply(state.health if self.path == "/health" else 404)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            self.rfile.read(length)
            self._reply(state.write if self.path == "/write" else 404)

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", state
    srv.shutdown()
    srv.server_close()


def test_http_check_needs_health_and_write(server) -> None:
    url, state = server
    check = HttpCheck(timeout=2)
    out = check(url)
    assert out.ok and out.health == 200 and out.write == 201
    state.write = 503
    out = check(url)
    assert not out.ok and out.write == 503 and "POST /write answered HTTP 503" in out.error
    state.health = 500
    assert check(url).health == 500 and not check(url).ok
    assert HttpCheck(write_path=None)(url).ok is False  # health still 500


def test_http_check_unreachable_and_non_http() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = HttpCheck(timeout=0.5)(f"http://127.0.0.1:{port}")
    assert not out.ok and out.error
    assert not HttpCheck()("ftp://x").ok


def test_prober_samples_resolver_failures_and_scrubs_addresses() -> None:
    calls = iter([RuntimeError("no answer"), "http://user:pw@lb"])

    def resolver() -> str:
        item = next(calls)
        if isinstance(item, Exception):
            raise item
        return item

    prober = EndpointProber(resolver, check=lambda base: CheckOutcome(True, 200, 200))
    first, second = prober.sample(), prober.sample()
    assert not first.ok and "resolve" in first.error
    assert second.ok and second.address == "http://user:***@lb"
    restored = samples_from_log(prober.log())
    assert [(s.ok, s.address, s.error) for s in restored] == [
        (s.ok, s.address, s.error) for s in prober.snapshot()
    ]
    assert restored[0].t == pytest.approx(first.t, abs=1e-3)


def test_prober_thread_measures_an_outage(server) -> None:
    url, state = server
    prober = EndpointProber(lambda: url, HttpCheck(timeout=1), interval=0.01)
    prober.start()
    try:
        _wait(lambda: len(prober.snapshot()) >= 2)
        fault_at = time.time()
        state.health = 503
        _wait(lambda: any(not s.ok for s in prober.snapshot() if s.t >= fault_at))
        state.health = 200
        _wait(lambda: prober.sustained_since(fault_at, 3))
    finally:
        prober.stop()
    res = compute_rto(prober.snapshot(), fault_at, sustained=3)
    assert res.measured and res.rto_seconds is not None and res.rto_seconds > 0
    assert res.failed_samples >= 1


def test_successes_before_the_outage_begins_are_not_a_recovery() -> None:
    """A fault whose outage starts a little later (the region-loss drill): four successes right
    after the fault must not end the runner's wait for recovery; the RTO would be unmeasurable."""
    from dr.drills.metrics import Sample

    prober = EndpointProber(lambda: "http://unused", HttpCheck(timeout=1), interval=1)
    fault_at = 100.0
    prober.samples = [Sample(fault_at + i * 0.25, ok) for i, ok in enumerate([True] * 4 + [False] * 3)]
    assert not prober.sustained_since(fault_at, 4)
    prober.samples += [Sample(fault_at + 2 + i * 0.25, True) for i in range(3)]
    assert not prober.sustained_since(fault_at, 4)
    prober.samples.append(Sample(fault_at + 3, True))
    assert prober.sustained_since(fault_at, 4)
    assert compute_rto(prober.snapshot(), fault_at, sustained=4).rto_seconds == pytest.approx(2.0)


def _wait(cond, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)
