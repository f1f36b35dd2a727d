"""Fixtures of the alert router's tests; registers ``alerting.py`` as module ``alerting``."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from consentinel.streams.alerts.store import IncidentStore

if "alerting" not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        "alerting", Path(__file__).with_name("alerting.py")
    )
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["alerting"] = _module
    _spec.loader.exec_module(_module)


#: One incident per controller x campaign x rule: the grouping most of these tests were
#: written for (they follow one rule's incident through delivery and its lifecycle). The
#: default grouping (controller x campaign, every rule in one incident) has its own tests
#: in ``test_grouping.py``.
PER_RULE = ("controller", "campaign", "rule")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[IncidentStore]:
    s = IncidentStore(tmp_path / "incidents.db", group_by=PER_RULE)
    yield s
    s.close()
