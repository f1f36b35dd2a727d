"""Per-partition record batches shared by concurrent requests: one future per batch.

    batcher = PartitionBatcher(producer)       # one per aiokafka producer
    n = await batcher.partition_count(topic)   # waits for the topic's metadata
    acked = batcher.add(topic, partition, key, value)
    await acked                                # the broker acknowledged that batch

aiokafka's ``send()`` costs, per record, a pure-Python murmur2, a metadata wait, a size
estimate and a future resolved one by one. Here a record goes into the open batch of
its partition (aiokafka's ``BatchBuilder``, Cython) and the caller gets that batch's
future, shared by every record in it; a request waits for the few batches it touched.

One task per partition hands batches to aiokafka (``send_batch``), in order. aiokafka
takes a partition's next batch only once the sender drained the previous one, and
keeps one produce request in flight per broker, so while a batch is on its way the
records of concurrent requests gather in the next one, as in aiokafka's own
accumulator. Delivery is unchanged: the producer's acks, idempotence and retries apply
to these batches as to any other; a batch's future fails when its produce fails.

What blocks: ``add`` never blocks. A record larger than ``max_request_size`` raises
``MessageSizeTooLargeError`` (a ``KafkaError``), as ``send`` does. ``flush`` waits until
every batch made so far is acknowledged (or failed).

Used by the connectors' producer (one started producer) and by the worker's outputs and
changelogs (``worker.batches.Lanes``: a producer made and started lazily, and batches
acknowledged with their last offset), through three hooks: ``_producer_now``,
``_producer_ready`` and ``_acked_value``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatchBuilder

#: Resolved when the broker acknowledged the batch (with ``_acked_value``: None here).
Acked = asyncio.Future[Any]


class _Lane:
    """One topic-partition: the open batch, the full ones waiting, the handing task."""

    __slots__ = ("acked", "builder", "task", "waiting")

    def __init__(self) -> None:
        self.builder: BatchBuilder | None = None
        self.acked: Acked | None = None
        self.waiting: deque[tuple[BatchBuilder, Acked]] = deque()
        self.task: asyncio.Task[None] | None = None


class PartitionBatcher:
    """Batches records per topic-partition for one started ``AIOKafkaProducer``."""

    def __init__(
        self, producer: AIOKafkaProducer | None, max_request_size: int = 1024 * 1024
    ) -> None:
        self._producer = producer
        self._max_request_size = max_request_size
        self._lanes: dict[tuple[str, int], _Lane] = {}
        #: the acknowledgements of the batches not acknowledged (nor failed) yet
        self._unsettled: set[Acked] = set()

    # -- hooks ---------------------------------------------------------------------------

    def _producer_now(self) -> AIOKafkaProducer:
        """The producer new batches are made by (it need not be started yet)."""
        assert self._producer is not None
        return self._producer

    async def _producer_ready(self) -> AIOKafkaProducer:
        """The producer batches are handed to, started."""
        return self._producer_now()

    def _acked_value(self, metadata: Any, count: int) -> Any:
        """What a batch's acknowledgement is resolved with, from aiokafka's record
        metadata of the batch (its base offset) and its number of records."""
        return None

    # -------------------------------------------------------------------------------------

    async def partition_count(self, topic: str) -> int:
        """How many partitions ``topic`` has (waits for its metadata, like ``send``)."""
        producer = await self._producer_ready()
        known = producer.client.cluster.partitions_for_topic(topic)
        if known:  # what partitions_for() returns at once when the metadata is there
            return len(known)
        return len(await producer.partitions_for(topic))

    def add(self, topic: str, partition: int, key: bytes | None, value: bytes | None) -> Acked:
        """Put a record in its partition's open batch; the batch's acknowledgement."""
        lane = self._lanes.get((topic, partition))
        if lane is None:
            lane = self._lanes[(topic, partition)] = _Lane()
        builder, acked = lane.builder, lane.acked
        if (
            builder is None
            or acked is None
            or builder.append(timestamp=None, key=key, value=value) is None
        ):
            size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, [])
            if size > self._max_request_size:
                raise MessageSizeTooLargeError(
                    f"a {size}-byte record exceeds max_request_size ({self._max_request_size})"
                )
            if builder is not None and acked is not None:  # full: it waits its turn
                lane.waiting.append((builder, acked))
            builder = lane.builder = self._producer_now().create_batch()
            acked = lane.acked = asyncio.get_running_loop().create_future()
            self._unsettled.add(acked)
            acked.add_done_callback(self._unsettled.discard)
            builder.append(timestamp=None, key=key, value=value)  # an empty batch takes any
        if lane.task is None:
            lane.task = asyncio.ensure_future(self._hand_over(topic, partition, lane))
        return acked

    async def _hand_over(self, topic: str, partition: int, lane: _Lane) -> None:
        """Give the lane's batches to aiokafka, oldest first, until none is left."""
        try:
            producer = await self._producer_ready()
            while True:
                if lane.waiting:
                    builder, acked = lane.waiting.popleft()
                elif lane.builder is not None and lane.acked is not None:
                    builder, acked = lane.builder, lane.acked
                    lane.builder = lane.acked = None
                else:
                    return
                builder.close()  # nothing more goes in: aiokafka may send it at once
                count = builder.record_count()
                try:
                    sent = await producer.send_batch(builder, topic, partition=partition)
                except BaseException as exc:
                    _settle(acked, exc)
                    raise
                sent.add_done_callback(lambda fut, a=acked, n=count: self._resolve(a, fut, n))
        except BaseException as exc:  # the producer is failing: so are the batches behind
            for _, acked in lane.waiting:
                _settle(acked, exc)
            lane.waiting.clear()
            if lane.acked is not None:
                _settle(lane.acked, exc)
            lane.builder = lane.acked = None
            if not isinstance(exc, Exception):
                raise
        finally:
            lane.task = None

    def _resolve(self, acked: Acked, sent: asyncio.Future[Any], count: int) -> None:
        if acked.done():
            return
        if sent.cancelled():
            _settle(acked, asyncio.CancelledError())
        elif (exc := sent.exception()) is not None:
            _settle(acked, exc)
        else:
            acked.set_result(self._acked_value(sent.result(), count))

    async def flush(self) -> None:
        """Until every record added so far is acknowledged by Kafka (or failed). Blocks on
        Kafka's acknowledgements."""
        while self._unsettled:
            await asyncio.wait(list(self._unsettled))


def _settle(acked: Acked, exc: BaseException) -> None:
    if not acked.done():
        acked.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
        acked.exception()  # retrieved: a batch nobody waits for any more is not an error
