"""Server-side record of the mutating calls that *reached* the estate (R1's exact duplicate count).

The client-side call log (:mod:`tests.reliability.callog`) is written before a request is sent, so
after a ``kill -9`` it may list a request that never reached the server (the process was frozen
between logging and writing it to the socket), and the resumed run's legitimate re-send then looks
like a duplicate. Counting where the side effect happens — moto's WSGI app and the fake clusters'
write handler, both in the test process — is exact: a request counts once it was received, whether
or not its sender lived to read the answer.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from dr.aws.session import is_mutating
from dr.sandbox.fakeaws.wire import parse_request

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Idempotency tokens differ between two sends of the same change; they do not make it a new one.
_TOKENS = ("ClientRequestToken", "clientRequestToken", "CallerReference", "ClientToken")
_XML_TOKEN = re.compile(rb"<CallerReference>[^<]*</CallerReference>")
# The run lock and the journal mirror are the run's own bookkeeping, not changes to the estate.
_BOOKKEEPING = ("dynamodb", "s3")


def _aws_key(
    service: str, operation: str, region: str, protocol: str, path: str, body: bytes, params: dict[str, str]
) -> str:
    if protocol in ("query", "ec2"):
        what: Any = {k: v for k, v in params.items() if k not in ("Action", "Version", *_TOKENS)}
    elif protocol in ("json", "rest-json"):
        try:
            doc = json.loads(body) if body else {}
        except ValueError:
            doc = body.decode("utf-8", "replace")
        what = {k: v for k, v in doc.items() if k not in _TOKENS} if isinstance(doc, dict) else doc
        if protocol == "rest-json":
            what = [path, what]
    else:  # rest-xml (Route53), cbor: the raw body without idempotency tokens
        what = [path, _XML_TOKEN.sub(b"", body).decode("utf-8", "replace")]
    return f"{service}:{operation}@{region} {json.dumps(what, sort_keys=True)}"


class ReceivedLog:
    """Effect keys of the mutating requests the servers received, in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.keys: list[str] = []
        # the subset of ``keys`` answered with an error (>= 400): refused, so without effect (R8
        # denies a call mid-plan; its send after ``--resume`` is the first that changes anything)
        self.refused: set[int] = set()  # indexes into ``keys``

    def _add(self, key: str) -> int:
        with self._lock:
            self.keys.append(key)
            return len(self.keys) - 1

    def wsgi(self, app: WSGIApp) -> WSGIApp:
        """Wrap the AWS endpoint (outermost: before faults or the realism layer answer)."""

        def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            index: int | None = None
            if not environ.get("PATH_INFO", "").startswith("/_sandbox/"):
                req = parse_request(environ)  # reads the body and puts it back
                if req is not None and req.service not in _BOOKKEEPING:
                    mutating = is_mutating(req.operation) if " " not in req.operation else req.method != "GET"
                    if mutating:
                        index = self._add(
                            _aws_key(
                                req.service,
                                req.operation,
                                req.region,
                                req.protocol,
                                req.path,
                                req.body,
                                req.params,
                            )
                        )
            if index is None:
                return app(environ, start_response)
            at = index

            def respond(status: str, headers: Any, *rest: Any) -> Any:
                if int(status.split(" ", 1)[0]) >= 400:
                    with self._lock:
                        self.refused.add(at)
                return start_response(status, headers, *rest)

            return app(environ, respond)

        return wrapped

    def kube_writer(self, cluster: str) -> Callable[[str, str, Any], None]:
        """An ``on_write`` hook for one fake cluster."""

        def on_write(method: str, path: str, body: Any) -> None:
            self._add(f"kube:{cluster} {method} {path} {json.dumps(body, sort_keys=True)}")

        return on_write

    def mark(self) -> int:
        with self._lock:
            return len(self.keys)

    def since(self, mark: int) -> list[str]:
        with self._lock:
            return list(self.keys[mark:])

    def effective_since(self, mark: int) -> list[str]:
        """The mutations received since ``mark`` that were not refused (an error answer changes
        nothing)."""
        with self._lock:
            return [k for i, k in enumerate(self.keys) if i >= mark and i not in self.refused]

    @staticmethod
    def duplicates(keys: list[str]) -> dict[str, int]:
        return {k: n for k, n in Counter(keys).items() if n > 1}
