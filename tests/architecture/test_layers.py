"""The layer rule of DESIGN.md, checked on imports.

events <- policy <- checker / registry / alerts <- worker; the admin commands (topics,
settings) use events only; connectors depend on events only; Faust only in
``streams.worker``, and Faust's private names only in ``streams.worker.faust_compat``;
the CLI names each command's module by string (checked here too); and no import cycle
among our modules.
"""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = {"streams": "consentinel.streams", "connectors": "consentinel.connectors"}


def _modules(roots: dict[str, str] | None = None, base: Path = ROOT) -> list[tuple[str, Path]]:
    out = []
    for top, dotted in (roots or PKG).items():
        for path in sorted((base / top).rglob("*.py")):
            rel = path.relative_to(base / top).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out.append((".".join([dotted, *parts]), path))
    return out


def _load_time_nodes(body: list[ast.stmt]) -> list[ast.AST]:
    """The statements run when the module is imported: not function bodies, not
    ``if TYPE_CHECKING:`` blocks (a lazy import inside a function is how a cycle is broken)."""
    out: list[ast.AST] = []
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out += _load_time_nodes(node.orelse)
            continue
        out.append(node)
        for child in ("body", "orelse", "finalbody"):
            out += _load_time_nodes(getattr(node, child, []) or [])
        for handler in getattr(node, "handlers", []) or []:
            out += _load_time_nodes(handler.body)
    return out


def _imports(module: str, path: Path, *, load_time: bool = False) -> set[str]:
    """What ``module`` imports: everywhere, or (``load_time``) only when it is imported."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    nodes = _load_time_nodes(tree.body) if load_time else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{a.name}" for a in node.names)
    return names


# first match wins: the most specific prefix first
LAYERS = (
    ("consentinel.streams.events", "events"),
    ("consentinel.streams.policy", "policy"),
    ("consentinel.streams.checker", "checker"),
    ("consentinel.streams.registry", "registry"),
    ("consentinel.streams.worker", "worker"),
    ("consentinel.streams.alerts", "alerts"),
    ("consentinel.streams.casework", "casework"),
    ("consentinel.streams.certificates", "certificates"),
    ("consentinel.streams.cli", "cli"),
    ("consentinel.streams.topics_admin", "admin"),
    ("consentinel.streams.settings_cmd", "admin"),
    ("consentinel.streams.reference_cmd", "admin"),
    ("consentinel.connectors", "connectors"),
    ("consentinel.streams", "streams-root"),
)


def _layer(module: str) -> str:
    if module == "consentinel.streams":
        return "namespace"  # streams/__init__.py is empty: `from consentinel.streams import x`
    for prefix, layer in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return "external"


ALLOWED = {
    "events": {"events"},
    "policy": {"events", "policy"},
    "checker": {"events", "policy", "checker"},
    "registry": {"events", "policy", "registry"},
    "admin": {"events", "admin"},
    "worker": {"events", "policy", "checker", "registry", "admin", "worker"},
    "alerts": {"events", "policy", "alerts"},
    "connectors": {"events", "connectors"},
    # casework: the operator's case tools (evidence packs, art. 30 records, subject lookup)
    "casework": {"events", "policy", "registry", "alerts", "casework"},
    # certificates: the lead certificate verifier and its service (R23); it serves /metrics
    # and /healthz through the alerts layer's ops_endpoints (one copy of that hygiene)
    "certificates": {"events", "alerts", "certificates"},
    "cli": {"events", "cli"},
    "namespace": set(),
}
FAUST_LAYERS = {"worker"}
FAUST_COMPAT = "consentinel.streams.worker.faust_compat"
#: the layer each CLI command's module may belong to (the CLI imports them by name)
CLI_TARGETS = {"admin", "registry", "worker", "alerts", "connectors", "casework", "certificates"}

MODULES = _modules()


def _is_faust(name: str) -> bool:
    return name in ("faust", "mode") or name.startswith(("faust.", "mode."))


def test_the_tree_has_modules() -> None:
    layers = {_layer(m) for m, _ in MODULES}
    assert {"events", "policy", "checker", "registry", "worker", "connectors", "cli"} <= layers


def test_every_module_has_a_layer() -> None:
    """A new module at the root of streams/ must be given its layer here (or a folder)."""
    loose = [m for m, _ in MODULES if _layer(m) == "streams-root"]
    assert not loose, f"modules in no layer: {loose}; put them in a folder or in LAYERS"
    assert (ROOT / "streams" / "__init__.py").read_text().strip() == ""


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_no_import_of_a_higher_layer(module: str, path: Path) -> None:
    layer = _layer(module)
    bad = []
    for name in sorted(_imports(module, path)):
        target = _layer(name)
        if target not in ("external", "namespace") and target not in ALLOWED[layer]:
            bad.append(name)
        if layer not in FAUST_LAYERS and _is_faust(name):
            bad.append(name)
        if _is_faust(name) and module != FAUST_COMPAT and name.rpartition(".")[2].startswith("_"):
            bad.append(f"{name} (a private name of Faust: only in faust_compat)")
    assert not bad, f"{module} ({layer}) imports {bad}, which its layer may not use"


def test_the_rule_catches_a_violation(tmp_path: Path) -> None:
    fake = tmp_path / "x.py"
    fake.write_text("from consentinel.streams.worker import app\nimport faust\n")
    names = _imports("consentinel.streams.checker.x", fake)
    assert "consentinel.streams.worker.app" in names and "faust" in names
    assert _layer("consentinel.streams.worker.app") not in ALLOWED["checker"]
    assert "checker" not in FAUST_LAYERS


def _cli_commands() -> dict[str, str]:
    path = ROOT / "streams" / "cli.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(target, ast.Name) and target.id == "COMMANDS" and node.value is not None:  # type: ignore[union-attr]
            table = ast.literal_eval(node.value)  # type: ignore[union-attr]
            return {name: module for name, (module, _) in table.items()}
    raise AssertionError("streams/cli.py has no COMMANDS table")


def test_the_cli_names_command_modules_that_exist_in_their_layers() -> None:
    commands = _cli_commands()
    assert {"worker", "registry", "topics", "ingest"} <= set(commands)
    known = {m for m, _ in MODULES}
    for name, module in commands.items():
        assert module in known, f"`consentinel {name}` names {module}, which does not exist"
        assert _layer(module) in CLI_TARGETS, f"`consentinel {name}`: {module} is no command"
        path = dict(MODULES)[module]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        mains = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
        assert mains, f"`consentinel {name}`: {module} has no main(argv)"


def _graph(modules: list[tuple[str, Path]]) -> dict[str, set[str]]:
    """module -> the modules of ours it imports at load time.

    ``from pkg import sub`` counts as importing ``pkg.sub`` when that is a module, and an
    edge to one's own parent package is not counted (Python imports it first, always).
    """
    known = {m for m, _ in modules}
    graph: dict[str, set[str]] = {}
    for module, path in modules:
        names = _imports(module, path, load_time=True)
        edges = set()
        for name in names:
            if any(n.startswith(name + ".") and n in known for n in names):
                continue  # `from pkg import sub`: the edge is to pkg.sub
            while name and name not in known:  # `from pkg.mod import Name` -> pkg.mod
                name = name.rpartition(".")[0]
            if name and name != module and not module.startswith(name + "."):
                edges.add(name)
        graph[module] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle() -> None:
    cycles = _cycles(_graph(MODULES))
    assert not cycles, f"import cycles (break each by moving the shared part down): {cycles}"


def test_the_cycle_check_catches_a_deliberate_cycle(tmp_path: Path) -> None:
    pkg = tmp_path / "synth"
    (pkg / "low").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "low" / "__init__.py").write_text("")
    (pkg / "low" / "a.py").write_text("from synthetic.low.b import helper\n")
    (pkg / "low" / "b.py").write_text("from synthetic.top import run\n")
    (pkg / "top.py").write_text(
        "import os\nfrom typing import TYPE_CHECKING\nfrom synthetic.low import a\n"
        "if TYPE_CHECKING:\n    from synthetic import leaf\n"
        "def later():\n    from synthetic import leaf\n"
    )
    (pkg / "leaf.py").write_text("from synthetic.low.a import helper\n")
    modules = _modules({"synth": "synthetic"}, base=tmp_path)
    cycles = _cycles(_graph(modules))
    assert cycles == [["synthetic.low.a", "synthetic.low.b", "synthetic.top"]]
    (pkg / "low" / "b.py").write_text("import os\n")  # broken: no cycle left
    assert _cycles(_graph(_modules({"synth": "synthetic"}, base=tmp_path))) == []


def test_only_the_worker_package_pulls_in_faust() -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        "import consentinel.connectors as c\n"
        "import consentinel.streams.checker as k, consentinel.streams.registry as r\n"
        "for pkg, prefix in ((c, 'consentinel.connectors.'), (k, 'consentinel.streams.checker.'),"
        " (r, 'consentinel.streams.registry.')):\n"
        "    for m in pkgutil.walk_packages(pkg.__path__, prefix):\n"
        "        importlib.import_module(m.name)\n"
        "importlib.import_module('consentinel.streams.cli')\n"
        "bad = sorted(n for n in sys.modules if n == 'faust' or n.startswith('faust.'))\n"
        "assert not bad, bad\n"
        "print('ok', len([n for n in sys.modules if n.startswith('consentinel.')]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("ok")
    assert importlib.metadata.version("faust-streaming")  # installed: the test means something


MAX_MODULE_LINES = 400
"""A module of the connectors or the alerting side longer than this holds several jobs."""


def test_no_connector_or_alerting_module_is_over_400_lines() -> None:
    bounded = [
        (m, p)
        for m, p in MODULES
        if m.startswith(("consentinel.connectors.", "consentinel.streams.alerts."))
    ]
    assert len(bounded) > 50
    long = {m: n for m, p in bounded if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"split these modules (lines): {long}"
