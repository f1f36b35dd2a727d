"""Delivery workers: backoff, retries until the sink returns, order, permanent failures."""

from __future__ import annotations

import asyncio

import pytest
from alerting import T0, alert
from consentinel.streams.alerts.delivery import Backoff, DeliveryWorker
from consentinel.streams.alerts.model import ChangeKind
from consentinel.streams.alerts.sinks.base import Notification, PermanentDeliveryError
from consentinel.streams.alerts.store import IncidentStore
from consentinel.streams.events.errors import RetriableError
from consentinel.streams.events.metrics import REGISTRY


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    b = Backoff(initial_s=1.0, max_s=60.0)
    assert [b.delay(n, rand=1.0) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert [b.delay(n, rand=0.0) for n in range(3)] == [0.5, 1, 2]
    assert b.delay(100, rand=1.0) == 60.0  # no overflow far out
    assert b.delay(0, retry_after=30.0, rand=0.0) == 30.0  # Retry-After is a floor
    assert b.delay(0, retry_after=99_999.0, rand=0.0) == 3600.0  # ... up to an hour
    spread = {round(b.delay(5), 6) for _ in range(50)}
    assert len(spread) > 1 and all(16 <= d <= 32 for d in spread)


class FlakySink:
    """Fails ``failures`` times (retriable), then accepts; records what it accepted."""

    def __init__(self, name: str = "fake", failures: int = 0, permanent: set[str] = frozenset()):
        self.name = name
        self.failures = failures
        self.permanent = permanent
        self.attempts = 0
        self.accepted: list[Notification] = []
        self.done = asyncio.Event()
        self.expect = 0

    async def deliver(self, n: Notification) -> None:
        self.attempts += 1
        if n.incident.rule_id in self.permanent:
            raise PermanentDeliveryError("sink fake: refused for good")
        if self.failures > 0:
            self.failures -= 1
            if self.failures % 2:
                raise RetriableError("sink fake: down", retry_after=0.0)
            raise ConnectionResetError("a bug-like surprise")
        self.accepted.append(n)
        if len(self.accepted) >= self.expect:
            self.done.set()

    async def close(self) -> None:
        return None


def _sample(name: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "consentinel_sink_deliveries_total", {"sink": name, "outcome": outcome}
    )
    return value or 0.0


async def _drain(store: IncidentStore, sink: FlakySink, expect: int) -> None:
    sink.expect = expect
    stop = asyncio.Event()
    worker = DeliveryWorker(store, sink, Backoff(0.01, 0.05), "http://console.test", poll_s=0.05)
    task = asyncio.create_task(worker.run(stop))
    await asyncio.wait_for(sink.done.wait(), 30)
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_retries_until_the_sink_accepts_in_order(store: IncidentStore) -> None:
    store.register_sinks(["flaky"])
    for i, rule in enumerate(("R2", "R13", "R5")):
        store.ingest(alert(f"e{i}", rule=rule, at=T0 + i), i)
    opened = store.list_incidents()
    store.resolve(opened[-1].incident_id, "ana")  # R2's incident: opened first
    retries_before = _sample("flaky", "retry")
    sink = FlakySink("flaky", failures=5)
    await _drain(store, sink, expect=4)
    assert [(n.kind, n.incident.rule_id) for n in sink.accepted] == [
        (ChangeKind.OPENED, "R2"),
        (ChangeKind.OPENED, "R13"),
        (ChangeKind.OPENED, "R5"),
        (ChangeKind.RESOLVED, "R2"),
    ]
    assert sink.attempts == 9
    assert _sample("flaky", "retry") - retries_before == 5
    assert store.backlog() == {"flaky": 0}
    n = sink.accepted[0]
    assert n.link == f"http://console.test/incidents/{n.incident.incident_id}"
    assert n.idempotency_key == f"{n.incident.incident_id}:1"


async def test_a_permanent_failure_is_set_aside_and_the_rest_delivered(
    store: IncidentStore,
) -> None:
    store.register_sinks(["picky"])
    store.ingest(alert("e1", rule="R13"), 1)
    store.ingest(alert("e2", rule="R2"), 2)
    failed_before = _sample("picky", "failed")
    sink = FlakySink("picky", permanent={"R13"})
    await _drain(store, sink, expect=1)
    assert [n.incident.rule_id for n in sink.accepted] == ["R2"]
    assert store.backlog() == {"picky": 0}
    assert _sample("picky", "failed") - failed_before == 1


async def test_stopping_mid_backlog_keeps_the_rest_pending(store: IncidentStore) -> None:
    store.register_sinks(["down"])
    store.ingest(alert("e1"), 1)
    sink = FlakySink("down", failures=10**6)
    stop = asyncio.Event()
    worker = DeliveryWorker(store, sink, Backoff(0.01, 0.02), "http://c", poll_s=0.05)
    task = asyncio.create_task(worker.run(stop))
    while sink.attempts < 3:
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 10)
    (item,) = store.pending("down")
    assert item.attempts >= 3 and sink.accepted == []


@pytest.mark.parametrize("attempts", [0, 9])
async def test_failures_are_logged_for_people_without_flooding(
    store: IncidentStore, caplog: pytest.LogCaptureFixture, attempts: int
) -> None:
    store.register_sinks(["quiet"])
    store.ingest(alert("e1"), 1)
    (item,) = store.pending("quiet")
    for _ in range(attempts):
        store.mark_retry(item.item_id, 0, "down")
    (item,) = store.pending("quiet")
    worker = DeliveryWorker(store, FlakySink("quiet", failures=1), Backoff(), "http://c")
    with caplog.at_level("WARNING", logger="consentinel.router"):
        assert await worker.deliver_one(item) is False
    (record,) = caplog.records
    assert "nothing is lost" in record.getMessage()
    assert f"attempt {attempts + 1}" in record.getMessage()
    worker2 = DeliveryWorker(store, FlakySink("quiet", failures=1), Backoff(), "http://c")
    caplog.clear()
    (item,) = store.pending("quiet")
    with caplog.at_level("WARNING", logger="consentinel.router"):
        await worker2.deliver_one(item)
    assert caplog.records == []  # attempts 2..9, 11..19: silent
