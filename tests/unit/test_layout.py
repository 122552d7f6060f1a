"""The shape of the tree: no import circle inside ``dr`` and no import up the layers, counting every
import a reader or a tool follows — module level, ``TYPE_CHECKING`` blocks and imports inside
functions alike."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "dr"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The module ``name`` is, or the package holding it (a name imported from a package)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    """Module → the ``dr`` modules it imports anywhere in its body (a package's ``__init__`` is a
    module of its own; ``from dr.x import y`` names ``dr.x.y`` when that is a module)."""
    known = _modules()
    graph: dict[str, set[str]] = {}
    for mod, path in known.items():
        is_pkg = path.name == "__init__.py"
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    source = ".".join([*base, node.module] if node.module else base)
                else:
                    source = node.module or ""
                targets = [f"{source}.{a.name}" for a in node.names]
            for target in targets:
                if target.split(".")[0] != "dr":
                    continue
                found = _resolve(target, known)
                if found is not None and found != mod:
                    edges.add(found)
        graph[mod] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_lazy_and_type_checking_imports() -> None:
    graph = import_graph()
    assert "dr.drills.heartbeat" in graph["dr.drills.appdb"]  # module level
    assert "dr.topology" in graph["dr.drills.appdb"]  # under TYPE_CHECKING
    assert "dr.kube" in graph["dr.sandbox.drill_adapter"]  # inside a function


def test_no_import_cycle() -> None:
    assert cycles(import_graph()) == []


# errors/topology/aws < runbook/kube < steps < procedures < drills < sandbox/infra < cli
LAYERS = {
    "errors": 1,
    "policy": 1,
    "topology": 2,
    "aws": 2,
    "target": 2,
    "estate_template": 2,
    "runbook": 3,
    "kube": 3,
    "steps": 4,
    "procedures": 5,
    "drills": 6,
    "sandbox": 7,
    "infra": 7,
    "cli": 8,
    "__main__": 8,
}


def _room(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_no_import_runs_up_the_layers() -> None:
    graph = import_graph()
    assert {_room(m) for m in graph} - {""} <= set(LAYERS), "a new room of dr needs its layer here"
    upward = [
        f"{m} -> {t}"
        for m, targets in graph.items()
        for t in targets
        if _room(m) and _room(t) and LAYERS[_room(t)] > LAYERS[_room(m)]
    ]
    assert upward == []


def test_cycles_are_found() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# Modules allowed past the size budget, each one concept (a reason is required).
LARGE: dict[str, str] = {
    "dr/kube.py": "one adapter over the kubernetes client: its data classes, connect() and KubeFactory",
    "dr/topology.py": "the estate's typed model: one pydantic tree and its derived names",
}
BUDGET = 800


def test_no_module_name_repeats() -> None:
    """One name, one module: grep and "go to definition" find one file."""
    paths = [p for p in PACKAGE.rglob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    by_name: dict[str, list[str]] = {}
    for p in paths:
        by_name.setdefault(p.name, []).append(str(p.relative_to(ROOT)))
    assert {n: ps for n, ps in by_name.items() if len(ps) > 1} == {}


def test_modules_stay_small() -> None:
    big = {
        str(p.relative_to(ROOT)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > BUDGET
    }
    unexplained = {k: v for k, v in big.items() if k not in LARGE}
    assert unexplained == {}, f"over {BUDGET} lines: split by concept, or say why in LARGE"
    assert sorted(set(LARGE) - set(big)) == [], "LARGE lists modules that are no longer large"
