"""The checker agent: Faust hands records in batches, the processor judges them.

Faust's per-event path (one stream iteration, one ack, one ``Topic.send`` and one
changelog record per event) caps a one-record-at-a-time agent near 1,500 records/s per
core (reference/streaming.md §6). So the agent takes what Faust fetched in batches
(``Stream.noack_take``: up to ``BATCH_MAX`` events, or what came within ``BATCH_WITHIN_S``),
splits each batch by partition (keeping the delivery order inside a partition, which is
offset order per topic partition), and gives each partition's records to
``Processor.submit_batch``. Each partition's batch is acknowledged to Faust once its
outputs are acknowledged, its state written (``finish``) AND the changelog records of that
state acknowledged by Kafka (``faust_compat.ChangelogTrackedTable``: Faust's pre-commit
flush can miss a record in flight). That last wait runs in a task, so the agent and the
processor's flusher go on meanwhile; a batch whose changelog record failed is never
acknowledged (said loudly, counted in ``consentinel_changelog_sends_failed_total``): its
records are judged again after a restart.

Records Faust skipped are caught by the ``OffsetGuard`` (see ``checker.offsets``): they
are read from the broker (``worker.holes``) and handled, in offset order, before the record
that revealed the hole; once their state is written they count as acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from consentinel.streams.checker.offsets import Action, OffsetGuard
from consentinel.streams.checker.processor import Processor
from consentinel.streams.events import metrics
from consentinel.streams.worker import faust_compat

log = logging.getLogger("consentinel.worker")

#: Most records judged as one batch (all partitions), and how long to wait to fill one.
BATCH_MAX = 1000
BATCH_WITHIN_S = 0.05

#: Reads the records ``[start, end)`` of a partition that Faust skipped.
ReadHole = Callable[[str, int, int, int], Awaitable[list[Any]]]
#: Tells Faust the records ``[start, end)`` of a partition are handled (state written).
HoleHandled = Callable[[str, int, int, int], None]
#: The changelog records sent since it was last called (futures Kafka's acknowledgement
#: resolves; ``faust_compat.ChangelogSends.take``).
TakeChangelog = Callable[[], list[Any]]


def _nothing_sent() -> list[Any]:
    return []


class CheckerAgent:
    """The body of the Faust agent over consent, usage and ticks (``concurrency=1``)."""

    def __init__(
        self,
        processor: Processor,
        read_hole: ReadHole,
        hole_handled: HoleHandled,
        changelog: TakeChangelog = _nothing_sent,
    ) -> None:
        self.processor = processor
        self.guard = OffsetGuard()
        self._read_hole = read_hole
        self._hole_handled = hole_handled
        self._changelog = changelog
        #: batches whose state is written, waiting for its changelog records' acknowledgement
        self._acking: set[asyncio.Future[None]] = set()
        #: the latest of them: each waits for the one before, so acks keep the batches' order
        self._last: asyncio.Future[None] | None = None
        #: a changelog record failed since the last rebalance: repeats are not acknowledged
        self._failed = False

    def forget(self) -> None:
        """On every rebalance: Faust seeks to the committed offsets itself, and partitions
        may have moved, so forget offsets, cached states and the deadline index."""
        self.guard.reset()
        self.processor.forget()
        self._failed = False  # what failed is read again from the committed offsets

    async def run(self, stream: Any) -> None:
        """Consume ``stream`` until Faust stops it. Blocks on Kafka (fetches, acks)."""
        async for events in stream.noack_take(BATCH_MAX, within=BATCH_WITHIN_S):
            await self.handle(stream, events)

    async def handle(self, stream: Any, events: list[Any]) -> None:
        """Judge one batch of Faust events, partition by partition."""
        by_partition: dict[int, _Group] = {}
        repeats: dict[int, _Group] = {}
        for event in events:
            msg = event.message
            action = self.guard.check(msg.topic, msg.partition, msg.offset)
            if action is Action.REPEAT:
                # handled already, maybe in a batch not finished yet: acknowledged after it
                repeats.setdefault(msg.partition, _Group(repeats=True)).events.append(event)
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
        for group in [*repeats.values(), *by_partition.values()]:
            with faust_compat.current_event(group.events[-1]):  # reads: this partition's database
                await self.processor.submit_batch(
                    group.records, self._finisher(stream, group), group.write_in
                )

    def _finisher(self, stream: Any, group: _Group) -> Any:
        async def finish(write: Callable[[], None]) -> None:
            group.write_in(write)
            # Every changelog record sent since the last batch finished: this batch's
            # writes, and those of the parts handed on before it (a large list expanded).
            sent = self._changelog()
            previous = self._last
            if (previous is None or previous.done()) and all(_acknowledged(s) for s in sent):
                await self._acknowledge(stream, group)
                return
            task = asyncio.ensure_future(self._acknowledge_once_sent(stream, group, sent, previous))
            self._last = task
            self._acking.add(task)
            task.add_done_callback(self._acking.discard)

        return finish

    @property
    def acknowledging(self) -> int:
        """Batches whose records wait for their changelog records to be acknowledged."""
        return len(self._acking)

    async def _acknowledge_once_sent(
        self, stream: Any, group: _Group, sent: list[Any], previous: asyncio.Future[None] | None
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # it raises nothing it would pass on
        results = await asyncio.gather(*sent, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            self._failed = True
            metrics.CHANGELOG_SENDS_FAILED.inc(len(failed))
            msg = group.events[-1].message
            log.error(
                "%d changelog record(s) of the state written for %s[%d] up to offset %d were "
                "not acknowledged by Kafka (%s: %s). Those records are NOT acknowledged: the "
                "offsets of this partition are not committed past them, and they are judged "
                "again after a restart. Restart the worker once the broker is healthy.",
                len(failed),
                msg.topic,
                msg.partition,
                msg.offset,
                type(failed[0]).__name__,
                failed[0],
            )
            return
        await self._acknowledge(stream, group)

    async def _acknowledge(self, stream: Any, group: _Group) -> None:
        if group.repeats and self._failed:
            # a repeat may be a record of the batch that failed: never commit past it
            return
        for hole in group.holes:
            self._hole_handled(*hole)
        for event in group.events:
            await stream.ack(event)


def _acknowledged(sent: Any) -> bool:
    """A changelog record Kafka acknowledged (a failed one is not)."""
    return bool(sent.done()) and not sent.cancelled() and sent.exception() is None


class _Group:
    """One partition's share of a batch: the records to judge, in order (Faust's events'
    messages, and the records read for holes), the events to acknowledge, and the holes.
    A group of ``repeats`` has events only: records handled already, acknowledged once
    every batch before them is (an empty batch through the processor keeps the order)."""

    __slots__ = ("events", "holes", "records", "repeats")

    def __init__(self, repeats: bool = False) -> None:
        self.records: list[Any] = []
        self.events: list[Any] = []
        self.holes: list[tuple[str, int, int, int]] = []
        self.repeats = repeats

    def write_in(self, write: Callable[[], None]) -> None:
        """Call ``write`` (a write of this group's state, or of a part of it: a large list
        expanded) in its partition's context: Faust picks the changelog partition and the
        RocksDB database from the current event, and any event of the group has the right
        partition."""
        with faust_compat.current_event(self.events[-1]):
            write()
