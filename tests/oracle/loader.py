"""Load the oracle's modules by path (tests have no ``__init__.py``; see pyproject)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent


def load(name: str) -> ModuleType:
    """``load("oracle")`` imports tests/oracle/oracle.py once, as ``consentinel_oracle_oracle``."""
    qualified = f"consentinel_oracle_{name}"
    if qualified in sys.modules:
        return sys.modules[qualified]
    spec = importlib.util.spec_from_file_location(qualified, HERE / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module
    spec.loader.exec_module(module)
    return module
