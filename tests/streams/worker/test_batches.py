"""Outputs and state in produce batches (``worker.batches``), on a fake aiokafka producer
and Faust's own stores."""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from consentinel.streams.events.partitioning import partition_for
from consentinel.streams.worker import faust_compat
from consentinel.streams.worker.batches import Lanes, OutputSender, StateReader, StateWriter


class Builder:
    """aiokafka's ``BatchBuilder`` as the lanes use it: full after ``capacity`` records."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.records: list[tuple[bytes | None, bytes | None]] = []
        self.closed = False

    def append(self, *, timestamp: Any, key: bytes | None, value: bytes | None) -> Any:
        if self.closed or len(self.records) >= self.capacity:
            return None
        self.records.append((key, value))
        return object()

    def close(self) -> None:
        self.closed = True

    def record_count(self) -> int:
        return len(self.records)


class Meta:
    def __init__(self, offset: int) -> None:
        self.offset = offset


class Cluster:
    def __init__(self, partitions: dict[str, int]) -> None:
        self.partitions = partitions

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        n = self.partitions.get(topic)
        return None if n is None else set(range(n))


class Producer:
    """What the lanes use of an ``AIOKafkaProducer``. Each produce batch is kept with its
    future; ``auto`` acknowledges at once (offsets counted per partition), else the test
    settles them. ``fail`` makes every acknowledgement fail."""

    def __init__(self, partitions: dict[str, int], capacity: int = 1000) -> None:
        self.client = type("Client", (), {"cluster": Cluster(partitions)})()
        self.capacity = capacity
        self.batches: list[tuple[str, int, Builder, asyncio.Future[Any]]] = []
        self.singles: list[tuple[str, bytes]] = []
        self.auto = True
        self.fail: Exception | None = None
        self.started = 0
        self._next: dict[tuple[str, int], int] = {}

    async def start(self) -> None:
        self.started += 1

    async def stop(self) -> None:
        return None

    async def partitions_for(self, topic: str) -> set[int]:
        return self.client.cluster.partitions_for_topic(topic) or set()

    def create_batch(self) -> Builder:
        return Builder(self.capacity)

    async def send_batch(self, builder: Builder, topic: str, *, partition: int) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.batches.append((topic, partition, builder, fut))
        if self.auto:
            self.settle(fut, topic, partition, builder)
        return fut

    def settle(self, fut: asyncio.Future[Any], topic: str, partition: int, builder: Any) -> None:
        if self.fail is not None:
            fut.set_exception(self.fail)
            return
        base = self._next.get((topic, partition), 0)
        self._next[(topic, partition)] = base + builder.record_count()
        fut.set_result(Meta(base))

    async def send(self, topic: str, value: bytes) -> Any:
        self.singles.append((topic, value))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(Meta(0))
        return fut


async def settled(*futs: Any) -> list[Any]:
    return await asyncio.gather(*futs, return_exceptions=True)


async def test_outputs_go_to_the_partition_kafkas_default_partitioner_gives_their_key() -> None:
    rng = random.Random(7)
    counts = {"v1": 1, "v2": 2, "v6": 6, "v12": 12, "v37": 37}
    producer = Producer(counts)
    send = OutputSender(Lanes(lambda: producer))  # type: ignore[arg-type,return-value]
    keys = [rng.randbytes(rng.randint(1, 70)) for _ in range(2000)]
    keys += [f"{rng.getrandbits(256):064x}".encode() for _ in range(2000)]  # subject keys
    for topic, n in counts.items():
        acks = await send([(topic, key, b"v") for key in keys])
        await settled(*acks)
        placed = {
            key: partition
            for t, partition, builder, _ in producer.batches
            if t == topic
            for key, _ in builder.records
        }
        aiokafka = DefaultPartitioner()
        every = list(range(n))
        assert all(placed[key] == aiokafka(key, every, every) for key in keys), topic


async def test_a_batch_of_outputs_is_one_produce_batch_per_partition_in_order() -> None:
    producer = Producer({"verdicts": 2, "alerts": 2})
    send = OutputSender(Lanes(lambda: producer))  # type: ignore[arg-type,return-value]
    outputs = [("verdicts", b"s%d" % i, b"%d" % i) for i in range(40)]
    outputs.append(("alerts", b"s0", b"alert"))
    acks = await send(outputs)
    await settled(*acks)
    lane = [(t, partition_for(k, 2)) for t, k, _ in outputs]
    assert sorted((t, p) for t, p, _, _ in producer.batches) == sorted(set(lane))
    for topic, partition, builder, _ in producer.batches:  # each partition's records, in order
        assert builder.records == [
            (k, v) for (t, k, v), at in zip(outputs, lane, strict=True) if at == (topic, partition)
        ]
    for i, j in itertools.combinations(range(len(outputs)), 2):  # one ack per produce batch
        assert (acks[i] is acks[j]) == (lane[i] == lane[j])
    assert producer.singles == []


async def test_a_full_batch_is_followed_by_the_next_and_each_ack_is_its_last_offset() -> None:
    producer = Producer({"t": 1}, capacity=3)
    lanes = Lanes(lambda: producer)  # type: ignore[arg-type,return-value]
    acks = [lanes.add("t", 0, b"k%d" % i, b"v%d" % i) for i in range(7)]
    results = await settled(*acks)
    assert [b.record_count() for _, _, b, _ in producer.batches] == [3, 3, 1]
    assert [v for _, _, b, _ in producer.batches for _, v in b.records] == [
        b"v%d" % i for i in range(7)
    ]
    assert results == [2, 2, 2, 5, 5, 5, 6]  # the offset of the last record of each batch
    assert producer.started == 1


async def test_keyless_outputs_are_sent_one_by_one_as_before() -> None:
    producer = Producer({"deadletter": 3})
    send = OutputSender(Lanes(lambda: producer))  # type: ignore[arg-type,return-value]
    acks = await send([("deadletter", None, b"x"), ("deadletter", None, b"y")])
    await settled(*acks)
    assert producer.singles == [("deadletter", b"x"), ("deadletter", b"y")]
    assert producer.batches == []


async def test_a_failed_produce_fails_every_output_of_its_batch() -> None:
    producer = Producer({"verdicts": 1})
    producer.fail = ConnectionError("broker down")
    send = OutputSender(Lanes(lambda: producer))  # type: ignore[arg-type,return-value]
    acks = await send([("verdicts", b"a", b"1"), ("verdicts", b"b", b"2")])
    results = await settled(*acks)
    assert all(isinstance(r, ConnectionError) for r in results)


async def test_a_record_too_large_is_refused_for_itself_only() -> None:
    producer = Producer({"verdicts": 1})
    send = OutputSender(Lanes(lambda: producer, max_request_size=100))  # type: ignore[arg-type,return-value]
    acks = await send([("verdicts", b"a", b"x" * 500), ("verdicts", b"b", b"small")])
    assert isinstance(acks[0], Exception)  # resent (and logged) by the processor's flusher
    assert await acks[1] == 0


async def test_warming_connects_and_reads_the_metadata_and_a_failure_is_only_said(
    caplog: Any,
) -> None:
    producer = Producer({"verdicts": 3})
    lanes = Lanes(lambda: producer)  # type: ignore[arg-type,return-value]
    await lanes.warm(["verdicts"])
    assert producer.started == 1
    await lanes.warm(["verdicts"])
    assert producer.started == 1, "started once"

    class Down(Producer):
        async def start(self) -> None:
            raise ConnectionError("no broker")

    down = Lanes(lambda: Down({}))  # type: ignore[arg-type,return-value]
    await down.warm(["verdicts"])
    assert "producer not connected yet (ConnectionError: no broker)" in caplog.text


async def test_after_stop_a_batch_fails_instead_of_waiting_on_a_producer_never_started() -> None:
    from aiokafka.errors import ProducerClosed

    made: list[Producer] = []

    def make() -> Producer:
        made.append(Producer({"verdicts": 1}))
        return made[-1]

    lanes = Lanes(make)  # type: ignore[arg-type]
    assert await lanes.add("verdicts", 0, b"a", b"1") == 0
    await lanes.stop()
    with pytest.raises(ProducerClosed):
        await lanes.add("verdicts", 0, b"b", b"2")
    assert [p.started for p in made] == [1, 0], "no producer started after the stop"


async def test_flush_waits_until_every_batch_added_is_acknowledged() -> None:
    producer = Producer({"c": 2})
    producer.auto = False
    lanes = Lanes(lambda: producer)  # type: ignore[arg-type,return-value]
    acks = [lanes.add("c", p, b"k", b"v") for p in (0, 1)]
    flushed = asyncio.ensure_future(lanes.flush())
    for _ in range(10):
        await asyncio.sleep(0)
    assert len(producer.batches) == 2 and not flushed.done(), "waits for the broker"
    topic, partition, builder, fut = producer.batches[0]
    producer.settle(fut, topic, partition, builder)
    for _ in range(10):
        await asyncio.sleep(0)
    assert not flushed.done(), "one batch still unacknowledged"
    producer.fail = ConnectionError("broker down")
    topic, partition, builder, fut = producer.batches[1]
    producer.settle(fut, topic, partition, builder)
    await asyncio.wait_for(flushed, 5)  # acknowledged or failed: nothing on its way
    assert await acks[0] == 0 and isinstance((await settled(acks[1]))[0], ConnectionError)
    await asyncio.wait_for(lanes.flush(), 5)  # nothing added since: returns at once


# -- state: stores written per partition, changelog records in produce batches --------------


def memory_app(name: str) -> Any:
    import faust

    app = faust.App(
        name, store="memory://", autodiscover=False, Table=faust_compat.changelog_tracked_table()
    )
    return app


class PersistSpy:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, int]] = []

    def __call__(self, tp: Any, offset: int) -> None:
        self.calls.append((tp, offset))


async def test_a_batchs_state_is_written_once_and_its_changelog_batches_go_to_the_agent() -> None:
    app = memory_app("writer-test")
    ledger = app.Table("ledger", key_type=bytes, value_type=bytes, partitions=4)
    holds = app.Table("holds", key_type=bytes, value_type=bytes, partitions=4)
    app.finalize()
    ledger.data[b"gone"] = b"old"
    spy = PersistSpy()
    ledger.data.set_persisted_offset = spy  # type: ignore[method-assign]
    producer = Producer({})
    producer.auto = False
    sends = faust_compat.ChangelogSends()
    write = StateWriter(Lanes(lambda: producer), sends)  # type: ignore[arg-type,return-value]
    write(
        3,
        [
            (ledger, b"a", b"1"),
            (holds, b"a", b"h"),
            (ledger, b"b", b"2"),
            (ledger, b"a", b"1bis"),  # the last write of a key wins
            (ledger, b"gone", None),  # a delete: a tombstone
        ],
    )
    assert dict(ledger.data) == {b"a": b"1bis", b"b": b"2"}
    assert dict(holds.data) == {b"a": b"h"}
    sent = sends.take()
    assert len(sent) == 2 and not any(s.done() for s in sent)  # one per changelog batch
    for _ in range(5):
        await asyncio.sleep(0)
    assert {(t, p) for t, p, _, _ in producer.batches} == {
        ("writer-test-ledger-changelog", 3),
        ("writer-test-holds-changelog", 3),
    }
    records = {t: b.records for t, _, b, _ in producer.batches}
    assert records["writer-test-ledger-changelog"] == [
        (b"b", b"2"),
        (b"a", b"1bis"),
        (b"gone", None),
    ]
    assert spy.calls == []  # nothing acknowledged: the recovery offset does not move
    for topic, partition, builder, fut in producer.batches:
        producer.settle(fut, topic, partition, builder)
    assert sorted(await settled(*sent)) == [0, 2]  # the last offset of each batch
    ((tp, offset),) = spy.calls
    assert (tp.topic, tp.partition, offset) == ("writer-test-ledger-changelog", 3, 2)


async def test_a_failed_changelog_batch_fails_its_sends_and_moves_no_offset() -> None:
    app = memory_app("writer-fail-test")
    ledger = app.Table("ledger", key_type=bytes, value_type=bytes, partitions=2)
    app.finalize()
    spy = PersistSpy()
    ledger.data.set_persisted_offset = spy  # type: ignore[method-assign]
    producer = Producer({})
    producer.fail = ConnectionError("broker down")
    sends = faust_compat.ChangelogSends()
    StateWriter(Lanes(lambda: producer), sends)(1, [(ledger, b"a", b"1")])  # type: ignore[arg-type,return-value]
    (sent,) = sends.take()
    with pytest.raises(ConnectionError):
        await sent
    assert spy.calls == []


def _rocks_app(name: str, tmp_path: Any) -> Any:
    """A Faust app whose tables are RocksDB stores under ``tmp_path``, as the worker's."""
    import faust

    return faust.App(
        name,
        store="rocksdb://",
        datadir=str(tmp_path),
        autodiscover=False,
        Table=faust_compat.changelog_tracked_table(),
    )


def test_rocksdb_writes_land_in_the_partitions_database_and_the_offset_persists(
    tmp_path: Any,
) -> None:
    from faust.types import TP

    app = _rocks_app("rocks-writer-test", tmp_path)
    table = app.Table("ledger", key_type=bytes, value_type=bytes, partitions=3)
    app.finalize()
    store: Any = table.data
    store._db_for_partition(2).put(b"gone", b"old")
    faust_compat.write_store(table, 2, [(b"a", b"1"), (b"b", b"2"), (b"gone", None)])
    db = store._db_for_partition(2)
    assert db.get(b"a") == b"1" and db.get(b"b") == b"2" and db.get(b"gone") is None
    assert store._db_for_partition(1).get(b"a") is None  # not another partition's
    topic = faust_compat.changelog_topic_name(table)
    assert topic == "rocks-writer-test-ledger-changelog"
    faust_compat.set_persisted_offset(table, topic, 2, 41)
    assert table.persisted_offset(TP(topic, 2)) == 41
    assert table.persisted_offset(TP(topic, 1)) is None


def test_the_reader_reads_what_faust_reads_in_the_partitions_database_only(
    tmp_path: Any,
) -> None:
    app = _rocks_app("rocks-reader-test", tmp_path)
    ledger = app.Table("ledger", key_type=bytes, value_type=bytes, partitions=3)
    holds = app.Table("holds", key_type=bytes, value_type=bytes, partitions=3)
    app.finalize()
    faust_compat.write_store(ledger, 2, [(b"a", b"1"), (b"b", b"2")])
    faust_compat.write_store(holds, 2, [(b"a", b"h")])
    faust_compat.write_store(ledger, 1, [(b"a", b"other")])
    read = StateReader()
    assert read(ledger, 2, b"a") == b"1" and read(ledger, 2, b"b") == b"2"
    assert read(ledger, 1, b"a") == b"other" and read(ledger, 1, b"b") is None
    assert read(holds, 2, b"a") == b"h" and read(holds, 1, b"a") is None
    assert read(ledger, 0, b"a") is None
    # the same values as Faust's own read, in a partition's context
    for partition in (0, 1, 2):
        message = type("M", (), {"partition": partition, "topic": "t", "offset": 0})()
        with faust_compat.current_event(faust_compat.PartitionEvent(message)):
            for key in (b"a", b"b", b"c"):
                assert read(ledger, partition, key) == ledger.get(key)


def test_the_reader_reads_the_memory_store() -> None:
    app = memory_app("memory-reader-test")
    ledger = app.Table("ledger", key_type=bytes, value_type=bytes, partitions=2)
    app.finalize()
    read = StateReader()
    assert read(ledger, 1, b"a") is None
    faust_compat.write_store(ledger, 1, [(b"a", b"1")])
    assert read(ledger, 1, b"a") == b"1" == ledger.get(b"a")
