"""Read the records Faust skipped straight from the broker.

Faust 0.15 drops records it had fetched when it resumes its flow after a seek (recovery,
rebalance) and counts the hole as acknowledged (``checker.offsets`` has the story). The
checker used to seek the partition back, but a seek cannot win against Faust's fetch
loop: the record it is delivering when the seek happens, and the rest of the batch it
fetched before, set Faust's read offset past the seek again, and Faust then drops every
record it fetches again as "already read" (``Consumer._drain_messages``). The partition
stalls for good (the 20,000-event differential test in CI, 2026-12-05).

So the checker never seeks: it reads the hole itself, with a consumer of its own (no
group, nothing committed, one partition at a time), and handles those records before the
one that revealed the hole.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

log = logging.getLogger("consentinel.worker")

#: How long one hole may take to read before the worker gives up on it (it is then
#: stopped, and resumes from its committed offsets, which are before the hole).
READ_LIMIT_S = 120.0


def own_consumer(servers: list[str], client_id: str, **options: Any) -> Any:
    """A consumer beside Faust's, to read given partitions from given offsets: no group,
    nothing committed, a partition whose offset the log no longer holds read from its
    start. Not started. ``options`` are aiokafka's (fetch sizes)."""
    from aiokafka import AIOKafkaConsumer

    return AIOKafkaConsumer(
        bootstrap_servers=servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id=client_id,
        **options,
    )


class HoleNotRead(RuntimeError):
    """The broker did not return the skipped records in ``READ_LIMIT_S``."""


class HoleReader:
    """Reads ``[start, end)`` of one partition. Blocks on the broker, bounded."""

    def __init__(self, bootstrap_servers: str, client_id: str = "consentinel-holes") -> None:
        self._servers = [s.strip() for s in bootstrap_servers.split(",") if s.strip()]
        self._client_id = client_id
        self._consumer: Any = None
        self._lock = asyncio.Lock()

    async def read(self, topic: str, partition: int, start: int, end: int) -> list[Any]:
        """The records of ``topic[partition]`` from offset ``start`` up to ``end``
        (excluded), in offset order. Offsets the log no longer holds are missing from
        the answer (logged as an ERROR)."""
        from aiokafka import TopicPartition

        async with self._lock:
            consumer = await self._started()
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            consumer.seek(tp, start)
            records: list[Any] = []
            deadline = time.monotonic() + READ_LIMIT_S
            while True:
                position = await consumer.position(tp)
                if position >= end:
                    break
                if time.monotonic() > deadline:
                    raise HoleNotRead(
                        f"{topic}[{partition}]: the records {start}..{end - 1} that Faust "
                        f"skipped were not read back in {READ_LIMIT_S:.0f} s (read up to "
                        f"{position}); the worker stops and resumes from its committed "
                        "offsets. Is the broker reachable?"
                    )
                batch = await consumer.getmany(tp, timeout_ms=1000, max_records=2000)
                records.extend(r for r in batch.get(tp, ()) if r.offset < end)
        missing = (end - start) - len(records)
        if missing:
            log.error(
                "%s[%d]: %d of the records %d..%d are no longer in the log (retention?); "
                "they are not judged",
                topic,
                partition,
                missing,
                start,
                end - 1,
            )
        return records

    async def _started(self) -> Any:
        if self._consumer is None:
            consumer = own_consumer(self._servers, self._client_id)
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def stop(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()
