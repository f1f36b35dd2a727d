"""Fixtures of the alert router's tests; registers ``alerting.py`` as module ``alerting``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import alerting  # noqa: F401  (tests/streams/alerts is on pytest's pythonpath)
import pytest
from consentinel.streams.alerts.store import IncidentStore
from consentinel.streams.events.settings import Settings
from console_process import run_console

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


@pytest.fixture
def console_env() -> dict[str, str]:
    """Settings the console process of ``console_proc`` gets besides the test defaults (a
    test module overrides this fixture to give it a broker, a signing key...)."""
    return {}


@pytest.fixture
def console_proc(tmp_path: Path, console_env: dict[str, str]) -> Iterator[tuple[str, Path, int]]:
    """``consentinel console`` (its own process) on a free loopback port, on an empty store."""
    yield from run_console(tmp_path, console_env)


@pytest.fixture
def router_settings(kafka_settings: Settings, make_settings: Any) -> Settings:
    """The test's topics, with a consumer group of its own."""
    return make_settings(
        topic_prefix=kafka_settings.topic_prefix,
        bootstrap_servers=kafka_settings.bootstrap_servers,
        app_id=f"{kafka_settings.topic_prefix}app",
    )
