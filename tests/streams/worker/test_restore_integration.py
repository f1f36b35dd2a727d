"""The batched changelog restore against the real broker: every record of the range asked
for, in offset order per partition, one apply per fetch, and the offset reached."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from consentinel.streams.worker.restore import ChangelogRestorer, Restore
from kafka import KafkaProducer

pytestmark = pytest.mark.integration


def _changelog(kafka_bootstrap: str, topic: str) -> dict[int, list[tuple[bytes, bytes | None]]]:
    """Three partitions of keys written, overwritten and deleted, as a table writes them."""
    from consentinel.streams import topics_admin
    from kafka.admin import NewTopic

    admin = topics_admin.admin_client(kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        admin.close()
    written: dict[int, list[tuple[bytes, bytes | None]]] = {0: [], 1: [], 2: []}
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for i in range(3000):
        partition = i % 2  # partition 2 stays empty
        key = b"k%d" % (i % 250)
        value = None if i % 7 == 0 else b"v%d" % i
        producer.send(topic, key=key, value=value, partition=partition)
        written[partition].append((key, value))
    producer.flush()
    producer.close()
    return written


class Store:
    """One partition's store as the restore writes it: its state, and each offset recorded."""

    def __init__(self, items: Sequence[tuple[bytes, bytes | None]] = ()) -> None:
        self.state: dict[bytes, bytes] = {}
        self.offsets: list[int] = []
        self.write(items)

    def write(self, items: Sequence[tuple[bytes, bytes | None]]) -> None:
        for key, value in items:
            if value is None:
                self.state.pop(key, None)
            else:
                self.state[key] = value

    def apply(self, items: list[tuple[bytes, bytes | None]], last: int) -> None:
        self.write(items)
        self.offsets.append(last)


def _state(items: list[tuple[bytes, bytes | None]]) -> dict[bytes, bytes]:
    return Store(items).state


def test_a_restore_applies_each_partition_in_order_and_says_where_it_stopped(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}.t-changelog"
    written = _changelog(kafka_bootstrap, topic)
    # partition 1: the store already holds offsets 0..999, and only up to 1199 is asked
    stores = {0: Store(), 1: Store(written[1][:1000]), 2: Store()}
    counted: list[tuple[str, int]] = []
    restorer = ChangelogRestorer(kafka_bootstrap, on_restored=lambda t, n: counted.append((t, n)))
    plan = [
        Restore("t", topic, 0, 0, 1500, stores[0].apply),
        Restore("t", topic, 1, 1000, 1200, stores[1].apply),
        Restore("t", topic, 2, 0, 0, stores[2].apply),  # an empty changelog: nothing to read
    ]
    reached = asyncio.run(restorer.restore(plan, budget_s=60))

    assert reached == {(topic, 0): 1500, (topic, 1): 1200, (topic, 2): 0}
    assert stores[0].state == _state(written[0])
    assert stores[1].state == _state(written[1][:1200])
    assert stores[2].state == {}
    assert stores[0].offsets[-1] == 1499 and stores[1].offsets[-1] == 1199
    assert stores[2].offsets == []
    for store in stores.values():
        assert store.offsets == sorted(store.offsets)  # the offset reached only moves forward
    assert sum(n for _, n in counted) == 1500 + 200
    assert {t for t, _ in counted} == {"t"}


def test_a_restore_that_gets_no_more_records_stops_and_says_where(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """A partition whose end was planned past what the broker serves (a broker that
    stopped answering looks the same): the restore applies what came, then stops after
    ``stall_s`` without a record instead of waiting for ever; Faust reads the rest."""
    topic = f"{topic_prefix}.s-changelog"
    written = _changelog(kafka_bootstrap, topic)
    store = Store()
    restorer = ChangelogRestorer(kafka_bootstrap)
    plan = [Restore("s", topic, 0, 0, 10_000, store.apply)]
    reached = asyncio.run(restorer.restore(plan, budget_s=None, stall_s=2))
    assert reached == {(topic, 0): 1500}
    assert store.offsets[-1] == 1499
    assert store.state == _state(written[0])


def test_a_restore_out_of_time_reads_nothing_more_and_says_so(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}.u-changelog"
    _changelog(kafka_bootstrap, topic)
    applied: list[int] = []
    restorer = ChangelogRestorer(kafka_bootstrap)
    plan = [Restore("u", topic, 0, 100, 1500, lambda items, last: applied.append(last))]
    reached = asyncio.run(restorer.restore(plan, budget_s=0))
    assert reached == {(topic, 0): 100}  # Faust's own recovery reads 100.. from here
    assert applied == []


def test_a_restore_cancelled_by_a_new_rebalance_leaves_a_store_that_resumes(
    kafka_bootstrap: str, topic_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Faust cancels the restoring step when another rebalance starts. The store then holds
    its changelog up to the offset it recorded (each fetch is written before its offset),
    and the next restore, from there, ends with the state of the whole changelog."""
    from consentinel.streams.worker import restore

    monkeypatch.setattr(restore, "FETCH_RECORDS", 100)  # many fetches for 1,500 records
    topic = f"{topic_prefix}.c-changelog"
    written = _changelog(kafka_bootstrap, topic)
    store = Store()

    def apply(items: list[tuple[bytes, bytes | None]], last: int) -> None:
        store.apply(items, last)
        if len(store.offsets) == 1:  # what Faust's _wait does when a rebalance starts
            task = asyncio.current_task()
            assert task is not None
            task.cancel()

    async def cancelled_then_resumed() -> dict[tuple[str, int], int]:
        restorer = ChangelogRestorer(kafka_bootstrap)
        plan = [Restore("c", topic, 0, 0, 1500, apply)]
        task = asyncio.ensure_future(restorer.restore(plan, budget_s=None))
        with pytest.raises(asyncio.CancelledError):
            await task  # cancelled at its next wait after the first fetch written
        (held,) = store.offsets
        assert 0 <= held < 1499, "cancelled after a first fetch, before the end"
        assert store.state == _state(written[0][: held + 1]), "the store holds exactly 0..held"
        again = [Restore("c", topic, 0, held + 1, 1500, apply)]
        return await ChangelogRestorer(kafka_bootstrap).restore(again, budget_s=None)

    reached = asyncio.run(cancelled_then_resumed())
    assert reached == {(topic, 0): 1500}
    assert store.state == _state(written[0])
    assert store.offsets[-1] == 1499


def test_a_cancellation_that_reaches_the_consumer_s_stop_is_not_swallowed(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    """Cancelled as it writes the last fetch, the restore next waits in aiokafka's
    ``stop``, which swallows the cancellation: the restore raises it all the same, so Faust
    never takes a cancelled step for a finished one."""
    topic = f"{topic_prefix}.d-changelog"
    _changelog(kafka_bootstrap, topic)

    def apply(items: list[tuple[bytes, bytes | None]], last: int) -> None:
        if last == 1499:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()

    async def restore() -> Any:
        plan = [Restore("d", topic, 0, 0, 1500, apply)]
        return await ChangelogRestorer(kafka_bootstrap).restore(plan, budget_s=None)

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(restore())
