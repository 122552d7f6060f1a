"""The run journal: append-only JSON lines, flushed and fsync'd per line, never holding secrets.

One file per run: ``<runs_dir>/<run_id>/journal.jsonl``. Every line is an object with ``seq``,
``ts`` (UTC ISO), ``t`` (epoch seconds), ``run_id``, ``kind`` and the event's fields. Kinds:

``run_started`` · ``run_resumed`` · ``step_started`` · ``step_skipped`` · ``step_action_done`` ·
``step_done`` · ``step_failed`` · ``step_interrupted`` · ``output_set`` · ``mirror_failed`` ·
``run_interrupted`` · ``run_finished``

Every event is scrubbed before it is written: values under secret-looking keys (password,
secret, token, credential, private key…) become ``"<redacted>"`` and ``user:pass@`` in URLs
becomes ``user:***@``. Outputs that had to be scrubbed are not restored on resume.

When an :class:`S3Mirror` is given, a background thread uploads the file to S3 (coalescing
bursts of events); a failing mirror never fails the run — it is noted once in the journal.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dr.errors import BadInput, NotFound

if TYPE_CHECKING:
    from dr.aws.session import ClientProvider
    from dr.topology import Estate

REDACTED = "<redacted>"
_SECRET_KEY = re.compile(
    r"(?i)(password|passwd|pwd$|secret(?!_?(id|arn|name)$)|token|credential|private_?key|api_?key|auth_?token"
    r"|dsn|conninfo)"
)
_URL_CREDS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@")
# libpq key=value connection strings: password=..., sslpassword=..., passfile=...
_KV_SECRET = re.compile(r"(?i)\b(password|sslpassword|passfile)\s*=\s*('[^']*'|[^\s&]+)")
_RUN_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")


def new_run_id(now: dt.datetime | None = None) -> str:
    """A sortable run id, e.g. ``20261124T071500Z-1a2b3c``."""
    now = now or dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def scrub_text(text: str, extra_secrets: frozenset[str] = frozenset()) -> str:
    """``text`` with URL credentials (``user:***@``), libpq ``password=***`` and known secrets masked."""
    out = _URL_CREDS.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    out = _KV_SECRET.sub(lambda m: f"{m[1]}=***", out)
    for secret in extra_secrets:
        if secret and secret in out:
            out = out.replace(secret, "***")
    return out


def scrub(value: Any, extra_secrets: frozenset[str] = frozenset()) -> Any:
    """A JSON-safe copy of ``value`` with secrets removed (see module doc)."""
    if isinstance(value, dict):
        return {
            str(k): (REDACTED if is_secret_key(str(k)) else scrub(v, extra_secrets)) for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set, frozenset)):
        return [scrub(v, extra_secrets) for v in value]
    if isinstance(value, str):
        return scrub_text(value, extra_secrets)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return scrub(value.to_dict(), extra_secrets)
    if hasattr(value, "model_dump"):
        return scrub(value.model_dump(mode="json"), extra_secrets)
    return scrub(str(value), extra_secrets)


def _needs_scrub(value: Any) -> bool:
    return scrub(value) != _plain(value)


def _plain(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return str(value)


@dataclass
class JournalState:
    """What a journal says about a run — enough to resume it."""

    run_id: str
    plan: str
    path: Path
    completed: set[str] = field(default_factory=set)  # step_done or step_skipped
    failed: set[str] = field(default_factory=set)
    # Steps started but never finished (a crash, Ctrl-C): resume re-checks them first.
    interrupted: list[str] = field(default_factory=list)
    action_done: set[str] = field(default_factory=set)  # action returned (maybe not waited for)
    outputs: dict[str, Any] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    calls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    finished: str | None = None  # the last run_finished status, if any
    events: int = 0
    torn_lines: list[int] = field(default_factory=list)

    @property
    def interrupted_step(self) -> str | None:
        return self.interrupted[0] if self.interrupted else None


class S3Mirror:
    """Uploads a journal to ``s3://<bucket>/<prefix>/<run_id>/journal.jsonl`` in ``region``.

    Give it a ClientProvider *without* the run's CallRecorder, so journal uploads are not counted
    among the run's mutating calls.
    """

    def __init__(self, clients: ClientProvider, *, bucket: str, region: str, prefix: str = "runs") -> None:
        self.clients = clients
        self.bucket = bucket
        self.region = region
        self.prefix = prefix.strip("/")

    @classmethod
    def for_estate(cls, clients: ClientProvider, estate: Estate, region: str) -> S3Mirror:
        """The estate's journal bucket in ``region`` (the surviving region of a failover)."""
        return cls(clients, bucket=estate.journal_bucket(region), region=region)

    def key(self, run_id: str) -> str:
        return f"{self.prefix}/{run_id}/journal.jsonl"

    def upload(self, path: Path, run_id: str) -> None:
        self.clients.client("s3", self.region).put_object(
            Bucket=self.bucket,
            Key=self.key(run_id),
            Body=path.read_bytes(),
            ContentType="application/x-ndjson",
        )

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}/ in {self.region}"


class Journal:
    """Append-only JSON-lines record of one run. Thread-safe."""

    def __init__(
        self,
        path: Path,
        run_id: str,
        plan_name: str,
        *,
        mirror: S3Mirror | None = None,
        clock: Callable[[], float] = time.time,
        secrets_to_scrub: frozenset[str] = frozenset(),
    ) -> None:
        self.path = path
        self.run_id = run_id
        self.plan_name = plan_name
        self.mirror = mirror
        self._clock = clock
        self._secrets = secrets_to_scrub
        self._lock = threading.Lock()
        self._seq = 0
        torn = False
        if path.exists() and path.stat().st_size:
            data = path.read_bytes()
            self._seq = data.count(b"\n")
            torn = not data.endswith(b"\n")
        self._fh = path.open("a", encoding="utf-8")
        if torn:  # never glue a new event onto a line torn by a crash
            self._fh.write("\n")
            self._fh.flush()
        self._mirror_failed = False
        self._dirty = threading.Event()
        self._closing = threading.Event()
        self._mirror_thread: threading.Thread | None = None
        if mirror is not None:
            self._mirror_thread = threading.Thread(
                target=self._mirror_loop, name=f"journal-mirror-{run_id}", daemon=True
            )
            self._mirror_thread.start()

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def create(
        cls, directory: Path, plan_name: str, run_id: str | None = None, mirror: S3Mirror | None = None
    ) -> Journal:
        """A new journal under ``directory/<run_id>/``; ``run_id`` of an existing run appends (resume)."""
        run_id = run_id or new_run_id()
        run_dir = Path(directory) / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        return cls(run_dir / "journal.jsonl", run_id, plan_name, mirror=mirror)

    @staticmethod
    def path_for(directory: Path, run_id: str) -> Path:
        return Path(directory) / run_id / "journal.jsonl"

    @classmethod
    def load(cls, directory: Path, run_id: str) -> JournalState:
        """Replay a journal. Raises NotFound (exit 2) naming the file when it does not exist."""
        if not _RUN_ID.match(run_id) and ("/" in run_id or run_id.startswith(".")):
            raise BadInput(f"--resume {run_id!r} is not a run id (expected e.g. 20261124T071500Z-1a2b3c)")
        path = cls.path_for(directory, run_id)
        if not path.exists():
            raise NotFound(
                f"no journal for run {run_id} at {path}",
                resource=str(path),
                hint="list runs with `ls <runs-dir>` (default .dr-runs, env DR_RUNS_DIR) or pass --runs-dir",
            )
        state = JournalState(run_id=run_id, plan="", path=path)
        started: list[str] = []
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    ev = json.loads(line)
                except json.JSONDecodeError:
                    # A crash (kill -9) mid-write can leave a torn line: it recorded nothing.
                    state.torn_lines.append(lineno)
                    continue
                state.events += 1
                kind, step = ev.get("kind"), ev.get("step")
                if kind in ("run_started", "run_resumed") and ev.get("plan"):
                    state.plan = ev["plan"]
                elif kind == "step_started":
                    started.append(step)
                    state.failed.discard(step)
                elif kind == "step_action_done":
                    state.action_done.add(step)
                elif kind in ("step_done", "step_skipped"):
                    state.completed.add(step)
                    if ev.get("duration") is not None:
                        state.durations[step] = float(ev["duration"])
                elif kind == "step_failed":
                    state.failed.add(step)
                elif kind == "output_set":
                    if ev.get("redacted"):
                        state.outputs.pop(ev["key"], None)
                    else:
                        state.outputs[ev["key"]] = ev.get("value")
                elif kind == "run_finished":
                    state.finished = ev.get("status")
                if kind in ("step_done", "step_failed", "step_skipped", "step_interrupted") and step:
                    state.calls.setdefault(step, []).extend(ev.get("calls") or [])
        ended = state.completed | state.failed
        seen: set[str] = set()
        for sid in started:
            if sid not in ended and sid not in seen:
                state.interrupted.append(sid)
                seen.add(sid)
        return state

    # -- writing --------------------------------------------------------------------------------
    def event(self, kind: str, **fields: Any) -> None:
        """Append one scrubbed event, flushed and fsync'd before returning."""
        now = self._clock()
        with self._lock:
            self._seq += 1
            record = {
                "seq": self._seq,
                "ts": dt.datetime.fromtimestamp(now, dt.UTC).isoformat(timespec="milliseconds"),
                "t": round(now, 6),
                "run_id": self.run_id,
                "kind": kind,
                **scrub(fields, self._secrets),
            }
            if self._fh.closed:
                return
            self._fh.write(json.dumps(record, default=str, separators=(",", ":")) + "\n")
            self._fh.flush()
            os.fsync(self._fh.fileno())
        if kind != "mirror_failed":
            self._dirty.set()

    def output(self, key: str, value: Any) -> None:
        """Journal a ``ctx.set``; a secret-looking key or value is recorded as redacted."""
        if is_secret_key(key) or _needs_scrub(value):
            self.event("output_set", key=key, value=REDACTED, redacted=True)
        else:
            self.event("output_set", key=key, value=value)

    # -- mirroring ------------------------------------------------------------------------------
    def _mirror_once(self) -> None:
        if self.mirror is None or self._mirror_failed:
            return
        try:
            self.mirror.upload(self.path, self.run_id)
        except Exception as exc:  # a mirror must never fail the run
            self._mirror_failed = True
            self.event(
                "mirror_failed",
                target=self.mirror.describe(),
                error=f"{type(exc).__name__}: {exc}",
                note="the local journal is complete; copy it manually",
            )

    def _mirror_loop(self) -> None:
        while not self._closing.is_set():
            self._dirty.wait()
            self._dirty.clear()
            if self._closing.is_set():
                break
            self._mirror_once()
            # Coalesce bursts: at most one upload per second.
            self._closing.wait(1.0)

    def close(self) -> None:
        """Stop the mirror (one final upload) and close the file."""
        if self._mirror_thread is not None and not self._closing.is_set():
            self._closing.set()
            self._dirty.set()
            self._mirror_thread.join(timeout=10)
            self._mirror_once()
        with self._lock:
            if not self._fh.closed:
                self._fh.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
