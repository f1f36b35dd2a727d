"""List-level ("fan-out") sends in the checker: never a subject, expanded per member."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any

import pytest
from consentinel.streams.checker import fanout, members
from consentinel.streams.checker.judge import Judge
from consentinel.streams.checker.members import is_member_key
from consentinel.streams.checker.processor import Names, Processor
from consentinel.streams.checker.ticks import Tick, TickClock
from consentinel.streams.events import codec
from consentinel.streams.events.partitioning import partition_for, subject_message_key
from consentinel.streams.events.records import (
    Alert,
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
from consentinel.streams.policy.history import ConsentHistory

N = 4
T0 = 1_767_225_600_000
DAY = 86_400_000
GRACE = 60_000
DECL = Declaration(
    "list:a1b2c3d4e5", "list", "a1b2c3d4e5", "le-quotidien", "editorial.newsletter", Channel.EMAIL
)


LIST = "a1b2c3d4e5"
FAN_KEY = "f" * 64  # a fan-out key: 64 hex, like mailchimp.list_subject_key gives
FAN_PART = partition_for(subject_message_key(FAN_KEY), N)
PROOF = Proof(
    method="double_opt_in",
    collected_at_ms=T0 - 60 * DAY,
    collection_point="https://x.test/f",
    notice_version="3",
)


def _scan(table: dict[bytes, bytes], p: int, prefix: bytes) -> list[tuple[bytes, bytes]]:
    def subject(k: bytes) -> bytes:
        return k[2:] if is_member_key(k) or fanout.is_waiting_key(k) else k

    return [
        (k, v)
        for k, v in table.items()
        if k.startswith(prefix) and partition_for(subject(k), N) == p
    ]


def subject(i: int) -> str:
    return f"{i:064x}"


def part(key: str) -> int:
    return partition_for(subject_message_key(key), N)


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class Harness:
    """The processor over dict tables; what it sends is kept, acknowledged at once."""

    def __init__(self, tables: tuple[dict[bytes, bytes], ...] | None = None) -> None:
        self.ledger, self.holds, self.stats = tables or ({}, {}, {})
        self.consents: dict[int, bytes] = {}
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
            scan=_scan,
            ticks=TickClock(self.committed.get),
            sealer=Sealer(b"k" * 32),
            clock=lambda: T0 + 2 * DAY,
        )

    async def send(self, topic: str, key: bytes | None, value: bytes) -> Any:
        self.sent.append((topic, key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    def restarted(self) -> Harness:
        """A new processor over the same tables (what a restart recovers)."""
        return Harness((self.ledger, self.holds, self.stats))

    async def consent(self, i: int, action: ConsentAction, scope: str | None = LIST) -> None:
        key = subject(i)
        event = ConsentEvent(
            event_id=f"c:{i}:{action}:{scope}",
            occurred_at_ms=T0 - (60 if action is ConsentAction.GRANT else 30) * DAY,
            received_at_ms=T0,
            source="mailchimp-test",
            processor="mailchimp",
            subject_key=key,
            hint=f"r{i}***@x.test",
            controller="le-quotidien",
            action=action,
            purposes=["editorial.newsletter"] if action is ConsentAction.GRANT else [],
            channels=[Channel.EMAIL] if action is ConsentAction.GRANT else [],
            proof=PROOF if action is ConsentAction.GRANT else None,
            scope=scope,
        )
        self.consents[i] = codec.encode(event)
        await self.proc.handle(self.record("consent", codec.encode(event), part(key)))

    def sent_consent(self, i: int) -> bytes:
        return self.consents[i]

    async def send_campaign(self, usage: UsageEvent) -> list[Rec]:
        """Hand the list-level send in; return the legs it re-published, as records."""
        before = len(self.sent)
        await self.proc.handle(self.record("usage", codec.encode(usage), FAN_PART))
        return [
            Rec(t, partition_for(k or b"", N), next(self.offsets), k, v)
            for t, k, v in self.sent[before:]
            if t == "usage"
        ]

    async def expand(self, legs: list[Rec], proc: Processor | None = None) -> None:
        """Hand the legs in, then a tick past their deadline to every partition."""
        proc = proc or self.proc
        for leg in legs:
            await proc.handle(leg)
        for p in range(N):
            self.committed[p] = 10**6  # the consent of every partition is read
            await proc.handle(self.record("tick", _tick(T0 + 3 * DAY), p))

    def record(self, topic: str, value: bytes, partition: int) -> Rec:
        return Rec(topic, partition, next(self.offsets), None, value)

    def records(self, topic: str) -> list[Any]:
        kind = {"verdicts": Verdict, "alerts": Alert, "deadletter": DeadLetter}[topic]
        return [codec.decode(kind, v) for t, _, v in self.sent if t == topic]


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


async def scenario(h: Harness) -> dict[str, int]:
    """Members 0-11 of the list (0-8 consented, 9-11 withdrew everywhere a month ago), 12-14
    consented but on no list, 15 left the list. Returns subject -> expected state."""
    for i in range(12):
        await h.consent(i, ConsentAction.GRANT)
    for i in range(9, 12):
        await h.consent(i, ConsentAction.WITHDRAW, scope=None)  # e.g. a preference centre
    for i in range(12, 15):
        await h.consent(i, ConsentAction.GRANT, scope=None)
    await h.consent(15, ConsentAction.GRANT)
    await h.consent(15, ConsentAction.WITHDRAW)  # unsubscribed from the list itself
    assert {part(subject(i)) for i in range(12)} == set(range(N)), "members on every partition"
    return {subject(i): i for i in range(16)}


async def test_a_campaign_gives_one_verdict_per_member_and_nothing_else(h: Harness) -> None:
    await scenario(h)
    usage = campaign()
    legs = await h.send_campaign(usage)
    assert sorted(r.partition for r in legs) == list(range(N)), "one leg per partition"
    assert h.records("verdicts") == []
    for leg in legs:
        await h.proc.handle(leg)
    assert h.records("verdicts") == [], "a leg waits for its partition's consent"
    await h.expand([])
    verdicts = h.records("verdicts")
    decided = {v.subject_key: str(v.decision) for v in verdicts}
    assert len(verdicts) == len(decided) == 12
    assert decided == {subject(i): "allowed" if i < 9 else "violation" for i in range(12)}, (
        "members only: consented allowed, withdrawn violations"
    )
    ids = {v.subject_key: v.usage_event_id for v in verdicts}
    assert ids == {s: fanout.member_event_id(usage.event_id, s) for s in ids}
    alerts = h.records("alerts")
    assert alerts and {a.subject_key for a in alerts} == {subject(i) for i in (9, 10, 11)}
    assert {a.hint for a in alerts} == {f"r{i}***@x.test" for i in (9, 10, 11)}
    assert not any(FAN_KEY in (a.subject_key, a.incident_key) for a in alerts)
    assert subject_message_key(FAN_KEY) not in h.ledger


async def test_a_redelivered_campaign_repeats_nothing(h: Harness) -> None:
    await scenario(h)
    await h.expand(await h.send_campaign(campaign()))
    first = len(h.records("verdicts")), len(h.records("alerts"))
    legs = await h.send_campaign(campaign())  # the platform's (or Kafka's) redelivery
    again = [dataclasses.replace(leg, offset=next(h.offsets)) for leg in legs]  # and the legs'
    await h.expand(legs + again)
    assert (len(h.records("verdicts")), len(h.records("alerts"))) == first


async def test_membership_survives_a_restart(h: Harness) -> None:
    await scenario(h)
    usage = campaign()
    legs = await h.send_campaign(usage)
    for leg in legs[:2]:
        await h.proc.handle(leg)  # two legs wait...
    after = h.restarted()  # ...memberships and waiting legs are read back from the table
    await after.expand(legs[2:], after.proc)
    decided = {v.subject_key: str(v.decision) for v in after.records("verdicts")}
    assert decided == {subject(i): "allowed" if i < 9 else "violation" for i in range(12)}


async def test_a_member_who_unsubscribes_right_after_the_campaign_is_judged(
    h: Harness,
) -> None:
    await h.consent(1, ConsentAction.GRANT)
    legs = await h.send_campaign(campaign())
    for leg in legs:
        await h.proc.handle(leg)  # the legs wait...
    left = dataclasses.replace(
        codec.decode(ConsentEvent, h.sent_consent(1)),
        event_id="unsub",
        occurred_at_ms=T0 + DAY + 1000,  # ...the member unsubscribes from this campaign
        action=ConsentAction.WITHDRAW,
    )
    await h.proc.handle(h.record("consent", codec.encode(left), part(subject(1))))
    await h.expand([])
    assert [(v.subject_key, str(v.decision)) for v in h.records("verdicts")] == [
        (subject(1), "allowed")
    ]


async def test_a_member_who_joined_after_the_campaign_gets_nothing(h: Harness) -> None:
    await h.consent(1, ConsentAction.GRANT)
    await h.expand(await h.send_campaign(campaign(occurred_at_ms=T0 - 61 * DAY)))
    assert h.records("verdicts") == []


async def test_an_erasure_leaves_every_list(h: Harness) -> None:
    await h.consent(1, ConsentAction.GRANT)
    await h.consent(1, ConsentAction.ERASE, scope=None)
    assert not any(is_member_key(k) for k in h.ledger)
    await h.expand(await h.send_campaign(campaign()))
    assert h.records("verdicts") == []


async def test_a_leg_read_in_another_partition_is_dead_lettered(h: Harness) -> None:
    legs = await h.send_campaign(campaign())
    leg = legs[0]
    await h.proc.handle(dataclasses.replace(leg, partition=(leg.partition + 1) % N))
    (letter,) = h.records("deadletter")
    assert letter.reason_code == "wrong_partition"
    assert h.records("verdicts") == []


def _event(action: ConsentAction, at: int, scope: str | None = LIST) -> ConsentEvent:
    return ConsentEvent(
        event_id=f"e:{action}:{at}:{scope}",
        occurred_at_ms=at,
        received_at_ms=at,
        source="mailchimp-test",
        processor="mailchimp",
        subject_key=subject(1),
        hint="r1***@x.test",
        controller="le-quotidien",
        action=action,
        scope=scope,
    )


def test_membership_follows_scoped_events_in_event_time() -> None:
    ref = fanout.list_ref("mailchimp", "le-quotidien", LIST)
    changed, joined = members.apply(None, _event(ConsentAction.GRANT, T0))
    assert changed and joined is not None and dict(joined.joined()) == {ref: T0}
    assert members.apply(joined, _event(ConsentAction.WITHDRAW, T0 + 1, scope=None)) == (
        False,
        joined,
    ), "an event naming no list changes no membership"
    late = members.apply(joined, _event(ConsentAction.WITHDRAW, T0 - 1))
    assert late == (False, joined), "an older event reported late changes nothing"
    changed, left = members.apply(joined, _event(ConsentAction.WITHDRAW, T0 + 1))
    assert changed and left is not None and dict(left.joined()) == {}
    assert left.lists[ref] == (T0, T0 + 1), "a list left is remembered for a while"
    assert members.on_at(left.lists[ref], T0) and not members.on_at(left.lists[ref], T0 + 1)
    later = _event(ConsentAction.GRANT, T0 + members.LEFT_KEPT_MS + 2, scope="other")
    assert members.apply(left, later)[1] is not None
    assert ref not in members.apply(left, later)[1].lists, "then forgotten"  # type: ignore[union-attr]
    assert members.apply(joined, _event(ConsentAction.ERASE, T0 + 1, scope=None)) == (True, None)
    other = dataclasses.replace(_event(ConsentAction.ERASE, T0 + 1, scope=None), controller="acme")
    assert members.apply(joined, other) == (False, joined), "another controller's erasure"
    raw = joined.to_bytes()
    assert raw is not None and members.Memberships.from_bytes(raw) == joined


def test_a_subject_is_on_a_bounded_number_of_lists() -> None:
    state: members.Memberships | None = None
    for i in range(members.MAX_LISTS + 10):
        _, state = members.apply(state, _event(ConsentAction.GRANT, T0 + i, scope=f"list-{i}"))
    assert state is not None and len(state.lists) == members.MAX_LISTS
    kept = {ref.rsplit("\x1f", 1)[1] for ref, _ in state.joined()}
    assert kept == {f"list-{i}" for i in range(10, members.MAX_LISTS + 10)}, "oldest forgotten"


async def test_members_by_import_only_get_violations(h: Harness) -> None:
    """A rented file imported into the list (``join``: membership, no consent) beside
    consented members: the campaign is lawful for the consented, a violation for the rest,
    and nothing for those on no list."""
    for i in range(4):
        await h.consent(i, ConsentAction.GRANT)
    for i in range(4, 8):
        await h.consent(i, ConsentAction.JOIN)
    await h.consent(8, ConsentAction.GRANT, scope=None)  # consented, never on the list
    await h.expand(await h.send_campaign(campaign()))
    for p in range(N):  # no consent at all is held for a late one: past the grace period
        await h.proc.handle(h.record("tick", _tick(T0 + 4 * DAY), p))
    decided = {v.subject_key: str(v.decision) for v in h.records("verdicts")}
    assert decided == {subject(i): "allowed" if i < 4 else "violation" for i in range(8)}
    alerted = {a.subject_key for a in h.records("alerts")}
    assert alerted == {subject(i) for i in range(4, 8)}
    assert all(
        "R1" in {a.rule_id for a in h.records("alerts") if a.subject_key == s} for s in alerted
    )


def test_a_join_is_membership_the_consent_history_ignores() -> None:
    join = _event(ConsentAction.JOIN, T0)
    changed, state = members.apply(None, join)
    assert changed and state is not None
    ref = fanout.list_ref("mailchimp", "le-quotidien", LIST)
    assert state.lists[ref] == (T0, None)
    again, _ = members.apply(state, _event(ConsentAction.JOIN, T0 + 1))
    assert not again, "on the list already"
    left, after = members.apply(state, _event(ConsentAction.WITHDRAW, T0 + 2))
    assert left and after is not None and after.lists[ref] == (T0, T0 + 2)
    history = ConsentHistory("a" * 64)
    assert history.apply(join) is False
    assert history.states_in_force("le-quotidien", T0 + 5, 0)[0].status.value == "unknown"


async def test_a_large_expansion_is_handed_on_in_parts_with_the_same_verdicts(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from consentinel.streams.checker import processor as processor_mod

    await scenario(h)
    monkeypatch.setattr(processor_mod, "EXPAND_PART", 2)  # members of a partition: 3 each
    parts: list[int] = []
    hand_on = h.proc._hand_on_part

    async def counted(p: int) -> None:
        parts.append(p)
        await hand_on(p)

    monkeypatch.setattr(h.proc, "_hand_on_part", counted)
    await h.expand(await h.send_campaign(campaign()))
    assert parts, "no expansion was handed on in parts"
    decided = {v.subject_key: str(v.decision) for v in h.records("verdicts")}
    assert len(h.records("verdicts")) == len(decided) == 12
    assert decided == {subject(i): "allowed" if i < 9 else "violation" for i in range(12)}
    assert {a.subject_key for a in h.records("alerts")} == {subject(i) for i in (9, 10, 11)}
    assert not any(fanout.is_waiting_key(k) and v for k, v in h.ledger.items()), "legs done"


class Killed(BaseException):
    """The worker dies between two parts of an expansion."""


async def test_a_crash_between_parts_expands_again_and_repeats_no_verdict(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from consentinel.streams.checker import processor as processor_mod

    await scenario(h)
    monkeypatch.setattr(processor_mod, "EXPAND_PART", 1)
    legs = await h.send_campaign(campaign())
    hand_on = h.proc._hand_on_part

    async def dies(p: int) -> None:
        await hand_on(p)  # the first part is written...
        await h.proc.drain()
        raise Killed  # ...and the worker dies before the rest

    monkeypatch.setattr(h.proc, "_hand_on_part", dies)
    with pytest.raises(Killed):
        await h.expand(legs)
    before = {v.subject_key for v in h.records("verdicts")}
    assert before and len(before) < 12, "part of the list judged before the crash"
    assert any(fanout.is_waiting_key(k) and v for k, v in h.ledger.items()), "legs kept"
    after = h.restarted()  # the tick is read again: its legs are still waiting
    await after.expand([], after.proc)
    again = {v.subject_key for v in after.records("verdicts")}
    assert before.isdisjoint(again), "a member judged before the crash is not judged again"
    decided = {v.subject_key: str(v.decision) for v in h.records("verdicts")}
    decided |= {v.subject_key: str(v.decision) for v in after.records("verdicts")}
    assert decided == {subject(i): "allowed" if i < 9 else "violation" for i in range(12)}


async def test_the_parts_of_a_large_expansion_are_written_in_their_partition_context(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flusher task runs in the context it was started from (maybe another partition's
    batch); Faust picks a write's changelog partition and database from the context, so
    every part of an expansion is written through the ``write_in`` of its own batch."""
    from consentinel.streams.checker import processor as processor_mod

    await scenario(h)
    monkeypatch.setattr(processor_mod, "EXPAND_PART", 2)
    legs = await h.send_campaign(campaign())
    for leg in legs:
        await h.proc.handle(leg)
    context: list[int | None] = [None]
    written_in: list[int | None] = []
    apply = h.proc._apply

    def watched(entry: Any) -> None:
        if entry.writes:
            written_in.append(context[0])
        apply(entry)

    monkeypatch.setattr(h.proc, "_apply", watched)

    def write_in_of(p: int) -> Any:
        def write_in(write: Any) -> None:
            context[0] = p
            try:
                write()
            finally:
                context[0] = None

        return write_in

    async def finish_of(p: int) -> Any:
        async def finish(write: Any) -> None:
            write_in_of(p)(write)

        return finish

    for p in range(N):
        h.committed[p] = 10**6
        tick = h.record("tick", _tick(T0 + 3 * DAY), p)
        await h.proc.submit_batch([tick], await finish_of(p), write_in_of(p))
    await h.proc.drain()
    assert len(written_in) > N, "the expansion was not written in parts"
    assert None not in written_in, "a part of the expansion was written outside its context"
    decided = {v.subject_key: str(v.decision) for v in h.records("verdicts")}
    assert decided == {subject(i): "allowed" if i < 9 else "violation" for i in range(12)}
