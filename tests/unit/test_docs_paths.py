"""The documents name real files: every relative link resolves, every ``dr/…``, ``tests/…`` or
``scripts/…`` path and every ``dr.x.y`` module they mention exists, and none sends the reader
outside the repository."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
PATH = re.compile(r"(?<![\w./-])((?:dr|tests|scripts|docs|examples|stacks)/[\w./-]*[\w/])")
MODULE = re.compile(r"(?<![\w./-])(dr(?:\.\w+)+)")


def _mentions(pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        text = doc.read_text()
        for m in pattern.finditer(text):
            if text[m.end() : m.end() + 1] in ("*", "<", "{", "…", "N"):
                continue  # a pattern (test_r*.py, Pulumi.<stack>.yaml), not a path
            out.append((doc.name, m.group(1)))
    return out


def _exists(path: str) -> bool:
    if path.endswith("/"):
        return (ROOT / path).is_dir()
    if "." not in Path(path).name:
        return True  # not a file name: e.g. the CloudWatch namespace dr/readiness
    return (ROOT / path).exists()


def test_every_path_the_documents_name_exists() -> None:
    missing = sorted({f"{doc}: {p}" for doc, p in _mentions(PATH) if not _exists(p)})
    assert not missing, "documents name files that do not exist:\n" + "\n".join(missing)


def _module_exists(dotted: str) -> bool:
    parts = dotted.split(".")
    # dr.x.y may end in attributes (dr.procedures.failover_gates.preflight): the longest module, then
    # each remaining name must be an attribute of it
    for n in range(len(parts), 1, -1):
        try:
            found = importlib.util.find_spec(".".join(parts[:n])) is not None
        except (ImportError, AttributeError, ValueError):
            found = False
        if found:
            obj: object = importlib.import_module(".".join(parts[:n]))
            for name in parts[n:]:
                if not hasattr(obj, name):
                    return False
                obj = getattr(obj, name)
            return True
    return False


def test_every_module_the_documents_name_exists() -> None:
    missing = sorted({f"{doc}: {m}" for doc, m in _mentions(MODULE) if not _module_exists(m)})
    assert not missing, "documents name modules that do not exist:\n" + "\n".join(missing)


def test_no_document_sends_the_reader_outside_the_repository() -> None:
    outside = [d.name for d in DOCS if "../shared" in d.read_text()]
    assert not outside, outside


def test_the_path_check_catches_a_stale_path() -> None:
    # control: a path that does not exist is reported
    assert not _exists("dr/sandbox/realism.py") and _exists("dr/topology.py")
    assert not _module_exists("dr.sandbox.kubeapi") and _module_exists("dr.topology.Estate")


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_every_relative_link_resolves() -> None:
    broken = []
    for doc in DOCS:
        for m in LINK.finditer(doc.read_text()):
            target = m.group(1)
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert not broken, "links to nothing:\n" + "\n".join(broken)
