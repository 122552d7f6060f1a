"""The layout of the ``dr`` package is part of its design: these tests keep it from eroding.

* every module has a name no other module shares (grep and "go to definition" find one file);
* imports run down the layers only (the engine never imports the procedures it runs, the
  procedures never import the drills or the CLI …), lazy and ``TYPE_CHECKING`` imports included;
* no module grows past ~800 lines unless it is one concept, recorded here with the reason.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "dr"

# Lower rank = lower layer. A module may import its own layer and the ones below it.
LAYERS: dict[str, int] = {
    "errors": 0,
    "policy": 0,
    "topology": 1,
    "target": 1,
    "aws": 1,
    "kube": 2,
    "runbook": 2,
    "steps": 3,
    "procedures": 4,
    "drills": 5,
    "sandbox": 6,
    "infra": 6,
    "cli": 7,
    "__main__": 7,
}

# Modules allowed past the size budget, each one concept (a reason is required).
LARGE: dict[str, str] = {
    "dr/kube.py": "one adapter class over the kubernetes client, its data classes and connect()",
    "dr/topology.py": "the estate's typed model: one pydantic tree and its derived names",
}
BUDGET = 800


def _modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py") if ".venv" not in p.parts)


def _room(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 else rel.stem


def _imported_rooms(path: Path) -> set[tuple[str, int]]:
    """(room, line) of every ``dr.<room>`` this module imports, wherever the import statement is."""
    tree = ast.parse(path.read_text(), str(path))
    out: set[tuple[str, int]] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] if node.module != "dr" else [f"dr.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "dr" and len(parts) > 1:
                out.add((parts[1], node.lineno))
    return out


def test_no_module_name_repeats() -> None:
    names = Counter(p.name for p in _modules() if p.name not in ("__init__.py", "__main__.py"))
    repeated = {
        n: [str(p.relative_to(ROOT)) for p in _modules() if p.name == n] for n, c in names.items() if c > 1
    }
    assert not repeated, f"module names used twice: {repeated}"


def test_every_room_has_a_layer() -> None:
    rooms = {_room(p) for p in _modules() if p.name != "__init__.py"}
    assert rooms <= set(LAYERS), f"rooms without a layer in LAYERS: {sorted(rooms - set(LAYERS))}"


def test_imports_run_down_the_layers() -> None:
    upward = []
    for path in _modules():
        room = _room(path)
        if room not in LAYERS:
            continue
        for target, line in _imported_rooms(path):
            if target in LAYERS and LAYERS[target] > LAYERS[room]:
                upward.append(f"{path.relative_to(ROOT)}:{line} ({room}) imports dr.{target}")
    assert not upward, "imports that run up the layers:\n" + "\n".join(sorted(upward))


def test_the_layer_check_sees_a_lazy_upward_import(tmp_path: Path) -> None:
    # Control: an import hidden inside a function still counts.
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from dr.cli.main import main\n    return main\n")
    assert ("cli", 2) in _imported_rooms(src)


def test_modules_stay_small() -> None:
    big = {str(p.relative_to(ROOT)): n for p in _modules() if (n := len(p.read_text().splitlines())) > BUDGET}
    unexplained = {k: v for k, v in big.items() if k not in LARGE}
    assert not unexplained, (
        f"modules over {BUDGET} lines (split them by concept, or say why in LARGE): {unexplained}"
    )
    stale = sorted(set(LARGE) - set(big))
    assert not stale, f"LARGE lists modules that are no longer large: {stale}"
