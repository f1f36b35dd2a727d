"""The shared producer on the real broker: one record's fault never closes it."""

from __future__ import annotations

import asyncio

import pytest
from consentinel.connectors.runtime.producer import EventProducer
from consentinel.streams.events import topics
from consentinel.streams.events.errors import InvalidInput

pytestmark = pytest.mark.integration


async def test_a_record_too_large_is_invalid_input_and_the_client_stays(kafka_settings) -> None:  # type: ignore[no-untyped-def]
    producer = EventProducer(kafka_settings, ack_timeout=20.0, max_request_size=64 * 1024)
    await producer.start()
    try:
        topic = kafka_settings.topic(topics.USAGE)
        client = producer._producer
        assert client is not None
        small = [(topic, f"k{i}".encode(), b"v" * 100) for i in range(20)]
        huge = [(topic, b"k-huge", b"x" * (80 * 1024))]
        # another platform's requests are in flight while the oversized one fails
        others = asyncio.ensure_future(producer.send_records(small))
        with pytest.raises(InvalidInput) as caught:
            await producer.send_records(small[:1] + huge)
        assert caught.value.code == "record_too_large"
        assert await others == 20, "the other requests are acknowledged"
        assert producer._producer is client, "the shared client was closed for one record"
        assert await producer.send_records(small) == 20
    finally:
        await producer.stop()
