"""No import cycle among the connector modules (module-level imports; imports inside a
function or under ``TYPE_CHECKING`` do not run at import time and are not counted)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module_imports(path: Path, module: str, modules: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in tree.body:  # top level only
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            # `from pkg import sub` imports the submodule; the package itself counts only
            # when a name defined in it is taken (Python runs a submodule's parent packages
            # first either way: that is not an edge)
            subs = {f"{base}.{a.name}" for a in node.names}
            found.update(subs & modules)
            if subs - modules:
                found.add(base)
    return found


def graph(top: Path, dotted: str) -> dict[str, set[str]]:
    """Module -> the modules of the same tree it imports at import time."""
    modules: dict[str, Path] = {}
    for path in sorted(top.rglob("*.py")):
        rel = path.relative_to(top).with_suffix("")
        modules[".".join([dotted, *(p for p in rel.parts if p != "__init__")])] = path
    names = set(modules)
    return {
        name: {m for m in _module_imports(path, name, names) if m in names and m != name}
        for name, path in modules.items()
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle found by a depth-first walk (each reported once, from its first node)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            walk(node)
    return found


def test_connectors_have_no_import_cycle() -> None:
    found = cycles(graph(ROOT / "connectors", "consentinel.connectors"))
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_the_check_finds_a_deliberate_cycle(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg import b\n")
    (pkg / "b.py").write_text("from pkg.c import thing\n")
    (pkg / "c.py").write_text("import pkg.a\nthing = 1\n")
    (pkg / "d.py").write_text("def f():\n    from pkg import a\n")  # lazy: not counted
    assert cycles(graph(pkg, "pkg")) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]
