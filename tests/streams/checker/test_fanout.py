"""List-level ("fan-out") sends in the checker: never a subject, expanded per member."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any

import pytest
from consentinel.streams.checker import fanout
from consentinel.streams.checker.judge import Judge
from consentinel.streams.checker.processor import Names, Processor
from consentinel.streams.checker.ticks import Tick, TickClock
from consentinel.streams.events import codec
from consentinel.streams.events.partitioning import partition_for, subject_message_key
from consentinel.streams.events.records import (
    Alert,
    Channel,
    DeadLetter,
    Declaration,
    UsageEvent,
    UsageKind,
    Verdict,
)
from consentinel.streams.events.sealing import Sealer
from consentinel.streams.policy.engine import PolicySettings

N = 4
T0 = 1_767_225_600_000
DAY = 86_400_000
GRACE = 60_000
DECL = Declaration(
    "list:mc", "list", "a1b2c3d4e5", "le-quotidien", "editorial.newsletter", Channel.EMAIL
)


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class Harness:
    """The processor over dict tables; what it sends is kept, acknowledged at once."""

    def __init__(self) -> None:
        self.ledger: dict[bytes, bytes] = {}
        self.holds: dict[bytes, bytes] = {}
        self.stats: dict[bytes, bytes] = {}
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.committed: dict[int, int] = {}
        self.offsets = itertools.count()
        self.proc = Processor(
            judge=Judge(PolicySettings(grace_ms=GRACE), {DECL.decl_id: DECL}.get),
            names=Names("consent", "usage", "tick", "verdicts", "alerts", "deadletter"),
            partitions=N,
            ledger=self.ledger,
            holds=self.holds,
            stats=self.stats,
            send=self.send,
            scan=lambda table, p: [(k, v) for k, v in table.items() if partition_for(k, N) == p],
            ticks=TickClock(self.committed.get),
            sealer=Sealer(b"k" * 32),
            clock=lambda: T0 + 2 * DAY,
        )

    async def send(self, topic: str, key: bytes | None, value: bytes) -> Any:
        self.sent.append((topic, key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def record(self, topic: str, value: bytes, partition: int) -> Rec:
        return Rec(topic, partition, next(self.offsets), None, value)

    def records(self, topic: str) -> list[Any]:
        kind = {"verdicts": Verdict, "alerts": Alert, "deadletter": DeadLetter}[topic]
        return [codec.decode(kind, v) for t, _, v in self.sent if t == topic]


LIST = "a1b2c3d4e5"
FAN_KEY = "f" * 64  # a fan-out key: 64 hex, like mailchimp.list_subject_key gives
FAN_PART = partition_for(subject_message_key(FAN_KEY), N)


def campaign(**kw: Any) -> UsageEvent:
    fields: dict[str, Any] = {
        "event_id": "mc:campaign-1",
        "occurred_at_ms": T0 + DAY,
        "received_at_ms": T0 + DAY,
        "source": "mailchimp-test",
        "processor": "mailchimp",
        "channel": Channel.EMAIL,
        "kind": UsageKind.SEND,
        "subject_key": FAN_KEY,
        "hint": f"* (list {LIST})",
        "controller": "le-quotidien",
        "campaign_id": "cmp-42",
        "list_id": LIST,
        "attributes": {"fan_out": "list", "status": "sent"},
    }
    fields.update(kw)
    return UsageEvent(**fields)


@pytest.fixture
def h() -> Harness:
    return Harness()


async def test_a_list_level_send_is_never_judged_as_a_subject(h: Harness) -> None:
    usage = campaign()
    key = subject_message_key(FAN_KEY)
    await h.proc.handle(h.record("usage", codec.encode(usage), partition=FAN_PART))
    h.committed[FAN_PART] = 10**6
    await h.proc.handle(h.record("tick", _tick(T0 + 3 * DAY + GRACE), partition=FAN_PART))
    assert h.records("verdicts") == []
    assert h.records("alerts") == []
    assert h.records("deadletter") == []
    assert key not in h.holds and key not in h.ledger
    assert not any(k.endswith(key) for k in h.holds)


def _tick(t_ms: int) -> bytes:
    return Tick(t_ms, 0).encode()


def test_member_ids_are_deterministic_and_distinct() -> None:
    usage = campaign()
    a = fanout.member_use(usage, "a" * 64, "a***@x.test")
    again = fanout.member_use(dataclasses.replace(usage), "a" * 64, "a***@x.test")
    b = fanout.member_use(usage, "b" * 64, "b***@x.test")
    assert a.event_id == again.event_id != b.event_id
    assert a.subject_key == "a" * 64 and a.hint == "a***@x.test"
    assert not fanout.is_fan_out(a) and a.attributes[fanout.OF] == usage.event_id
    assert fanout.is_fan_out(usage) and fanout.leg_partition(usage) is None


def test_leg_keys_land_on_their_partition() -> None:
    for p in range(N):
        assert partition_for(fanout.leg_key(FAN_KEY, p, N), N) == p
        assert fanout.leg_partition(fanout.leg(campaign(), p)) == p
