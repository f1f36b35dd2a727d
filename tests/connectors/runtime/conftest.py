"""Helpers for the runtime integration tests: read a topic whole, run a second broker."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import topicread  # tests/ is on pytest's pythonpath
from consentinel.streams.events.settings import Settings

REPO = Path(__file__).parents[3]


def read_topic(
    settings: Settings, base: str, timeout: float = 20.0
) -> list[tuple[bytes, bytes, int]]:
    """Every record (key, value, partition) of a topic, from the beginning to its end."""
    return topicread.read_topic(settings.bootstrap_servers, settings.topic(base), timeout)


@pytest.fixture
def topic_reader() -> Callable[..., list[tuple[bytes, bytes, int]]]:
    return read_topic


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


class SecondBroker:
    """A broker of our own (never the shared one), started and stopped by deploy/kafka.sh."""

    def __init__(self, port: int, data_dir: Path) -> None:
        self.port = port
        self.bootstrap = f"127.0.0.1:{port}"
        self.data_dir = data_dir

    def _run(self, action: str) -> None:
        env = {**os.environ, "KAFKA_PORT": str(self.port), "KAFKA_DATA_DIR": str(self.data_dir)}
        done = subprocess.run(
            ["bash", str(REPO / "deploy" / "kafka.sh"), action],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if done.returncode != 0:
            pytest.fail(
                f"deploy/kafka.sh {action} on port {self.port} failed:\n"
                f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            )

    def start(self) -> None:
        self._run("start")

    def stop(self) -> None:
        self._run("stop")


def _free_pair() -> int:
    """A client port whose controller port (+1000, deploy/kafka.sh's default) is free too."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + 1000 <= 65535 and _free(port + 1000):
            return port
    raise RuntimeError("no free pair of ports for a second broker")


@contextlib.contextmanager
def _private_broker(
    kafka_bootstrap: str, port_variable: str, data_dir: Path
) -> Iterator[SecondBroker]:
    """A broker the fixture starts and stops, on a port nobody uses (``port_variable`` may
    name one): never one that was running before, since stopping it would take down a
    developer's broker or another run's."""
    port = int(os.environ.get(port_variable) or _free_pair())
    assert f":{port}" not in kafka_bootstrap, "the private broker must not be the shared one"
    assert _free(port), f"port {port} is in use: a private broker must be one of our own"
    broker = SecondBroker(port, data_dir)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def second_broker(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecondBroker]:
    with _private_broker(
        kafka_bootstrap, "CONSENTINEL_TEST_SECOND_KAFKA_PORT", tmp_path_factory.mktemp("kafka")
    ) as broker:
        yield broker


@pytest.fixture(scope="module")
def spool_broker(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecondBroker]:
    with _private_broker(
        kafka_bootstrap, "CONSENTINEL_TEST_SPOOL_KAFKA_PORT", tmp_path_factory.mktemp("kafka")
    ) as broker:
        yield broker
