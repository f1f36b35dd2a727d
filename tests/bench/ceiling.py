"""(a) The ceilings: a bare aiokafka consumer over the same usage topic — getmany, decode
with orjson (through our codec's ``loads``), one dict lookup of the subject's consent —
first with nothing produced, then producing one verdict per use (``peer_job``) to a
verdicts topic of its own: the consume-and-produce ceiling the checker is compared with."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import peer_job
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from consentinel.streams.events import codec, topics


def _consumer(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"ceiling-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )


async def _read(
    bootstrap: str, topic: str, expected: int, on_record: Callable[[Any], None]
) -> float:
    consumer = _consumer(bootstrap, topic)
    await consumer.start()
    seen = 0
    started = None
    try:
        while seen < expected:
            batches = await consumer.getmany(timeout_ms=1000, max_records=1000)
            if started is None and batches:
                started = time.monotonic()
            for records in batches.values():
                for rec in records:
                    on_record(rec)
                seen += len(records)
    finally:
        await consumer.stop()
    return time.monotonic() - (started or time.monotonic())


async def _produce_verdicts(
    bootstrap: str, topic: str, verdicts: str, expected: int, consents: dict[bytes, Any]
) -> float:
    """Read, judge, send one verdict per use; each batch's sends acknowledged before the next
    read (what a processor committing after its outputs does)."""
    consumer = _consumer(bootstrap, topic)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await consumer.start()
    await producer.start()
    seen = 0
    started = None
    try:
        while seen < expected:
            batches = await consumer.getmany(timeout_ms=1000, max_records=1000)
            if started is None and batches:
                started = time.monotonic()
            acks = []
            for records in batches.values():
                for rec in records:
                    use = codec.loads(rec.value)
                    value = peer_job.verdict(use, peer_job.decide(use, consents.get(rec.key)))
                    acks.append(await producer.send(verdicts, value, key=rec.key))
                seen += len(records)
            await asyncio.gather(*acks)
    finally:
        await producer.stop()
        await consumer.stop()
    return time.monotonic() - (started or time.monotonic())


def run(
    bootstrap: str, prefix: str, subjects: int, usages: int, verdicts_topic: str
) -> dict[str, float]:
    consents: dict[bytes, Any] = {}

    def keep(rec: Any) -> None:
        consents[rec.key] = peer_job.consent_state(codec.loads(rec.value))

    build_s = asyncio.run(_read(bootstrap, prefix + topics.CONSENT, subjects, keep))
    hits = 0

    def lookup(rec: Any) -> None:
        nonlocal hits
        u = codec.loads(rec.value)
        if consents.get(rec.key) is not None and u["event_id"]:
            hits += 1

    drain_s = asyncio.run(_read(bootstrap, prefix + topics.USAGE, usages, lookup))
    produce_s = asyncio.run(
        _produce_verdicts(bootstrap, prefix + topics.USAGE, verdicts_topic, usages, consents)
    )
    return {
        "consent_rate": subjects / build_s if build_s else 0.0,
        "rate": usages / drain_s if drain_s else 0.0,
        "produce_rate": usages / produce_s if produce_s else 0.0,
        "hits": hits,
    }
