"""The checker's event loop body: one record in, outputs acknowledged, then state written.

``Processor.handle`` takes one record of the consent, usage or tick topic (all three
co-partitioned and consumed by ONE agent, so nothing interleaves between reading a
subject's state and writing it back) and:

1. decodes it (a record that does not decode, or sits in a partition its subject key
   does not hash to, goes to the dead-letter topic with the reason);
2. loads the subject's consent history (table ``ledger``) and holds (table ``holds``);
3. asks ``judge`` what changes;
4. sends the verdicts and alerts, and STAGES the history and holds it changed;
5. once Kafka acknowledged every output of the record (retrying forever with backoff: an
   output is never dropped), writes the staged state to the tables, and only then says the
   record is done (``finish``: the agent acknowledges it to Faust, which commits it).

Records are pipelined (``submit``): the next record is handled while the acknowledgements
of the previous ones are on their way, instead of one Kafka round trip per record. What
makes that safe:

- reads see the staged state (an overlay in front of the tables), so every record is
  judged against exactly the state a one-at-a-time processor would give it;
- staged state is written, and records finished, strictly in the order they were handled,
  each only after ALL its outputs were acknowledged: the tables always hold the writes of
  a prefix of the handled records, every output of which Kafka has;
- a record is acknowledged to Faust only after its state is written, so a committed offset
  never covers state that is not in the tables (or outputs that are not in Kafka).

So a crash (anywhere) repeats outputs under the same ids instead of losing them, as
before. At most ``MAX_IN_FLIGHT`` records are in flight; a tick first waits for all of
them (it scans the tables), and Faust's rebalance waits for every record it delivered to
be acknowledged, which the flusher does as soon as the outputs are acknowledged.

Faust is not imported here: tables are plain mutable mappings of bytes, sending is a
coroutine, so the glue is tested without a broker. ``app.py`` wires it to Faust.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from consentinel.streams.events import codec, metrics, topics
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.partitioning import partition_for, subject_message_key
from consentinel.streams.events.records import (
    AlertStatus,
    ConsentAction,
    ConsentEvent,
    DeadLetter,
    UsageEvent,
)
from consentinel.streams.events.sealing import Sealer
from consentinel.streams.holds import Holds
from consentinel.streams.judge import Judge, Step
from consentinel.streams.policy.history import ConsentHistory
from consentinel.streams.ticks import Tick, TickClock

log = logging.getLogger("consentinel.checker")

Table = MutableMapping[bytes, bytes]
#: (topic, key, value) -> awaitable completed when Kafka acknowledged the record
Send = Callable[[str, bytes | None, bytes], Awaitable[Awaitable[Any]]]
#: (table, partition) -> the (key, value) pairs of that table held for that partition
Scan = Callable[[Table, int], Iterable[tuple[bytes, bytes]]]

#: Called once a record's outputs are acknowledged, with the function that writes its
#: staged state: must call it (in the record's partition context), then acknowledge the
#: record. ``None``: the state is written directly.
Finish = Callable[[Callable[[], None]], Awaitable[None]]
Output = tuple[str, bytes | None, bytes]

#: Sweep every partition's holds at least this often (forgets alerted uses past the window).
SWEEP_MS = 10 * 60_000
_SEND_BACKOFF_MAX_S = 30.0
#: Records handled whose outputs are not all acknowledged yet, at most.
MAX_IN_FLIGHT = 2000


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


@dataclass
class _Pending:
    """A subject's state being changed by one event, written back after the sends."""

    key: bytes
    history: ConsentHistory | None
    holds: Holds
    subjects_before: int
    versions_before: int
    pending_before: int
    received: dict[str, int] = field(default_factory=dict)


#: A staged table value (None: delete); the tuple's identity marks the latest staging.
_Staged = tuple[bytes | None]


@dataclass
class _InFlight:
    """One handled record: its outputs (and their acknowledgements) and its staged writes."""

    finish: Finish | None = None
    outputs: list[Output] = field(default_factory=list)
    #: per output: the awaitable acknowledgement, or the exception the send raised
    acks: list[Any] = field(default_factory=list)
    writes: list[tuple[Table, dict[bytes, _Staged], bytes, _Staged]] = field(default_factory=list)


def now_ms() -> int:
    return int(time.time() * 1000)


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
    ) -> None:
        self.judge = judge
        self.names = names
        self.partitions = partitions
        self.ledger = ledger
        self.holds = holds
        self.stats = stats
        self._send = send
        self._scan = scan
        self.ticks = ticks
        self.sealer = sealer
        self.clock = clock
        #: per partition: earliest pending deadline (None = unknown, scan at the next tick)
        self.next_due: dict[int, int | None] = {}
        self.last_sweep: dict[int, int] = {}
        #: per partition: the counters last read or written (metrics read these)
        self.partition_stats: dict[int, PartitionStats] = {}
        #: (topic, partition) -> the offset after the last record handled (for the lag gauge)
        self.progress: dict[tuple[str, int], int] = {}
        #: staged values not yet written, per table (reads look here first)
        self._overlay: dict[int, dict[bytes, _Staged]] = {
            id(ledger): {},
            id(holds): {},
            id(stats): {},
        }
        self._entry = _InFlight()
        self._queue: deque[_InFlight] = deque()
        self._flusher: asyncio.Future[None] | None = None
        self._moved = asyncio.Event()

    # -- dispatch ------------------------------------------------------------------------

    async def handle(self, record: Record) -> None:
        """Handle one record and return once its outputs are acknowledged and state written."""
        await self.submit(record)
        await self.drain()

    async def submit(self, record: Record, finish: Finish | None = None) -> None:
        """Handle one record; ``finish`` is called once its outputs are acknowledged."""
        self._entry = _InFlight(finish)
        try:
            await self._dispatch(record)
        finally:
            entry, self._entry = self._entry, _InFlight()
            self._queue.append(entry)
            self._start_flusher()
        if len(self._queue) > MAX_IN_FLIGHT:
            await self._wait_in_flight(MAX_IN_FLIGHT)

    async def drain(self) -> None:
        """Wait until every record submitted is finished."""
        await self._wait_in_flight(0)

    @property
    def in_flight(self) -> int:
        return len(self._queue)

    async def _dispatch(self, record: Record) -> None:
        topic = record.topic
        try:
            if topic == self.names.usage:
                await self._on_usage(record)
            elif topic == self.names.consent:
                try:
                    await self._on_consent(record)
                finally:
                    self.ticks.consent_done(record.partition, record.offset)
            elif topic == self.names.tick:
                await self._on_tick(record)
            else:
                log.warning("record from unexpected topic %s ignored", topic)
        except InvalidInput as exc:
            await self._dead_letter(record, exc.code, exc.message)
        except Exception as exc:
            # A bug or a state we cannot read: never crash the worker (Faust would ack the
            # record and move on anyway) and never drop it silently: dead-letter it.
            log.exception(
                "cannot process %s[%d]@%d; sent to the dead-letter topic for replay",
                topic,
                record.partition,
                record.offset,
            )
            await self._dead_letter(
                record,
                "processing_error",
                f"the worker failed on this record ({type(exc).__name__})",
            )
        self.progress[(topic, record.partition)] = record.offset + 1

    # -- state ---------------------------------------------------------------------------

    def _get(self, table: Table, key: bytes) -> bytes | None:
        staged = self._overlay[id(table)].get(key)
        if staged is not None:
            return staged[0]
        return table.get(key)

    def _put(self, table: Table, key: bytes, value: bytes | None) -> None:
        """Stage a write (``None``: delete); it reaches the table once the outputs are acked."""
        overlay = self._overlay[id(table)]
        staged: _Staged = (value,)
        overlay[key] = staged
        self._entry.writes.append((table, overlay, key, staged))

    def _load(self, subject_key: str) -> _Pending:
        key = subject_message_key(subject_key)
        raw = self._get(self.ledger, key)
        history = (
            None
            if raw is None
            else ConsentHistory.from_obj(codec.loads(raw), self.judge.max_versions)
        )
        holds = Holds.from_bytes(self._get(self.holds, key))
        return _Pending(
            key=key,
            history=history,
            holds=holds,
            subjects_before=history.subject_count if history else 0,
            versions_before=history.version_count if history else 0,
            pending_before=len(holds.pending),
        )

    def _write(self, partition: int, state: _Pending, step: Step) -> None:
        history = state.history
        if step.history_changed and history is not None:
            if history.subject_count == 0:
                self._put(self.ledger, state.key, None)
            else:
                self._put(self.ledger, state.key, codec.dumps(history.to_obj()))
        if step.holds_changed:
            if state.holds:
                self._put(self.holds, state.key, state.holds.to_bytes())
            else:
                self._put(self.holds, state.key, None)
            deadline = state.holds.next_deadline()
            known = self.next_due.get(partition)  # None: unknown, the next tick scans anyway
            if deadline is not None and known is not None and deadline < known:
                self.next_due[partition] = deadline
        self._count(
            partition,
            subjects=(history.subject_count if history else 0) - state.subjects_before,
            versions=(history.version_count if history else 0) - state.versions_before,
            pending=len(state.holds.pending) - state.pending_before,
        )

    def _stats_key(self, partition: int) -> bytes:
        return f"p{partition}".encode("ascii")

    def _read_stats(self, partition: int) -> PartitionStats:
        raw = self._get(self.stats, self._stats_key(partition))
        obj = codec.loads(raw) if raw else {}
        st = PartitionStats(
            int(obj.get("subjects", 0)), int(obj.get("versions", 0)), int(obj.get("pending", 0))
        )
        self.partition_stats[partition] = st
        return st

    def _count(
        self, partition: int, *, subjects: int = 0, versions: int = 0, pending: int = 0
    ) -> None:
        if not (subjects or versions or pending):
            return
        st = self._read_stats(partition)
        st.subjects = max(0, st.subjects + subjects)
        st.versions = max(0, st.versions + versions)
        st.pending = max(0, st.pending + pending)
        self._put(
            self.stats,
            self._stats_key(partition),
            codec.dumps({"subjects": st.subjects, "versions": st.versions, "pending": st.pending}),
        )

    # -- outputs -------------------------------------------------------------------------

    async def _send_all(self, records: list[Output]) -> None:
        """Send every record now; the flusher waits for (and retries) the acknowledgements."""
        entry = self._entry
        for record in records:
            entry.outputs.append(record)
            entry.acks.append(await self._send_now(record))

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
            for i in todo:
                ack = entry.acks[i]
                try:
                    if isinstance(ack, BaseException):
                        raise ack
                    await ack
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    failed.append(i)
                    error = exc
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
            for i in failed:
                entry.acks[i] = await self._send_now(entry.outputs[i])
            todo = failed

    @staticmethod
    def _apply(entry: _InFlight) -> None:
        for table, overlay, key, staged in entry.writes:
            value = staged[0]
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
            if overlay.get(key) is staged:  # no later record staged this key
                del overlay[key]

    def _start_flusher(self) -> None:
        if self._queue and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        """Finish records in order, each once all its outputs are acknowledged."""
        while self._queue:
            entry = self._queue[0]
            await self._acknowledged(entry)
            self._queue.popleft()
            try:
                if entry.finish is None:
                    self._apply(entry)
                else:
                    await entry.finish(lambda entry=entry: self._apply(entry))  # type: ignore[misc]
            except asyncio.CancelledError:
                raise
            except Exception:
                # Not acknowledged to Faust: the record is read again after a restart.
                log.exception("the state of a handled record could not be written")
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

    async def _emit(self, step: Step, received: dict[str, int]) -> None:
        if not (step.verdicts or step.alerts):
            return
        records: list[tuple[str, bytes | None, bytes]] = [
            (self.names.verdicts, subject_message_key(v.subject_key), codec.encode(v))
            for v in step.verdicts
        ]
        records += [
            (self.names.alerts, a.incident_key.encode("utf-8"), codec.encode(a))
            for a in step.alerts
        ]
        await self._send_all(records)
        for v in step.verdicts:
            for rule in v.rule_ids or ["none"]:
                metrics.VERDICTS.labels(decision=str(v.decision), rule=rule).inc()
            if not v.correction and v.usage_event_id in received:
                latency = (v.decided_at_ms - received[v.usage_event_id]) / 1000
                metrics.EVENT_TO_VERDICT.observe(max(0.0, latency))
        for a in step.alerts:
            if a.status is AlertStatus.RESOLVED:
                metrics.CORRECTIONS.labels(rule=a.rule_id).inc()
            else:
                metrics.ALERTS.labels(rule=a.rule_id, severity=str(a.severity)).inc()
                metrics.ALERTS_BY_CONTROLLER.labels(
                    controller=a.controller, rule=a.rule_id, severity=str(a.severity)
                ).inc()

    async def _dead_letter(self, record: Record, code: str, reason: str) -> None:
        base = self.names.base(record.topic)
        metrics.WORKER_DEADLETTERS.labels(topic=base, reason=code).inc()
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
        await self._send_all([(self.names.deadletter, source.encode(), codec.encode(letter))])

    def _check_partition(self, record: Record, subject_key: str) -> None:
        expected = partition_for(subject_message_key(subject_key), self.partitions)
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
        metrics.EVENTS_CONSUMED.labels(
            topic=topics.USAGE, source=usage.source, channel=str(usage.channel)
        ).inc()
        self._check_partition(record, usage.subject_key)
        state = self._load(usage.subject_key)
        step, history = self.judge.usage(usage, state.history, state.holds, self.clock())
        state.history = history
        if step.duplicate:
            log.debug("usage %s already held or alerted; replay ignored", usage.event_id)
            return
        await self._emit(step, {usage.event_id: usage.received_at_ms})
        self._write(record.partition, state, step)

    async def _on_consent(self, record: Record) -> None:
        event = codec.decode(ConsentEvent, record.value or b"")
        channel = str(event.channels[0]) if len(event.channels) == 1 else "all"
        if len(event.channels) > 1:
            channel = "several"
        metrics.EVENTS_CONSUMED.labels(
            topic=topics.CONSENT, source=event.source, channel=channel
        ).inc()
        self._check_partition(record, event.subject_key)
        state = self._load(event.subject_key)
        received = {h.usage.event_id: h.usage.received_at_ms for h in state.holds.pending}
        step, history = self.judge.consent(event, state.history, state.holds, self.clock())
        state.history = history
        if event.action is ConsentAction.ERASE:
            log.info("erasure %s applied to the ledger", event.event_id)
        await self._emit(step, received)
        self._write(record.partition, state, step)

    # -- ticks: the grace period ---------------------------------------------------------

    async def _on_tick(self, record: Record) -> None:
        tick = Tick.decode(record.value or b"")
        p = record.partition
        await self.drain()  # the scan below reads the tables: every staged write first
        self._read_stats(p)
        if not self.ticks.caught_up(p, tick):
            return  # consent written before this tick is not all read yet: decide nothing
        due = self.next_due.get(p)
        sweep = tick.t_ms - self.last_sweep.get(p, 0) >= SWEEP_MS
        if due is not None and due > tick.t_ms and not sweep:
            return
        if sweep:
            self.last_sweep[p] = tick.t_ms
        subjects: list[bytes] = []
        earliest: int | None = None
        for key, raw in list(self._scan(self.holds, p)):
            holds = Holds.from_bytes(raw)
            deadline = holds.next_deadline()
            if (deadline is not None and deadline <= tick.t_ms) or (sweep and holds.alerted):
                subjects.append(key)
            elif deadline is not None:
                earliest = deadline if earliest is None else min(earliest, deadline)
        states: list[tuple[_Pending, Step]] = []
        combined = Step()
        received: dict[str, int] = {}
        now = self.clock()
        for key in subjects:
            state = self._load(key.decode("ascii"))
            received.update({h.usage.event_id: h.usage.received_at_ms for h in state.holds.pending})
            step = self.judge.expire(state.history, state.holds, tick.t_ms, now)
            states.append((state, step))
            combined.extend(step)
            deadline = state.holds.next_deadline()
            if deadline is not None:
                earliest = deadline if earliest is None else min(earliest, deadline)
        await self._emit(combined, received)
        for state, step in states:
            self._write(p, state, step)
        self.next_due[p] = earliest if earliest is not None else tick.t_ms + SWEEP_MS
