"""Every use of Faust's private API, in one place: workarounds for faust-streaming 0.15.x
bugs that lose records (each says what and why), and the private names the batched agent
needs. Pinned to faust-streaming 0.15.3 (constraints.txt); re-check each against the
source named in its docstring before upgrading.

Uncommitted partitions after a restart (found by the SIGKILL test, 2026-11)
-------------------------------------------------------------------------
After recovery, Faust resumes the stream partitions, then seeks them to their committed
offsets, then resumes flow control, which CLEARS every stream queue
(``tables/recovery.py::on_recovery_completed``). Records fetched between the resume and
the clear are dropped; for a partition with a committed offset the seek makes the
consumer fetch them again, but aiokafka's ``seek_to_committed`` does not seek a
partition that has no committed offset (or offset 0), so its position stays after the
dropped records and they are never processed, and their offsets get committed. That is
exactly a worker killed before its first commit, or a partition that had records but no
commit yet. The fix: after Faust's seek, seek such partitions of our source topics to
their beginning (what ``auto_offset_reset=earliest`` meant), so they are fetched again.

Offsets committed before the changelog (found by the differential test, 2026-12)
-----------------------------------------------------------------------------------
Before committing offsets, Faust flushes its producer (``Consumer.commit`` ->
``producer.flush``), so that the changelog records of the table writes are acknowledged
first. But ``ProducerBuffer.flush`` (``faust/transport/producer.py``) returns as soon as no
record left its buffer for 0.1 s, with records still in it: under load (the accumulator
full, a slow broker) the offsets were committed while the state they depend on was still
in memory, and a worker killed then lost that state for good. A flush that waited until the
buffer was empty was the first fix; it still missed the records below, and with a larger
buffer (``changelog_buffer``) a buffer that a busy stream keeps filling made commits wait
for tens of seconds. Superseded by ``ChangelogTrackedTable``: a record is acknowledged
only once the changelog records of its state are, so whatever Faust's flush does, the
offsets it commits never run ahead of the state.

Changelog records in neither the buffer nor the producer (found reading the sources, 2026-12)
-----------------------------------------------------------------------------------------------
Even an empty buffer does not mean the changelog is sent. ``ProducerBuffer._handle_pending``
takes a record OUT of its queue, then awaits ``publish_message``, whose aiokafka ``send``
waits in ``MessageAccumulator.add_message`` while the partition's batch is full
(``wait_drain``); and ``AIOKafkaProducer.flush`` only waits for the batches that exist when
it is called. So Faust's pre-commit flush can return while a changelog record is in neither
place; the offsets are committed, and a SIGKILL then loses that state for good (wrong
verdicts after the table is restored). And a changelog send that fails is only logged
(``Topic._on_published``). ``ChangelogTrackedTable`` keeps the ``FutureMessage`` of every
changelog record it sends (``ChangelogSends``): the agent acknowledges a batch's records only
once the changelog records of its state are acknowledged by Kafka, and never if one failed
(the records are then read again after a restart).

State written in batches (2026-12)
----------------------------------
The worker no longer writes its tables through Faust's per-record path at all: a batch's
state goes to the store at once (``write_store``) and its changelog records in produce
batches (``worker.batches.StateWriter``), whose acknowledgements go to the same
``ChangelogSends``; the persisted changelog offset is set once per produce batch
acknowledged (``set_persisted_offset``). ``ChangelogTrackedTable`` still covers any write
made through the table itself.

Changelogs restored in batches (2026-12)
----------------------------------------
Faust restores a table from its changelog one record at a time, through its conductor and
``Recovery._slurp_changelogs``: 6,589 records a second on a 1e6-subject ledger, six minutes
before a worker that joined the group judged anything. ``restore_changelogs_in_batches``
runs the worker's own restore (``worker.restore``) inside Faust's recovery step that plans
the offsets, and lifts that step's time limit for it; Faust then reads only what is left.
"""

from __future__ import annotations

import gc
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from weakref import WeakKeyDictionary

from consentinel.streams.worker.restore import Restore

log = logging.getLogger("consentinel.worker")

_SOURCES: WeakKeyDictionary[Any, frozenset[str]] = WeakKeyDictionary()
Sought = Callable[[str, int, "int | None"], None]

_ON_SOUGHT: WeakKeyDictionary[Any, Sought] = WeakKeyDictionary()
_MARK = "_consentinel_seeks_uncommitted"


def seek_uncommitted_to_beginning(
    app: Any, topics: Iterable[str], on_sought: Sought | None = None
) -> None:
    """Install the fix for ``app``, whose agents read ``topics``. ``on_sought(topic,
    partition, offset)`` is told where every seek put each source partition: the committed
    offset the broker returned, or None for one read from its beginning."""
    from faust.transport.drivers.aiokafka import Consumer

    _SOURCES[app] = frozenset(topics)
    if on_sought is not None:
        _ON_SOUGHT[app] = on_sought
    if getattr(Consumer.seek_to_committed, _MARK, False):
        return
    original = Consumer.seek_to_committed

    async def seek_to_committed(self: Any) -> Any:
        committed = await original(self)
        sources = _SOURCES.get(self.app, frozenset())
        # where each source partition now reads from: its committed offset, or None for
        # one with none (aiokafka did not seek it; it is read from its beginning)
        positions = {
            tp: offset if offset is not None and offset > 0 else None
            for tp, offset in committed.items()
            if tp.topic in sources
        }
        fresh = [tp for tp, position in positions.items() if position is None]
        if fresh:
            log.info(
                "no committed offset yet for %d source partition(s): reading them from the "
                "beginning",
                len(fresh),
            )
            await self._thread.seek_to_beginning(*fresh)
        _note_seek(self, positions)
        return committed

    setattr(seek_to_committed, _MARK, True)
    Consumer.seek_to_committed = seek_to_committed  # type: ignore[method-assign]


def _note_seek(consumer: Any, positions: dict[Any, int | None]) -> None:
    """Tell the app where its source partitions were sought, and make Faust's own record
    of the committed offsets (``Consumer._committed_offset``) the broker's: Faust keeps the
    offsets of a commit that failed ("already rebalanced"), and ignores the acks of records
    below it, so a partition the broker says is uncommitted would never be committed."""
    from faust.types import TP

    on_sought = _ON_SOUGHT.get(consumer.app)
    offsets = getattr(consumer, "_committed_offset", None)
    for tp, position in positions.items():
        if offsets is not None and position is None:
            offsets[TP(tp.topic, tp.partition)] = None
        if on_sought is not None:
            on_sought(tp.topic, tp.partition, position)


class ChangelogSends:
    """The changelog records sent by table writes and not yet taken by a batch: each a
    ``FutureMessage`` (an asyncio future) that Faust resolves once Kafka acknowledged the
    record, or fails with the send's error. Blocks on nothing."""

    __slots__ = ("_sent",)

    def __init__(self) -> None:
        self._sent: list[Any] = []

    def add(self, sent: Any) -> None:
        self._sent.append(sent)

    def take(self) -> list[Any]:
        """Every record sent since the last ``take``, and forget them."""
        sent, self._sent = self._sent, []
        return sent


_CHANGELOG_SENDS: WeakKeyDictionary[Any, ChangelogSends] = WeakKeyDictionary()


def changelog_sends(app: Any) -> ChangelogSends:
    """The changelog records sent by ``app``'s tables (``ChangelogTrackedTable``)."""
    sends = _CHANGELOG_SENDS.get(app)
    if sends is None:
        sends = _CHANGELOG_SENDS[app] = ChangelogSends()
    return sends


_tracked_table: type | None = None


def changelog_tracked_table() -> type:
    """Faust's ``Table`` (``faust/tables/table.py``) whose changelog sends are kept in
    ``changelog_sends(app)``: pass it as ``faust.App(Table=...)``. Every write and delete
    goes through ``Collection.send_changelog`` (``faust/tables/base.py``). Its ``get`` and
    ``pop`` read the store once (Faust's read a present key twice)."""
    global _tracked_table
    if _tracked_table is None:
        from faust.tables.table import Table

        class ChangelogTrackedTable(Table[Any, Any]):
            def send_changelog(self, *args: Any, **kwargs: Any) -> Any:
                sent = super().send_changelog(*args, **kwargs)
                changelog_sends(self.app).add(sent)
                return sent

            # One store read per lookup: Faust's ``Table.__getitem__`` (mode's
            # ``FastUserDict``, because Table has ``__missing__``) asks the store
            # ``key in data`` and then ``data[key]``: two RocksDB gets for a key present.

            def get(self, key: Any, default: Any = None) -> Any:
                if self.default is not None:  # ``__missing__`` makes a value: Faust's way
                    return super().get(key, default)
                self.on_key_get(key)
                try:
                    return self.data[key]
                except KeyError:
                    return default

            def pop(self, key: Any, *default: Any) -> Any:
                if self.default is not None:
                    return super().pop(key, *default)
                try:
                    value = self.data[key]
                except KeyError:
                    if default:
                        return default[0]
                    raise
                del self[key]  # the changelog tombstone, as Faust's ``pop`` sends it
                return value

        _tracked_table = ChangelogTrackedTable
    return _tracked_table


def changelog_buffer(app: Any, max_messages: int) -> None:
    """Let ``app``'s producer buffer hold ``max_messages`` records before the conductor
    waits. Faust's default (``ProducerBuffer.max_messages = 100``, faust/transport/producer.py)
    makes the conductor, on EVERY record it hands to a stream, wait in ``wait_until_ebb``
    -> ``flush_atmost(100)`` while more than 100 changelog records are queued: a batch of a
    thousand records writes a thousand or more, so the next records waited for them to be
    sent, one 100-record flush (or 0.1 s without progress) at a time. The buffer is only a
    queue in front of aiokafka's; each batch waits for its own records
    (``ChangelogTrackedTable``). Creates the producer object (it connects only when the
    app starts)."""
    app.producer.buffer.max_messages = max_messages


_FETCH_WAIT: WeakKeyDictionary[Any, int] = WeakKeyDictionary()
_FETCH_WAIT_MARK = "_consentinel_fetch_max_wait"


def fetch_max_wait(app: Any, ms: int) -> None:
    """Let the broker hold ``app``'s consumer fetches at most ``ms`` ms when there is no
    data, instead of the 1,500 ms that Faust hard-codes (``AIOKafkaConsumerThread.
    _create_worker_consumer``, faust/transport/drivers/aiokafka.py). It is a latency, not a
    wait for nothing: aiokafka keeps one fetch in flight per broker, and a partition whose
    fetched records are not consumed yet is left out of it (``Fetcher._get_actions_per_node``,
    aiokafka/consumer/fetcher.py); once they are, the partition is fetched again only when
    the fetch in flight returns. That fetch has only the partitions that had nothing, so the
    broker holds it the whole wait: the next records of a busy partition waited up to 1.5 s
    (a take every 1.5-1.8 s at 1,000 uses/s, p50 1.1-1.4 s; bench, 2026-12). Set on the
    aiokafka consumer Faust creates, before it starts (the fetcher reads it at start)."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    _FETCH_WAIT[app] = ms
    create = AIOKafkaConsumerThread._create_worker_consumer
    if getattr(create, _FETCH_WAIT_MARK, False):
        return

    def create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = create(self, transport)
        wait = _FETCH_WAIT.get(self.app)
        if wait is not None:
            consumer._fetch_max_wait_ms = wait
        return consumer

    setattr(create_worker_consumer, _FETCH_WAIT_MARK, True)
    AIOKafkaConsumerThread._create_worker_consumer = create_worker_consumer  # type: ignore[method-assign]


_STORE_OPTIONS_MARK = "_consentinel_keeps_store_options"


def keep_store_options() -> None:
    """Faust's RocksDB stores keep their table options when they are opened again.

    ``RocksDBOptions.open`` (faust/stores/rocksdb.py) passes rocksdict the database options
    only. A database that already exists then has its column families opened with the
    options of its OPTIONS file, which cannot hold a block cache or a Bloom filter: every
    store opened a second time, that is after any restart that kept the stores, ran with
    RocksDB's defaults, an 8 MiB block cache and no filter. Found in a ledger store's LOG
    (2026-12): first open 16 MiB and ``bloomfilter``, every later open 8 MiB and
    ``nullptr``. The bench's drain worker opens the ledger its build worker made, so it
    measured those defaults, not the options set here. The same options are now given for
    the default column family too (the only one Faust uses), so they hold at every open.
    Patched once per process; python-rocksdb stores are left to Faust.
    """
    from faust.stores import rocksdb as faust_rocksdb

    module: Any = faust_rocksdb  # its ``rocksdict`` and ``DB`` are what it imported
    options_cls = faust_rocksdb.RocksDBOptions
    original = options_cls.open
    if getattr(original, _STORE_OPTIONS_MARK, False):
        return

    def open_(self: Any, path: Any, *, read_only: bool = False) -> Any:
        rocksdict = module.rocksdict
        if not self.use_rocksdict or rocksdict is None:  # pragma: no cover - not installed
            return original(self, path, read_only=read_only)
        options = self.as_options()
        access = (
            rocksdict.AccessType.read_write()
            if self.ttl is None
            else rocksdict.AccessType.with_ttl(self.ttl)
        )
        db = module.DB(
            str(path), options=options, column_families={"default": options}, access_type=access
        )
        db.set_read_options(rocksdict.ReadOptions())
        return db

    setattr(open_, _STORE_OPTIONS_MARK, True)
    options_cls.open = open_  # type: ignore[method-assign]


def lean_prometheus_monitor(faust_metrics: Any) -> Any:
    """Faust's ``PrometheusMonitor`` (faust/sensors/prometheus.py) without its sensors of
    every table operation and of every stream event's way through the stream: each looks
    up a labelled child (``labels()``) and updates Faust's own in-memory statistics, per
    record and per table read or write. At the consent-ledger build they were ~5 % of the
    worker's CPU (py-spy, 2026-12; all of Faust's sensors ~9 %), and no dashboard or rule
    reads them. Kept: messages in and out, sends, commits, rebalances, offsets (lag), and
    the total of stream events. Messages in (``on_message_in``) and end offsets
    (``track_tp_end_offset``), each called once per record, update the same metrics as
    Faust's, through children looked up once per topic partition, not ``labels()`` per
    record (three of them: ~5 % of the CPU at the ledger build, py-spy, 2026-12).
    ``on_messages_in`` and ``on_messages_out`` do for the records of one topic partition at
    once what ``on_message_in`` and ``on_message_out`` do for each (``BatchIntake`` calls
    them once per partition batch): Faust's per-record sensor calls, four locked metric
    updates each, were 4.2 % of the worker's Python time at the ledger build (py-spy,
    2026-12)."""
    from faust.sensors.monitor import Monitor
    from faust.sensors.prometheus import PrometheusMonitor

    class LeanPrometheusMonitor(PrometheusMonitor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            #: (metric, topic partition) -> its child (``Service`` has a ``_children`` of its own)
            self._labelled: dict[tuple[int, Any], Any] = {}

        def _child(self, metric: Any, tp: Any, **labels: Any) -> Any:
            """``metric``'s child for the topic partition ``tp``, looked up once."""
            key = (id(metric), tp)
            child = self._labelled.get(key)
            if child is None:
                child = self._labelled[key] = metric.labels(**labels)
            return child

        def track_tp_end_offset(self, tp: Any, offset: int) -> None:
            Monitor.track_tp_end_offset(self, tp, offset)
            metric = self._metrics.topic_partition_end_offset
            self._child(metric, tp, topic=tp.topic, partition=tp.partition).set(offset)

        def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
            Monitor.on_message_in(self, tp, offset, message)
            self._received(tp, 1, offset)

        def on_messages_in(self, tp: Any, messages: Sequence[Any]) -> None:
            """``on_message_in`` of each of ``messages`` (records of ``tp``, in offset
            order), the counters moved once."""
            n = len(messages)
            self.messages_received_total += n
            self.messages_active += n
            self.messages_received_by_topic[tp.topic] += n
            last = messages[-1].offset
            self.tp_read_offsets[tp] = last
            now = self.time()
            for message in messages:
                message.time_in = now
            self._received(tp, n, last)

        def _received(self, tp: Any, n: int, offset: int) -> None:
            """Faust's Prometheus metrics of ``n`` records of ``tp`` received, the last at
            ``offset``."""
            metrics = self._metrics
            metrics.messages_received.inc(n)
            metrics.active_messages.inc(n)
            per_topic = metrics.messages_received_per_topics
            self._child(per_topic, tp, topic=tp.topic).inc(n)
            per_partition = metrics.messages_received_per_topics_partition
            self._child(per_partition, tp, topic=tp.topic, partition=tp.partition).set(offset)

        def on_messages_out(self, tp: Any, messages: Sequence[Any]) -> None:
            """``on_message_out`` of each of ``messages`` (acknowledged records of ``tp``)."""
            n = len(messages)
            self.messages_active -= n
            now = self.time()
            for message in messages:
                message.time_out = now
                time_in = message.time_in
                if time_in is not None:
                    message.time_total = now - time_in
            self._metrics.active_messages.dec(n)

        def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
            self._metrics.total_events.inc()
            return None  # no state: ``on_stream_event_out`` has nothing to time

        def on_stream_event_out(self, *args: Any, **kwargs: Any) -> None:
            return None

        def on_table_get(self, table: Any, key: Any) -> None:
            return None

        def on_table_set(self, table: Any, key: Any, value: Any) -> None:
            return None

        def on_table_del(self, table: Any, key: Any) -> None:
            return None

    return LeanPrometheusMonitor(metrics=faust_metrics)


# -- the other private names of Faust the worker relies on -------------------------------
# Each is checked against faust-streaming 0.15.3 (constraints.txt pins it): re-read the
# named source when upgrading.


@contextmanager
def current_event(event: Any) -> Iterator[None]:
    """Make ``event`` Faust's current event for the block (``faust/streams.py``).

    Table reads pick the RocksDB database, and table writes the changelog partition, from
    the current event: a batch handled outside Faust's per-event iteration sets it to an
    event of the partition being read or written. Blocks on nothing.
    """
    from faust.streams import _current_event

    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def committed_offset(consumer: Any, tp: Any) -> int | None:
    """The committed offset of ``tp`` as Faust last saw it (``Consumer._committed_offset``)."""
    offsets = getattr(consumer, "_committed_offset", None)
    return None if offsets is None else offsets.get(tp)


def forget_gap(consumer: Any, tp: Any) -> None:
    """Drop Faust's "skipped offsets count as acked" bookkeeping of ``tp`` (``Consumer._gap``)."""
    gaps = getattr(consumer, "_gap", None)
    if gaps is not None:
        gaps.pop(tp, None)


def count_as_acked(consumer: Any, tp: Any, start: int, end: int) -> None:
    """Count the offsets ``[start, end)`` of ``tp`` as acknowledged: Faust's commit reads its
    record of skipped offsets (``Consumer._gap``, an IntervalTree per partition) as acked."""
    gaps = getattr(consumer, "_gap", None)
    if gaps is not None and start < end:
        gaps[tp].addi(start, end)
        gaps[tp].merge_overlaps()


def scanner(
    partitions: int, subject_of: Callable[[bytes], bytes] = lambda key: key
) -> Callable[[Any, int, bytes], Iterable[tuple[bytes, bytes]]]:
    """A function listing a table's (key, value) pairs held for one partition whose key
    starts with a prefix (``b""``: all of them).

    RocksDB keeps one database per partition (``RocksDB._db_for_partition``), its keys in
    byte order: the pairs of a prefix are read from its first key on, up to the first key
    without it (rocksdict's ``items(from_key=...)``), so listing the few list keys of a
    ledger does not read its million histories; Faust's offset key
    (``RocksDB.offset_key``) is left out, as ``_visible_items`` does. The memory store is
    one dict, filtered by the partition of each key's subject (``subject_of``: a table may
    hold several keys per subject). Reads from the store only; blocks on the disk for
    RocksDB.
    """
    from consentinel.streams.events.partitioning import partition_for

    def scan(table: Any, partition: int, prefix: bytes) -> Iterable[tuple[bytes, bytes]]:
        store: Any = getattr(table, "data", None)
        db_for = getattr(store, "_db_for_partition", None)
        if callable(db_for):
            if getattr(store, "use_rocksdict", True):
                return _prefixed(db_for(partition), prefix, store.offset_key)
            # python-rocksdb (not installed here): Faust's own listing, every key read
            items: Iterable[tuple[bytes, bytes]] = store._visible_items(db_for(partition))
            return ((k, v) for k, v in items if k.startswith(prefix))
        return [
            (k, v)
            for k, v in list(store.data.items())
            if v is not None
            and k.startswith(prefix)
            and partition_for(subject_of(k), partitions) == partition
        ]

    return scan


def _prefixed(db: Any, prefix: bytes, offset_key: bytes) -> Iterator[tuple[bytes, bytes]]:
    """The (key, value) pairs of a rocksdict database whose key starts with ``prefix``."""
    items = db.items(from_key=prefix) if prefix else db.items()
    for key, value in items:
        if not key.startswith(prefix):
            return
        if key != offset_key:
            yield key, value


def quiet_worker(worker: Any, set_levels: Callable[[int], None]) -> None:
    """No terminal spinner: with it, a log level of WARNING or above makes ``faust.Worker``
    set the root logger to DEBUG (``Worker._setup_spinner_handler``), so every aiokafka and
    Faust debug call builds a record that is then dropped (5-10 % of the CPU). And once
    mode has configured logging (``Worker.on_setup_root_logger``, after its dictConfig),
    ``set_levels(root level)`` gives the libraries' loggers their explicit levels again."""
    worker.spinner = None
    original = worker.on_setup_root_logger

    def on_setup_root_logger(logger: logging.Logger, level: int) -> None:
        original(logger, level)
        set_levels(logging.getLogger().level)

    worker.on_setup_root_logger = on_setup_root_logger


def prompt_shutdown(worker: Any) -> None:
    """A stop signal freezes the garbage collector's generations before Faust stops.
    ``RocksDB.stop`` (faust/stores/rocksdb.py) runs a full ``gc.collect()`` for each
    table, on the event loop; with a million events of state that was about 10 s per
    table (the 1e6 differential run, 2026-12), so a SIGTERM took over 60 s, the
    consumer's keepalive thread stalled and the group coordinator dropped the member.
    Frozen objects are skipped by ``gc.collect``; the process exits after the stop, so
    nothing frozen needs collecting."""
    schedule = worker._schedule_shutdown

    def schedule_shutdown(signal: Any) -> None:
        gc.freeze()
        schedule(signal)

    worker._schedule_shutdown = schedule_shutdown


# -- Changelogs restored in batches ------------------------------------------------------
# Faust's recovery (``faust/tables/recovery.py``, ``Recovery._restart_recovery``): after a
# rebalance it builds the changelog partitions' highwaters (``_build_highwaters``, the end
# offset - 1) and the offsets its stores hold (``_build_offsets``: the persisted offset, or
# the log start - 1 when compaction removed more), seeks its consumer there, and reads every
# record left through the conductor and ``_slurp_changelogs`` unless ``need_recovery()``
# finds none (highwater - offset > 0 for an active partition). Each step runs under
# ``Recovery._wait(coro, timeout=broker_request_timeout)``: past it, ``wait_first`` reports
# the service stopped, and the recovery loop ends for good (the worker never gets ready).
# ``_wait`` also ends the step when another rebalance starts (it cancels the step). The
# restore runs in the step ``_build_offsets``; ``_wait`` lets that step take as long as the
# restore makes progress (it stops itself after ``restore.STALL_S`` without a record); any
# other step keeps Faust's limit, and if the step is not recognised (Faust's tracing wraps
# it) the restore keeps to ``share`` of that limit. Standby partitions are not restored
# here (the worker runs none).

Restorer = Callable[[Sequence[Any], "float | None"], Awaitable[dict[tuple[str, int], int]]]
_RESTORERS: WeakKeyDictionary[Any, tuple[Restorer, float]] = WeakKeyDictionary()
_RESTORE_MARK = "_consentinel_restores_in_batches"
_UNBOUNDED = "_consentinel_restore_unbounded"


def restore_changelogs_in_batches(app: Any, restore: Restorer, share: float = 0.75) -> None:
    """Before Faust's recovery reads ``app``'s active changelog partitions one record at a
    time, ``restore(plan, budget_s)`` reads them in batches (``worker.restore``); Faust then
    seeks to the offsets it reached and reads only what is left, usually nothing.
    ``budget_s`` is None (no limit but the restore's own) when the step's time limit is
    lifted, else ``share`` of ``broker_request_timeout``. The app's tables are raw bytes
    (``worker.app``): a changelog record's key and value are what the store holds."""
    from faust.tables.recovery import Recovery

    _RESTORERS[app] = (restore, float(app.conf.broker_request_timeout) * share)
    if getattr(Recovery._build_offsets, _RESTORE_MARK, False):
        return
    original = Recovery._build_offsets
    original_wait = Recovery._wait

    async def _build_offsets(
        self: Any, consumer: Any, tps: Any, destination: Any, title: str
    ) -> None:
        unbounded = getattr(self, _UNBOUNDED, False)
        await original(self, consumer, tps, destination, title)
        restorer = _RESTORERS.get(self.app)
        if restorer is None or title != "active" or not tps:
            return
        restore_fn, budget_s = restorer
        plan = []
        for tp in tps:
            table = self.tp_to_table.get(tp)
            highwater = self.active_highwaters.get(tp)
            if table is None or highwater is None:
                continue
            held = destination[tp]
            start = held + 1 if held is not None and held >= 0 else 0
            apply = _applier(self, table, tp, destination)
            plan.append(Restore(table.name, tp.topic, tp.partition, start, highwater + 1, apply))
        await restore_fn(plan, None if unbounded else budget_s)

    async def _wait(self: Any, coro: Any, timeout: Any = None) -> None:
        if getattr(coro, "cr_code", None) is not _build_offsets.__code__:
            return await original_wait(self, coro, timeout=timeout)
        setattr(self, _UNBOUNDED, True)  # read by the step as it starts
        try:
            return await original_wait(self, coro, timeout=None)
        finally:
            setattr(self, _UNBOUNDED, False)

    setattr(_build_offsets, _RESTORE_MARK, True)
    Recovery._build_offsets = _build_offsets  # type: ignore[method-assign]
    Recovery._wait = _wait  # type: ignore[method-assign]


def _applier(
    recovery: Any, table: Any, tp: Any, offsets: Any
) -> Callable[[list[tuple[bytes, bytes | None]], int], None]:
    """Writes one fetch of ``tp``'s changelog to ``table``'s store, then its offset, and
    tells Faust's recovery: the offset it starts from (``offsets``, its ``active_offsets``,
    which its progress log reads too), and that records arrive and are written (what its
    "No event received" and "has not flushed buffers" warnings look at)."""
    from time import monotonic

    def apply(items: list[tuple[bytes, bytes | None]], last: int) -> None:
        if items:
            write_store(table, tp.partition, items)
        table.data.set_persisted_offset(tp, last)
        offsets[tp] = last
        now = monotonic()
        recovery._active_events_received_at[tp] = now
        recovery._last_flush_at = now

    return apply


async def tables_recovered(app: Any) -> None:
    """Until Faust has recovered the tables of the partitions assigned to this worker
    (``app.tables.recovery.completed``, an attribute of the Recovery service that the
    typed ``TableManagerT`` interface does not declare). Blocks until then."""
    await app.tables.recovery.completed.wait()


def write_store(table: Any, partition: int, items: Iterable[tuple[bytes, bytes | None]]) -> None:
    """Write ``items`` (key, value; ``None``: delete) to ``table``'s store for
    ``partition``, without Faust's per-record path (``Table.__setitem__`` -> ``on_key_set``
    -> a changelog record each): the caller sends the changelog records itself
    (``worker.batches.StateWriter``). Keys and values are bytes (raw serializers).

    RocksDB (``faust/stores/rocksdb.py``): one write batch to the partition's database
    (``RocksDB._db_for_partition``, ``use_rocksdict``; the ``WriteBatch`` of rocksdict in
    raw mode or of python-rocksdb, as ``RocksDB.apply_changelog_batch`` builds it). The
    memory store (``faust/stores/memory.py``) is one dict: set and pop. Blocks on the disk
    for RocksDB.
    """
    store: Any = table.data
    db_for = getattr(store, "_db_for_partition", None)
    if callable(db_for):
        if getattr(store, "use_rocksdict", True):
            import rocksdict

            batch: Any = rocksdict.WriteBatch(raw_mode=True)
        else:  # pragma: no cover - python-rocksdb is not installed here
            import rocksdb

            batch = rocksdb.WriteBatch()
        for key, value in items:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        db_for(partition).write(batch)
        return
    for key, value in items:
        if value is None:
            store.pop(key, None)
        else:
            store[key] = value


def store_reader(table: Any) -> Callable[[int, bytes], bytes | None]:
    """A function reading ``table``'s store for one partition: ``(partition, key)`` -> the
    stored value or None, without Faust's per-read path (``Table.get`` -> ``on_key_get``
    -> ``SerializedStore.__getitem__`` -> ``_encode_key`` -> ``RocksDB._get`` -> the
    current event's partition -> ``_decode_value``; about 3 us a read, three reads per
    subject first seen). Keys and values are bytes (raw serializers), so nothing is
    encoded. RocksDB: the partition's database (``RocksDB._db_for_partition``), as
    ``RocksDB._get`` reads it when there is a current event; the memory store: its dict.
    Blocks on the disk for RocksDB."""
    store: Any = table.data
    db_for = getattr(store, "_db_for_partition", None)
    if callable(db_for):

        def read_db(partition: int, key: bytes) -> bytes | None:
            value: bytes | None = db_for(partition).get(key)
            return value

        return read_db
    data: Any = store.data

    def read_dict(partition: int, key: bytes) -> bytes | None:
        value: bytes | None = data.get(key)
        return value

    return read_dict


def changelog_topic_name(table: Any) -> str:
    """The name of ``table``'s changelog topic (``Collection.changelog_topic``, public,
    and its ``get_topic_name``)."""
    name: str = table.changelog_topic.get_topic_name()
    return name


def set_persisted_offset(table: Any, topic: str, partition: int, offset: int) -> None:
    """Record that ``table``'s store holds its changelog of ``partition`` up to ``offset``
    (``StoreT.set_persisted_offset``: RocksDB keeps it in the partition's database, the
    memory store ignores it); table recovery after a restart reads the changelog from there
    (``faust/tables/recovery.py``, ``Recovery._add`` -> ``persisted_offset``). Faust's own
    tables set it once per changelog record acknowledged (``Collection._on_changelog_sent``)."""
    from faust.types import TP

    table.data.set_persisted_offset(TP(topic, partition), offset)


# -- Batched intake: the source topics' records taken from Faust's consumer in batches ----
# Faust's per-event path (faust-streaming 0.15.3), for every record: ``Consumer._drain_messages``
# (faust/transport/consumer.py) awaits ``wait_first(callback(message), suspend_flow.wait())``,
# four tasks and an ``asyncio.wait``; the callback, ``Conductor.on_message``
# (faust/transport/conductor.py), takes a lock, then the compiled handler
# (``ConductorCompiler.build``) waits for flow control and the producer buffer, decodes an
# ``Event`` and puts it in the channel's ``FlowControlQueue``; the stream (faust/streams.py
# ``_py_aiter``, under ``noack_take``) takes it out, tracks it (``Consumer.track_message``
# inlined), calls the sensors and sets ``current_event``; ``Stream.ack`` releases it.
# Measured with nothing else to do (tests/bench/intake.py, 2026-12): that path is ~110 µs of
# CPU per record; a callback at the conductor level still pays the drain loop's wait_first and
# the conductor (~80 µs). ``BatchIntake`` takes the source topics' records one level lower,
# out of ``Consumer.getmany``: Faust still owns group membership, assignment, fetching
# (``getmany`` filters on flow, generation and active partitions, and builds the
# ``Message``), offsets and commits (``Consumer.ack``, ``_acked``, ``_gap``), and table
# recovery (the changelog records go on to the conductor as before).


class PartitionEvent:
    """The lightweight current event of one partition's batch: table reads and writes only
    look at ``event.message`` (its partition, topic, offset: faust/tables/base.py
    ``partition_for_key``, ``_send_changelog``; faust/stores/rocksdb.py ``_get``, ``_set``),
    and Faust keeps a weak reference to it (``_current_event``)."""

    __slots__ = ("__weakref__", "message")

    def __init__(self, message: Any) -> None:
        self.message = message


_INTAKES: WeakKeyDictionary[Any, BatchIntake] = WeakKeyDictionary()
_INTAKE_MARK = "_consentinel_batch_intake"


class BatchIntake:
    """The records of ``topics`` as Faust's consumer fetched them, buffered per partition
    (the source topics are co-partitioned: one buffer per partition number, in the order
    Faust fetched them, which is offset order within each topic partition).

    - ``offer`` takes each record ``Consumer.getmany`` yields for those topics, instead of
      ``_drain_messages``, with that loop's own bookkeeping: a record below the partition's
      read offset is dropped (fetched before a seek), a jump in offsets is a gap Faust counts
      as acknowledged (``Consumer._add_gap``; the agent's ``OffsetGuard`` reads it back), a
      commit every ``broker_commit_every`` acks. It waits while flow control is suspended (a
      rebalance, a recovery) and while the partition's buffer holds ``max_per_partition``
      records: fetching pauses until the agent takes them (backpressure). Other topics'
      records (changelogs) go on to the conductor.
    - ``take`` waits for records (and while Faust's producer buffer is over its limit, as
      Faust's conductor waits before every record: ``ProducerBuffer.wait_until_ebb``) and
      returns all that are buffered, per partition. A record fetched before the current
      rebalance (its ``generation_id``) is dropped, as Faust's stream drops it. Every record
      returned is tracked by the consumer (``_unacked_messages``, which
      ``Consumer.wait_empty`` waits for at a rebalance and at stop): acknowledge it with
      ``ack``.
    - ``clear`` (called by Faust's flow control as for its own channel queues,
      ``FlowControlEvent.clear``) drops what is buffered when the flow stops (a
      revocation, the stop): those records are not tracked yet, nothing waits for them,
      and the partitions' next owner reads them from the committed offsets.
    """

    def __init__(self, app: Any, topics: Iterable[str], max_per_partition: int) -> None:
        import asyncio

        if max_per_partition < 1:
            raise ValueError(f"max_per_partition must be at least 1, not {max_per_partition}")
        self.app = app
        self.topics = frozenset(topics)
        self.max_per_partition = max_per_partition
        self._buffers: dict[int, list[Any]] = {}
        self._ready = asyncio.Event()  # something is buffered
        self._room = asyncio.Event()  # a take made room

    def install(self) -> None:
        """Take ``topics``' records out of ``app``'s consumer (``Consumer.getmany``, patched
        once per process, a no-op for apps without an intake), and have Faust's flow
        control clear the buffers when it clears its own queues
        (``FlowControlEvent.manage_queue``)."""
        from faust.transport.drivers.aiokafka import Consumer

        _INTAKES[self.app] = self
        self.app.flow_control.manage_queue(self)
        if getattr(Consumer.getmany, _INTAKE_MARK, False):
            return
        original = Consumer.getmany

        async def getmany(consumer: Any, timeout: float) -> Any:
            intake = _INTAKES.get(consumer.app)
            if intake is None:
                async for item in original(consumer, timeout):
                    yield item
                return
            topics = intake.topics
            offer = intake.offer
            async for tp, message in original(consumer, timeout):
                if tp.topic not in topics:
                    yield tp, message
                elif not offer(consumer, tp, message):
                    await intake.offer_waiting(consumer, tp, message)

        setattr(getmany, _INTAKE_MARK, True)
        Consumer.getmany = getmany  # type: ignore[method-assign,assignment]

    def offer(self, consumer: Any, tp: Any, message: Any) -> bool:
        """Buffer ``message`` if nothing needs waiting for: False if it needs
        ``offer_waiting`` (a gap, a commit due, flow suspended, its buffer full)."""
        read = consumer._read_offset
        last = read[tp]
        offset = message.offset
        if last is not None:
            if offset < last:
                return True  # fetched before a seek: dropped, as ``_drain_messages`` does
            if last and offset - last > 1:
                return False
        every = consumer._commit_every
        if every is not None and consumer._n_acked >= every:
            return False
        if not self.app.flow_control.is_active():
            return False
        partition = message.partition
        buffer = self._buffers.get(partition)
        if buffer is None:
            buffer = self._buffers[partition] = []
        elif len(buffer) >= self.max_per_partition:
            return False
        message.incref()  # one reader: released by ``ack``
        buffer.append(message)
        read[tp] = offset
        self._ready.set()
        return True

    async def offer_waiting(self, consumer: Any, tp: Any, message: Any) -> None:
        """``offer``, waiting for what has to be waited for (``_drain_messages``' steps).
        Like Faust's conductor, a record that waited is kept whatever was cleared
        meanwhile: after a revocation it belongs to an older generation and ``take`` drops
        it; after recovery it is in order (below the read offset the seek set, it is
        dropped as stale)."""
        last = consumer._read_offset[tp]
        offset = message.offset
        if last is not None and offset < last:
            return
        if last and offset - last > 1 and self.app.topics.acks_enabled_for(message.topic):
            await consumer._add_gap(tp, last + 1, offset)
        every = consumer._commit_every
        if every is not None and consumer._n_acked >= every:
            # Awaited, as the drain loop does, though a commit can take seconds (it first
            # flushes Faust's producer buffer until it is empty): started in a task instead,
            # the agent kept refilling the changelog buffer while fetching went on, and no
            # commit finished during a whole bench drain (a 45 s commit; bench, 2026-12).
            consumer._n_acked = 0
            await consumer.commit()
        partition = message.partition
        while True:
            await self.app.flow_control.acquire()
            if len(self._buffers.get(partition, ())) < self.max_per_partition:
                break
            self._room.clear()
            await self._room.wait()
        last = consumer._read_offset[tp]
        if last is not None and offset < last:
            return  # a seek meanwhile put the read offset past it
        message.incref()
        self._buffers.setdefault(partition, []).append(message)
        consumer._read_offset[tp] = offset
        self._ready.set()

    async def wait_ready(self) -> None:
        """Until a record is buffered (``take`` would return without waiting for one)."""
        await self._ready.wait()

    async def take(self, limit: int | None = None) -> dict[int, list[Any]]:
        """The buffered records, per partition in fetch order; waits for one. With a
        ``limit``, at most that many: the oldest of each partition, partitions in the order
        they were buffered (those left over come first in the next take)."""
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        app = self.app
        ebb = app.producer.buffer.wait_until_ebb
        while True:
            await self._ready.wait()
            await app.flow_control.acquire()
            await ebb()
            buffers, self._buffers = _split(self._buffers, limit)
            if not self._buffers:
                self._ready.clear()
            self._room.set()
            generation = app.consumer_generation_id
            # ``Consumer.track_message`` of each record, its sensor call once per batch
            unacked = app.consumer._unacked_messages
            batches: dict[int, list[Any]] = {}
            for partition, messages in buffers.items():
                fresh = [m for m in messages if m.generation_id == generation]
                for message in fresh:
                    message.tracked = True
                    unacked.add(message)
                if fresh:
                    batches[partition] = fresh
                    _sense(app, fresh, "on_messages_in")
            if batches:
                return batches

    def ack(self, messages: Iterable[Any]) -> None:
        """The records are handled: Faust may commit past them (``Message.ack`` -> refcount
        0 -> ``Consumer.ack``, as ``Stream.ack`` does); the sensors hear of those
        acknowledged once per topic partition."""
        consumer = self.app.consumer
        done = [message for message in messages if message.ack(consumer)]
        if done:
            _sense(self.app, done, "on_messages_out")

    def clear(self) -> None:
        """Faust's flow control clears its queues when it stops the flow (a revocation,
        the stop) and when it resumes it after recovery. Only the first drops what is
        buffered: after recovery Faust has already sought to the committed offsets, so a
        record dropped then would not be fetched again (a hole, repaired only once a later
        record of its partition reveals it); kept, it is in order or a repeat."""
        if self.app.flow_control.is_active():
            return
        self._buffers = {}
        self._ready.clear()
        self._room.set()

    @property
    def buffered(self) -> int:
        """Records buffered now (fetched, not taken)."""
        return sum(len(b) for b in self._buffers.values())


def _sense(app: Any, messages: list[Any], batched: str) -> None:
    """Tell Faust's sensors (``app.sensors``) of ``messages`` coming in (``batched`` is
    ``"on_messages_in"``) or acknowledged (``"on_messages_out"``): a sensor with that method
    (the lean monitor) hears once per topic partition, any other once per message
    (``on_message_in``, ``on_message_out``)."""
    per_tp: dict[Any, list[Any]] = {}
    for message in messages:
        per_tp.setdefault(message.tp, []).append(message)
    single = "on_message_in" if batched == "on_messages_in" else "on_message_out"
    for sensor in app.sensors:
        many = getattr(sensor, batched, None)
        if many is not None:
            for tp, group in per_tp.items():
                many(tp, group)
            continue
        one = getattr(sensor, single)
        for message in messages:  # in the order Faust would have told it
            one(message.tp, message.offset, message)


def _split(
    buffers: dict[int, list[Any]], limit: int | None
) -> tuple[dict[int, list[Any]], dict[int, list[Any]]]:
    """(at most ``limit`` records of ``buffers``, the oldest of each partition; the rest)."""
    if limit is None or sum(len(b) for b in buffers.values()) <= limit:
        return buffers, {}
    taken: dict[int, list[Any]] = {}
    rest: dict[int, list[Any]] = {}
    room = limit
    for partition, messages in buffers.items():
        if room >= len(messages):
            taken[partition] = messages
            room -= len(messages)
        elif room > 0:
            taken[partition], rest[partition] = messages[:room], messages[room:]
            room = 0
        else:
            rest[partition] = messages
    return taken, rest
