"""The hole reader against the real broker: exactly the records asked for, in order."""

from __future__ import annotations

import asyncio

import pytest
from consentinel.streams.worker.holes import HoleReader
from kafka import KafkaProducer

pytestmark = pytest.mark.integration


def test_the_reader_returns_the_range_asked_for(kafka_bootstrap: str, topic_prefix: str) -> None:
    from consentinel.streams import topics_admin

    topic = f"{topic_prefix}.holes"
    admin = topics_admin.admin_client(kafka_bootstrap)
    try:
        from kafka.admin import NewTopic

        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i in range(30):
        producer.send(topic, value=f"r{i}".encode(), partition=1)
    producer.send(topic, value=b"other", partition=0)
    producer.flush()
    producer.close()

    async def read() -> tuple[list[int], list[bytes], list[int]]:
        reader = HoleReader(kafka_bootstrap)
        try:
            first = await reader.read(topic, 1, 5, 17)
            again = await reader.read(topic, 1, 0, 3)  # the same reader, another range
        finally:
            await reader.stop()
        return [r.offset for r in first], [r.value for r in first], [r.offset for r in again]

    offsets, values, again = asyncio.run(read())
    assert offsets == list(range(5, 17))
    assert values == [f"r{i}".encode() for i in range(5, 17)]
    assert again == [0, 1, 2]
