"""Fixtures of the alert router's tests; registers ``alerting.py`` as module ``alerting``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import alerting  # noqa: F401  (tests/streams/alerts is on pytest's pythonpath)
import pytest
from consentinel.streams.alerts.store import IncidentStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[IncidentStore]:
    s = IncidentStore(tmp_path / "incidents.db")
    yield s
    s.close()
