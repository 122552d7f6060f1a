"""``dr reconcile``: after a failover, make the stack files declare the surviving region as primary.

Without it the next ``pulumi up --stack dr`` would still declare the promoted database as a read
replica of the dead region (``replicate_source_db``) and scale the now-serving region back to warm
standby. The rewrite, for new primary stack ``P`` and old primary ``O``:

* ``dr-toolkit:role``: ``P`` → ``primary``, ``O`` → ``standby``;
* ``dr-toolkit:primaryStackRef`` is left alone: it names the *home* stack owning the app-wide
  resources (zone, lock table), which never move (docs/pulumi.md);
* the nodegroup sizes (min/max/desired) are swapped (production capacity follows the primary);
* ``site.standbyReplicas`` moves from ``P`` to ``O``.

Nothing else changes: in particular every physical name (the promoted DB keeps its identifier) —
the Pulumi program derives logical names and identifiers from the site, never from the role, so
URNs and physical names stay, and the promoted instance is declared without a replication source.

The files are edited line by line so comments and layout survive; the result is checked to parse to
exactly the intended document (else it is re-dumped by PyYAML) and to load as a valid estate
before anything is written. Both files are written atomically (temp file + rename). Running it
again is a no-op ("already reconciled").
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dr.errors import BadInput
from dr.topology import NS, combine, parse_stack, read_stack, stack_file

ROLE = NS + "role"
SIZES = ("minSize", "maxSize", "desiredSize")


@dataclass
class ReconcileChange:
    primary: str
    standby: str
    files: dict[str, tuple[str, str]]  # path -> (before, after)
    changes: list[str] = field(default_factory=list)
    written: bool = False
    comments_kept: bool = True

    @property
    def noop(self) -> bool:
        return all(before == after for before, after in self.files.values())

    def diff(self) -> str:
        out: list[str] = []
        for path, (before, after) in self.files.items():
            out += difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                fromfile=f"a/{Path(path).name}",
                tofile=f"b/{Path(path).name}",
            )
        return "".join(out)

    @property
    def summary(self) -> str:
        if self.noop:
            return f"already reconciled: stack {self.primary} is primary, {self.standby} standby"
        return f"stack {self.primary} -> primary, {self.standby} -> standby ({len(self.changes)} changes)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "primary": self.primary,
            "standby": self.standby,
            "noop": self.noop,
            "written": self.written,
            "changes": self.changes,
            "diff": self.diff(),
            "comments_kept": self.comments_kept,
            "summary": self.summary,
        }


# -- the intended documents ----------------------------------------------------------------------
def intended(
    new_primary: dict[str, Any], old_primary: dict[str, Any], *, new_stack: str, old_stack: str
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """The two ``config`` mappings after reconciliation, and a list of the changes made."""
    p, o = copy.deepcopy(new_primary), copy.deepcopy(old_primary)
    changes: list[str] = []
    p[ROLE], o[ROLE] = "primary", "standby"
    changes += [f"{new_stack}: {ROLE} standby -> primary", f"{old_stack}: {ROLE} primary -> standby"]
    p_ng = p[NS + "site"]["cluster"]["nodegroup"]
    o_ng = o[NS + "site"]["cluster"]["nodegroup"]
    for key in SIZES:
        if key in p_ng and key in o_ng and p_ng[key] != o_ng[key]:
            p_ng[key], o_ng[key] = o_ng[key], p_ng[key]
            changes.append(
                f"nodegroup {key}: {new_stack} {o_ng[key]} -> {p_ng[key]}, {old_stack} {p_ng[key]} -> {o_ng[key]}"
            )
    standby = p[NS + "site"].pop("standbyReplicas", None)
    o[NS + "site"].pop("standbyReplicas", None)
    if standby is not None:
        o[NS + "site"]["standbyReplicas"] = standby
        changes.append(f"site.standbyReplicas moved from {new_stack} to {old_stack}")
    return p, o, changes


# -- line-level editing (keeps comments) -----------------------------------------------------------
def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _block(lines: list[str], start: int) -> int:
    """Index just past the block whose header is ``lines[start]`` (deeper-indented lines)."""
    base = _indent(lines[start])
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > base):
        end += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1
    return end


def _find(lines: list[str], pattern: str, start: int = 0, stop: int | None = None) -> int | None:
    rx = re.compile(pattern)
    for i in range(start, len(lines) if stop is None else stop):
        if rx.match(lines[i]):
            return i
    return None


def _scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _edit(
    text: str, doc: dict[str, Any], stack: str, *, standby_block: list[str] | None
) -> tuple[str, list[str]]:
    """Rewrite ``text`` to hold ``doc`` (role, nodegroup sizes, standbyReplicas); returns
    (new text, the standbyReplicas block removed from it, if any)."""
    lines = text.splitlines(keepends=True)
    role_at = _find(lines, rf"^\s+{re.escape(ROLE)}:")
    if role_at is None:
        raise BadInput(f"{stack}: no {ROLE} line to rewrite", resource=stack)
    ind = " " * _indent(lines[role_at])
    lines[role_at] = f"{ind}{ROLE}: {doc[ROLE]}\n"
    # nodegroup sizes
    site_at = _find(lines, rf"^\s+{re.escape(NS + 'site')}:")
    if site_at is None:
        raise BadInput(f"{stack}: no {NS}site block", resource=stack)
    site_end = _block(lines, site_at)
    ng_at = _find(lines, r"^\s+nodegroup:\s*$", site_at, site_end)
    if ng_at is not None:
        ng_end = _block(lines, ng_at)
        ng = doc[NS + "site"]["cluster"]["nodegroup"]
        for i in range(ng_at + 1, ng_end):
            m = re.match(
                r"^(\s+)(minSize|maxSize|desiredSize):\s*([^#\n]*?)(\s*#.*)?$", lines[i].rstrip("\n")
            )
            if m and m.group(2) in ng:
                lines[i] = f"{m.group(1)}{m.group(2)}: {_scalar(ng[m.group(2)])}{m.group(4) or ''}\n"
    # standbyReplicas: cut the block out, or append the given one at the end of the site block
    removed: list[str] = []
    sb_at = _find(lines, r"^\s+standbyReplicas:", site_at, _block(lines, site_at))
    if sb_at is not None:
        sb_end = _block(lines, sb_at)
        removed = lines[sb_at:sb_end]
        del lines[sb_at:sb_end]
    if standby_block:
        end = _block(lines, site_at)
        block = list(standby_block)
        if end > 0 and not lines[end - 1].endswith("\n"):
            lines[end - 1] += "\n"
        lines[end:end] = block
    return "".join(lines), removed


def _load_config(text: str, path: str) -> dict[str, Any]:
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
        raise BadInput(f"{path}: expected a top-level 'config:' mapping", resource=path)
    config: dict[str, Any] = doc["config"]
    return config


def plan_reconcile(stack_dir: Path, *, primary: str) -> ReconcileChange:
    """Compute (not write) the reconciliation making stack ``primary`` the primary."""
    stack_dir = Path(stack_dir)
    new_cfg = read_stack(stack_dir, primary)
    old_stack = new_cfg.peer_stack
    old_cfg = read_stack(stack_dir, old_stack)
    p_path, o_path = stack_file(stack_dir, primary), stack_file(stack_dir, old_stack)
    p_text, o_text = p_path.read_text(), o_path.read_text()
    if new_cfg.role == "primary":
        if old_cfg.role != "standby":
            raise BadInput(
                f"stacks {primary} and {old_stack} are both primary",
                resource=str(p_path),
                hint="fix one by hand",
            )
        return ReconcileChange(
            primary, old_stack, {str(p_path): (p_text, p_text), str(o_path): (o_text, o_text)}
        )
    p_doc, o_doc = _load_config(p_text, str(p_path)), _load_config(o_text, str(o_path))
    p_new, o_new, changes = intended(p_doc, o_doc, new_stack=primary, old_stack=old_stack)

    kept = True
    try:
        p_after, standby_block = _edit(p_text, p_new, primary, standby_block=None)
        indent = " " * 4
        # Re-indent the moved block to the target site's key indentation.
        if standby_block:
            shift = _indent(standby_block[0]) - len(indent)
            standby_block = [
                ln[shift:] if shift > 0 and ln.startswith(" " * shift) else ln for ln in standby_block
            ]
        o_after, _ = _edit(o_text, o_new, old_stack, standby_block=standby_block)
        ok = _load_config(p_after, str(p_path)) == p_new and _load_config(o_after, str(o_path)) == o_new
    except (BadInput, yaml.YAMLError, KeyError, IndexError):
        ok = False
    if not ok:  # layout we cannot edit line by line: dump the intended documents (comments lost)
        kept = False
        p_after = yaml.safe_dump({"config": p_new}, sort_keys=False)
        o_after = yaml.safe_dump({"config": o_new}, sort_keys=False)
    # The result must be a valid estate before anything is written.
    a = parse_stack(_load_config(p_after, str(p_path)), primary, str(p_path))
    b = parse_stack(_load_config(o_after, str(o_path)), old_stack, str(o_path))
    combine(a, b, str(stack_dir))
    return ReconcileChange(
        primary,
        old_stack,
        {str(p_path): (p_text, p_after), str(o_path): (o_text, o_after)},
        changes,
        comments_kept=kept,
    )


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same directory and a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def apply(change: ReconcileChange) -> ReconcileChange:
    """Write the files of ``change`` (no-op when already reconciled)."""
    if change.noop:
        return change
    for path, (_before, after) in change.files.items():
        write_atomically(Path(path), after)
    change.written = True
    return change


def reconcile_stacks(
    stack_dir: Path, *, primary: str, dry_run: bool, assume_yes: bool, output: str = "table"
) -> ReconcileChange:
    """Show the diff (stderr for tables), ask unless ``assume_yes``, then write. Declining: exit 2."""
    import click

    change = plan_reconcile(stack_dir, primary=primary)
    if change.noop or dry_run:
        return change
    if output != "json":
        click.echo(change.diff(), err=True)
    if not assume_yes and not click.confirm(
        f"Rewrite {', '.join(Path(p).name for p in change.files)}?", default=False, err=True
    ):
        raise BadInput("stack files not changed: aborted by the operator")
    return apply(change)
