"""The Faust workarounds that need no broker, run on Faust's own code."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from consentinel.streams.worker import faust_compat
from faust.transport.producer import ProducerBuffer


class Buffer:
    """What ``ProducerBuffer.flush_atmost`` reads of its buffer, fed by a sender that sends
    one record every ``every_s`` (a full accumulator, a slow broker); Faust's own
    ``flush_atmost`` runs on it."""

    flush_atmost = ProducerBuffer.flush_atmost

    def __init__(self, records: int, every_s: float) -> None:
        self.size = records
        self.state = "running"
        self.message_sent = asyncio.Event()
        self._every_s = every_s
        self.sender = asyncio.ensure_future(self._send())

    async def _send(self) -> None:
        while self.size:
            await asyncio.sleep(self._every_s)
            self.size -= 1
            self.message_sent.set()


def _faust_flush(buffer: Any) -> Any:
    return ProducerBuffer.flush_atmost(buffer, None)  # Faust's ``flush``, unpatched


async def test_faust_flush_returns_with_records_still_in_the_buffer() -> None:
    buffer = Buffer(3, every_s=0.15)  # slower than Faust's 0.1 s wait
    await _faust_flush(buffer)
    assert buffer.size == 3  # the commit would go ahead with the changelog unsent
    buffer.sender.cancel()


# -- changelog records on their way: in neither Faust's buffer nor aiokafka's ----------------


class Channel:
    """A topic whose ``publish_message`` waits as aiokafka's ``send`` does when the
    partition's batch is full (``MessageAccumulator.add_message`` -> ``wait_drain``)."""

    def __init__(self) -> None:
        self.drained = asyncio.Event()
        self.taken = asyncio.Event()

    async def publish_message(self, fut: Any, wait: bool = False) -> Any:
        self.taken.set()
        await self.drained.wait()
        fut.set_result(None)
        return fut


async def test_faust_flush_returns_while_a_changelog_record_is_on_its_way() -> None:
    """Why batches wait for their changelog records themselves: the commit's flush sees an
    empty buffer while ``_handle_pending`` holds a record (even a flush that waited until
    the buffer is empty, the first fix, would return here)."""
    from faust.types.tuples import FutureMessage, PendingMessage

    buffer = ProducerBuffer()
    buffer.app = type("App", (), {"conf": type("Conf", (), {"producer_threaded": False})})()
    await buffer.start()
    try:
        channel = Channel()
        pending = PendingMessage(channel, b"k", b"v", 0, None, None, None, None, None, None)  # type: ignore[arg-type]
        fut = FutureMessage(pending)
        buffer.put(fut)
        await asyncio.wait_for(channel.taken.wait(), 5)
        await asyncio.wait_for(buffer.flush(), 5)  # returns: "nothing left to send"
        assert buffer.size == 0 and not fut.done()  # ... with the record not even queued
        channel.drained.set()
        await asyncio.wait_for(fut, 5)
    finally:
        await buffer.stop()


def tracked_app(name: str) -> Any:
    """A Faust app in memory whose tables are the worker's ``ChangelogTrackedTable``."""
    import faust

    return faust.App(
        name, store="memory://", autodiscover=False, Table=faust_compat.changelog_tracked_table()
    )


async def test_a_tracked_table_keeps_the_changelog_record_of_every_write_and_delete() -> None:
    app = tracked_app("tracked-test")
    table = app.Table("t", key_type=bytes, value_type=bytes, partitions=2)
    app.finalize()
    app.conf.producer_threaded = False
    sent_to: list[Any] = []
    app.producer.send_soon = sent_to.append  # type: ignore[method-assign]
    assert faust_compat.changelog_sends(app).take() == []

    class Message:
        topic = "source"
        partition = 1

    class Event:
        message = Message()

    app.consumer.topic_partitions = lambda topic: None  # type: ignore[method-assign]
    with faust_compat.current_event(Event()):
        table[b"a"] = b"1"
        table[b"b"] = b"2"
        del table[b"a"]
    sent = faust_compat.changelog_sends(app).take()
    assert len(sent) == 3 and sent == sent_to  # the FutureMessages handed to the producer
    assert [f.message.partition for f in sent] == [1, 1, 1]
    assert [f.message.value for f in sent] == [b"1", b"2", None]
    assert faust_compat.changelog_sends(app).take() == []  # taken once


class CountingStore(dict):  # type: ignore[type-arg]
    """A store that counts the reads of a key (``key in store``, ``store[key]``)."""

    reads = 0

    def __getitem__(self, key: Any) -> Any:
        self.reads += 1
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.reads += 1
        return super().__contains__(key)


def test_a_tracked_table_reads_the_store_once_per_lookup() -> None:
    """Faust's ``Table.__getitem__`` asks the store ``key in data`` then ``data[key]``: two
    RocksDB reads for each state the checker loads."""
    app = tracked_app("reads-test")
    table = app.Table("t", key_type=bytes, value_type=bytes, partitions=1)
    store = CountingStore({b"a": b"1"})
    table._data = store
    assert table.get(b"a") == b"1" and store.reads == 1
    assert table.get(b"zz") is None and store.reads == 2
    assert table.get(b"zz", b"-") == b"-"
    sent: list[Any] = []
    table.on_key_del = sent.append  # type: ignore[method-assign]  # sends the tombstone
    store.reads = 0
    assert table.pop(b"zz", None) is None and sent == []  # nothing to delete: no tombstone
    assert table.pop(b"a", None) == b"1" and b"a" not in dict(store)
    assert store.reads == 2 and sent == [b"a"]  # one read each; the tombstone sent
    with pytest.raises(KeyError):
        table.pop(b"a")


def test_the_lean_monitor_skips_the_per_operation_sensors_and_keeps_the_rest() -> None:
    """Faust's sensors of each table operation and stream event cost ~5 % of the worker's
    CPU at the ledger build (py-spy); nothing reads them."""
    from faust.sensors.prometheus import FaustMetrics
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    monitor = faust_compat.lean_prometheus_monitor(FaustMetrics.create(registry, "t"))

    def sample(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, labels) or 0.0

    class Table:
        name = "ledger"

    monitor.on_table_set(Table(), b"k", b"v")
    monitor.on_table_get(Table(), b"k")
    monitor.on_table_del(Table(), b"k")
    assert not [s for m in registry.collect() if "table_operations" in m.name for s in m.samples]
    state = monitor.on_stream_event_in(None, 0, object(), object())
    monitor.on_stream_event_out(None, 0, object(), object(), state)
    assert sample("t_total_events_total") == 1.0
    assert sample("t_total_active_events") == 0.0
    monitor.on_rebalance_start(type("App", (), {"rebalancing_count": 0})())  # kept, as Faust's
    assert sample("t_total_rebalances") == 1.0


def test_the_lean_monitor_counts_messages_in_as_faust_does() -> None:
    """Its ``on_message_in`` caches the children of a topic partition: the samples are
    those of Faust's own sensor, record after record, across topics and partitions."""
    from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
    from faust.types import TP
    from prometheus_client import CollectorRegistry

    def samples(monitor_of: Any) -> tuple[dict[tuple[str, tuple[Any, ...]], float], Any]:
        registry = CollectorRegistry()
        monitor = monitor_of(FaustMetrics.create(registry, "t"))
        messages = []
        for tp, offset in [(TP("a", 0), 5), (TP("a", 1), 9), (TP("a", 0), 6), (TP("b", 0), 1)]:
            message = type("Message", (), {})()
            monitor.track_tp_end_offset(tp, offset + 100)
            monitor.on_message_in(tp, offset, message)
            messages.append(message)
        got = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for m in registry.collect()
            if "message" in m.name or "end_offset" in m.name
            for s in m.samples
            if not s.name.endswith("_created")
        }
        state = (monitor.messages_received_total, dict(monitor.tp_read_offsets))
        return got, (*state, dict(monitor.tp_end_offsets), messages)

    lean, lean_state = samples(faust_compat.lean_prometheus_monitor)
    faust, faust_state = samples(lambda metrics: PrometheusMonitor(metrics=metrics))
    assert lean == faust
    a0 = (("partition", "0"), ("topic", "a"))
    partition_a0 = ("t_messages_received_per_topics_partition", a0)
    assert lean[partition_a0] == 6
    assert lean[("t_messages_received_per_topic_total", (("topic", "a"),))] == 3
    assert lean[("t_topic_partition_end_offset", a0)] == 106
    assert lean_state[:2] == faust_state[:2] == (4, {TP("a", 0): 6, TP("a", 1): 9, TP("b", 0): 1})
    assert lean_state[2] == faust_state[2] == {TP("a", 0): 106, TP("a", 1): 109, TP("b", 0): 101}
    assert all(hasattr(m, "time_in") for m in lean_state[3])


def _filtered_share(db: Any) -> tuple[int, int]:
    """(keys in the store's table files, keys a Bloom filter holds) from RocksDB's own
    aggregated table properties."""
    props = dict(
        part.strip().rsplit("=", 1)
        for part in db.property_value("rocksdb.aggregated-table-properties").split(";")
        if "=" in part
    )
    return int(props["# entries"]), int(props["# entries for filter"])


def test_a_store_opened_again_keeps_its_block_cache_and_bloom_filter(tmp_path: Any) -> None:
    from pathlib import Path

    from consentinel.streams.worker.app import ROCKSDB_OPTIONS
    from faust.stores.rocksdb import RocksDBOptions

    faust_compat.keep_store_options()
    wanted = ROCKSDB_OPTIONS["ledger"]["block_cache_size"]
    path = Path(tmp_path) / "ledger-0.db"
    for n in range(3):  # made, then opened again twice (a worker restarted)
        db = RocksDBOptions(**ROCKSDB_OPTIONS["ledger"]).open(path)
        try:
            assert db.property_int_value("rocksdb.block-cache-capacity") == wanted
            db[b"subject-%d" % n] = b"{}"
            db.flush()  # one table file per open, written with that open's options
            assert _filtered_share(db) == (n + 1, n + 1)
        finally:
            db.close()


def test_a_prefix_scan_of_a_rocksdb_store_reads_only_the_keys_of_the_prefix(
    tmp_path: Any,
) -> None:
    """The first tick and the first list expansion of a partition list the ledger's
    waiting legs (``f:``) and memberships (``m:``): among a million histories, read in key
    order from the prefix's first key, not a scan of the whole database."""
    from pathlib import Path

    from consentinel.streams.worker.app import ROCKSDB_OPTIONS
    from faust.stores.rocksdb import RocksDBOptions
    from faust.stores.rocksdb import Store as RocksDB

    db = RocksDBOptions(**ROCKSDB_OPTIONS["ledger"]).open(Path(tmp_path) / "ledger-0.db")
    subjects = [f"{i:064x}".encode() for i in range(0, 2000, 7)]
    for key in subjects:
        db[key] = b"history"
    for key in subjects[:3]:
        db[b"m:" + key] = b"member"
        db[b"f:" + key[-8:]] = b"legs"
    db[RocksDB.offset_key] = b"42"
    read: list[bytes] = []

    class Counted:  # the database, counting the pairs its iterators hand out
        def items(self, **kwargs: Any) -> Any:
            for key, value in db.items(**kwargs):
                read.append(key)
                yield key, value

    class Store:
        offset_key = RocksDB.offset_key

        def _db_for_partition(self, partition: int) -> Any:
            assert partition == 0
            return Counted()

    class Table:
        data = Store()

    scan = faust_compat.scanner(6)
    try:
        assert dict(scan(Table(), 0, b"f:")) == {b"f:" + k[-8:]: b"legs" for k in subjects[:3]}
        assert len(read) == 4  # the three legs, and the first key past them
        read.clear()
        assert dict(scan(Table(), 0, b"m:")) == {b"m:" + k: b"member" for k in subjects[:3]}
        assert len(read) <= 4
        read.clear()
        everything = dict(scan(Table(), 0, b""))
        assert RocksDB.offset_key not in everything  # Faust's, not a table key
        assert len(everything) == len(subjects) + 6
        assert dict(scan(Table(), 0, b"x:")) == {}  # past every key
    finally:
        db.close()


def test_a_prefix_scan_of_a_python_rocksdb_store_filters_faust_s_own_listing() -> None:
    """Faust can also run on python-rocksdb (not installed here), whose iterators take no
    start key: its own listing (``_visible_items``, without the offset key), filtered."""
    listed = {b"f:a": b"legs", b"m:b": b"member", b"c" * 64: b"history"}

    class Store:
        use_rocksdict = False

        def _db_for_partition(self, partition: int) -> Any:
            return listed

        def _visible_items(self, db: Any) -> Any:
            return iter(db.items())

    class Table:
        data = Store()

    scan = faust_compat.scanner(6)
    assert dict(scan(Table(), 0, b"f:")) == {b"f:a": b"legs"}
    assert dict(scan(Table(), 0, b"")) == listed


def test_the_lean_monitor_hears_a_batch_of_messages_as_faust_hears_each() -> None:
    """``on_messages_in`` / ``on_messages_out`` of one topic partition's records (the
    intake's, once per batch): the samples and the in-memory statistics of Faust's own
    ``PrometheusMonitor`` told of each record in turn."""
    from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
    from faust.types import TP
    from prometheus_client import CollectorRegistry

    batches = [(TP("a", 0), [5, 6, 7]), (TP("b", 1), [1]), (TP("a", 0), [8, 9])]

    def run(monitor_of: Any, batched: bool) -> tuple[Any, ...]:
        registry = CollectorRegistry()
        monitor = monitor_of(FaustMetrics.create(registry, "t"))
        seen = []
        for tp, offsets in batches:
            messages = [type("Message", (), {"offset": o, "tp": tp})() for o in offsets]
            if batched:
                monitor.on_messages_in(tp, messages)
            else:
                for m in messages:
                    monitor.on_message_in(tp, m.offset, m)
            seen.append((tp, messages))
        for tp, messages in seen[:2]:  # the last batch stays in flight
            if batched:
                monitor.on_messages_out(tp, messages)
            else:
                for m in messages:
                    monitor.on_message_out(tp, m.offset, m)
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for m in registry.collect()
            if "message" in m.name
            for s in m.samples
            if not s.name.endswith("_created")
        }
        state = (
            monitor.messages_received_total,
            monitor.messages_active,
            dict(monitor.messages_received_by_topic),
            dict(monitor.tp_read_offsets),
        )
        timed = [
            (hasattr(m, "time_in"), getattr(m, "time_total", None) is not None)
            for _, ms in seen
            for m in ms
        ]
        return samples, state, timed

    lean = run(faust_compat.lean_prometheus_monitor, batched=True)
    faust = run(lambda metrics: PrometheusMonitor(metrics=metrics), batched=False)
    assert lean == faust
    samples, state, timed = lean
    assert samples[("t_active_messages", ())] == 2.0  # the batch still in flight
    assert state == (6, 2, {"a": 5, "b": 1}, {TP("a", 0): 9, TP("b", 1): 1})
    assert timed == [(True, True)] * 4 + [(True, False)] * 2


async def test_faust_s_recovery_starts_where_the_batched_restore_stopped() -> None:
    """The restore runs inside Faust's ``Recovery._build_offsets`` for the active
    partitions: it reads from the offset the store holds up to the highwater, its records
    reach the table's store, and Faust's recovery then reads only what it left."""
    import faust
    from faust.types import TP

    app = faust.App("restore-hook", store="memory://", autodiscover=False)
    table = app.Table("t", key_type=bytes, value_type=bytes, partitions=3)
    app.finalize()
    recovery = app.tables.recovery
    topic = "restore-hook-t-changelog"
    tp0, tp1, tp2 = TP(topic, 0), TP(topic, 1), TP(topic, 2)
    plans: list[list[Any]] = []
    budgets: list[float | None] = []

    async def restore(plan: Any, budget_s: float | None) -> dict[tuple[str, int], int]:
        plans.append(list(plan))
        budgets.append(budget_s)
        by_partition = {r.partition: r for r in plan}
        by_partition[0].apply([(b"a", b"1"), (b"b", b"2"), (b"a", None)], 9)
        return {(r.topic, r.partition): (10 if r.partition == 0 else r.start) for r in plan}

    class Consumer:
        async def earliest_offsets(self, *tps: Any) -> dict[Any, int]:
            return {tp0: 0, tp1: 5, tp2: 0}  # compaction removed offsets 0..4 of partition 1

    faust_compat.restore_changelogs_in_batches(app, restore)
    for tp in (tp0, tp1, tp2):
        recovery.tp_to_table[tp] = table
    recovery.active_highwaters.update({tp0: 9, tp1: 7, tp2: -1})  # tp2: an empty changelog
    offsets: Any = {tp0: 3, tp1: None, tp2: None}  # what the stores hold

    await recovery._build_offsets(Consumer(), {tp0, tp1, tp2}, offsets, "active")

    (plan,) = plans
    starts = {r.partition: (r.start, r.end, r.table) for r in plan}
    assert starts == {0: (4, 10, "t"), 1: (5, 8, "t"), 2: (0, 0, "t")}
    assert offsets == {tp0: 9, tp1: 4, tp2: -1}  # Faust reads 5..7 of partition 1 itself
    assert dict(table.data.data) == {b"b": b"2"}
    # Faust's recovery heard of the records written: no "No event received" warning
    assert set(recovery._active_events_received_at) == {tp0}
    assert recovery._last_flush_at is not None

    assert budgets == [app.conf.broker_request_timeout * 0.75]  # called outside _wait

    await recovery._build_offsets(Consumer(), {tp0}, {tp0: 3}, "standby")
    assert len(plans) == 1  # standby partitions are Faust's


async def test_faust_s_step_limit_is_lifted_for_the_restore_and_kept_for_the_rest() -> None:
    """Faust runs each recovery step under ``Recovery._wait(..., timeout=...)``, and past the
    limit its recovery ends for good. The step that restores may run as long as the restore
    makes progress (it has no budget then); every other step keeps the limit."""
    import faust
    from faust.types import TP

    app = faust.App("restore-wait", store="memory://", autodiscover=False)
    table = app.Table("t", key_type=bytes, value_type=bytes, partitions=1)
    app.finalize()
    recovery = app.tables.recovery
    tp = TP("restore-wait-t-changelog", 0)
    budgets: list[float | None] = []

    async def slow_restore(plan: Any, budget_s: float | None) -> dict[tuple[str, int], int]:
        budgets.append(budget_s)
        await asyncio.sleep(0.3)  # longer than the step's limit below
        return {}

    class Consumer:
        async def earliest_offsets(self, *tps: Any) -> dict[Any, int]:
            return {tp: 0}

    faust_compat.restore_changelogs_in_batches(app, slow_restore)
    recovery.tp_to_table[tp] = table
    recovery.active_highwaters[tp] = 99
    step = recovery._build_offsets(Consumer(), {tp}, {tp: None}, "active")
    await recovery._wait(step, timeout=0.05)  # no ServiceStopped: the limit was lifted
    assert budgets == [None]

    from faust.tables.recovery import ServiceStopped

    with pytest.raises(ServiceStopped):  # any other step: Faust's limit
        await recovery._wait(asyncio.sleep(0.3), timeout=0.05)
