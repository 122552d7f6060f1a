"""The drill's own JSON journal: one ``journal.json`` per run, rewritten atomically on every event.

A different shape from the runbook engine's JSON-lines journal (``dr.runbook.journal``): a drill
journal is one document that reports re-render from (``dr drill report RUN_DIR``), and it also
holds the heartbeat and probe logs. Every value goes through the runbook journal's scrubber:
secret-looking keys become ``<redacted>``, credentials in URLs and ``password=`` in connection
strings become ``***``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

# One scrubber for every journal and report: the runbook engine's.
from dr.runbook.journal import scrub

FORMAT = "dr-drill-journal/1"


def iso(t: float | None) -> str | None:
    return None if t is None else dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="milliseconds")


class DrillJournal:
    """Thread-safe; ``doc`` is the document, ``event()`` appends and ``flush()`` writes it."""

    def __init__(self, path: Path | None, doc: dict[str, Any] | None = None) -> None:
        self.path = path
        self.doc: dict[str, Any] = {"format": FORMAT, "events": []} | (doc or {})
        self._lock = threading.RLock()
        self.flush()

    def event(self, kind: str, **fields: Any) -> None:
        t = time.time()
        with self._lock:
            self.doc["events"].append({"t": round(t, 4), "ts": iso(t), "kind": kind, **scrub(fields)})
        self.flush()

    def set(self, key: str, value: Any) -> None:
        with self._lock:
            self.doc[key] = scrub(value)
        self.flush()

    def flush(self) -> None:
        if self.path is None:
            return
        with self._lock:
            text = json.dumps(self.doc, indent=2, default=str)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(text)
            os.replace(tmp, self.path)


def read_journal(path: Path) -> dict[str, Any]:
    from dr.errors import BadInput

    file = path / "journal.json" if path.is_dir() else path
    if not file.exists():
        raise BadInput(f"{file} does not exist", resource=str(file), hint="pass a drill run directory")
    try:
        doc: dict[str, Any] = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise BadInput(f"{file} is not valid JSON ({exc})", resource=str(file)) from None
    if doc.get("format") != FORMAT:
        raise BadInput(f"{file} is not a drill journal (format {doc.get('format')!r})", resource=str(file))
    return doc
