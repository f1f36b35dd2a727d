"""The checker agent: Faust hands records in batches, the processor judges them.

Faust's per-event path (one stream iteration, one ack, one ``Topic.send`` and one
changelog record per event) caps a one-record-at-a-time agent near 1,500 records/s per
core (reference/streaming.md §6). So the agent takes what Faust fetched in batches
(``Stream.noack_take``: up to ``BATCH_MAX`` events, or what came within ``BATCH_WITHIN_S``),
splits each batch by partition (keeping the delivery order inside a partition, which is
offset order per topic partition), and gives each partition's records to
``Processor.submit_batch``. Each partition's batch is acknowledged to Faust once its
outputs are acknowledged and its state written (``finish``).

Records Faust skipped are caught by the ``OffsetGuard`` (see ``checker.offsets``): the
partition is sought back and what was fetched beyond the hole is ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from consentinel.streams.checker.offsets import Action, OffsetGuard
from consentinel.streams.checker.processor import Processor
from consentinel.streams.worker import faust_compat

log = logging.getLogger("consentinel.worker")

#: Most records judged as one batch (all partitions), and how long to wait to fill one.
BATCH_MAX = 1000
BATCH_WITHIN_S = 0.05

Rewind = Callable[[str, int, int], Awaitable[None]]


class CheckerAgent:
    """The body of the Faust agent over consent, usage and ticks (``concurrency=1``)."""

    def __init__(self, processor: Processor, rewind: Rewind) -> None:
        self.processor = processor
        self.guard = OffsetGuard()
        self._rewind = rewind

    def forget(self) -> None:
        """On every rebalance: Faust seeks to the committed offsets itself, and partitions
        may have moved, so forget offsets, cached states and the deadline index."""
        self.guard.reset()
        self.processor.forget()

    async def run(self, stream: Any) -> None:
        """Consume ``stream`` until Faust stops it. Blocks on Kafka (fetches, acks)."""
        async for events in stream.noack_take(BATCH_MAX, within=BATCH_WITHIN_S):
            await self.handle(stream, events)

    async def handle(self, stream: Any, events: list[Any]) -> None:
        """Judge one batch of Faust events, partition by partition."""
        by_partition: dict[int, list[Any]] = {}
        for event in events:
            msg = event.message
            action = self.guard.check(msg.topic, msg.partition, msg.offset)
            if action is Action.HANDLE:
                by_partition.setdefault(msg.partition, []).append(event)
                self.guard.handled(msg.topic, msg.partition, msg.offset)
            elif action is Action.REWIND:
                expected = self.guard.expected(msg.topic, msg.partition)
                if expected is not None:
                    await self._rewind(msg.topic, msg.partition, expected)
            elif action is Action.REPEAT:
                await stream.ack(event)
            # STALE: fetched before the seek back: neither handled nor acknowledged
        for group in by_partition.values():
            last = group[-1]
            with faust_compat.current_event(last):  # reads: this partition's database
                await self.processor.submit_batch(
                    [e.message for e in group], self._finisher(stream, group)
                )

    @staticmethod
    def _finisher(stream: Any, group: list[Any]) -> Any:
        async def finish(write: Callable[[], None]) -> None:
            # Faust picks the changelog partition (and the RocksDB database) from the
            # current event: any event of the group has the right partition.
            with faust_compat.current_event(group[-1]):
                write()
            for event in group:
                await stream.ack(event)

        return finish
