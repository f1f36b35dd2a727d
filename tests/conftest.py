"""Shared fixtures. Integration tests use the real local broker (``make test`` starts it)
and fail, never skip, when it is missing."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from consentinel.streams.events.settings import Settings
from topicnames import fresh_prefix, of_this_run

BOOTSTRAP = os.environ.get("CONSENTINEL_BOOTSTRAP_SERVERS", "127.0.0.1:9092")


def _broker_answers(bootstrap: str) -> bool:
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """The real broker's address; fails the test when nothing answers there."""
    if not _broker_answers(BOOTSTRAP):
        pytest.fail(
            f"no Kafka broker answers at {BOOTSTRAP}: run the suite with `make test`, "
            f"which starts the local broker (deploy/kafka.sh start)"
        )
    return BOOTSTRAP


@pytest.fixture
def topic_prefix() -> str:
    """A unique topic prefix per test, so tests never see each other's records."""
    return fresh_prefix("t")


@pytest.fixture
def make_settings(tmp_path: Path):
    """Settings for a test: its own home (secrets, state) and any overrides."""

    def make(**overrides: str) -> Settings:
        env = {
            "CONSENTINEL_ENV": "test",
            "CONSENTINEL_HOME": str(tmp_path / "home"),
            "CONSENTINEL_BOOTSTRAP_SERVERS": BOOTSTRAP,
            "CONSENTINEL_PEPPER": "test-pepper-0123456789abcdef",
            "CONSENTINEL_TOKEN": "test-token-0123456789abcdef",
        }
        env.update({f"CONSENTINEL_{k.upper()}": str(v) for k, v in overrides.items()})
        return Settings.from_env(env)

    return make


@pytest.fixture
def kafka_settings(kafka_bootstrap: str, topic_prefix: str, make_settings) -> Iterator[Settings]:
    """Settings on the real broker with this test's topics created."""
    from consentinel.streams import topics_admin

    settings = make_settings(topic_prefix=topic_prefix, bootstrap_servers=kafka_bootstrap)
    with open(os.devnull, "w") as sink:
        topics_admin.create(settings, out=sink)
    yield settings


def pytest_collection_modifyitems(config, items):
    """Tests marked ``last`` run after every other test (the whole-run privacy scan)."""
    items.sort(key=lambda item: 1 if item.get_closest_marker("last") else 0)


def pytest_sessionstart(session):
    """Remember the topics that existed before this run: the privacy scan reads only the
    ones this run wrote (a long-lived development broker keeps older runs' topics)."""
    session.config.preexisting_topics = None
    if not _broker_answers(BOOTSTRAP):
        return
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP.split(","))
    try:
        session.config.preexisting_topics = set(admin.list_topics())
    finally:
        admin.close()


def pytest_sessionfinish(session, exitstatus):
    """Delete the topics this run created (and only those: see ``tests/topicnames.py``).
    Best effort: a broker that is gone by now is reported, never turned into a failure."""
    if not _broker_answers(BOOTSTRAP):
        return
    from kafka.admin import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP.split(","), request_timeout_ms=60_000)
    except Exception as exc:  # clean-up must not fail the run
        print(f"\ntest topics not deleted: the broker did not answer ({exc})")
        return
    try:
        ours = sorted(t for t in admin.list_topics() if of_this_run(t))
        for start in range(0, len(ours), 200):
            admin.delete_topics(ours[start : start + 200], timeout_ms=60_000)
        if ours:
            print(f"\ndeleted the {len(ours)} topics this run created")
    except Exception as exc:
        print(f"\nsome test topics not deleted ({exc}); left over, they slow the broker start")
    finally:
        admin.close()


@pytest.fixture(scope="session")
def preexisting_topics(request, kafka_bootstrap: str) -> set[str]:
    known = request.config.preexisting_topics
    assert known is not None, "the broker did not answer when the session started"
    return known
