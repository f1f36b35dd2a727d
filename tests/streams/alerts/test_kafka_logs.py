"""aiokafka's per-retry "group coordinator not available" errors become one WARNING that
says what is going on; real errors stay at ERROR (issue #8, fresh starts)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from aiokafka import errors as kafka_errors
from consentinel.streams.alerts import kafka_logs

COORDINATOR = logging.getLogger("aiokafka.consumer.group_coordinator")


@pytest.fixture
def noise() -> Iterator[kafka_logs.CoordinatorNoise]:
    installed = kafka_logs.install("app-router")
    yield installed
    kafka_logs.uninstall(installed)


def _fresh_broker_start() -> None:
    """What aiokafka logs while a fresh broker creates __consumer_offsets (7 times seen)."""
    for _ in range(7):
        COORDINATOR.error(
            "Group Coordinator Request failed: %s",
            kafka_errors.GroupCoordinatorNotAvailableError(),
        )


def test_a_fresh_broker_gives_one_warning_and_no_error(
    noise: kafka_logs.CoordinatorNoise, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _fresh_broker_start()
    COORDINATOR.error("OffsetCommit failed for group %s: %s", "g", "NotCoordinatorForGroupError")
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    (warning,) = caplog.records
    assert warning.levelno == logging.WARNING and warning.name == "consentinel.router"
    text = warning.getMessage()
    assert "group app-router is not available yet (GroupCoordinatorNotAvailableError)" in text
    assert "fresh broker" in text and "only if this lasts minutes" in text


def test_real_errors_stay_errors(
    noise: kafka_logs.CoordinatorNoise, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    COORDINATOR.error("Heartbeat failed: %r", kafka_errors.UnknownMemberIdError())
    COORDINATOR.error("Attempt to join group failed due to fatal error: %s", "auth")
    assert [(r.levelno, r.name) for r in caplog.records] == [
        (logging.ERROR, COORDINATOR.name),
        (logging.ERROR, COORDINATOR.name),
    ]


def test_a_later_outage_is_reported_again_but_not_every_second(
    noise: kafka_logs.CoordinatorNoise, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    _fresh_broker_start()
    noise.settled()  # joined moments later: still the same minute, nothing new to say
    _fresh_broker_start()
    assert len(caplog.records) == 1
    noise._reported_at -= 61.0  # a minute later
    noise.settled()
    _fresh_broker_start()
    assert len(caplog.records) == 2


def test_without_the_filter_aiokafka_logs_each_retry_at_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What the router's log looked like before: the filter is what removes these."""
    caplog.set_level(logging.DEBUG)
    _fresh_broker_start()
    assert [r.levelno for r in caplog.records] == [logging.ERROR] * 7
