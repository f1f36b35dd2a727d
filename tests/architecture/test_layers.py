"""The layer rule of DESIGN.md, checked on imports.

events <- policy <- processors/alerts; connectors depend on events only; Faust only in
streams processors; nothing imports a higher layer.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = {"streams": "consentinel.streams", "connectors": "consentinel.connectors"}


def _modules() -> list[tuple[str, Path]]:
    out = []
    for top, dotted in PKG.items():
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT / top).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out.append((".".join([dotted, *parts]), path))
    return out


def _imports(module: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
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


def _layer(module: str) -> str:
    for prefix, layer in (
        ("consentinel.streams.events", "events"),
        ("consentinel.streams.policy", "policy"),
        ("consentinel.streams.alerts", "alerts"),
        ("consentinel.connectors", "connectors"),
        ("consentinel.streams", "processors"),
    ):
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return "external"


ALLOWED = {
    "events": {"events"},
    "policy": {"events", "policy"},
    "connectors": {"events", "connectors"},
    "alerts": {"events", "policy", "alerts"},
    "processors": {"events", "policy", "alerts", "processors"},
}
NO_FAUST = {"events", "policy", "connectors"}

MODULES = _modules()


def test_the_tree_has_modules() -> None:
    layers = {_layer(m) for m, _ in MODULES}
    assert {"events", "connectors", "processors"} <= layers


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_no_import_of_a_higher_layer(module: str, path: Path) -> None:
    layer = _layer(module)
    bad = []
    for name in sorted(_imports(module, path)):
        target = _layer(name)
        if target != "external" and target not in ALLOWED[layer]:
            bad.append(name)
        if layer in NO_FAUST and (name == "faust" or name.startswith("faust.") or name == "mode"):
            bad.append(name)
    assert not bad, f"{module} ({layer}) imports {bad}, which its layer may not use"


def test_the_rule_catches_a_violation(tmp_path: Path) -> None:
    fake = tmp_path / "x.py"
    fake.write_text("from consentinel.streams import checker\nimport faust\n")
    names = _imports("consentinel.streams.events.x", fake)
    assert "consentinel.streams.checker" in names and "faust" in names
    assert _layer("consentinel.streams.checker") not in ALLOWED["events"]


def test_importing_connectors_pulls_in_no_faust() -> None:
    code = (
        "import importlib, pkgutil, sys\n"
        "import consentinel.connectors as c\n"
        "for m in pkgutil.walk_packages(c.__path__, 'consentinel.connectors.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n == 'faust' or n.startswith('faust.'))\n"
        "assert not bad, bad\n"
        "print('ok', len([n for n in sys.modules if n.startswith('consentinel.connectors')]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("ok")
