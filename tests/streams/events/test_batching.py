"""PartitionBatcher without a broker: a fake producer records the batches handed over."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from aiokafka.producer.message_accumulator import BatchBuilder
from consentinel.streams.events.batching import PartitionBatcher


class FakeProducer:
    """``create_batch``/``send_batch`` as aiokafka has them; the test settles the sends."""

    def __init__(self, batch_size: int = 16 * 1024) -> None:
        self.batch_size = batch_size
        self.sent: list[tuple[str, int, BatchBuilder, asyncio.Future[object]]] = []

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(self.batch_size, 0)

    async def send_batch(
        self, batch: BatchBuilder, topic: str, *, partition: int
    ) -> asyncio.Future[object]:
        await asyncio.sleep(0)
        fut: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self.sent.append((topic, partition, batch, fut))
        return fut


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_concurrent_records_share_a_batch_and_its_acknowledgement() -> None:
    producer = FakeProducer()
    batcher = PartitionBatcher(producer)  # type: ignore[arg-type]
    first = batcher.add("t", 0, b"k1", b"v1")
    second = batcher.add("t", 0, b"k2", b"v2")
    other = batcher.add("t", 1, b"k3", b"v3")
    assert first is second and first is not other
    await _settle()
    assert [(t, p, b.record_count()) for t, p, b, _ in producer.sent] == [("t", 0, 2), ("t", 1, 1)]
    assert all(b.closed() for _, _, b, _ in producer.sent), "nothing is added once handed over"
    assert not first.done(), "not acknowledged before the broker says so"
    producer.sent[0][3].set_result(None)
    await _settle()
    assert first.done() and first.result() is None and not other.done()
    producer.sent[1][3].set_result(None)
    await _settle()
    assert other.done()


async def test_records_added_while_a_batch_is_handed_over_go_into_the_next() -> None:
    producer = FakeProducer()
    batcher = PartitionBatcher(producer)  # type: ignore[arg-type]
    first = batcher.add("t", 0, b"k", b"1")
    await _settle()
    later = batcher.add("t", 0, b"k", b"2")
    assert later is not first
    await _settle()
    assert [b.record_count() for _, _, b, _ in producer.sent] == [1, 1]


async def test_a_full_batch_rolls_over_in_order() -> None:
    producer = FakeProducer(batch_size=1024)
    batcher = PartitionBatcher(producer)  # type: ignore[arg-type]
    acks = [batcher.add("t", 0, b"k", bytes([i]) * 300) for i in range(8)]
    assert len(set(map(id, acks))) > 1, "more than one batch"
    await _settle()
    values = [v for _, _, b, _ in producer.sent for v in _values(b)]  # oldest batch first
    assert values == [bytes([i]) * 300 for i in range(8)]
    for *_, fut in producer.sent:
        fut.set_result(None)
    await _settle()
    assert all(a.done() for a in acks)


async def test_a_failed_batch_fails_every_record_in_it() -> None:
    producer = FakeProducer()
    batcher = PartitionBatcher(producer)  # type: ignore[arg-type]
    a = batcher.add("t", 0, b"k1", b"v1")
    b = batcher.add("t", 0, b"k2", b"v2")
    await _settle()
    producer.sent[0][3].set_exception(KafkaConnectionError("gone"))
    await _settle()
    for fut in (a, b):
        with pytest.raises(KafkaConnectionError):
            fut.result()


async def test_a_record_larger_than_a_request_is_refused_and_a_large_one_sent_alone() -> None:
    producer = FakeProducer(batch_size=1024)
    batcher = PartitionBatcher(producer, max_request_size=4096)  # type: ignore[arg-type]
    with pytest.raises(MessageSizeTooLargeError):
        batcher.add("t", 0, b"k", b"x" * 5000)
    batcher.add("t", 0, b"k", b"y" * 3000)  # larger than a batch: a batch of its own
    await _settle()
    assert [_values(b) for _, _, b, _ in producer.sent] == [[b"y" * 3000]]


def _values(builder: BatchBuilder) -> list[bytes]:
    from aiokafka.record.default_records import DefaultRecordBatch

    return [r.value for r in DefaultRecordBatch(bytes(builder._build()))]
