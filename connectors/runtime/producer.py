"""The connectors' Kafka producer: acks=all, idempotent, murmur2, awaited acknowledgements.

    producer = EventProducer(settings)
    await producer.start()            # RetriableError when no broker answers
    await producer.send_all(output)   # returns once Kafka acknowledged every record
    await producer.send_deadletter(dead_letter)
    await producer.stop()

What blocks: ``send_all`` and ``send_records`` wait for every acknowledgement, at most
``ack_timeout`` seconds. Any broker fault (unreachable, timeout, not enough replicas) is
a ``RetriableError``: the caller spools, answers ``busy_status`` or keeps its
checkpoint. Some records may still land after a timeout; their ids are deterministic, so
a retry adds duplicates of the same id only. After a timeout or a connection-level fault
the underlying client is replaced, so a producer whose broker went away recovers on its
own once it is back.

A record that can never be written (larger than ``max_request_size``, or refused by the
broker for its size) is ``InvalidInput`` ``record_too_large``, raised before anything of
the call is produced when the size is known here; it never closes the client, which
every connector instance of the process shares. ``fits`` says beforehand whether a
record can be written.

Keys: usage and consent records are keyed by ``partitioning.subject_message_key`` and
placed by ``partitioning.partition_for`` (``partitions_for`` for many keys at once),
the murmur2 of the default partitioner (co-partitioning, DESIGN.md); dead letters are
keyed by their source. Records go out in per-partition batches shared by concurrent
requests (``batching``): a request waits for the acknowledgement of each batch that
holds one of its records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    IllegalStateError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NoBrokersAvailable,
    NodeNotReadyError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    ProducerFenced,
    RecordListTooLargeError,
    RecordTooLargeError,
    RequestTimedOutError,
)
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from consentinel.connectors.contract import Output
from consentinel.streams.events import codec, topics
from consentinel.streams.events.batching import PartitionBatcher
from consentinel.streams.events.errors import InvalidInput, RetriableError
from consentinel.streams.events.partitioning import partitions_for, subject_message_key
from consentinel.streams.events.records import DeadLetter
from consentinel.streams.events.settings import Settings

log = logging.getLogger("consentinel.connectors.producer")

Record = tuple[str, bytes, bytes]  # topic, key, value

#: faults of the client or the connection: the client is replaced (others keep it)
_BROKEN_CLIENT = (
    KafkaConnectionError,
    NodeNotReadyError,
    NoBrokersAvailable,
    KafkaTimeoutError,
    RequestTimedOutError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    ProducerFenced,
    IllegalStateError,
)
#: faults of one record: it can never be written as it is
_TOO_LARGE = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError)


def record_size(key: bytes, value: bytes) -> int:
    """The bytes one record takes in a batch of its own (what ``max_request_size`` bounds)."""
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, []))


def records_of(output: Output, settings: Settings) -> list[Record]:
    """The Kafka records of an output: usage then consent, keyed by subject."""
    usage_topic = settings.topic(topics.USAGE)
    consent_topic = settings.topic(topics.CONSENT)
    out: list[Record] = [
        (usage_topic, subject_message_key(e.subject_key), codec.encode(e)) for e in output.usage
    ]
    out += [
        (consent_topic, subject_message_key(e.subject_key), codec.encode(e)) for e in output.consent
    ]
    return out


class EventProducer:
    """One aiokafka producer shared by all requests of a process."""

    def __init__(
        self,
        settings: Settings,
        *,
        client_id: str = "consentinel-connectors",
        ack_timeout: float = 10.0,
        linger_ms: int = 2,
        max_batch_size: int = 256 * 1024,
        max_request_size: int = 1024 * 1024,
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        self.ack_timeout = ack_timeout
        self.linger_ms = linger_ms
        self.max_batch_size = max_batch_size
        self.max_request_size = max_request_size
        self._producer: AIOKafkaProducer | None = None
        self._batcher: PartitionBatcher
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def connected(self) -> bool:
        return self._producer is not None

    async def start(self) -> None:
        """Connect now (otherwise the first send connects); ``RetriableError`` if it cannot."""
        await self._ensure()

    async def _ensure(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._lock:
            if self._producer is not None:
                return self._producer
            producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.bootstrap_servers,
                client_id=self.client_id,
                acks="all",
                enable_idempotence=True,
                linger_ms=self.linger_ms,
                max_batch_size=self.max_batch_size,
                max_request_size=self.max_request_size,
                request_timeout_ms=int(self.ack_timeout * 1000),
                retry_backoff_ms=200,
            )
            try:
                await asyncio.wait_for(producer.start(), self.ack_timeout)
            except (TimeoutError, KafkaError, OSError) as exc:
                self._discard(producer)
                raise RetriableError(
                    f"Kafka at {self.settings.bootstrap_servers} is not reachable "
                    f"({type(exc).__name__}); is the broker up?",
                    retry_after=5.0,
                ) from None
            self._producer = producer
            self._batcher = PartitionBatcher(producer, self.max_request_size)
            log.info("connected to Kafka at %s", self.settings.bootstrap_servers)
            return producer

    def _discard(self, producer: AIOKafkaProducer) -> None:
        """Close a client in the background (it may wait for a broker that is gone)."""

        async def close() -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 30)

        task = asyncio.ensure_future(close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _fail(self, producer: AIOKafkaProducer) -> None:
        if self._producer is producer:
            self._producer = None
            self._discard(producer)

    def fits(self, key: bytes, value: bytes) -> bool:
        """Whether a record is small enough to be written at all."""
        return record_size(key, value) <= self.max_request_size

    async def send_records(self, records: Iterable[Record]) -> int:
        """Produce and wait until every record is acknowledged; returns how many.

        Blocks at most ``ack_timeout`` seconds. Raises ``InvalidInput``
        ``record_too_large`` (nothing of this call produced when the size is known here)
        and ``RetriableError`` for broker faults.
        """
        batch = list(records)
        if not batch:
            return 0
        for topic, key, value in batch:
            if not self.fits(key, value):
                raise InvalidInput(
                    "record_too_large",
                    f"a {record_size(key, value)}-byte record for {topic} exceeds the "
                    f"producer's max_request_size ({self.max_request_size}); it can never "
                    "be written as it is",
                )
        producer = await self._ensure()
        batcher = self._batcher
        try:
            async with asyncio.timeout(self.ack_timeout):
                by_topic: dict[str, list[tuple[bytes, bytes]]] = {}
                for topic, key, value in batch:
                    by_topic.setdefault(topic, []).append((key, value))
                acks: set[asyncio.Future[None]] = set()
                for topic, pairs in by_topic.items():
                    n = await batcher.partition_count(topic)
                    placed = partitions_for([key for key, _ in pairs], n)
                    for (key, value), partition in zip(pairs, placed, strict=True):
                        acks.add(batcher.add(topic, partition, key, value))
                # wait() never cancels what it waits for: other requests share these batches
                await asyncio.wait(acks)
            for acked in acks:
                acked.result()
        except TimeoutError:
            self._fail(producer)
            raise RetriableError(
                f"Kafka did not acknowledge {len(batch)} record(s) within {self.ack_timeout:g} s",
                retry_after=5.0,
            ) from None
        except _TOO_LARGE as exc:  # one record's fault: the shared client stays
            raise InvalidInput(
                "record_too_large",
                f"Kafka refused a record of this request for its size ({type(exc).__name__})",
            ) from None
        except (KafkaError, OSError) as exc:
            if isinstance(exc, (*_BROKEN_CLIENT, OSError)):
                self._fail(producer)
            raise RetriableError(
                f"Kafka refused or lost the records ({type(exc).__name__}); retry later",
                retry_after=5.0,
            ) from None
        return len(batch)

    async def send_all(self, output: Output) -> int:
        """Produce an output's events; returns once all are acknowledged (acks=all)."""
        return await self.send_records(records_of(output, self.settings))

    async def send_deadletter(self, letter: DeadLetter) -> None:
        topic = self.settings.topic(topics.DEADLETTER)
        await self.send_records([(topic, letter.source.encode("utf-8"), codec.encode(letter))])

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), self.ack_timeout)
        for task in list(self._closing):
            task.cancel()
