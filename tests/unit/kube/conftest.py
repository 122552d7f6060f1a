from __future__ import annotations


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "latency(name): latency profile of the fake cluster")
    config.addinivalue_line("markers", "capacity(pods): pods the fake cluster can run")
