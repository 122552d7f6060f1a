"""moto's server in-process behind a middleware, with per-region endpoints that can be closed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

from dr.sandbox.server import MotoServer


def test_middleware_sees_requests_and_regions_can_be_closed_and_reopened() -> None:
    from botocore.exceptions import EndpointConnectionError

    from dr.aws.session import ClientProvider
    from dr.target import SANDBOX_CREDENTIALS

    seen: list[str] = []

    def middleware(app: Any) -> Any:
        def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            seen.append(environ.get("PATH_INFO", ""))
            result: Iterable[bytes] = app(environ, start_response)
            return result

        return wrapped

    server = MotoServer(middleware=middleware, regions=["us-west-2", "us-east-1"]).start()
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert set(server.region_urls) == {"us-west-2", "us-east-1"}
        assert len({server.port, *[int(u.rsplit(":", 1)[1]) for u in server.region_urls.values()]}) == 3

        def sqs(url: str, region: str) -> Any:
            provider = ClientProvider(endpoint_url=url, credentials=dict(SANDBOX_CREDENTIALS), max_attempts=0)
            return provider.client("sqs", region)

        sqs(server.url, "us-west-2").list_queues()
        assert seen, "the middleware did not see the request"
        port = server.region_urls["us-east-1"]
        server.set_region_listening("us-east-1", False)
        assert not server.region_listening("us-east-1")
        with pytest.raises(EndpointConnectionError):
            sqs(port, "us-east-1").list_queues()
        sqs(server.region_urls["us-west-2"], "us-west-2").list_queues()  # the other region answers
        server.set_region_listening("us-east-1", True)
        assert server.region_urls["us-east-1"] == port  # same port again
        sqs(port, "us-east-1").list_queues()
        with pytest.raises(KeyError):
            server.set_region_listening("eu-west-1", False)
    finally:
        server.stop()
