"""Golden run: the processor over a seeded world gives byte-identical outputs and state.

A guard for speed work on the judging code: every output (topic, key, value bytes) and
every table write (table, key, value bytes) of one deterministic run is hashed and
compared with the digest the code gave before (main at ``21b1dfd``). The world is the
bench's (every subject granted newsletter e-mail; sends of the newsletter, 1 % of a
promotional campaign) at a small size, plus what the bench lacks: out-of-order uses,
withdrawals (some within the processing allowance), refusals, expiring grants, late
consent for held uses, undeclared campaigns, SMS and calls, clicks, list-scoped grants,
partner grants, an erasure, and ticks that end grace periods and the correction window.

The outbox slots (``checker.outbox``: each batch's outputs written with its state, deleted
once Kafka has them) are left out of the writes' digest and checked on their own: every
output went through one.

A change that must keep every verdict but changes a digest is a bug; a change that
deliberately changes the output format updates the digests in the same commit, saying
why. To see what differs, dump both runs and diff them::

    .venv/bin/python tests/streams/checker/test_golden.py > /tmp/after.txt
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from consentinel.streams.checker import outbox
from consentinel.streams.checker import processor as processor_mod
from consentinel.streams.checker.judge import Judge
from consentinel.streams.checker.processor import Names, Processor
from consentinel.streams.checker.ticks import Tick, TickClock
from consentinel.streams.events import codec, ids
from consentinel.streams.events.partitioning import partition_for, subject_message_key
from consentinel.streams.events.records import (
    Channel,
    ConsentAction,
    ConsentEvent,
    Declaration,
    LegalBasis,
    Proof,
    Sourcing,
    UsageEvent,
    UsageKind,
)
from consentinel.streams.events.sealing import Sealer
from consentinel.streams.policy.engine import PolicySettings

N = 6
T0 = 1_767_225_600_000
DAY = 86_400_000
GRACE = 60_000
PAPER = "bench-paper"
BROKER = "list-broker"
NAMES = Names("consent", "usage", "tick", "verdicts", "alerts", "deadletter")

#: digest of every output and table write, and their counts (outputs: main at 21b1dfd;
#: writes: since the records of the older kept uses of a subject move under keys of their
#: own, the writes of every other key are those of 21b1dfd, in the same order, and 809
#: records are moved out and later deleted)
EXPECTED = {
    "outputs": ("9c1729375b0ab1be288df371aec03dc84fb3309a9e583b0836e46e1e04a38ecb", 4971),
    "writes": ("2f43847707010159963e1c720989b69f17aeeb1905ab94cb47bc12541f51f360", 8340),
}


def _decls() -> list[Declaration]:
    def d(ref: str, controller: str, purpose: str, channel: Channel, **kw: Any) -> Declaration:
        return Declaration(
            ids.declaration_id("campaign", ref), "campaign", ref, controller, purpose, channel, **kw
        )

    return [
        d("news", PAPER, "editorial.newsletter", Channel.EMAIL, promotional=False),
        d("promo", PAPER, "marketing.direct", Channel.EMAIL),
        d("sms-promo", PAPER, "marketing.direct", Channel.SMS),
        d(
            "calls",
            PAPER,
            "marketing.telemarketing",
            Channel.PHONE,
            legal_basis=LegalBasis.LEGITIMATE_INTEREST,
        ),
        d(
            "partner",
            BROKER,
            "marketing.direct",
            Channel.EMAIL,
            sourcing=Sourcing.PARTNER,
            acquired_from=[PAPER],
        ),
        d("listed", PAPER, "marketing.direct", Channel.EMAIL, data_sources=["list:vip"]),
    ]


def _subject(i: int) -> str:
    return f"{i:064x}"


PROOF = Proof(
    method="double_opt_in",
    collected_at_ms=T0 - DAY,
    collection_point="https://paper.example/newsletter",
    notice_version="v3",
)


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class _World:
    """Events in arrival order, each (topic, subject key or None for ticks, value)."""

    def __init__(self, subjects: int, uses: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.subjects = subjects
        self.uses = uses
        self.n = 0

    def _consent(self, i: int, at: int, action: ConsentAction, **kw: Any) -> ConsentEvent:
        self.n += 1
        kw.setdefault("controller", PAPER)
        kw.setdefault("proof", PROOF if action is ConsentAction.GRANT else None)
        return ConsentEvent(
            event_id=f"c:{self.n}",
            occurred_at_ms=at,
            received_at_ms=at,
            source="bench",
            processor="bench",
            subject_key=_subject(i),
            hint="b***@e***.org",
            action=action,
            **kw,
        )

    def _use(self, i: int, at: int, campaign: str | None, **kw: Any) -> UsageEvent:
        self.n += 1
        kw.setdefault("channel", Channel.EMAIL)
        kw.setdefault("kind", UsageKind.SEND)
        return UsageEvent(
            event_id=f"u:{self.n}",
            occurred_at_ms=at,
            received_at_ms=T0 + DAY,
            source="bench",
            processor="bench",
            subject_key=_subject(i),
            hint="b***@e***.org",
            controller=PAPER,
            campaign_id=campaign,
            **kw,
        )

    def events(self) -> Iterator[ConsentEvent | UsageEvent | str]:
        rng = self.rng
        late = set(rng.sample(range(self.subjects), self.subjects // 10))
        for i in range(self.subjects):
            if i in late:
                continue
            purposes = ["editorial.newsletter"]
            if i % 7 == 0:
                purposes.append("marketing.direct")
            kw: dict[str, Any] = {}
            if i % 11 == 0:
                kw["expires_at_ms"] = T0 + rng.randrange(0, 2000)
            if i % 13 == 0:
                kw["recipients"] = [BROKER]
                purposes.append("marketing.partner_transfer")
            yield self._consent(
                i, T0 - DAY, ConsentAction.GRANT, purposes=purposes, channels=[Channel.EMAIL], **kw
            )
            if i % 17 == 0:
                yield self._consent(
                    i,
                    T0 - DAY + 5,
                    ConsentAction.GRANT,
                    purposes=["marketing.direct"],
                    channels=[Channel.SMS, Channel.EMAIL],
                    scope="vip",
                )
        for n in range(self.uses):
            i = rng.randrange(self.subjects)
            r = rng.random()
            at = T0 + n
            if r < 0.6:
                yield self._use(i, at, "news")
            elif r < 0.66:
                yield self._use(i, T0 - 2 * DAY, "news")  # out of order: before the consent
            elif r < 0.70:
                yield self._use(i, at, "promo")
            elif r < 0.73:
                yield self._use(i, at, "sms-promo", channel=Channel.SMS)
            elif r < 0.75:
                yield self._use(i, at, "calls", channel=Channel.PHONE, kind=UsageKind.CALL)
            elif r < 0.77:
                yield self._use(i, at, "partner")
            elif r < 0.79:
                yield self._use(i, at, "listed", list_id="vip")
            elif r < 0.81:
                yield self._use(i, at, "undeclared")
            elif r < 0.84:
                yield self._use(i, at, "news", kind=UsageKind.CLICK)
            elif r < 0.86:
                yield self._use(i, at, "news", kind=UsageKind.OPEN)
            elif r < 0.88:
                # a redelivery of an earlier use: same id, nothing new
                self.n -= 1
                yield self._use(i, at, "news")
                self.n += 1
            elif r < 0.91:
                action = rng.choice(
                    [ConsentAction.WITHDRAW, ConsentAction.REFUSE, ConsentAction.EXPIRE]
                )
                channels = rng.choice([[], [Channel.EMAIL], [Channel.SMS]])
                purposes = rng.choice([[], ["editorial.newsletter"], ["marketing.direct"]])
                back = rng.choice([0, 10, 500, 3 * DAY])  # some land before uses already judged
                yield self._consent(i, at - back, action, purposes=purposes, channels=channels)
            elif r < 0.94:
                j = rng.choice(sorted(late)) if late and rng.random() < 0.7 else i
                back = rng.choice([0, 100, 3 * DAY])
                yield self._consent(
                    j,
                    at - back,
                    ConsentAction.GRANT,
                    purposes=rng.choice([["editorial.newsletter"], [], ["marketing.direct"]]),
                    channels=rng.choice([[Channel.EMAIL], []]),
                )
            elif r < 0.945:
                yield self._consent(i, at, ConsentAction.ERASE)
            elif r < 0.96:
                yield self._consent(
                    i,
                    at - rng.choice([0, DAY]),
                    ConsentAction.GRANT,
                    controller=BROKER,
                    purposes=["marketing.direct"],
                    channels=[Channel.EMAIL],
                )
            else:
                yield "tick"


async def _run(subjects: int, uses: int, seed: int, batch: int) -> list[tuple[Any, ...]]:
    log: list[tuple[Any, ...]] = []

    class Table(dict[bytes, bytes]):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        def __setitem__(self, key: bytes, value: bytes) -> None:
            log.append(("write", self.name, key, value))
            super().__setitem__(key, value)

        def pop(self, key: bytes, *default: Any) -> Any:
            log.append(("delete", self.name, key))
            return super().pop(key, *default)

    now = [T0 + DAY]

    async def send(topic: str, key: bytes | None, value: bytes) -> Any:
        log.append(("out", topic, key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    decls = {d.decl_id: d for d in _decls()}
    ledger, holds, stats = Table("ledger"), Table("holds"), Table("stats")
    proc = Processor(
        judge=Judge(PolicySettings(grace_ms=GRACE), decls.get),
        names=NAMES,
        partitions=N,
        ledger=ledger,
        holds=holds,
        stats=stats,
        send=send,
        scan=lambda table, p, prefix: [
            (k, v) for k, v in table.items() if k.startswith(prefix) and partition_for(k, N) == p
        ],
        ticks=TickClock(lambda p: 0),
        sealer=Sealer(b"k" * 32),
        clock=lambda: now[0],
        cache_size=subjects // 3,  # some subjects are read back from the tables
    )
    offsets: dict[tuple[str, int], int] = {}

    def rec(topic: str, p: int, key: bytes | None, value: bytes) -> Rec:
        offset = offsets.get((topic, p), 0)
        offsets[(topic, p)] = offset + 1
        return Rec(topic, p, offset, key, value)

    pending: list[Rec] = []

    async def flush() -> None:
        groups: dict[int, list[Rec]] = {}
        for r in pending:
            groups.setdefault(r.partition, []).append(r)
        pending.clear()
        for group in groups.values():
            await proc.submit_batch(group)

    for event in _World(subjects, uses, seed).events():
        now[0] += 1_000
        if isinstance(event, str):
            await flush()
            for p in range(N):
                tick = Tick(now[0] - 2 * GRACE, offsets.get(("consent", p), 0))
                pending.append(rec("tick", p, None, tick.encode()))
            continue
        key = subject_message_key(event.subject_key)
        topic = "consent" if isinstance(event, ConsentEvent) else "usage"
        pending.append(rec(topic, partition_for(key, N), key, codec.encode(event)))
        if len(pending) >= batch:
            await flush()
    await flush()
    now[0] += 40 * DAY  # past every grace period and the correction window
    for p in range(N):
        pending.append(rec("tick", p, None, Tick(now[0], offsets.get(("consent", p), 0)).encode()))
    await flush()
    await proc.drain()
    return log


def run(subjects: int = 400, uses: int = 4_000, seed: int = 9, batch: int = 40) -> list[Any]:
    real = processor_mod.now_ms
    calls = itertools.count()
    # the counters' once-a-second write, by a clock that moves 0.4 s per batch staged
    processor_mod.now_ms = lambda: 400 * next(calls)
    try:
        return asyncio.run(_run(subjects, uses, seed, batch))
    finally:
        processor_mod.now_ms = real


def _outbox(entry: tuple[Any, ...]) -> bool:
    """A write of an outbox slot (the outputs on their way, put and deleted per batch)."""
    return entry[0] != "out" and outbox.is_outbox_key(entry[2])


def digests(log: list[tuple[Any, ...]]) -> dict[str, tuple[str, int]]:
    """Outputs, and the writes of the state (the outbox's are checked on their own)."""
    out: dict[str, tuple[str, int]] = {}
    for kind, entries in (
        ("outputs", [e for e in log if e[0] == "out"]),
        ("writes", [e for e in log if e[0] != "out" and not _outbox(e)]),
    ):
        h = hashlib.sha256()
        for entry in entries:
            h.update(repr(entry).encode())
        out[kind] = (h.hexdigest(), len(entries))
    return out


def test_the_golden_run_gives_the_same_outputs_and_state() -> None:
    log = run()
    kinds = {(e[0], e[1]) for e in log}
    # the world reaches what it is meant to: verdicts, alerts (raised and resolved), state
    assert {
        ("out", "verdicts"),
        ("out", "alerts"),
        ("write", "ledger"),
        ("write", "holds"),
    } <= kinds
    assert any(b'"status":"resolved"' in e[3] for e in log if e[:2] == ("out", "alerts"))
    assert any(b'"correction":true' in e[3] for e in log if e[:2] == ("out", "verdicts"))
    assert digests(log) == EXPECTED


def test_every_output_of_the_golden_run_went_through_the_outbox_first() -> None:
    """Each output is written into an outbox slot before it is sent, and each slot is
    deleted once its outputs are: at the end the outbox is empty."""
    log = run()
    held: dict[bytes, list[Any]] = {}
    through: list[Any] = []
    for entry in log:
        if entry[0] == "out":
            assert any(entry[1:] in outputs for outputs in held.values()), (
                "sent before it was written into an outbox slot"
            )
            through.append(entry[1:])
        elif _outbox(entry):
            if entry[0] == "write":
                assert entry[2] not in held, "a slot reused before it was deleted"
                held[entry[2]] = outbox.decode(entry[3])
            else:
                held.pop(entry[2])
    assert held == {} and len(through) == EXPECTED["outputs"][1]


if __name__ == "__main__":
    for entry in run():
        print(entry)
    print(digests(run()), file=sys.stderr)
    pytest  # noqa: B018 (imported for the test runner)
