"""The checker agent: records taken from Faust's consumer in batches, the processor judges them.

Faust's per-event path (one Event per record through the channel queue, one stream
iteration, sensors, ``current_event`` and a refcounted ack per record) caps an agent near
1,500 records/s per core (reference/streaming.md §6), and ``Stream.noack_take`` still pays
it for every record of a batch. So the records of the source topics are taken at the
conductor (``faust_compat.BatchIntake``): Faust still owns group membership, assignment,
fetching, offsets, commits and table recovery; each fetched record is appended to a bounded
buffer of its partition, and the agent takes what is buffered, one batch per partition (in
the order Faust delivered them: offset order within each topic partition), and gives it to
``Processor.submit_batch``. Each partition's batch is acknowledged to Faust once its
outputs are acknowledged (sent once its state, with them in its outbox, is durable), its
outbox slot deleted (``finish``) AND the changelog records sent since acknowledged by
Kafka (``faust_compat.ChangelogTrackedTable``: Faust's pre-commit flush can miss a record
in flight). That last wait runs in a task, so the agent and the
processor's flusher go on meanwhile; acknowledgements keep the batches' order. A batch whose
changelog record failed is never acknowledged (said loudly, counted in
``consentinel_changelog_sends_failed_total``): its records are judged again after a restart.

Records Faust skipped are caught by the ``OffsetGuard`` (see ``checker.offsets``): they
are read from the broker (``worker.holes``) and handled, in offset order, before the record
that revealed the hole; once their state is written they count as acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from consentinel.streams.checker.offsets import Action, OffsetGuard
from consentinel.streams.checker.processor import Processor
from consentinel.streams.events import metrics
from consentinel.streams.worker import faust_compat

log = logging.getLogger("consentinel.worker")

#: Most records buffered per partition before Faust's fetching waits for the agent to take
#: them (``faust_compat.BatchIntake``): also the largest batch of one partition.
BATCH_MAX = 1000
#: Records taken from the intake and not acknowledged yet (judged or being judged, their
#: outputs or their changelog records on their way), at most: the agent takes no more until
#: some are acknowledged (so the intake's buffers fill, then fetching waits). The bound is on
#: records, not batches: at full drain the batches are full (``BATCH_MAX`` records each) and
#: ``MAX_ACKING`` batches plus the processor's ``MAX_IN_FLIGHT`` came to some 48,000 records
#: held, 1.1 GiB RSS over a 200,000-use backlog (bench, 2026-12). With the intake's buffers
#: (``BATCH_MAX`` per partition) that is every source record the worker holds. Past half of
#: it the agent waits until no more than half are in flight, so a take stays large.
MAX_RECORDS_IN_FLIGHT = 6_000
#: Batches whose state is written but whose changelog records Kafka has not acknowledged
#: yet, at most: past that, finishing the next batch waits for the oldest (so the processor,
#: then the intake, then fetching wait too). Without it, a worker judging faster than its
#: changelogs are acknowledged held every such batch's records: +1.1 GiB RSS over a
#: 200,000-use backlog (bench, 2026-12).
MAX_ACKING = 16

#: Fewer records than this buffered, the agent waits ``linger_s`` for more before it takes
#: them (``CONSENTINEL_BATCH_LINGER_MS``). Each take is judged in one batch per partition,
#: and each of those pays its own produce requests (state, outputs, outbox), RocksDB
#: writes and acknowledgements, and while the agent judges, the acknowledgements and
#: sends of the batches before wait for the event loop. Taking whatever one fetch brought,
#: a worker at 2,400 uses/s (1e6 subjects) took some 80 records at a time, was in the
#: agent all the time, and its p50 / p99 from event to verdict were 94-103 / 305-351 ms;
#: waiting 5-10 ms first, 41-59 / 179-235 ms (one 1e6 ledger, runs interleaved). The
#: checker bench at half its drain rate: 100 / 306 ms at 2,432/s without, 44 / 140 ms at
#: 2,553/s with 5 ms, 34 / 65 ms at 1,993/s with 10 ms; at 2,500/s on one 1e6 ledger,
#: interleaved, 44 / 530 and 32 / 138 ms with 5 ms, 37 / 78 and 42 / 148 ms with 10 ms
#: (2026-12): 10 ms by default. At a backlog the buffers hold more than this: no wait.
LINGER_BELOW = 500

#: Reads the records ``[start, end)`` of a partition that Faust skipped.
ReadHole = Callable[[str, int, int, int], Awaitable[list[Any]]]
#: Tells Faust the records ``[start, end)`` of a partition are handled (state written).
HoleHandled = Callable[[str, int, int, int], None]
#: The changelog records sent since it was last called (futures Kafka's acknowledgement
#: resolves; ``faust_compat.ChangelogSends.take``).
TakeChangelog = Callable[[], list[Any]]


def _nothing_sent() -> list[Any]:
    return []


class Intake(Protocol):
    """Where the agent takes its records from (``faust_compat.BatchIntake``)."""

    async def take(self, limit: int | None = None) -> dict[int, list[Any]]:
        """The records buffered (at most ``limit``, the oldest of each partition first), per
        partition in delivery order; waits for one."""
        ...

    async def wait_ready(self) -> None:
        """Until a record is buffered."""
        ...

    @property
    def buffered(self) -> int:
        """Records buffered now."""
        ...

    def ack(self, messages: Sequence[Any]) -> None:
        """The records are handled: Faust may commit past them."""
        ...


class CheckerAgent:
    """The body of the Faust agent over consent, usage and ticks (``concurrency=1``)."""

    def __init__(
        self,
        processor: Processor,
        read_hole: ReadHole,
        hole_handled: HoleHandled,
        changelog: TakeChangelog = _nothing_sent,
        max_in_flight: int = MAX_RECORDS_IN_FLIGHT,
        linger_s: float = 0.0,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, not {max_in_flight}")
        self.processor = processor
        self.guard = OffsetGuard()
        self._read_hole = read_hole
        self._hole_handled = hole_handled
        self._changelog = changelog
        #: batches whose state is written, waiting for its changelog records' acknowledgement
        #: (in batch order; done ones are dropped from the left)
        self._acking: deque[asyncio.Future[None]] = deque()
        #: the latest of them: each waits for the one before, so acks keep the batches' order
        self._last: asyncio.Future[None] | None = None
        #: a changelog record failed since the last rebalance: repeats are not acknowledged
        self._failed = False
        #: records taken and not acknowledged yet (nor given up on), at most ``max_in_flight``
        self.max_in_flight = max_in_flight
        self._in_flight = 0
        self._room = asyncio.Event()  # fewer than ``max_in_flight`` records in flight
        self._room.set()
        #: with fewer than ``LINGER_BELOW`` records buffered, wait this long before a take
        self.linger_s = linger_s

    def forget(self) -> None:
        """On every rebalance: Faust seeks to the committed offsets itself, and partitions
        may have moved, so forget offsets, cached states and the deadline index."""
        self.guard.reset()
        self.processor.forget()
        self._failed = False  # what failed is read again from the committed offsets

    async def run(self, intake: Intake) -> None:
        """Take and judge batches until Faust stops the agent. Blocks on Kafka (fetches,
        acks) and, with over half of ``max_in_flight`` records taken and not acknowledged,
        until no more than half are: a take brings at most the difference to
        ``max_in_flight``, so batches stay large (a take of the few records an ack made room
        for judged them in batches of tens; the CPU per record grew). With ``linger_s``,
        once a record is buffered and fewer than ``LINGER_BELOW`` are, it waits that long
        before it takes them."""
        low = self.max_in_flight // 2
        while True:
            while self._in_flight > low:
                self._room.clear()
                await self._room.wait()
            if self.linger_s > 0:
                await intake.wait_ready()
                if intake.buffered < LINGER_BELOW:
                    await asyncio.sleep(self.linger_s)
            await self.handle(intake, await intake.take(self.max_in_flight - self._in_flight))

    @property
    def in_flight(self) -> int:
        """Records taken and not acknowledged yet (a failed batch's are given up on)."""
        return self._in_flight

    def _release(self, group: _Group) -> None:
        self._in_flight -= len(group.messages)
        if self._in_flight <= self.max_in_flight // 2:
            self._room.set()

    async def handle(self, intake: Intake, batches: dict[int, list[Any]]) -> None:
        """Judge one take of records (Faust's messages), partition by partition."""
        groups: list[_Group] = []
        repeats: list[_Group] = []
        for messages in batches.values():
            group = _Group()
            repeated = _Group(repeats=True)
            for msg in messages:
                action = self.guard.check(msg.topic, msg.partition, msg.offset)
                if action is Action.REPEAT:
                    # handled already, maybe in a batch not finished yet: acknowledged after it
                    repeated.messages.append(msg)
                    continue
                if action is Action.HOLE:
                    start = self.guard.expected(msg.topic, msg.partition)
                    if start is not None:
                        records = await self._read_hole(msg.topic, msg.partition, start, msg.offset)
                        group.records.extend(records)
                        group.holes.append((msg.topic, msg.partition, start, msg.offset))
                group.records.append(msg)
                group.messages.append(msg)
                self.guard.handled(msg.topic, msg.partition, msg.offset)
            if repeated.messages:
                repeats.append(repeated)
            if group.messages:
                groups.append(group)
        for group in [*repeats, *groups]:
            self._in_flight += len(group.messages)
            with faust_compat.current_event(group.event):  # reads: this partition's database
                await self.processor.submit_batch(
                    group.records, self._finisher(intake, group), group.write_in
                )

    def _finisher(self, intake: Intake, group: _Group) -> Any:
        async def finish(write: Callable[[], None]) -> None:
            group.write_in(write)
            # Every changelog record sent since the last batch finished: this batch's
            # writes, and those of the parts handed on before it (a large list expanded).
            sent = self._changelog()
            previous = self._last
            if (previous is None or previous.done()) and all(_acknowledged(s) for s in sent):
                self._acknowledge(intake, group)
                return
            task = asyncio.ensure_future(self._acknowledge_once_sent(intake, group, sent, previous))
            self._last = task
            acking = self._acking
            acking.append(task)
            while acking and acking[0].done():
                acking.popleft()
            if len(acking) > MAX_ACKING:  # backpressure: the oldest first
                await asyncio.wait([acking[0]])

        return finish

    @property
    def acknowledging(self) -> int:
        """Batches whose records wait for their changelog records to be acknowledged."""
        return sum(1 for task in self._acking if not task.done())

    async def _acknowledge_once_sent(
        self, intake: Intake, group: _Group, sent: list[Any], previous: asyncio.Future[None] | None
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # it raises nothing it would pass on
        results = await asyncio.gather(*sent, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            self._failed = True
            metrics.CHANGELOG_SENDS_FAILED.inc(len(failed))
            msg = group.messages[-1]
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
            self._release(group)  # never acknowledged: read again after a restart
            return
        self._acknowledge(intake, group)

    def _acknowledge(self, intake: Intake, group: _Group) -> None:
        self._release(group)
        if group.repeats and self._failed:
            # a repeat may be a record of the batch that failed: never commit past it
            return
        for hole in group.holes:
            self._hole_handled(*hole)
        intake.ack(group.messages)


def _acknowledged(sent: Any) -> bool:
    """A changelog record Kafka acknowledged (a failed one is not)."""
    return bool(sent.done()) and not sent.cancelled() and sent.exception() is None


class _Group:
    """One partition's share of a take: the records to judge, in order (Faust's messages,
    and the records read for holes), the messages to acknowledge, and the holes. A group
    of ``repeats`` has messages only: records handled already, acknowledged once every
    batch before them is (an empty batch through the processor keeps the order)."""

    __slots__ = ("_event", "holes", "messages", "records", "repeats")

    def __init__(self, repeats: bool = False) -> None:
        self.records: list[Any] = []
        self.messages: list[Any] = []
        self.holes: list[tuple[str, int, int, int]] = []
        self.repeats = repeats
        self._event: faust_compat.PartitionEvent | None = None

    @property
    def event(self) -> faust_compat.PartitionEvent:
        """The group's current event for Faust's tables (any message of the group has the
        right partition)."""
        if self._event is None:
            self._event = faust_compat.PartitionEvent(self.messages[-1])
        return self._event

    def write_in(self, write: Callable[[], None]) -> None:
        """Call ``write`` (a write of this group's state, or of a part of it: a large list
        expanded) in its partition's context: Faust picks the changelog partition and the
        RocksDB database from the current event."""
        with faust_compat.current_event(self.event):
            write()
