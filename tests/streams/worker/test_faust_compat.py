"""The Faust workarounds that need no broker, run on Faust's own code."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from consentinel.streams.worker import faust_compat
from faust.transport.producer import ProducerBuffer


class Buffer:
    """What ``ProducerBuffer.flush_atmost`` reads of its buffer, fed by a sender that sends
    one record every ``every_s`` (a full accumulator, a slow broker); Faust's own
    ``flush_atmost`` runs on it."""

    flush_atmost = ProducerBuffer.flush_atmost

    def __init__(self, records: int, every_s: float) -> None:
        self.size = records
        self.state = "running"
        self.message_sent = asyncio.Event()
        self._every_s = every_s
        self.sender = asyncio.ensure_future(self._send())

    async def _send(self) -> None:
        while self.size:
            await asyncio.sleep(self._every_s)
            self.size -= 1
            self.message_sent.set()


def _faust_flush(buffer: Any) -> Any:
    return ProducerBuffer.flush_atmost(buffer, None)  # Faust's ``flush``, unpatched


async def test_faust_flush_returns_with_records_still_in_the_buffer() -> None:
    buffer = Buffer(3, every_s=0.15)  # slower than Faust's 0.1 s wait
    await _faust_flush(buffer)
    assert buffer.size == 3  # the commit would go ahead with the changelog unsent
    buffer.sender.cancel()


async def test_a_commit_waits_until_every_changelog_record_is_sent() -> None:
    faust_compat.durable_commits()
    buffer = Buffer(3, every_s=0.15)
    await ProducerBuffer.flush(buffer)  # type: ignore[arg-type]
    assert buffer.size == 0


async def test_a_buffer_that_does_not_drain_fails_the_commit_loudly(monkeypatch) -> None:
    faust_compat.durable_commits()
    monkeypatch.setattr(faust_compat, "FLUSH_LIMIT_S", 0.0)
    buffer = Buffer(2, every_s=3600)
    with pytest.raises(faust_compat.ChangelogNotWritten, match="not committed"):
        await ProducerBuffer.flush(buffer)  # type: ignore[arg-type]
    buffer.sender.cancel()


class _Task:
    pass


class _Stream:
    shortlabel = "Stream: consent-usage-tick"

    def __init__(self) -> None:
        self.task_owner = _Task()


class _Table:
    def __init__(self, name: str) -> None:
        self.name = name


class _Message:
    time_in = None


def _samples(registry: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the registry but the latency histograms (they measure time)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for metric in registry.collect()
        if metric.type != "histogram"
        for s in metric.samples
        if not s.name.endswith("_created")
    }


def test_lean_monitor_counts_exactly_what_fausts_prometheus_monitor_counts() -> None:
    from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
    from faust.types import TP
    from prometheus_client import CollectorRegistry

    faust_registry, lean_registry = CollectorRegistry(), CollectorRegistry()
    faust_monitor = PrometheusMonitor(metrics=FaustMetrics.create(faust_registry, "x"))
    lean = faust_compat.lean_prometheus_monitor(FaustMetrics.create(lean_registry, "x"))
    stream, ledger, holds = _Stream(), _Table("ledger"), _Table("holds")
    for monitor in (faust_monitor, lean):
        for offset, (topic, partition) in enumerate(
            [("usage", 0), ("usage", 1), ("consent", 0), ("usage", 0), ("tick", 5)]
        ):
            tp = TP(topic, partition)
            monitor.on_message_in(tp, offset, _Message())
            state = monitor.on_stream_event_in(tp, offset, stream, object())
            monitor.on_stream_event_out(tp, offset, stream, object(), state)
        for table in (ledger, holds, ledger):
            monitor.on_table_get(table, b"k")
            monitor.on_table_set(table, b"k", b"v")
        monitor.on_table_del(holds, b"k")
        for topic in ("verdicts", "ledger-changelog", "verdicts"):
            monitor.on_send_initiated(None, topic, None, 1, 2)
    expected = _samples(faust_registry)
    assert ("x_messages_received_per_topic_total", (("topic", "usage"),)) in expected
    assert _samples(lean_registry) == expected
    assert lean.messages_received_total == faust_monitor.messages_received_total == 5
    assert lean.tables["ledger"].keys_updated == faust_monitor.tables["ledger"].keys_updated


async def test_a_roomy_producer_buffer_lets_a_batch_of_changelog_records_through() -> None:
    """Faust's Conductor waits before each record while the buffer holds more than
    ``max_messages`` (Faust's own ``wait_until_ebb`` here); with room for a batch's
    changelog records it does not wait at all."""
    from faust.transport.producer import ProducerBuffer

    loop = asyncio.get_running_loop()

    class Producer:
        def __init__(self) -> None:
            self.buffer = Buffer(300, every_s=0.002)  # a batch's records, being sent

    faust = Producer()
    faust.buffer.max_messages = ProducerBuffer.max_messages  # 100
    started = loop.time()
    await ProducerBuffer.wait_until_ebb(faust.buffer)
    assert loop.time() - started >= 0.15  # waited for 100 records to be sent, one by one
    faust.buffer.sender.cancel()

    roomy = Producer()
    faust_compat.roomy_producer_buffer(roomy)
    assert roomy.buffer.max_messages == faust_compat.PRODUCER_BUFFER_MAX >= 1000
    started = loop.time()
    await ProducerBuffer.wait_until_ebb(roomy.buffer)
    assert loop.time() - started < 0.05 and roomy.buffer.size > 250  # no wait
    roomy.buffer.sender.cancel()
