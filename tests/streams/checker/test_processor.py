"""The processor's glue without Faust: dict tables, a fake producer, records in by hand."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

import pytest
from consentinel.streams.checker import outbox
from consentinel.streams.checker import processor as processor_mod
from consentinel.streams.checker.holds import Holds
from consentinel.streams.checker.judge import Judge
from consentinel.streams.checker.processor import Names, Processor
from consentinel.streams.checker.ticks import Tick, TickClock
from consentinel.streams.events import codec, metrics
from consentinel.streams.events.partitioning import partition_for, subject_message_key
from consentinel.streams.events.records import (
    Alert,
    AlertStatus,
    Channel,
    ConsentAction,
    ConsentEvent,
    DeadLetter,
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
SUBJECT = "c" * 64
PART = partition_for(subject_message_key(SUBJECT), N)
NAMES = Names("consent", "usage", "tick", "verdicts", "alerts", "deadletter")
DECL = Declaration(
    "list:morning", "list", "morning", "le-quotidien", "editorial.newsletter", Channel.EMAIL
)
PROOF = Proof(
    method="double_opt_in",
    collected_at_ms=T0,
    collection_point="https://x.test/f",
    notice_version="3",
)
_ids = itertools.count(1)


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class FakeProducer:
    """Records what is sent; ``hold`` keeps acknowledgements back, ``fail`` refuses sends."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.hold = False
        self.fail = 0
        self.pending: list[asyncio.Future[None]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes) -> Any:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("broker down")
        self.sent.append((topic, key, value))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.hold:
            self.pending.append(fut)
        else:
            fut.set_result(None)
        return fut

    def release(self) -> None:
        for fut in self.pending:
            fut.set_result(None)
        self.pending.clear()

    def records(self, topic: str) -> list[Any]:
        kind = {"verdicts": Verdict, "alerts": Alert, "deadletter": DeadLetter}[topic]
        return [codec.decode(kind, v) for t, _, v in self.sent if t == topic]


class Harness:
    def __init__(self) -> None:
        self.ledger: dict[bytes, bytes] = {}
        self.holds: dict[bytes, bytes] = {}
        self.stats: dict[bytes, bytes] = {}
        self.producer = FakeProducer()
        self.committed: dict[int, int] = {}
        self.offsets = itertools.count()
        self.proc = Processor(
            judge=Judge(PolicySettings(grace_ms=GRACE), {DECL.decl_id: DECL}.get),
            names=NAMES,
            partitions=N,
            ledger=self.ledger,
            holds=self.holds,
            stats=self.stats,
            send=self.producer.send,
            scan=lambda table, p, prefix: [
                (k, v)
                for k, v in table.items()
                if k.startswith(prefix) and partition_for(k, N) == p
            ],
            ticks=TickClock(self.committed.get),
            sealer=Sealer(b"k" * 32),
            clock=lambda: T0 + 2 * DAY,
        )

    def record(
        self, topic: str, value: bytes, partition: int = PART, subject: str = SUBJECT
    ) -> Rec:
        return Rec(topic, partition, next(self.offsets), subject_message_key(subject), value)

    async def consent(self, **kw: Any) -> Rec:
        rec = self.consent_record(**kw)
        await self.proc.handle(rec)
        return rec

    def consent_record(self, subject: str = SUBJECT, at: int = T0, **kw: Any) -> Rec:
        """A grant of ``subject`` occurred at ``at``, as a record of its partition."""
        event = ConsentEvent(
            event_id=f"cmp:{next(_ids)}",
            occurred_at_ms=at,
            received_at_ms=at,
            source="cmp",
            processor="test",
            subject_key=subject,
            hint="a***@e***.org",
            controller="le-quotidien",
            action=ConsentAction.GRANT,
            purposes=["editorial.newsletter"],
            channels=[Channel.EMAIL],
            proof=PROOF,
            **kw,
        )
        return self.record("consent", codec.encode(event), _part(subject), subject)

    async def use(self, received: int = T0 + DAY) -> UsageEvent:
        usage = UsageEvent(
            event_id=f"esp:{next(_ids)}",
            occurred_at_ms=T0 + DAY,
            received_at_ms=received,
            source="esp",
            processor="test",
            channel=Channel.EMAIL,
            kind=UsageKind.SEND,
            subject_key=SUBJECT,
            hint="a***@e***.org",
            controller="le-quotidien",
            list_id="morning",
        )
        await self.proc.handle(self.record("usage", codec.encode(usage)))
        return usage

    async def tick(self, t_ms: int, end: int | None) -> None:
        await self.proc.handle(self.record("tick", Tick(t_ms, end).encode()))


def _alerts_counted_for(controller: str) -> float:
    return sum(
        sample.value
        for metric in metrics.ALERTS_BY_CONTROLLER.collect()
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels.get("controller") == controller
    )


@pytest.fixture
def h() -> Harness:
    return Harness()


async def test_a_consented_use_gives_one_verdict_keyed_by_subject(h: Harness) -> None:
    await h.consent()
    usage = await h.use()
    (verdict,) = h.producer.records("verdicts")
    assert verdict.usage_event_id == usage.event_id and verdict.decision == "allowed"
    assert [k for t, k, _ in h.producer.sent] == [subject_message_key(SUBJECT)]
    assert subject_message_key(SUBJECT) in h.ledger
    assert h.proc.partition_stats[PART].subjects == 1
    assert h.proc.partition_stats[PART].versions == 1


async def test_outputs_are_sent_only_once_their_state_is_written_with_them(h: Harness) -> None:
    usage = await h.use()  # no consent: pending (the history notes its first message)
    assert Holds.from_bytes(h.holds[subject_message_key(SUBJECT)]).pending
    before = h.ledger.get(subject_message_key(SUBJECT))
    h.producer.hold = True
    task = asyncio.create_task(h.consent())
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(h.producer.sent) == 1, "the verdict is sent..."
    assert h.ledger.get(subject_message_key(SUBJECT)) not in (None, before), (
        "...after the state that decided it was written"
    )
    assert subject_message_key(SUBJECT) not in h.holds, "(the use is no longer pending)"
    (slot,) = [k for k in h.holds if outbox.is_outbox_key(k)]
    assert outbox.decode(h.holds[slot]) == h.producer.sent, "with the verdict in its outbox"
    h.producer.release()
    await task
    assert slot not in h.holds, "the slot is deleted once Kafka acknowledged the verdict"
    assert h.producer.records("verdicts")[0].usage_event_id == usage.event_id


async def test_a_tick_decides_nothing_until_consent_is_read_up_to_its_end(h: Harness) -> None:
    await h.use(received=T0 + DAY)
    due = T0 + 2 * DAY + GRACE  # the grace period runs from when the worker saw the use
    await h.tick(due, end=5)  # consent partition has 5 records this worker has not read
    await h.tick(due, end=None)  # end unknown
    assert h.producer.sent == []
    h.committed[PART] = 5  # the group has read them all
    await h.tick(due - 1, end=5)  # caught up, but not yet due
    assert h.producer.sent == []
    before = _alerts_counted_for("le-quotidien")
    await h.tick(due, end=5)
    (verdict,) = h.producer.records("verdicts")
    assert verdict.decision == "violation"
    alerts = h.producer.records("alerts")
    assert alerts and {a.status for a in alerts} == {AlertStatus.FIRING}
    assert _alerts_counted_for("le-quotidien") == before + len(alerts)
    assert h.proc.partition_stats[PART].pending == 0
    # a consent arriving now corrects the alert, same id
    await h.consent()
    resolved = [a for a in h.producer.records("alerts") if a.status is AlertStatus.RESOLVED]
    assert {a.alert_id for a in resolved} == {a.alert_id for a in alerts}


async def test_an_undecodable_record_is_dead_lettered_sealed(h: Harness) -> None:
    before = metrics.WORKER_DEADLETTERS.labels(
        topic="consentinel.usage.v1", reason="malformed_json"
    )._value.get()
    raw = b'{"event_id": "x", "hint": "ana@example.org"'
    await h.proc.handle(h.record("usage", raw))
    (letter,) = h.producer.records("deadletter")
    assert letter.reason_code == "malformed_json" and letter.stage == "worker"
    assert letter.attributes["topic"] == "consentinel.usage.v1"
    assert b"example.org" not in codec.encode(letter)
    assert Sealer(b"k" * 32).open_(letter.sealed_payload, "worker") == raw
    after = metrics.WORKER_DEADLETTERS.labels(
        topic="consentinel.usage.v1", reason="malformed_json"
    )._value.get()
    assert after == before + 1


async def test_a_record_in_the_wrong_partition_is_dead_lettered(h: Harness) -> None:
    usage = UsageEvent(
        "esp:w", T0, T0, "esp", "t", Channel.EMAIL, UsageKind.SEND, SUBJECT, "a***@e***.org", "x"
    )
    await h.proc.handle(h.record("usage", codec.encode(usage), partition=(PART + 1) % N))
    (letter,) = h.producer.records("deadletter")
    assert letter.reason_code == "wrong_partition"
    assert h.producer.records("verdicts") == []


async def test_in_a_batch_of_new_subjects_each_record_in_the_wrong_partition_is_dead_lettered(
    h: Harness,
) -> None:
    # Enough new keys for the partitions of the batch to be computed together (lanes)
    subjects = [f"{i:064x}" for i in range(200)]
    home = [s for s in subjects if partition_for(subject_message_key(s), N) == PART][:17]
    away = [s for s in subjects if partition_for(subject_message_key(s), N) != PART][:3]
    batch = []
    for i, subject in enumerate(home[:9] + away + home[9:]):
        usage = UsageEvent(
            f"esp:b{i}", T0, T0, "esp", "t", Channel.EMAIL, UsageKind.SEND, subject, "a***", "x"
        )
        batch.append(h.record("usage", codec.encode(usage), subject=subject))
    await h.proc.submit_batch(batch)
    await h.proc.drain()
    letters = h.producer.records("deadletter")
    assert [letter.reason_code for letter in letters] == ["wrong_partition"] * 3
    assert [letter.attributes["offset"] for letter in letters] == [r.offset for r in batch[9:12]]
    # the others are held for their consent (none yet), as one at a time
    assert all(subject_message_key(s) in h.holds for s in home)
    assert not any(subject_message_key(s) in h.holds for s in away)


async def test_sends_are_retried_until_acknowledged(h: Harness, monkeypatch) -> None:
    async def no_wait(_: float) -> None:
        return None

    monkeypatch.setattr(processor_mod.asyncio, "sleep", no_wait)
    await h.consent()
    h.producer.fail = 2
    await h.use()
    assert len(h.producer.records("verdicts")) == 1


async def test_a_failure_in_the_policy_dead_letters_the_record(h: Harness, monkeypatch) -> None:
    def broken(*args: Any, **kw: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(h.proc.judge, "usage", broken)
    await h.use()
    (letter,) = h.producer.records("deadletter")
    assert letter.reason_code == "processing_error"
    assert h.proc.progress[("usage", PART)] >= 1


async def test_a_batch_writes_the_counters_of_its_own_partition_only(
    h: Harness, monkeypatch
) -> None:
    # Faust writes a table to the store and changelog partition of the current event (a
    # record of the batch): counters of another partition written there would land in the
    # wrong partition's changelog and be read back as that partition's.
    clock = [T0]
    monkeypatch.setattr(processor_mod, "now_ms", lambda: clock[0])
    other = next(s for s in (f"{i:064x}" for i in range(1000)) if _part(s) != PART)

    def stats_key(p: int) -> bytes:
        return f"p{p}".encode()

    await h.consent()  # PART's counters written
    first = h.stats[stats_key(PART)]
    clock[0] += 400
    await h.proc.handle(h.consent_record(at=T0 + 1))
    assert h.stats[stats_key(PART)] == first  # changed, not yet due (once a second)
    clock[0] += 1_000  # PART's counters are due now, but this batch is another partition's
    await h.proc.handle(h.consent_record(other))
    assert stats_key(_part(other)) in h.stats
    assert h.stats[stats_key(PART)] == first, "another partition's batch wrote PART's counters"
    await h.proc.handle(h.consent_record(at=T0 + 2))  # PART's next batch writes them
    assert codec.loads(h.stats[stats_key(PART)])["versions"] > codec.loads(first)["versions"]


def _part(subject: str) -> int:
    return partition_for(subject_message_key(subject), N)
