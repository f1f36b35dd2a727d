"""Whole topics read fast, for the tests' checks of what landed on them.

``read_topic(bootstrap, topic, timeout_s)`` gives ``(key, value, partition)`` for every record
from each partition's first offset to its end offset as of the call. All partitions are read
at once in large fetches, with aiokafka's C record decoder: kafka-python decodes records in
Python, and took 16.7 s for a 100,000-record topic that this reads in about 2 s. The wait is
bounded: ``AssertionError`` naming the topic after ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

Record = tuple[bytes, bytes, int]


def _partitions(bootstrap: str, topic: str) -> list[int]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False)
    try:
        parts = consumer.partitions_for_topic(topic)
    finally:
        consumer.close()
    assert parts, f"topic {topic} does not exist"
    return sorted(parts)


async def batches_to_end(
    bootstrap: str, partitions: list[tuple[str, int]], timeout_s: float, what: str, **config: Any
) -> AsyncIterator[tuple[Any, list[Any]]]:
    """``(topic partition, records)`` for every fetched batch of ``partitions``, each read
    once from its first offset to its end offset (both taken up front), all at once in large
    fetches; a partition is paused once read to its end. ``AssertionError`` naming ``what``
    if they are not all read within ``timeout_s``. ``config``: more consumer settings."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    deadline = time.monotonic() + timeout_s
    parts = [TopicPartition(t, p) for t, p in partitions]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap.split(","),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_wait_ms=100,
        **config,
    )
    await consumer.start()
    try:
        # assigned first: the offset look-ups then find every topic's metadata at once
        # (one by one they took 40 s over 1,800 partitions)
        consumer.assign(parts)
        starts = await consumer.beginning_offsets(parts)
        ends = await consumer.end_offsets(parts)
        for tp in parts:
            consumer.seek(tp, starts[tp])
        remaining = {tp for tp in parts if ends[tp] > starts[tp]}
        consumer.pause(*(set(parts) - remaining))
        while remaining:
            assert time.monotonic() < deadline, (
                f"reading {what} did not reach the end of {len(remaining)} partition(s) in "
                f"{timeout_s:g} s, e.g. {sorted(remaining)[:3]}"
            )
            for tp, batch in (await consumer.getmany(timeout_ms=500)).items():
                yield tp, batch
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
                    consumer.pause(tp)
    finally:
        await consumer.stop()


async def _read(bootstrap: str, topic: str, timeout_s: float) -> list[Record]:
    parts = [(topic, p) for p in _partitions(bootstrap, topic)]
    out: dict[int, list[Record]] = {p: [] for _, p in parts}
    async for tp, batch in batches_to_end(bootstrap, parts, timeout_s, f"topic {topic}"):
        out[tp.partition].extend((r.key, r.value, tp.partition) for r in batch)
    return [record for p in sorted(out) for record in out[p]]


def read_topic(bootstrap: str, topic: str, timeout_s: float = 60.0) -> list[Record]:
    """Every record of ``topic`` (key, value, partition), partition by partition, each in
    offset order; on an event loop of its own (in a thread when the caller runs one)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_read(bootstrap, topic, timeout_s))
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _read(bootstrap, topic, timeout_s)).result()
