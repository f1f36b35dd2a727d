"""The worker's outputs and state written in produce batches, one per topic partition.

Two ``Lanes``, each on an aiokafka producer of its own (its own connection, so verdicts
never queue behind a changelog backlog, nor changelog records behind verdicts):

- ``OutputSender`` (the processor's ``send_batch``): verdicts, alerts, dead letters and
  list legs. A keyed record goes to the partition Kafka's default partitioner gives its
  key (murmur2 over the topic's partitions, as aiokafka's ``DefaultPartitioner``), in
  the open batch of that partition; a keyless one is sent as before (``send``: aiokafka
  picks a partition).
- ``StateWriter`` (the processor's ``write``; ``StateReader``, its ``read``, reads the
  stores the same way): a batch's table writes, applied to each
  table's store for the batch's partition in one go (a RocksDB write batch:
  ``faust_compat.write_store``) and their changelog records (deletes as tombstones) put
  in the open batch of that changelog partition. The acknowledgement of every produce
  batch they went into is handed to ``ChangelogSends`` (the agent acknowledges the
  batch's records only once they are acknowledged, never if one failed), and once one is
  acknowledged the table's persisted changelog offset of that partition is set ONCE (the
  last offset of the produce batch), so a restart recovers the table from there.

Faust's per-record path (``Table.__setitem__`` -> ``on_key_set`` -> ``send_changelog``
-> ``FutureMessage`` -> ``ProducerBuffer`` -> ``Topic._on_published`` ->
``set_persisted_offset``, per record) and aiokafka's per-record ``send`` (a metadata
wait, a murmur2, a future per record) are not used.

What blocks: ``Lanes.add`` never blocks (one task per partition hands its batches to
aiokafka, in order; aiokafka takes a partition's next batch once the sender drained the
previous one). ``OutputSender.__call__`` waits for a topic's metadata the first time.
Delivery is aiokafka's: ``acks=all``; a batch's future fails when its produce fails, and
what failed is sent again by the caller (outputs: the processor's flusher, forever) or
never acknowledged (changelog records).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import ProducerClosed
from consentinel.streams.events.batching import PartitionBatcher
from consentinel.streams.events.partitioning import partitions_for
from consentinel.streams.worker import faust_compat

log = logging.getLogger("consentinel.worker")

#: Resolved with the offset of the LAST record of the produce batch a record went into.
Acked = asyncio.Future[int]
Output = tuple[str, bytes | None, bytes]

#: Bytes per produce batch (aiokafka's default is 16 KiB: ~40 verdicts).
MAX_BATCH_BYTES = 256 * 1024
MAX_REQUEST_BYTES = 1024 * 1024


def producer_for(bootstrap_servers: str, client_id: str) -> Callable[[], AIOKafkaProducer]:
    """A maker of the producer of one ``Lanes``: ``acks=all`` (as Faust's producer of the
    app), batches up to ``MAX_BATCH_BYTES``, sent as soon as the sender is free."""

    def make() -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id=client_id,
            acks="all",
            linger_ms=0,
            max_batch_size=MAX_BATCH_BYTES,
            max_request_size=MAX_REQUEST_BYTES,
        )

    return make


class Lanes(PartitionBatcher):
    """Records batched per topic partition (``events.batching``) on one aiokafka
    producer, made by ``make`` (called once, in the event loop, on the first record) and
    started by the first handing task; a batch's acknowledgement is the offset of its
    last record. ``add`` never blocks; ``stop`` flushes and closes the producer."""

    def __init__(
        self, make: Callable[[], AIOKafkaProducer], max_request_size: int = MAX_REQUEST_BYTES
    ) -> None:
        super().__init__(None, max_request_size)
        self._make = make
        self._started: asyncio.Future[None] | None = None
        self._stopped = False

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            self._producer = self._make()
        return self._producer

    def _producer_now(self) -> AIOKafkaProducer:
        return self.producer

    async def _producer_ready(self) -> AIOKafkaProducer:
        return await self.started()

    def _acked_value(self, metadata: Any, count: int) -> int:
        # the batch's metadata carries its base offset
        return int(metadata.offset) + count - 1

    async def started(self) -> AIOKafkaProducer:
        """The producer, connected (the first call starts it; after a failed start, the
        next call starts a new producer)."""
        if self._stopped:
            raise ProducerClosed()
        started = self._started
        if started is not None and started.done():
            if not started.cancelled() and started.exception() is None:
                return self.producer
            self._producer = None  # a failed start: a new producer, a new start
            started = None
        producer = self.producer
        if started is None:
            started = self._started = asyncio.ensure_future(producer.start())
        await asyncio.shield(started)
        return producer

    async def warm(self, topics: Sequence[str]) -> None:
        """Connect now and read the metadata of ``topics``, so the first batch waits for
        neither; a failure is only said (the first batch tries again)."""
        try:
            for topic in topics:
                await self.partition_count(topic)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("producer not connected yet (%s: %s)", type(exc).__name__, exc)

    async def stop(self) -> None:
        """Flush what was handed to the producer, then close it; batches added later fail
        (``ProducerClosed``): the worker is stopping, they are never acknowledged."""
        self._stopped = True
        producer, self._producer = self._producer, None
        if producer is not None and self._started is not None:
            try:
                await producer.stop()
            except Exception as exc:  # stopping anyway
                log.warning("producer not stopped cleanly: %s: %s", type(exc).__name__, exc)


class OutputSender:
    """The processor's ``send_batch``: each output in the open batch of the partition its
    key hashes to; per output, the acknowledgement of its batch (or the exception that
    stopped it from being queued). Keyless outputs go through ``send``, as before."""

    def __init__(self, lanes: Lanes) -> None:
        self.lanes = lanes

    async def __call__(self, outputs: Sequence[Output]) -> list[Any]:
        lanes = self.lanes
        placed = await self._place(outputs)
        acks: list[Any] = []
        for i, (topic, key, value) in enumerate(outputs):
            try:
                if key is None:
                    producer = await lanes.started()
                    acks.append(await producer.send(topic, value))
                    continue
                partition = placed[i]
                acks.append(
                    partition  # the topic's partition count could not be read
                    if isinstance(partition, Exception)
                    else lanes.add(topic, partition, key, value)
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # resent by the processor's flusher
                acks.append(exc)
        return acks

    async def _place(self, outputs: Sequence[Output]) -> dict[int, int | Exception]:
        """Output position -> the partition of its key (``partitions_for``: the keys of a
        topic at once), or the exception that hid the topic's partition count."""
        keyed: dict[str, list[tuple[int, bytes]]] = {}
        for i, (topic, key, _) in enumerate(outputs):
            if key is not None:
                keyed.setdefault(topic, []).append((i, key))
        placed: dict[int, int | Exception] = {}
        for topic, items in keyed.items():
            positions = [i for i, _ in items]
            try:
                n = await self.lanes.partition_count(topic)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                placed.update((i, exc) for i in positions)
                continue
            keys = [key for _, key in items]
            placed.update(zip(positions, partitions_for(keys, n), strict=True))
        return placed


#: (table, key, value or None for a delete), in the order they were staged
Write = tuple[Any, bytes, bytes | None]


class StateReader:
    """The processor's ``read``: a table's value for a key of one partition, read from
    the partition's store directly (``faust_compat.store_reader``), as ``StateWriter``
    writes it. Each table's reader is made on its first read (the store exists once the
    app runs). Blocks on the disk for RocksDB."""

    def __init__(self) -> None:
        self._readers: dict[int, tuple[Any, Callable[[int, bytes], bytes | None]]] = {}

    def __call__(self, table: Any, partition: int, key: bytes) -> bytes | None:
        entry = self._readers.get(id(table))
        if entry is None:
            entry = self._readers[id(table)] = (table, faust_compat.store_reader(table))
        return entry[1](partition, key)


class StateWriter:
    """The processor's ``write``: a batch's table writes for one partition, to the
    stores at once and to the changelogs in produce batches; their acknowledgements go
    to ``sends`` (``faust_compat.ChangelogSends``). Blocks on nothing: the store is
    written in the caller, the batches are handed to aiokafka by the lanes' tasks."""

    def __init__(self, lanes: Lanes, sends: faust_compat.ChangelogSends) -> None:
        self.lanes = lanes
        self.sends = sends

    def __call__(self, partition: int, writes: Sequence[Write]) -> list[Acked]:
        """Returns the acknowledgements of the produce batches the changelog records went
        into (also handed to ``sends``)."""
        per_table: dict[int, tuple[Any, dict[bytes, bytes | None]]] = {}
        for table, key, value in writes:
            entry = per_table.get(id(table))
            if entry is None:
                entry = per_table[id(table)] = (table, {})
            items = entry[1]
            items.pop(key, None)  # the last write of a key wins, in its place in the order
            items[key] = value
        lanes, sends = self.lanes, self.sends
        acks: list[Acked] = []
        for table, items in per_table.values():
            faust_compat.write_store(table, partition, items.items())
            topic = faust_compat.changelog_topic_name(table)
            batches: dict[int, Acked] = {}
            for key, value in items.items():
                acked = lanes.add(topic, partition, key, value)
                batches[id(acked)] = acked
            for acked in batches.values():
                sends.add(acked)
                acked.add_done_callback(functools.partial(self._persist, table, topic, partition))
                acks.append(acked)
        return acks

    def _persist(self, table: Any, topic: str, partition: int, acked: Acked) -> None:
        """Once a changelog batch is acknowledged: the table's persisted offset of that
        partition (where recovery starts after a restart). A partition's batches are
        acknowledged in the order they were sent, so the offset only moves forward."""
        if acked.cancelled() or acked.exception() is not None:
            return
        offset = acked.result()
        try:
            faust_compat.set_persisted_offset(table, topic, partition, offset)
        except Exception as exc:  # revoked meanwhile: recovery reads a little more
            log.warning(
                "changelog offset %d of %s[%d] not persisted (%s: %s)",
                offset,
                topic,
                partition,
                type(exc).__name__,
                exc,
            )
