"""The batch pipeline: a batch gives exactly the one-at-a-time results, writes each
changed key once, writes its outputs into its state (the outbox) and sends them only once
that state is durable, and holds its acknowledgement back until Kafka has every output;
after a crash, the outbox is sent again and nothing is decided twice."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

from consentinel.streams.checker import outbox
from consentinel.streams.checker import processor as processor_mod
from consentinel.streams.checker.judge import Judge
from consentinel.streams.checker.processor import Names, Processor
from consentinel.streams.checker.ticks import Tick, TickClock
from consentinel.streams.events import codec
from consentinel.streams.events.partitioning import partition_for, subject_message_key
from consentinel.streams.events.records import (
    Alert,
    Channel,
    ConsentAction,
    ConsentEvent,
    Declaration,
    Proof,
    UsageEvent,
    UsageKind,
    Verdict,
)
from consentinel.streams.events.sealing import Sealer
from consentinel.streams.policy.engine import PolicySettings

N = 6
T0 = 1_767_225_600_000
DAY = 86_400_000
GRACE = 60_000
NAMES = Names("consent", "usage", "tick", "verdicts", "alerts", "deadletter")
DECL = Declaration(
    "list:morning", "list", "morning", "le-quotidien", "editorial.newsletter", Channel.EMAIL
)
PROOF = Proof("double_opt_in", T0, "https://x.test/f", notice_version="3")
SUBJECTS = [f"{i:x}" * 64 for i in range(1, 4)]
SUBJECTS = [s[:64] for s in SUBJECTS]
PART = partition_for(subject_message_key(SUBJECTS[0]), N)


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class CountingTable(dict[bytes, bytes]):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.writes += 1
        super().__setitem__(key, value)


class Producer:
    """Acknowledges at once, or (``failing``) fails every acknowledgement, or (``hold``)
    never acknowledges (a broker that took the records and the worker was killed)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.failing = False
        self.hold = False

    async def send(self, topic: str, key: bytes | None, value: bytes) -> Any:
        self.sent.append((topic, key, value))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.failing:
            fut.set_exception(ConnectionError("broker down"))
        elif not self.hold:
            fut.set_result(None)
        return fut


class BatchSink:
    """The worker's ``send_batch`` and ``write`` (``worker.batches``), faked: each call of
    ``send_batch`` is one produce batch per topic, sharing one acknowledgement (failed for
    the topics in ``failing``, never given while the producer's ``hold``); ``write``
    applies a batch's writes to the tables."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.calls: list[list[tuple[str, bytes | None, bytes]]] = []
        self.failing: set[str] = set()
        self.writes: list[tuple[int, list[tuple[Any, bytes, bytes | None]]]] = []
        self.reads: list[tuple[int, bytes]] = []
        #: the changelog acknowledgements of the writes not acknowledged yet (``hold_writes``)
        self.hold_writes = False
        self.unacked: list[asyncio.Future[int]] = []

    async def send_batch(self, outputs: Any) -> list[Any]:
        self.calls.append(list(outputs))
        self.producer.sent.extend(outputs)
        loop = asyncio.get_running_loop()
        acks: dict[str, asyncio.Future[None]] = {}
        for topic, _, _ in outputs:
            if topic not in acks:
                acks[topic] = loop.create_future()
                if topic in self.failing:
                    acks[topic].set_exception(ConnectionError("broker down"))
                elif not self.producer.hold:
                    acks[topic].set_result(None)
        return [acks[topic] for topic, _, _ in outputs]

    def read(self, table: Any, partition: int, key: bytes) -> bytes | None:
        self.reads.append((partition, key))
        value: bytes | None = dict.get(table, key)
        return value

    def write(self, partition: int, writes: Any) -> list[asyncio.Future[int]]:
        self.writes.append((partition, list(writes)))
        for table, key, value in writes:
            if value is None:
                table.pop(key, None)
            else:
                table[key] = value
        ack: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        if self.hold_writes:
            self.unacked.append(ack)
        else:
            ack.set_result(0)
        return [ack]

    def ack_writes(self) -> None:
        for ack in self.unacked:
            ack.set_result(0)
        self.unacked.clear()


class ReadOnlyThroughHook(CountingTable):
    """A table the processor may not read itself (``read`` reads it)."""

    def get(self, key: bytes, default: Any = None) -> Any:
        raise AssertionError("read through the processor's read hook only")


def make(
    sink: bool = False,
    read: bool = False,
    tables: tuple[CountingTable, CountingTable] | None = None,
) -> tuple[Processor, Producer, CountingTable, CountingTable]:
    """A processor on dict tables (``tables``: the ledger and holds of an earlier one, as a
    restart finds them); with ``sink``, sending and writing in batches (``proc.sink``: the
    ``BatchSink``), and with ``read`` too, reading through it."""
    producer = Producer()
    table = ReadOnlyThroughHook if read else CountingTable
    ledger, holds = tables or (table(), table())
    batches = BatchSink(producer) if sink else None
    proc = Processor(
        judge=Judge(PolicySettings(grace_ms=GRACE), {DECL.decl_id: DECL}.get),
        names=NAMES,
        partitions=N,
        ledger=ledger,
        holds=holds,
        stats=table(),
        send=producer.send,
        scan=lambda table, p, prefix: [
            (k, v) for k, v in table.items() if k.startswith(prefix) and partition_for(k, N) == p
        ],
        ticks=TickClock(lambda p: 10_000),
        sealer=Sealer(b"k" * 32),
        clock=lambda: T0 + 2 * DAY,
        send_batch=batches.send_batch if batches else None,
        write=batches.write if batches else None,
        read=batches.read if batches and read else None,
    )
    proc.sink = batches  # type: ignore[attr-defined]
    return proc, producer, ledger, holds


_ids = itertools.count(1)


def consent(subject: str, at: int, action: ConsentAction = ConsentAction.GRANT) -> ConsentEvent:
    return ConsentEvent(
        event_id=f"cmp:{next(_ids)}",
        occurred_at_ms=at,
        received_at_ms=at,
        source="cmp",
        processor="test",
        subject_key=subject,
        hint="a***@e***.org",
        controller="le-quotidien",
        action=action,
        purposes=["editorial.newsletter"],
        channels=[Channel.EMAIL],
        proof=PROOF,
    )


def use(subject: str, at: int) -> UsageEvent:
    return UsageEvent(
        event_id=f"esp:{next(_ids)}",
        occurred_at_ms=at,
        received_at_ms=at,
        source="esp",
        processor="test",
        channel=Channel.EMAIL,
        kind=UsageKind.SEND,
        subject_key=subject,
        hint="a***@e***.org",
        controller="le-quotidien",
        list_id="morning",
    )


def records() -> list[Rec]:
    """Consent and uses of several subjects of one partition, interleaved."""
    subjects = [
        s
        for s in (f"{i:064x}" for i in range(400))
        if partition_for(subject_message_key(s), N) == PART
    ][:3]
    a, b, c = subjects
    events: list[tuple[str, Any]] = [
        ("usage", use(a, T0 + DAY)),  # no consent yet: pending
        ("consent", consent(a, T0)),  # settles it: allowed
        ("usage", use(a, T0 + DAY + 1)),  # allowed
        ("consent", consent(a, T0 + DAY + 2, ConsentAction.WITHDRAW)),
        ("usage", use(a, T0 + 2 * DAY)),  # a day after the withdrawal
        ("usage", use(b, T0 + DAY)),  # no consent: pending, decided by the tick
        ("consent", consent(c, T0)),
        ("usage", use(c, T0 + DAY)),
        ("usage", use(a, T0 + DAY + 1)),  # same as an earlier use? no: new id; allowed then
        ("tick", Tick(T0 + 3 * DAY, 0)),
        ("consent", consent(b, T0)),  # b's use already alerted: corrected
    ]
    out = []
    for offset, (topic, event) in enumerate(events):
        value = event.encode() if isinstance(event, Tick) else codec.encode(event)
        key = None if isinstance(event, Tick) else subject_message_key(event.subject_key)
        out.append(Rec(topic, PART, offset, key, value))
    return out


async def test_a_batch_gives_exactly_the_one_at_a_time_results() -> None:
    recs = records()
    one, one_out, one_ledger, one_holds = make()
    for rec in recs:
        await one.handle(rec)
    batched, batch_out, ledger, holds = make()
    await batched.submit_batch(recs)
    await batched.drain()
    assert batch_out.sent == one_out.sent, "same outputs, same order, same ids and bytes"
    decisions = [codec.decode(Verdict, v).decision for t, _, v in one_out.sent if t == "verdicts"]
    assert {"allowed", "violation"} <= {str(d) for d in decisions}
    statuses = {str(codec.decode(Alert, v).status) for t, _, v in one_out.sent if t == "alerts"}
    assert statuses == {"firing", "resolved"}, "the tick alerted, the late consent corrected"
    assert dict(ledger) == dict(one_ledger) and dict(holds) == dict(one_holds)
    assert batched.partition_stats == one.partition_stats
    # one changelog record per changed key per batch
    assert ledger.writes == len(ledger) == 3
    assert one_ledger.writes > ledger.writes


def in_outbox(holds: dict[bytes, bytes]) -> list[tuple[str, bytes | None, bytes]]:
    """The outputs the holds table keeps in its outbox slots (not yet acknowledged)."""
    return [
        o for k, v in sorted(holds.items()) if outbox.is_outbox_key(k) for o in outbox.decode(v)
    ]


async def test_a_failed_output_holds_the_acknowledgement_back_and_stays_in_the_outbox(
    monkeypatch: Any,
) -> None:
    real_sleep = asyncio.sleep
    gate = asyncio.Event()

    async def backoff(_: float) -> None:  # the flusher's retry delay: until we say so
        await gate.wait()

    monkeypatch.setattr(processor_mod.asyncio, "sleep", backoff)
    proc, producer, ledger, holds = make()
    finished: list[int] = []

    async def finish(write: Any) -> None:
        write()
        finished.append(len(ledger))

    producer.failing = True
    recs = records()[:5]
    await proc.submit_batch(recs, finish)
    for _ in range(50):
        await real_sleep(0)
    assert producer.sent, "the outputs were sent..."
    assert finished == [], "...but the batch is not acknowledged while they fail"
    subject = subject_message_key(codec.decode(ConsentEvent, recs[1].value or b"").subject_key)
    assert subject in ledger, "its state was written before they were sent"
    assert in_outbox(holds) == producer.sent, "and with it, every output of the batch"
    sent_before = len(producer.sent)
    producer.failing = False
    gate.set()
    await proc.drain()
    assert finished == [1], "acknowledged once, after every output was"
    assert len(producer.sent) == 2 * sent_before, "every failed output was sent again"
    assert in_outbox(holds) == [], "the outbox slot is deleted once they are acknowledged"
    assert not any(outbox.is_outbox_key(k) for k in holds)


async def test_ticks_that_may_not_decide_for_a_minute_are_said_with_the_offsets(caplog) -> None:  # type: ignore[no-untyped-def]
    import logging

    proc, producer, _, holds = make()
    now = [T0]
    proc.clock = lambda: now[0]
    behind = Tick(T0 + 3 * DAY, 20_000)  # the consent end: beyond what was read (10,000)

    with caplog.at_level(logging.WARNING, "consentinel.checker"):
        for i, t in enumerate(range(0, 130_000, 5_000)):  # a tick every 5 s for 130 s
            now[0] = T0 + t
            await proc.handle(Rec("tick", PART, i, None, behind.encode()))
        said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2, said  # at 60 s and 120 s: not for a start-up's first ticks
    assert f"partition {PART}" in said[0] and "up to offset 10000 of 20000" in said[0]
    assert not producer.sent and not dict(holds), "a tick behind the consent decides nothing"


# -- outputs and state in batches (the worker's ``send_batch`` and ``write``) ---------------


async def test_outputs_and_state_in_batches_give_exactly_the_one_at_a_time_results() -> None:
    recs = records()
    one, one_out, one_ledger, one_holds = make()
    for rec in recs:
        await one.handle(rec)
    batched, batch_out, ledger, holds = make(sink=True)
    await batched.submit_batch(recs[:6])
    await batched.submit_batch(recs[6:])
    await batched.drain()
    assert batch_out.sent == one_out.sent, "same outputs, same order, same ids and bytes"
    assert dict(ledger) == dict(one_ledger) and dict(holds) == dict(one_holds)
    sink = batched.sink  # type: ignore[attr-defined]
    assert [o for c in sink.calls for o in c] == one_out.sent
    assert len(sink.calls) == 2, "one send_batch per batch"
    # per batch: its state with its outbox slot first, then (outputs acknowledged) the
    # slot's deletion; all in the batch's partition
    assert [p for p, _ in sink.writes] == [PART] * 4
    first_state, first_release, second_state, second_release = (w for _, w in sink.writes)
    (slot,) = [k for _, k, v in first_release]
    assert outbox.is_outbox_key(slot) and first_release == [(holds, slot, None)]
    assert first_state[0][:2] == (holds, slot), "the outbox slot is the first write"
    assert outbox.decode(first_state[0][2] or b"") == sink.calls[0], "holding the batch's outputs"
    assert outbox.is_outbox_key(second_state[0][1]) and second_release[0][2] is None
    assert sum(1 for _, k, _ in first_state if k == subject_message_key(SUBJECTS[0])) <= 1


async def test_state_read_through_the_read_hook_gives_exactly_the_one_at_a_time_results() -> None:
    recs = records()
    one, one_out, one_ledger, one_holds = make()
    for rec in recs:
        await one.handle(rec)
    batched, batch_out, ledger, holds = make(sink=True, read=True)
    for rec in recs:  # one batch each: every subject's state is read back from the tables
        batched.forget()
        await batched.submit_batch([rec])
    await batched.drain()
    assert batch_out.sent == one_out.sent
    assert dict(ledger) == dict(one_ledger) and dict(holds) == dict(one_holds)
    reads = batched.sink.reads  # type: ignore[attr-defined]
    assert reads and {p for p, _ in reads} == {PART}, "read in the records' partition"
    assert {k for _, k in reads} >= {k for k in ledger}, "every subject's history read back"


async def test_a_failed_produce_batch_holds_the_state_and_acknowledgement_back(
    monkeypatch: Any,
) -> None:
    real_sleep = asyncio.sleep
    gate = asyncio.Event()

    async def backoff(_: float) -> None:  # the flusher's retry delay: until we say so
        await gate.wait()

    monkeypatch.setattr(processor_mod.asyncio, "sleep", backoff)
    proc, _producer, ledger, holds = make(sink=True)
    sink = proc.sink  # type: ignore[attr-defined]
    finished: list[int] = []

    async def finish(write: Any) -> None:
        write()
        finished.append(len(ledger))

    sink.failing = {"verdicts"}
    recs = records()[:5]
    await proc.submit_batch(recs, finish)
    for _ in range(50):
        await real_sleep(0)
    (first,) = sink.calls
    assert {t for t, _, _ in first} == {"verdicts"} and len(first) >= 2
    assert finished == [], "not acknowledged"
    assert len(sink.writes) == 1 and in_outbox(holds) == first, "the state holds the outputs"
    sink.failing = set()
    gate.set()
    await proc.drain()
    assert sink.calls[1:] == [first], "the failed produce batch is sent again, as one"
    assert finished == [1] and len(sink.writes) == 2, "then the outbox slot deleted, the ack"
    assert in_outbox(holds) == []


async def test_outputs_wait_until_kafka_acknowledged_the_state_written_with_them() -> None:
    proc, _producer, _ledger, holds = make(sink=True)
    sink = proc.sink  # type: ignore[attr-defined]
    sink.hold_writes = True
    recs = records()[:9]  # before the tick (its first one drains: it reads the tables)
    await proc.submit_batch(recs[:6])
    await proc.submit_batch(recs[6:])
    for _ in range(50):
        await asyncio.sleep(0)
    assert len(sink.writes) == 2 and in_outbox(holds), "both batches' state is written..."
    assert sink.calls == [], "...and nothing is sent before the changelog has it"
    first, second = sink.unacked
    sink.unacked = [second]
    first.set_result(0)
    for _ in range(50):
        await asyncio.sleep(0)
    assert len(sink.calls) == 1, "the first batch's outputs go once its state is durable"
    sink.hold_writes = False
    sink.ack_writes()
    await proc.drain()
    assert len(sink.calls) == 2 and in_outbox(holds) == []


async def test_after_a_crash_the_outbox_is_sent_again_and_a_replay_decides_nothing_twice() -> None:
    """The orphan alert of the SIGKILL differential test (2026-12): the first run alerts a
    use (its consent withdrawn), is killed before Kafka acknowledged anything, and the
    replay reads one more consent (a new grant) before that use. Without the outbox, the
    replay allowed it and the first run's alert stayed firing for ever."""
    a = next(
        s
        for s in (f"{i:064x}" for i in range(900, 1200))
        if partition_for(subject_message_key(s), N) == PART
    )
    grant, withdraw, again = (
        consent(a, T0 - 40 * DAY),
        consent(a, T0 - 30 * DAY, ConsentAction.WITHDRAW),
        consent(a, T0 - 20 * DAY),
    )
    the_use = use(a, T0 + DAY)

    def rec(topic: str, offset: int, event: Any) -> Rec:
        return Rec(topic, PART, offset, subject_message_key(a), codec.encode(event))

    first, producer, ledger, holds = make(sink=True)
    producer.hold = True  # taken by the broker, never acknowledged: then the worker dies
    await first.submit_batch([rec("consent", 0, grant), rec("consent", 1, withdraw)])
    await first.submit_batch([rec("usage", 0, the_use)])
    for _ in range(50):
        await asyncio.sleep(0)
    alerted = [codec.decode(Alert, v) for t, _, v in producer.sent if t == "alerts"]
    assert [str(x.status) for x in alerted] == ["firing"], "the first run alerted the use"
    assert in_outbox(holds) == producer.sent
    first._flusher.cancel()  # type: ignore[union-attr]  # SIGKILL: nothing committed

    again_proc, replayed, _, _ = make(sink=True, tables=(ledger, holds))
    # the replay from the committed offsets reads the new grant before the use
    await again_proc.submit_batch(
        [rec("consent", 0, grant), rec("consent", 1, withdraw), rec("consent", 2, again)]
    )
    await again_proc.submit_batch([rec("usage", 0, the_use)])
    await again_proc.drain()
    n = len(producer.sent)
    assert replayed.sent[:n] == producer.sent, "the first run's outputs, sent again first"
    alerts = [codec.decode(Alert, v) for t, _, v in replayed.sent if t == "alerts"]
    last = max(alerts, key=lambda x: x.revision)
    assert last.alert_id == alerted[0].alert_id and str(last.status) == "resolved", (
        "the late grant corrects the first run's alert, under its id"
    )
    verdicts = [codec.decode(Verdict, v) for t, _, v in replayed.sent if t == "verdicts"]
    firsts = {v.usage_event_id for v in verdicts if not v.correction}
    assert len([v for v in verdicts if not v.correction]) == len(firsts) == 1, (
        "one first verdict for the use: the replay did not decide it again"
    )
    assert in_outbox(holds) == []


async def test_only_the_outputs_of_a_failed_produce_batch_are_sent_again(
    monkeypatch: Any,
) -> None:
    real_sleep = asyncio.sleep

    async def no_wait(_: float) -> None:
        return None

    monkeypatch.setattr(processor_mod.asyncio, "sleep", no_wait)
    proc, _producer, _ledger, _holds = make(sink=True)
    sink = proc.sink  # type: ignore[attr-defined]
    sink.failing = {"alerts"}
    recs = records()
    await proc.submit_batch(recs[:-1])  # the tick alerts b's use
    while not sink.calls:  # sent once the state written with them is durable
        await real_sleep(0)
    sink.failing = set()
    await proc.drain()
    first, *again = sink.calls
    assert {t for t, _, _ in first} == {"verdicts", "alerts"}
    assert again == [[o for o in first if o[0] == "alerts"]], "the alerts only, once more"


async def test_a_subject_with_nothing_held_is_cached_without_holds_and_can_hold_again() -> None:
    """Most subjects hold nothing: their cache entry keeps no empty ``Holds`` (objects the
    collector scans while cached); the next record of the subject still holds its uses."""
    d = next(
        s
        for s in (f"{i:064x}" for i in range(400, 800))
        if partition_for(subject_message_key(s), N) == PART
    )
    # two consents: read twice, so cached (``admission``); then a use before its consent:
    # held, alerted
    events = [consent(d, T0), consent(d, T0 + 1), use(d, T0 - DAY)]
    recs = records()
    recs += [
        Rec(
            "consent" if isinstance(e, ConsentEvent) else "usage",
            PART,
            len(recs) + n,
            subject_message_key(d),
            codec.encode(e),
        )
        for n, e in enumerate(events)
    ]
    one, one_out, _, one_holds = make()
    for rec in recs:
        await one.handle(rec)
    batched, batch_out, _, holds = make()
    for rec in recs[:-1]:  # one batch each: every subject's state comes from the cache
        await batched.submit_batch([rec])
    await batched.drain()
    assert batched._cache[subject_message_key(d)][1] is None, "nothing held: no Holds kept"
    await batched.submit_batch(recs[-1:])
    await batched.drain()
    assert batch_out.sent == one_out.sent and dict(holds) == dict(one_holds)
    assert batched._cache[subject_message_key(d)][1] is not None, "d holds its use now"


async def test_outputs_in_the_outbox_of_uses_whose_state_was_lost_are_left_to_the_replay() -> None:
    """A crash between two produce batches of one batch's changelog records can keep its
    outbox (written first) and lose the state of a subject: that subject's use is judged
    again by the replay, and only the replay's decision is sent."""
    a, b = [
        s
        for s in (f"{i:064x}" for i in range(1200, 1600))
        if partition_for(subject_message_key(s), N) == PART
    ][:2]
    events = [("consent", consent(a, T0)), ("usage", use(a, T0 + DAY)), ("usage", use(b, T0))]
    recs = [
        Rec(t, PART, i, subject_message_key(e.subject_key), codec.encode(e))
        for i, (t, e) in enumerate(events)
    ]
    first, producer, ledger, holds = make(sink=True)
    producer.hold = True
    await first.submit_batch(recs)
    for _ in range(50):
        await asyncio.sleep(0)
    first._flusher.cancel()  # type: ignore[union-attr]
    assert {codec.decode(Verdict, v).subject_key for t, _, v in in_outbox(holds)} == {a}
    # b's use was pending (no consent): its hold is b's state; a's use is kept as allowed
    lost = [k for k in holds if k.endswith(subject_message_key(a))]
    assert lost, "a's state is in the holds table"
    for k in lost:
        del holds[k]  # the changelog records of a's state never reached Kafka

    again, replayed, _, _ = make(sink=True, tables=(ledger, holds))
    await again.submit_batch(recs)
    await again.drain()
    verdicts = [codec.decode(Verdict, v) for t, _, v in replayed.sent if t == "verdicts"]
    assert [(v.subject_key, v.usage_event_id) for v in verdicts] == [(a, events[1][1].event_id)], (
        "a's use decided once, by the replay: the first decision was not sent beside it"
    )
    assert in_outbox(holds) == []


async def test_after_a_crash_the_outbox_is_sent_again_in_the_order_it_was_written() -> None:
    """Slots are reused lowest first: slot 0 can hold a later batch than slot 1. The
    sequence numbers, not the slots, give the order (a correction sent before the crash is
    repeated after the decision it corrected, as the differential test's CI run needed)."""
    proc, producer, _ledger, holds = make(sink=True)
    early, late = ("deadletter", b"worker", b"early"), ("deadletter", b"worker", b"late")
    holds[outbox.key(PART, 0)] = outbox.encode([late], seq=8)
    holds[outbox.key(PART, 1)] = outbox.encode([early], seq=7)
    tick = Rec("tick", PART, 0, None, Tick(T0, 0).encode())
    await proc.submit_batch([tick])
    await proc.drain()
    assert producer.sent[:2] == [early, late]
    assert not any(outbox.is_outbox_key(k) for k in holds), "both slots deleted once sent"
    producer.hold = True
    await proc.submit_batch(records()[:3])  # a new batch with outputs: numbered after them
    for _ in range(50):
        await asyncio.sleep(0)
    (slot,) = [k for k in holds if outbox.is_outbox_key(k)]
    assert outbox.read(holds[slot])[0] == 9


# -- the cache's admission (``admission``) ----------------------------------------


def _subjects_of_part(count: int) -> list[str]:
    return [
        s
        for s in (f"{i:064x}" for i in range(1000, 3000))
        if partition_for(subject_message_key(s), N) == PART
    ][:count]


def _recs(events: list[Any]) -> list[Rec]:
    return [
        Rec(
            "consent" if isinstance(e, ConsentEvent) else "usage",
            PART,
            n,
            subject_message_key(e.subject_key),
            codec.encode(e),
        )
        for n, e in enumerate(events)
    ]


async def test_a_full_cache_takes_a_state_on_its_second_read_or_while_it_holds_a_pending_use() -> (
    None
):
    once, twice, waiting = _subjects_of_part(3)
    recs = _recs(
        [
            consent(once, T0),
            consent(twice, T0),
            use(waiting, T0 + DAY),  # no consent yet: pending
            use(twice, T0 + DAY),
        ]
    )
    proc, _, _, _ = make()
    proc.cache_size = 3
    for filler in (b"f1", b"f2", b"f3"):  # full: the least recently used are pushed out
        proc._cache[filler] = (None, None, PART)
    for rec in recs:  # one batch each: a state read again comes from the cache or tables
        await proc.submit_batch([rec])
    await proc.drain()
    cached = list(proc._cache)
    assert subject_message_key(once) not in cached, "read once: freed after its batch"
    assert subject_message_key(twice) in cached, "read twice: cached"
    assert subject_message_key(waiting) in cached, "holds a pending use: cached at once"
    assert cached[0] == b"f3", "two pushed out for the two admitted, not for the one read once"


async def test_a_cache_with_room_takes_a_state_read_once() -> None:
    (once,) = _subjects_of_part(1)
    proc, _, _, _ = make()
    await proc.submit_batch(_recs([consent(once, T0)]))
    await proc.drain()
    assert subject_message_key(once) in proc._cache


async def test_subjects_read_from_the_tables_each_time_get_the_cached_results() -> None:
    """The same records judged with every state cached and with none (the cache emptied
    after each batch): the same outputs and tables."""
    subjects = _subjects_of_part(4)
    events: list[Any] = []
    for i, s in enumerate(subjects):
        events += [consent(s, T0 + i), use(s, T0 + DAY + i), use(s, T0 - DAY + i)]
    recs = _recs(events)

    cached, cached_out, cached_ledger, cached_holds = make()  # room for every subject
    uncached, uncached_out, uncached_ledger, uncached_holds = make()
    for rec in recs:
        await cached.submit_batch([rec])
        await uncached.submit_batch([rec])
        uncached._cache.clear()
    await cached.drain()
    await uncached.drain()
    assert {subject_message_key(s) for s in subjects} <= set(cached._cache)
    assert not uncached._cache
    assert uncached_out.sent == cached_out.sent and uncached_out.sent
    assert dict(uncached_ledger) == dict(cached_ledger)
    assert dict(uncached_holds) == dict(cached_holds)


async def test_a_history_read_once_into_a_full_cache_makes_no_decision_memo(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The engine's memo of a history that is freed after its batch would never be read:
    not made. A history the cache keeps gets one (its next use is answered from it)."""
    from consentinel.streams.checker.admission import SecondTouch
    from consentinel.streams.policy.history import ConsentHistory

    read: list[ConsentHistory] = []
    from_obj = ConsentHistory.from_obj.__func__  # type: ignore[attr-defined]

    def spy(cls: type[ConsentHistory], obj: Any, max_versions: int | None = None) -> Any:
        history = from_obj(cls, obj, max_versions)
        read.append(history)
        return history

    monkeypatch.setattr(ConsentHistory, "from_obj", classmethod(spy))
    once, kept = _subjects_of_part(2)
    memos = {}
    for subject, cache_size in ((once, 1), (kept, 100)):
        proc, _, _, _ = make()
        proc.cache_size = cache_size
        await proc.submit_batch(_recs([consent(subject, T0)]))
        await proc.drain()
        proc._cache.clear()
        proc._cache[b"f1"] = (None, None, PART)  # one filler: full at 1, room at 100
        proc._touched = SecondTouch(cache_size)  # the consent's read forgotten
        read.clear()
        await proc.submit_batch(_recs([use(subject, T0 + DAY)]))
        await proc.drain()
        assert len(read) == 1
        memos[cache_size] = (read[0].memoize, len(read[0].decisions))
        assert (subject_message_key(subject) in proc._cache) is (cache_size == 100)
    assert memos == {1: (False, 0), 100: (True, 1)}


# -- kept uses: the index and the records under keys of their own (``holds.KeptUses``) ------


async def test_kept_uses_stored_in_the_format_before_are_moved_and_judged_again() -> None:
    """A worker upgraded onto a holds table written before 2026-12 (every kept use's record
    inside the subject's one value): the next use moves the oldest record under a key of its
    own, and a late withdrawal judges every use again, as it would have without the
    upgrade."""
    import struct

    from consentinel.streams.checker.holds import (
        MAX_INLINE,
        KeptUses,
        is_use_key,
        kept_key,
        use_key,
    )

    (s,) = _subjects_of_part(1)
    key = subject_message_key(s)
    uses = [use(s, T0 + DAY + n) for n in range(MAX_INLINE + 1)]
    recs = _recs(
        [consent(s, T0 - 10 * DAY), *uses, consent(s, T0 - 9 * DAY, ConsentAction.WITHDRAW)]
    )
    first = uses[0].event_id
    runs = {}
    for legacy in (False, True):
        proc, out, _, holds = make()
        await proc.submit_batch(recs[: MAX_INLINE + 1])  # the grant and MAX_INLINE uses
        await proc.drain()
        if legacy:  # the same state, as the code before wrote it
            holds[kept_key(key)] = b"K1" + b"".join(
                struct.pack(">qqHI", k.occurred_at_ms, k.decided_at_ms, len(k.event_id), len(raw))
                + k.event_id.encode()
                + raw
                for k in KeptUses.from_bytes(holds[kept_key(key)]).entries()
                for raw in [k.raw or b""]
            )
        proc._cache.clear()
        await proc.submit_batch(recs[MAX_INLINE + 1 : MAX_INLINE + 2])  # one more use
        await proc.drain()
        assert holds[kept_key(key)].startswith(b"K3")
        assert holds[use_key(key, first)] == codec.encode(uses[0]), "the oldest moved out"
        proc._cache.clear()
        await proc.submit_batch(recs[MAX_INLINE + 2 :])  # the late withdrawal
        await proc.drain()
        runs[legacy] = (out.sent, dict(holds))
        corrected = [v for t, _, v in out.sent if t == "verdicts" and b'"correction":true' in v]
        assert len(corrected) == len(uses), "every allowed use judged again"
        assert not any(is_use_key(k) for k in holds), "records of uses no longer kept deleted"
    assert runs[True] == runs[False]
