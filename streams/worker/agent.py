"""The checker agent: Faust hands records in batches, the processor judges them.

Faust's per-event path (one stream iteration, one ack, one ``Topic.send`` and one
changelog record per event) caps a one-record-at-a-time agent near 1,500 records/s per
core (reference/streaming.md §6). So the agent takes what Faust fetched in batches
(``Stream.noack_take``: up to ``BATCH_MAX`` events, or what came within ``BATCH_WITHIN_S``),
splits each batch by partition (keeping the delivery order inside a partition, which is
offset order per topic partition), and gives each partition's records to
``Processor.submit_batch``. Each partition's batch is acknowledged to Faust once its
outputs are acknowledged and its state written (``finish``).

Records Faust skipped are caught by the ``OffsetGuard`` (see ``checker.offsets``): they
are read from the broker (``worker.holes``) and handled, in offset order, before the record
that revealed the hole; once their state is written they count as acknowledged.
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

#: Reads the records ``[start, end)`` of a partition that Faust skipped.
ReadHole = Callable[[str, int, int, int], Awaitable[list[Any]]]
#: Tells Faust the records ``[start, end)`` of a partition are handled (state written).
HoleHandled = Callable[[str, int, int, int], None]


class CheckerAgent:
    """The body of the Faust agent over consent, usage and ticks (``concurrency=1``)."""

    def __init__(
        self, processor: Processor, read_hole: ReadHole, hole_handled: HoleHandled
    ) -> None:
        self.processor = processor
        self.guard = OffsetGuard()
        self._read_hole = read_hole
        self._hole_handled = hole_handled

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
        by_partition: dict[int, _Group] = {}
        for event in events:
            msg = event.message
            action = self.guard.check(msg.topic, msg.partition, msg.offset)
            if action is Action.REPEAT:
                await stream.ack(event)
                continue
            group = by_partition.setdefault(msg.partition, _Group())
            if action is Action.HOLE:
                start = self.guard.expected(msg.topic, msg.partition)
                if start is not None:
                    records = await self._read_hole(msg.topic, msg.partition, start, msg.offset)
                    group.records.extend(records)
                    group.holes.append((msg.topic, msg.partition, start, msg.offset))
            group.records.append(msg)
            group.events.append(event)
            self.guard.handled(msg.topic, msg.partition, msg.offset)
        for group in by_partition.values():
            with faust_compat.current_event(group.events[-1]):  # reads: this partition's database
                await self.processor.submit_batch(group.records, self._finisher(stream, group))

    def _finisher(self, stream: Any, group: _Group) -> Any:
        async def finish(write: Callable[[], None]) -> None:
            # Faust picks the changelog partition (and the RocksDB database) from the
            # current event: any event of the group has the right partition.
            with faust_compat.current_event(group.events[-1]):
                write()
            for hole in group.holes:
                self._hole_handled(*hole)
            for event in group.events:
                await stream.ack(event)

        return finish


class _Group:
    """One partition's share of a batch: the records to judge, in order (Faust's events'
    messages, and the records read for holes), the events to acknowledge, and the holes."""

    __slots__ = ("events", "holes", "records")

    def __init__(self) -> None:
        self.records: list[Any] = []
        self.events: list[Any] = []
        self.holes: list[tuple[str, int, int, int]] = []
