"""The checker's event loop body, in batches: records in, outputs acknowledged, state written.

``Processor.submit_batch`` takes the records of one partition (consent, usage and tick
topics are co-partitioned and consumed by ONE agent, so nothing interleaves between
reading a subject's state and writing it back) and, in offset order:

1. decodes each record (a record that does not decode, or sits in a partition its
   subject key does not hash to, goes to the dead-letter topic with the reason);
2. loads the subject's consent history and holds ONCE per batch, through a bounded
   read-through cache of decoded states (``cache_size`` subjects, least recently used
   out; once it is full, a state enters it on its subject's second read, ``admission``),
   falling back to the staged writes, then to the tables;
3. asks ``judge`` what changes, exactly as a one-at-a-time processor would: each record
   sees the state every earlier record of the batch left;
4. collects the verdicts and alerts; at the end of the batch writes one value per
   changed key (ledger, holds) and, at most once a second per partition, the partition's
   counters, with the batch's outputs FIRST, in an outbox slot of the holds table
   (``outbox``);
5. sends the outputs once Kafka acknowledged the changelog records of that write (so no
   reader ever sees a verdict whose state could still be lost), retrying forever with
   backoff (an output is never dropped); once every output is acknowledged, deletes the
   outbox slot and says the batch is done (``finish``: the agent acknowledges its records
   to Faust).

Batches are pipelined: the next batch is judged while the acknowledgements of the
previous ones are on their way. What makes that safe:

- every record is judged against exactly the state a one-at-a-time processor would give
  it (the tables are written as each batch ends; the cache holds the same);
- outputs are sent in the order the batches were handled, each batch's only once its
  state is durable; batches are finished in that order, each once ALL its outputs are
  acknowledged, so a committed offset never covers an output that is not in Kafka;
- a crash (anywhere) leaves state that knows every use decided, and the outputs that
  might not have reached Kafka in the outbox: a replay skips what is decided (as any
  redelivery), and the outbox is sent again (``_recover``, on the first batch of a
  partition newly assigned) under the same ids. So a replay that reads the topics in
  another interleaving (more consent before a use) never decides a use twice; it
  corrects the first decision, under its alert ids, as any late consent does.

Outputs are repeated after a crash, never lost, never contradicted. Grace
deadlines and the end of the correction window live in a ``DeadlineIndex``: a tick
decides the subjects due, never scans the holds (except once per partition newly
assigned, to build the index). No log record per event; metric children are made once and
counters are added to once per batch.

A list-level send (``fanout``: a campaign naming no recipient) is never a subject: it is
re-published to every partition, and each copy is expanded there against the partition's
list members (``members``: kept beside the consent histories in the ledger table).

Faust is not imported here: tables are plain mutable mappings of bytes, sending is a
coroutine, so the glue is tested without a broker. ``worker.app`` wires it to Faust.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from consentinel.streams.checker import fanout, members, outbox
from consentinel.streams.checker.admission import SecondTouch
from consentinel.streams.checker.deadlines import DeadlineIndex
from consentinel.streams.checker.holds import (
    Holds,
    KeptUses,
    is_kept_key,
    is_use_key,
    kept_key,
    subject_of_use_key,
    use_key,
)
from consentinel.streams.checker.judge import Judge, Step
from consentinel.streams.checker.members import (
    MEMBER_PREFIX,
    MembershipIndex,
    Memberships,
    is_member_key,
    member_key,
)
from consentinel.streams.checker.ticks import Tick, TickClock
from consentinel.streams.events import codec, metrics, topics
from consentinel.streams.events.clock import now_ms
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.partitioning import (
    partition_for,
    partitions_for,
    subject_message_key,
)
from consentinel.streams.events.records import (
    Alert,
    AlertStatus,
    ConsentAction,
    ConsentEvent,
    DeadLetter,
    UsageEvent,
    Verdict,
)
from consentinel.streams.events.sealing import Sealer
from consentinel.streams.policy.history import ConsentHistory

log = logging.getLogger("consentinel.checker")
#: Ticks that may not decide for this long (ms) are said (WARNING, once a minute).
BEHIND_WARN_MS = 60_000

Table = MutableMapping[bytes, bytes]
#: (topic, key, value) -> awaitable completed when Kafka acknowledged the record
Send = Callable[[str, bytes | None, bytes], Awaitable[Awaitable[Any]]]
#: (table, partition, prefix) -> the (key, value) pairs of that table held for that
#: partition whose key starts with ``prefix`` (``b""``: all); a store in key order reads
#: only those (``worker.faust_compat.scanner``)
Scan = Callable[[Table, int, bytes], Iterable[tuple[bytes, bytes]]]

#: Called once a batch's outputs are acknowledged, with the function that writes its
#: staged state: must call it (in the batch's partition context), then acknowledge the
#: batch's records. ``None``: the state is written directly.
Finish = Callable[[Callable[[], None]], Awaitable[None]]
#: Calls the function it is given (a write of staged state) in the batch's partition
#: context, for the parts of a batch written before its ``finish`` (a large list expanded
#: in parts). ``None``: called directly.
WriteIn = Callable[[Callable[[], None]], None]
Output = tuple[str, bytes | None, bytes]
#: outputs -> per output, an awaitable completed when Kafka acknowledged it (outputs may
#: share one: a produce batch), or the exception that kept it from being sent
SendBatch = Callable[[Sequence[Output]], Awaitable[Sequence[Any]]]
#: (partition, [(table, key, value or None: delete)] in staging order): writes a handled
#: batch's state to the tables of that partition at once (``worker.batches.StateWriter``);
#: returns awaitables completed once Kafka acknowledged the changelog records written
Write = Callable[
    [int, Sequence[tuple[Table, bytes, bytes | None]]], Sequence[Awaitable[Any]] | None
]
#: (table, partition, key) -> the value the table holds for ``key`` in that partition's
#: store, or None (``worker.batches.StateReader``: the store read directly)
Read = Callable[[Table, int, bytes], bytes | None]

_SEND_BACKOFF_MAX_S = 30.0
#: Batches handled whose outputs are not all acknowledged yet, at most.
MAX_IN_FLIGHT = 32
#: Decoded subject states kept in memory (read-through cache), by default.
CACHE_SIZE = 50_000
#: A partition's counters are written to the stats table at most this often.
STATS_FLUSH_MS = 1_000
#: Members a list-level send is expanded to per part: a part's states and outputs are
#: handed on (staged, sent) before the next, so memory does not grow with the list.
EXPAND_PART = 2_000


class Record(Protocol):
    """What the processor needs of a Kafka record (Faust's ``Message`` has it)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass
class Names:
    consent: str
    usage: str
    tick: str
    verdicts: str
    alerts: str
    deadletter: str

    def base(self, topic: str) -> str:
        for name, base in (
            (self.consent, topics.CONSENT),
            (self.usage, topics.USAGE),
            (self.tick, "tick"),
        ):
            if topic == name:
                return base
        return topic


@dataclass
class PartitionStats:
    subjects: int = 0
    versions: int = 0
    pending: int = 0


@dataclass(slots=True)
class _State:
    """A subject's state while a batch changes it; written back once per batch."""

    key: bytes
    partition: int
    history: ConsentHistory | None
    holds: Holds
    subjects_before: int
    versions_before: int
    pending_before: int
    history_dirty: bool = False
    holds_dirty: bool = False
    kept_dirty: bool = False


#: A staged table value (None: delete); the tuple's identity marks the latest staging.
_Staged = tuple[bytes | None]


@dataclass
class _InFlight:
    """One handled batch: its outputs (and their acknowledgements) and its staged writes."""

    finish: Finish | None = None
    write_in: WriteIn | None = None
    #: the partition of the batch's records (its writes go to that partition)
    partition: int | None = None
    outputs: list[Output] = field(default_factory=list)
    #: per output: the awaitable acknowledgement, or the exception the send raised
    acks: list[Any] = field(default_factory=list)
    writes: list[tuple[Table, dict[bytes, _Staged], bytes, _Staged]] = field(default_factory=list)
    #: the outbox slots holding the outputs, deleted once they are acknowledged
    slots: list[int] = field(default_factory=list)
    #: completed once the changelog records of the batch's state are acknowledged
    durable: Sequence[Awaitable[Any]] = ()
    #: the task sending the outputs once the state is durable (after the batch before's)
    sending: asyncio.Future[None] | None = None
    #: the state could not be written: nothing is sent, the batch is never acknowledged
    unwritten: bool = False


def subject_of(key: bytes) -> bytes:
    """The subject key of a table key: kept uses (and their records) live beside the
    holds, list memberships beside the consent history, waiting legs beside both."""
    if is_use_key(key):
        return subject_of_use_key(key)
    return key[2:] if is_kept_key(key) or is_member_key(key) or fanout.is_waiting_key(key) else key


class Processor:
    def __init__(
        self,
        *,
        judge: Judge,
        names: Names,
        partitions: int,
        ledger: Table,
        holds: Table,
        stats: Table,
        send: Send,
        scan: Scan,
        ticks: TickClock,
        sealer: Sealer,
        clock: Callable[[], int] = now_ms,
        cache_size: int = CACHE_SIZE,
        send_batch: SendBatch | None = None,
        write: Write | None = None,
        read: Read | None = None,
    ) -> None:
        """``send`` sends one output; ``send_batch``, when given, sends a batch's outputs
        at once instead. ``write``, when given, writes a batch's state (otherwise each
        value is set in its table, in the batch's partition context). ``read``, when
        given, reads a table's value of a partition (otherwise ``table.get``, in the
        batch's partition context)."""
        self.judge = judge
        self.names = names
        self.partitions = partitions
        self.ledger = ledger
        self.holds = holds
        self.stats = stats
        self._send = send
        self._send_batch = send_batch
        self._write = write
        self._read = read
        self._scan = scan
        self.ticks = ticks
        self.sealer = sealer
        self.clock = clock
        self._behind_since: dict[int, tuple[int, int | None]] = {}  # partition -> since, warned
        self.cache_size = cache_size
        self.deadlines = DeadlineIndex()
        #: per partition: each list's members, for list-level sends (``fanout``)
        self.membership = MembershipIndex()
        #: per partition: the keys of legs waiting to be expanded, by due time
        self.legs_due = DeadlineIndex()
        #: per partition: the counters (metrics read these); written at most once a second
        self.partition_stats: dict[int, PartitionStats] = {}
        self._stats_changed: set[int] = set()
        self._stats_written: dict[int, int] = {}
        #: (topic, partition) -> the offset after the last record handled (for the lag gauge)
        self.progress: dict[tuple[str, int], int] = {}
        #: staged values not yet written, per table (reads look here first)
        self._overlay: dict[int, dict[bytes, _Staged]] = {
            id(ledger): {},
            id(holds): {},
            id(stats): {},
        }
        #: subject key -> decoded (history, holds, partition), the latest staged or read;
        #: holds None: none (most subjects: kept as nothing rather than an empty ``Holds``
        #: and its three lists, objects the garbage collector scans while they are cached)
        self._cache: OrderedDict[bytes, tuple[ConsentHistory | None, Holds | None, int]] = (
            OrderedDict()
        )
        #: subjects read once lately, not cached yet (``admission``)
        self._touched = SecondTouch(cache_size)
        self._batch: dict[bytes, _State] = {}
        #: the batch's subject keys not in the cache -> the partition they hash to
        self._arriving: dict[bytes, int] = {}
        self._current: bytes | None = None
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        #: counter increments of the batch being handled, added to the metrics once per batch
        self._counts: dict[tuple[Any, tuple[str, ...]], int] = {}
        self._entry = _InFlight()
        self._queue: deque[_InFlight] = deque()
        self._flusher: asyncio.Future[None] | None = None
        self._moved = asyncio.Event()
        #: per partition: the outbox slots of the batches in flight (kept across rebalances)
        self._slots = outbox.Slots()
        #: partitions whose outbox was read since they were assigned (``_recover``)
        self._recovered: set[int] = set()
        #: per partition: the sequence number of the next outbox slot written
        self._seq: dict[int, int] = {}
        #: per partition, the latest batch's sending task: each sends after the one before
        #: it (a subject's outputs keep their order; partitions do not wait for each other)
        self._last_sending: dict[int | None, asyncio.Future[None]] = {}

    # -- dispatch ------------------------------------------------------------------------

    async def handle(self, record: Record) -> None:
        """Handle one record; return once its outputs are acknowledged and state written.

        Blocks on Kafka's acknowledgements (retried forever); raises nothing for a bad
        record (dead-lettered), only what the flusher raised (a bug) or CancelledError.
        """
        await self.submit(record)
        await self.drain()

    async def submit(self, record: Record, finish: Finish | None = None) -> None:
        """Handle one record as a batch of one (see ``submit_batch``)."""
        await self.submit_batch((record,), finish)

    async def submit_batch(
        self,
        records: Sequence[Record],
        finish: Finish | None = None,
        write_in: WriteIn | None = None,
    ) -> None:
        """Judge ``records`` (one partition's, in offset order), write their state with
        their outputs in its outbox, and send the outputs once that state is durable;
        ``finish`` is called once every output is acknowledged (with the function deleting
        the outbox slot). The state is written through ``write_in``, in the batch's
        partition context, when there is no ``write``.

        Blocks on the disk (the state written) and, past ``MAX_IN_FLIGHT`` batches in
        flight, until the oldest is finished; the first tick of a partition newly
        assigned waits for every batch in flight.
        """
        self._entry = _InFlight(finish, write_in)
        self._batch = {}
        sealed = False
        try:
            if records and records[0].partition not in self._recovered:
                self._recover(records[0].partition, write_in)
            self._arriving = self._hash_new_keys(records)
            for record in records:
                await self._dispatch(record)
            if records:
                self._entry.partition = records[0].partition
                self._stage_batch(records[0].partition)
            self._seal(self._entry)
            sealed = True
        finally:
            entry, self._entry = self._entry, _InFlight()
            self._batch = {}
            self._arriving = {}
            if sealed:
                self._queue.append(entry)
                self._start_flusher()
            else:  # cancelled (the worker stops): nothing written, sent or acknowledged
                self._unstage(entry)
        if len(self._queue) > MAX_IN_FLIGHT:
            await self._wait_in_flight(MAX_IN_FLIGHT)

    async def drain(self) -> None:
        """Wait until every batch submitted is finished."""
        await self._wait_in_flight(0)

    @property
    def in_flight(self) -> int:
        return len(self._queue)

    def forget(self) -> None:
        """Drop what is kept in memory about partitions (call on every rebalance: a
        partition may come back after another worker changed it). Staged writes stay, and
        so do the outbox slots of the batches in flight."""
        self._cache.clear()
        self._recovered.clear()
        self.deadlines.forget()
        self.membership.forget()
        self.legs_due.forget()
        self.partition_stats.clear()
        self._stats_changed.clear()

    async def _dispatch(self, record: Record) -> None:
        topic = record.topic
        self._current = None
        try:
            if topic == self.names.usage:
                await self._on_usage(record)
            elif topic == self.names.consent:
                try:
                    self._on_consent(record)
                finally:
                    self.ticks.consent_done(record.partition, record.offset)
            elif topic == self.names.tick:
                await self._on_tick(record)
            else:
                log.warning("record from unexpected topic %s ignored", topic)
        except InvalidInput as exc:
            self._dead_letter(record, exc.code, exc.message)
        except Exception as exc:
            # A bug or a state we cannot read: never crash the worker and never drop the
            # record silently: dead-letter it. The subject's state may be half-changed:
            # go back to its last staged state (outputs already sent keep their ids).
            if self._current is not None:
                self._batch.pop(self._current, None)
                self._cache.pop(self._current, None)
            log.exception(
                "cannot process %s[%d]@%d; sent to the dead-letter topic for replay",
                topic,
                record.partition,
                record.offset,
            )
            self._dead_letter(
                record,
                "processing_error",
                f"the worker failed on this record ({type(exc).__name__})",
            )
        self.progress[(topic, record.partition)] = record.offset + 1

    # -- state ---------------------------------------------------------------------------

    def _get(self, table: Table, key: bytes, partition: int) -> bytes | None:
        """The value of ``key`` (its subject in ``partition``): staged, else the table's."""
        staged = self._overlay[id(table)].get(key)
        if staged is not None:
            return staged[0]
        read = self._read
        if read is not None:
            return read(table, partition, key)
        return table.get(key)

    def _put(self, table: Table, key: bytes, value: bytes | None) -> None:
        """Stage a write (``None``: delete); it reaches the table once the outputs are acked."""
        overlay = self._overlay[id(table)]
        staged: _Staged = (value,)
        overlay[key] = staged
        self._entry.writes.append((table, overlay, key, staged))

    def _load(self, key: bytes, partition: int) -> _State:
        self._current = key
        state = self._batch.get(key)
        if state is not None:
            return state
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            history, kept_holds, _ = cached
            if kept_holds is None:
                holds = Holds()
                holds.kept.fetch = self._fetcher(key, partition)
            else:
                holds = kept_holds
        else:
            raw = self._get(self.ledger, key, partition)
            history = (
                None
                if raw is None
                else ConsentHistory.from_obj(codec.loads(raw), self.judge.max_versions)
            )
            if (
                history is not None
                and len(self._cache) >= self.cache_size
                and key not in self._touched
            ):
                # read once with the cache full: freed after this batch unless it then holds
                # a pending use (``_stage_batch``), so a memo of its decisions goes unread
                history.memoize = False
            holds = Holds.from_bytes(
                self._get(self.holds, key, partition), self._kept(key, partition)
            )
        if history is None:
            state = _State(key, partition, None, holds, 0, 0, len(holds.pending))
        else:
            state = _State(
                key,
                partition,
                history,
                holds,
                history.subject_count,
                history.version_count,
                len(holds.pending),
            )
        self._batch[key] = state
        return state

    def _kept(self, key: bytes, partition: int) -> KeptUses:
        """A subject's kept uses (their records read when asked for)."""
        raw = self._get(self.holds, kept_key(key), partition)
        return KeptUses.from_bytes(raw, self._fetcher(key, partition))

    def _fetcher(self, key: bytes, partition: int) -> Callable[[str], bytes | None]:
        """What reads the records of ``key``'s kept uses."""
        holds_table, get = self.holds, self._get

        def fetch(event_id: str) -> bytes | None:
            return get(holds_table, use_key(key, event_id), partition)

        return fetch

    def _changed(self, state: _State, step: Step) -> None:
        if step.history_changed:
            state.history_dirty = True
        if step.kept_changed:
            state.kept_dirty = True
        if step.holds_changed or step.kept_changed:
            state.holds_dirty |= step.holds_changed
            self.deadlines.set(state.partition, state.key, state.holds.due())

    def _stage_batch(self, partition: int) -> None:
        """One write per changed key; the partition's counters at most once a second.

        Only ``partition``'s counters: Faust writes a table to the store and changelog
        partition of the current event, which is one of this batch's records. Counters of
        another partition left over from an earlier batch wait for a batch of their own."""
        put, ledger, holds_table, cache = self._put, self.ledger, self.holds, self._cache
        touched, size = self._touched, self.cache_size
        for state in self._batch.values():
            key, history, holds = state.key, state.history, state.holds
            subjects = versions = 0
            if history is not None:
                subjects, versions = history.subject_count, history.version_count
                if state.history_dirty:
                    put(ledger, key, codec.dumps(history.to_obj()) if subjects else None)
            if state.holds_dirty:
                put(holds_table, key, holds.to_bytes() if holds else None)
            if state.kept_dirty:
                kept = holds.kept
                put(holds_table, kept_key(key), kept.to_bytes())
                for event_id, record in kept.records.items():
                    put(holds_table, use_key(key, event_id), record)
                for event_id in kept.gone:
                    put(holds_table, use_key(key, event_id), None)
                kept.records.clear()
                kept.gone.clear()
            subjects -= state.subjects_before
            versions -= state.versions_before
            pending = len(holds.pending) - state.pending_before
            if subjects or versions or pending:
                self._count(state.partition, subjects=subjects, versions=versions, pending=pending)
            if key in cache or len(cache) < size or holds.pending or touched.seen(key):
                if history is not None:
                    history.memoize = True
                held = holds if holds.pending or holds.alerted or holds.kept else None
                cache[key] = (history, held, state.partition)
                cache.move_to_end(key)
            else:  # the cache is full and this subject was read once: freed now (``admission``)
                touched.note(key)
        while len(cache) > size:
            cache.popitem(last=False)
        self._add_counts()
        if partition in self._stats_changed:
            now = now_ms()
            if now - self._stats_written.get(partition, 0) >= STATS_FLUSH_MS:
                self._write_stats(partition)
                self._stats_written[partition] = now
                self._stats_changed.discard(partition)

    def _stats_key(self, partition: int) -> bytes:
        return f"p{partition}".encode("ascii")

    def _stats(self, partition: int) -> PartitionStats:
        st = self.partition_stats.get(partition)
        if st is None:
            raw = self._get(self.stats, self._stats_key(partition), partition)
            obj = codec.loads(raw) if raw else {}
            st = PartitionStats(
                int(obj.get("subjects", 0)), int(obj.get("versions", 0)), int(obj.get("pending", 0))
            )
            self.partition_stats[partition] = st
        return st

    def _write_stats(self, partition: int) -> None:
        st = self._stats(partition)
        self._put(
            self.stats,
            self._stats_key(partition),
            codec.dumps({"subjects": st.subjects, "versions": st.versions, "pending": st.pending}),
        )

    def _count(
        self, partition: int, *, subjects: int = 0, versions: int = 0, pending: int = 0
    ) -> None:
        if not (subjects or versions or pending):
            return
        st = self._stats(partition)
        st.subjects = max(0, st.subjects + subjects)
        st.versions = max(0, st.versions + versions)
        st.pending = max(0, st.pending + pending)
        self._stats_changed.add(partition)

    # -- outputs -------------------------------------------------------------------------

    def _count_event(self, metric: Any, *values: str) -> None:
        """One more for the counter's child with these label values (in the metric's label
        order), added to the metric at the end of the batch (``_add_counts``)."""
        key = (metric, values)
        self._counts[key] = self._counts.get(key, 0) + 1

    def _add_counts(self) -> None:
        counts, self._counts = self._counts, {}
        for (metric, values), n in counts.items():
            self._child(metric, *values).inc(n)

    def _child(self, metric: Any, *values: str) -> Any:
        """The metric's child for these label values (in the metric's label order), made once."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    # -- the outbox: outputs written with the state, sent once it is durable -------------

    def _seal(self, entry: _InFlight) -> None:
        """End a handled batch (or part): its outputs go into an outbox slot, FIRST of its
        writes (one RocksDB write batch with them; the first of its changelog records of
        that partition); the writes are made now, and the outputs sent once Kafka
        acknowledged them (``_send_when_durable``). See ``outbox`` for why."""
        p = entry.partition
        if entry.outputs and p is not None:
            overlay = self._overlay[id(self.holds)]
            first: list[tuple[Table, dict[bytes, _Staged], bytes, _Staged]] = []
            seq = self._seq.get(p, 0)
            values = outbox.chunks(entry.outputs, seq)
            self._seq[p] = seq + len(values)
            for value in values:
                slot = self._slots.take(p)
                entry.slots.append(slot)
                staged: _Staged = (value,)
                overlay[outbox.key(p, slot)] = staged
                first.append((self.holds, overlay, outbox.key(p, slot), staged))
            entry.writes[:0] = first
        if entry.writes:
            self._write_now(entry)
        self._send_later(entry)

    def _write_now(self, entry: _InFlight) -> None:
        def write() -> None:
            entry.durable = self._apply(entry)

        try:
            if self._write is None and entry.write_in is not None:
                entry.write_in(write)
            else:
                write()
        except Exception:
            # Nothing of the batch is sent nor acknowledged: its records are judged again
            # after a restart (the state in memory may be ahead of the tables until then).
            log.exception("the state of a handled batch could not be written")
            entry.unwritten = True
            entry.finish = None
            p = entry.partition
            for slot in entry.slots:
                if p is not None:
                    self._slots.free(p, slot)
            entry.slots = []

    def _unstage(self, entry: _InFlight) -> None:
        """Drop the writes a batch staged (it was cancelled before they were made)."""
        for _, overlay, key, staged in entry.writes:
            if overlay.get(key) is staged:
                del overlay[key]
        p = entry.partition
        for slot in entry.slots:
            if p is not None:
                self._slots.free(p, slot)

    def _send_later(self, entry: _InFlight) -> None:
        if entry.unwritten or not entry.outputs:
            return
        previous = self._last_sending.get(entry.partition)
        if previous is not None and previous.done():
            previous = None
        entry.sending = asyncio.ensure_future(self._send_when_durable(entry, previous))
        self._last_sending[entry.partition] = entry.sending

    async def _send_when_durable(
        self, entry: _InFlight, previous: asyncio.Future[None] | None
    ) -> None:
        """Send ``entry``'s outputs once its state is durable, after those of the batch of
        the same partition before it."""
        if previous is not None and not previous.done():
            await asyncio.wait([previous])  # its outcome is the flusher's to read
        if entry.durable:
            results = await asyncio.gather(*entry.durable, return_exceptions=True)
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:
                log.error(
                    "%d changelog batch(es) of the state written for partition %s (with its "
                    "%d output(s) in the outbox) were not acknowledged by Kafka (%s: %s). "
                    "The outputs are sent anyway: this worker's store holds that state. "
                    "The batch's records are not acknowledged; restart the worker once the "
                    "broker is healthy.",
                    len(failed),
                    entry.partition,
                    len(entry.outputs),
                    type(failed[0]).__name__,
                    failed[0],
                )
        await self._send_outputs(entry)

    def _recover(self, p: int, write_in: WriteIn | None) -> None:
        """On the first batch of a partition newly assigned: the outputs its outbox still
        holds (decided before a crash or a rebalance, maybe never acknowledged) are sent
        again, before anything of the partition is judged, under the same ids.

        Only those of uses the state knows as decided: a crash between two produce batches
        of one batch's changelog records can leave its outbox (written first) without the
        state of some of its subjects; those uses are judged again by the replay, and their
        first decision must not be sent beside the second."""
        self._recovered.add(p)
        slots: list[int] = []
        numbered: list[tuple[int, list[Output]]] = []
        dropped = 0
        for slot in range(self._slots.slots):
            if self._slots.busy(p, slot):
                continue  # a batch of this process in flight: it sends its own
            raw = self._get(self.holds, outbox.key(p, slot), p)
            if raw is None:
                continue
            try:
                seq, found = outbox.read(raw)
                kept = [o for o in found if self._decided(o, p)]
                dropped += len(found) - len(kept)
                numbered.append((seq, kept))
                self._seq[p] = max(self._seq.get(p, 0), seq + 1)
            except InvalidInput as exc:
                log.error(
                    "partition %d: outbox slot %d not read (%s); left in the holds table",
                    p,
                    slot,
                    exc.message,
                )
                continue
            self._slots.hold(p, slot)
            slots.append(slot)
        if not slots:
            return
        # in the order they were written (slots are reused lowest first)
        outputs = [o for _, kept in sorted(numbered, key=lambda n: n[0]) for o in kept]
        log.warning(
            "partition %d: %d output(s) decided before a restart or a rebalance, maybe "
            "never acknowledged, are sent again (%d outbox slot(s)); readers skip repeats. "
            "%d output(s) of uses whose state was not kept are left to the replay",
            p,
            len(outputs),
            len(slots),
            dropped,
        )
        entry = _InFlight(None, write_in, p, outputs=outputs, slots=slots)
        self._send_later(entry)
        self._queue.append(entry)
        self._start_flusher()

    def _decided(self, output: Output, p: int) -> bool:
        """Whether an output found in the outbox is backed by the state: a verdict or an
        alert whose use the subject's holds know (dead letters and list legs always are)."""
        topic, _, value = output
        if topic == self.names.verdicts:
            v = codec.decode(Verdict, value)
            subject, use = v.subject_key, v.usage_event_id
        elif topic == self.names.alerts:
            a = codec.decode(Alert, value)
            subject, use = a.subject_key, a.usage_event_id
        else:
            return True
        key = subject_message_key(subject)
        cached = self._cache.get(key)
        if cached is not None:
            return cached[1] is not None and cached[1].knows(use)
        return Holds.from_bytes(self._get(self.holds, key, p), self._kept(key, p)).knows(use)

    def _release(self, entry: _InFlight) -> None:
        """Once ``entry``'s outputs are acknowledged: delete its outbox slots."""
        p = entry.partition
        if not entry.slots or p is None:
            return
        keys = [outbox.key(p, slot) for slot in entry.slots]
        if self._write is not None:
            self._write(p, [(self.holds, k, None) for k in keys])
        else:
            for k in keys:
                self.holds.pop(k, None)
        for slot in entry.slots:
            self._slots.free(p, slot)
        entry.slots = []

    async def _send_outputs(self, entry: _InFlight) -> None:
        """Send ``entry``'s outputs now; the flusher waits for (and retries) the acks."""
        if self._send_batch is not None:
            entry.acks.extend(await self._send_many(entry.outputs))
            return
        for record in entry.outputs:
            entry.acks.append(await self._send_now(record))

    async def _send_many(self, outputs: Sequence[Output]) -> list[Any]:
        """``send_batch``: one acknowledgement (or exception) per output."""
        if not outputs or self._send_batch is None:
            return []
        try:
            acks = list(await self._send_batch(outputs))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # retried by the flusher
            return [exc] * len(outputs)
        if len(acks) != len(outputs):  # a bug in send_batch: never count a record as sent
            return [RuntimeError("send_batch gave no acknowledgement per output")] * len(outputs)
        return acks

    async def _send_now(self, record: Output) -> Any:
        try:
            return await self._send(*record)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # retried by the flusher
            return exc

    async def _acknowledged(self, entry: _InFlight) -> None:
        """Wait for every output of ``entry``; resend what failed, forever, with backoff."""
        todo: list[int] = list(range(len(entry.acks)))
        delay = 0.5
        while True:
            failed: list[int] = []
            error: BaseException | None = None
            # outputs sent in one produce batch share its acknowledgement: awaited once
            outcome: dict[int, BaseException | None] = {}
            for i in todo:
                ack = entry.acks[i]
                if id(ack) in outcome:
                    known = outcome[id(ack)]
                else:
                    try:
                        if isinstance(ack, BaseException):
                            raise ack
                        await ack
                        known = None
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        known = exc
                    outcome[id(ack)] = known
                if known is not None:
                    failed.append(i)
                    error = known
            if not failed:
                return
            log.warning(
                "Kafka did not acknowledge %d output record(s) (%s: %s); retrying in %.1fs. "
                "The input is not committed until they are.",
                len(failed),
                type(error).__name__,
                error,
                delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _SEND_BACKOFF_MAX_S)
            if self._send_batch is not None:
                resent = await self._send_many([entry.outputs[i] for i in failed])
                for i, ack in zip(failed, resent, strict=True):
                    entry.acks[i] = ack
            else:
                for i in failed:
                    entry.acks[i] = await self._send_now(entry.outputs[i])
            todo = failed

    def _apply(self, entry: _InFlight) -> Sequence[Awaitable[Any]]:
        """Write ``entry``'s staged state; the acknowledgements of its changelog records."""
        if self._write is not None and entry.writes:
            if entry.partition is None:
                raise RuntimeError("a batch with writes but no partition")  # a bug
            acks = self._write(
                entry.partition, [(t, k, staged[0]) for t, _, k, staged in entry.writes]
            )
            for _, overlay, key, staged in entry.writes:
                if overlay.get(key) is staged:  # no later batch staged this key
                    del overlay[key]
            return list(acks or ())
        for table, overlay, key, staged in entry.writes:
            value = staged[0]
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
            if overlay.get(key) is staged:  # no later batch staged this key
                del overlay[key]
        return ()

    def _start_flusher(self) -> None:
        if self._queue and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        """Finish batches in order, each once all its outputs are acknowledged: its outbox
        slot deleted, then ``finish`` (the agent acknowledges its records)."""
        while self._queue:
            entry = self._queue[0]
            if entry.unwritten:  # never acknowledged: read again after a restart
                self._queue.popleft()
                self._moved.set()
                continue
            if entry.sending is not None:
                await entry.sending
            await self._acknowledged(entry)
            self._queue.popleft()
            try:
                if entry.finish is not None:
                    await entry.finish(lambda entry=entry: self._release(entry))  # type: ignore[misc]
                elif entry.write_in is not None and self._write is None:
                    entry.write_in(lambda entry=entry: self._release(entry))  # type: ignore[misc]
                else:
                    self._release(entry)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Not acknowledged to Faust: the records are read again after a restart (the
                # outbox slot stays: its outputs are sent again then, under the same ids).
                log.exception("the outbox slot of a finished batch could not be deleted")
            self._moved.set()

    async def _wait_in_flight(self, limit: int) -> None:
        while len(self._queue) > limit:
            self._start_flusher()
            self._moved.clear()
            flusher = self._flusher
            waiter: asyncio.Future[Any] = asyncio.ensure_future(self._moved.wait())
            watched: set[asyncio.Future[Any]] = {waiter}
            if flusher is not None:
                watched.add(flusher)
            try:
                await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
            if flusher is not None and flusher.done() and not flusher.cancelled():
                exc = flusher.exception()
                if exc is not None:
                    raise exc

    def _emit(self, step: Step, received: dict[str, int]) -> None:
        verdicts, alerts = step.verdicts, step.alerts
        if not (verdicts or alerts):
            return
        outputs = self._entry.outputs
        count = self._count_event
        topic, encode = self.names.verdicts, codec.encode
        for v in verdicts:  # every verdict, then every alert: the order they are sent in
            outputs.append((topic, subject_message_key(v.subject_key), encode(v)))
            decision = str(v.decision)
            if v.rule_ids:
                for rule in v.rule_ids:
                    count(metrics.VERDICTS, decision, rule)
            else:
                count(metrics.VERDICTS, decision, "none")
            if not v.correction:
                at = received.get(v.usage_event_id)
                if at is not None:
                    metrics.EVENT_TO_VERDICT.observe(max(0.0, (v.decided_at_ms - at) / 1000))
        for a in alerts:
            outputs.append((self.names.alerts, a.incident_key.encode("utf-8"), encode(a)))
        for a in alerts:
            if a.status is AlertStatus.RESOLVED:
                count(metrics.CORRECTIONS, a.rule_id)
            else:
                severity = str(a.severity)
                count(metrics.ALERTS, a.rule_id, severity)
                count(metrics.ALERTS_BY_CONTROLLER, a.controller, a.rule_id, severity)

    def _dead_letter(self, record: Record, code: str, reason: str) -> None:
        base = self.names.base(record.topic)
        self._child(metrics.WORKER_DEADLETTERS, base, code).inc()
        log.warning(
            "%s[%d]@%d sent to the dead-letter topic: %s",
            record.topic,
            record.partition,
            record.offset,
            reason,
        )
        source = "worker"
        letter = DeadLetter(
            source=source,
            received_at_ms=self.clock(),
            reason_code=code,
            reason=reason,
            sealed_payload=self.sealer.seal(record.value or b"", source),
            key_id=self.sealer.key_id,
            content_type="application/json",
            stage="worker",
            attributes={"topic": base, "partition": record.partition, "offset": record.offset},
        )
        self._entry.outputs.append((self.names.deadletter, source.encode(), codec.encode(letter)))

    def _hash_new_keys(self, records: Sequence[Record]) -> dict[bytes, int]:
        """The partition each key of ``records`` not in the cache hashes to (the keys of
        consent and usage records: their subject keys, unless a producer keyed them some
        other way), computed together (``partitions_for``: about 0.8 us a key, against 6 us
        one at a time); ``_check_partition`` reads them."""
        cache, sources = self._cache, (self.names.usage, self.names.consent)
        keys = list(
            {
                r.key: None
                for r in records
                if r.key is not None and r.key not in cache and r.topic in sources
            }
        )
        return dict(zip(keys, partitions_for(keys, self.partitions), strict=True))

    def _check_partition(self, record: Record, key: bytes) -> None:
        state = self._batch.get(key)
        cached = self._cache.get(key) if state is None else None
        if state is not None:
            expected = state.partition  # checked when it was loaded
        elif cached is not None:
            expected = cached[2]
        else:
            arriving = self._arriving.get(key)
            expected = partition_for(key, self.partitions) if arriving is None else arriving
        if record.partition != expected:
            raise InvalidInput(
                "wrong_partition",
                f"record in partition {record.partition} but its subject key hashes to "
                f"{expected}: its producer did not key it with the subject key (murmur2); "
                f"judging it here would miss its consent. Fix the producer, then replay",
            )

    # -- consent and usage ---------------------------------------------------------------

    async def _on_usage(self, record: Record) -> None:
        usage = codec.decode(UsageEvent, record.value or b"")
        self._count_event(metrics.EVENTS_CONSUMED, topics.USAGE, usage.source, str(usage.channel))
        if fanout.is_fan_out(usage):  # names nobody: never judged as a subject
            await self._on_fan_out(record, usage)
            return
        key = subject_message_key(usage.subject_key)
        self._check_partition(record, key)
        self._judge_use(usage, key, record.partition, record.value)

    def _judge_use(self, usage: UsageEvent, key: bytes, partition: int, raw: bytes | None) -> None:
        state = self._load(key, partition)
        step, history = self.judge.usage(usage, state.history, state.holds, self.clock(), raw)
        state.history = history
        if step.duplicate:
            return  # already held or alerted: a replay
        self._emit(step, {usage.event_id: usage.received_at_ms})
        self._changed(state, step)

    def _on_consent(self, record: Record) -> None:
        event = codec.decode(ConsentEvent, record.value or b"")
        if len(event.channels) > 1:
            channel = "several"
        else:
            channel = str(event.channels[0]) if event.channels else "all"
        self._count_event(metrics.EVENTS_CONSUMED, topics.CONSENT, event.source, channel)
        key = subject_message_key(event.subject_key)
        self._check_partition(record, key)
        state = self._load(key, record.partition)
        pending = state.holds.pending
        received = {h.usage.event_id: h.usage.received_at_ms for h in pending} if pending else {}
        step, history = self.judge.consent(event, state.history, state.holds, self.clock())
        state.history = history
        if event.action is ConsentAction.ERASE:
            log.info("erasure %s applied to the ledger", event.event_id)
        self._emit(step, received)
        self._changed(state, step)
        if event.scope or event.action is ConsentAction.ERASE:
            self._note_membership(event, key, record.partition)

    # -- list-level sends: re-published to every partition, expanded per member ----------

    def _note_membership(self, event: ConsentEvent, key: bytes, partition: int) -> None:
        before = Memberships.from_bytes(self._get(self.ledger, member_key(key), partition))
        changed, after = members.apply(before, event)
        if changed:
            self._put(self.ledger, member_key(key), after.to_bytes() if after else None)
            self.membership.set(partition, event.subject_key, before, after)

    def _members_in(self, partition: int) -> Iterator[tuple[str, Memberships | None]]:
        """The partition's memberships: its table, then the writes staged since (read
        after ``drain``: only the current batch's are staged)."""
        found: dict[bytes, bytes | None] = dict(self._scan(self.ledger, partition, MEMBER_PREFIX))
        for k, staged in self._overlay[id(self.ledger)].items():
            if is_member_key(k) and partition_for(k[2:], self.partitions) == partition:
                found[k] = staged[0]
        for k, raw in found.items():
            yield k[2:].decode("ascii"), Memberships.from_bytes(raw)

    async def _on_fan_out(self, record: Record, usage: UsageEvent) -> None:
        p = record.partition
        leg = fanout.leg_partition(usage)
        if leg is None:  # the list-level use: one leg to every partition
            self._check_partition(record, subject_message_key(usage.subject_key))
            for q in range(self.partitions):
                key = fanout.leg_key(usage.subject_key, q, self.partitions)
                self._entry.outputs.append(
                    (self.names.usage, key, codec.encode(fanout.leg(usage, q)))
                )
            return
        if leg != p:
            raise InvalidInput(
                "wrong_partition",
                f"list-level send leg for partition {leg} read from partition {p}: it was "
                f"re-produced without its key; replay the list-level send itself instead",
            )
        deadline = max(usage.received_at_ms, self.clock()) + self.judge.policy.grace_ms
        key = fanout.waiting_key(usage.subject_key, p, self.partitions)
        legs = fanout.waiting_from(self._get(self.ledger, key, p))
        if any(u.event_id == usage.event_id for _, u in legs):
            return  # a redelivered leg, already waiting
        legs.append((deadline, usage))
        self._put(self.ledger, key, fanout.waiting_to(legs))
        self.legs_due.set(p, key, fanout.next_due(legs))

    def _waiting_in(self, partition: int) -> Iterator[tuple[bytes, int | None]]:
        for k, raw in self._scan(self.ledger, partition, fanout.WAITING_PREFIX):
            yield k, fanout.next_due(fanout.waiting_from(raw))

    async def _expand_due(self, p: int, t_ms: int) -> None:
        """Expand the legs due at ``t_ms`` (the partition's consent is read up to then)."""
        if not self.legs_due.built(p):
            await self.drain()
            self.legs_due.build(p, self._waiting_in(p))
        for key in self.legs_due.pop_due(p, t_ms):
            legs = fanout.waiting_from(self._get(self.ledger, key, p))
            rest = [(d, u) for d, u in legs if d > t_ms]
            for due, usage in sorted(legs, key=lambda leg: (leg[0], leg[1].event_id)):
                if due <= t_ms:
                    await self._expand(usage, p)
            # the legs leave the ledger with the last part of their expansion: after a crash
            # before it, they are expanded again (members judged already are known by id)
            self._put(self.ledger, key, fanout.waiting_to(rest))
            self.legs_due.set(p, key, fanout.next_due(rest))

    async def _expand(self, usage: UsageEvent, p: int) -> None:
        ref = fanout.usage_list_ref(usage)
        if ref is None:
            return  # no list id: nobody to expand to
        if not self.membership.built(p):
            await self.drain()  # the scan reads the tables: every staged write first
            self.membership.build(p, self._members_in(p))
        members = list(self.membership.members(p, ref, usage.occurred_at_ms))
        for n, (subject, hint) in enumerate(members, 1):
            member = fanout.member_use(usage, subject, hint)
            self._judge_use(member, subject_message_key(subject), p, None)
            if n % EXPAND_PART == 0 and n < len(members):
                await self._hand_on_part(p)

    async def _hand_on_part(self, partition: int) -> None:
        """Hand on what the record being handled did so far (a list-level send expanded to
        a large list) as a batch of its own: its writes are staged and its outputs sent
        now, so memory stays bounded; the record itself is acknowledged with its last part.
        A crash in between handles the record again: what its parts judged is known by id."""
        self._entry.partition = partition
        self._stage_batch(partition)
        part, self._entry = self._entry, _InFlight(self._entry.finish, self._entry.write_in)
        part.finish = None  # acknowledged with the last part
        self._batch = {}
        self._seal(part)
        self._queue.append(part)
        self._start_flusher()
        if len(self._queue) > MAX_IN_FLIGHT:
            await self._wait_in_flight(MAX_IN_FLIGHT)

    # -- ticks: the grace period and the correction window -------------------------------

    def _due_in_table(self, partition: int) -> dict[bytes, int | None]:
        """Each subject's due time, read from the holds table (pending, alerted, kept)."""
        due: dict[bytes, int | None] = {}
        for key, raw in list(self._scan(self.holds, partition, b"")):
            if outbox.is_outbox_key(key) or is_use_key(key):
                continue  # outputs on their way, or a kept use's record: not a subject
            holds = Holds()
            if is_kept_key(key):
                key = key[2:]
                holds.kept = KeptUses.from_bytes(raw)
            else:
                holds = Holds.from_bytes(raw)
            when = holds.due()
            known = due.get(key)
            due[key] = when if known is None else (known if when is None else min(known, when))
        return due

    def _behind(self, p: int, tick: Tick) -> None:
        """Ticks that arrive but may not decide (consent before them is not all read) are
        normal for a while after a start; for a minute or more they mean held uses wait:
        say so once a minute, with the offsets."""
        now = self.clock()
        since, warned = self._behind_since.setdefault(p, (now, None))
        if now - since >= BEHIND_WARN_MS and (warned is None or now - warned >= BEHIND_WARN_MS):
            self._behind_since[p] = (since, now)
            log.warning(
                "partition %d: ticks arrive but consent is read only up to offset %d of %s "
                "for %.0f s; held uses of this partition are decided once it is read",
                p,
                self.ticks.position(p),
                tick.consent_end,
                (now - since) / 1000,
            )

    async def _on_tick(self, record: Record) -> None:
        tick = Tick.decode(record.value or b"")
        p = record.partition
        self._stats(p)
        if not self.ticks.caught_up(p, tick):
            self._behind(p, tick)
            return  # consent written before this tick is not all read yet: decide nothing
        self._behind_since.pop(p, None)
        if not self.deadlines.built(p):
            await self.drain()  # the scan below reads the tables: every staged write first
            self.deadlines.build(p, self._due_in_table(p).items())
        now = self.clock()
        for key in self.deadlines.pop_due(p, tick.t_ms):
            state = self._load(key, p)
            received = {h.usage.event_id: h.usage.received_at_ms for h in state.holds.pending}
            step = self.judge.expire(state.history, state.holds, tick.t_ms, now)
            self._emit(step, received)
            self._changed(state, step)
            if not (step.holds_changed or step.kept_changed):  # nothing due after all: re-index
                self.deadlines.set(p, key, state.holds.due())
        await self._expand_due(p, tick.t_ms)
