"""``topics_admin.with_admin``: a cluster that is still settling gets a new admin client."""

from __future__ import annotations

from typing import Any

import pytest
from consentinel.streams import topics_admin
from consentinel.streams.events.errors import RetriableError
from kafka.errors import NodeNotReadyError, TopicAlreadyExistsError, UnknownBrokerIdError


class FakeAdmin:
    def __init__(self, n: int) -> None:
        self.n = n
        self.closed = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def no_pause(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    pauses: list[float] = []
    monkeypatch.setattr(topics_admin.time, "sleep", pauses.append)
    return pauses


def test_work_is_done_again_with_a_new_client_while_the_cluster_settles(
    no_pause: list[float],
) -> None:
    clients: list[FakeAdmin] = []
    errors: list[Exception] = [UnknownBrokerIdError(), NodeNotReadyError(3)]

    def connect(bootstrap: str) -> Any:
        clients.append(FakeAdmin(len(clients)))
        return clients[-1]

    def work(admin: Any) -> int:
        if errors:
            raise errors.pop(0)
        return int(admin.n)

    assert topics_admin.with_admin("b:9092", work, connect=connect) == 2
    assert [c.closed for c in clients] == [True, True, True]
    assert no_pause == [1.0, 1.0]


def test_a_cluster_that_does_not_settle_in_time_is_a_retriable_error(
    no_pause: list[float],
) -> None:
    def work(admin: Any) -> None:
        raise UnknownBrokerIdError()

    with pytest.raises(RetriableError, match=r"still settling.*UnknownBrokerIdError"):
        topics_admin.with_admin("b:9092", work, wait_s=0, connect=lambda b: FakeAdmin(0))


def test_other_kafka_errors_are_not_retried(no_pause: list[float]) -> None:
    calls: list[int] = []

    def work(admin: Any) -> None:
        calls.append(1)
        raise TopicAlreadyExistsError()

    with pytest.raises(TopicAlreadyExistsError):
        topics_admin.with_admin("b:9092", work, connect=lambda b: FakeAdmin(0))
    assert calls == [1]
    assert no_pause == []
