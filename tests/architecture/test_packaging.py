"""Every package directory is in pyproject.toml, and nothing installs a bare module."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _declared() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(data["tool"]["setuptools"]["packages"])


def _on_disk() -> set[str]:
    found = set()
    for top, dotted in (
        ("streams", "consentinel.streams"),
        ("connectors", "consentinel.connectors"),
    ):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            found.add(".".join([dotted, *rel.parts]))
    return found


def test_every_package_directory_is_listed() -> None:
    missing = _on_disk() - _declared()
    assert not missing, (
        f"add these to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"
    )


def test_every_listed_package_exists() -> None:
    stale = _declared() - _on_disk()
    assert not stale, f"listed in pyproject.toml but not on disk: {sorted(stale)}"


def test_package_dir_mapping() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["tool"]["setuptools"]["package-dir"] == {
        "consentinel.streams": "streams",
        "consentinel.connectors": "connectors",
    }


def test_bare_modules_do_not_import_outside_the_repo(tmp_path: Path) -> None:
    for name in ("streams", "connectors"):
        result = subprocess.run(
            [sys.executable, "-c", f"import {name}"], cwd=tmp_path, capture_output=True, text=True
        )
        assert result.returncode != 0, f"`import {name}` worked outside the repo"
        assert "ModuleNotFoundError" in result.stderr
    ok = subprocess.run(
        [sys.executable, "-c", "import consentinel.streams.events, consentinel.connectors"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
