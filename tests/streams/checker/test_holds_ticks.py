"""Held and alerted uses survive a round trip through bytes; ticks and their clock."""

from __future__ import annotations

import pytest
from consentinel.streams.checker.holds import MAX_ALERTED, Alerted, Held, Holds, Kept, RuleState
from consentinel.streams.checker.ticks import Tick, TickClock, tick_interval, tick_topic
from consentinel.streams.events import codec
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import (
    AlertStatus,
    Channel,
    ConsentSummary,
    Decision,
    Declaration,
    Severity,
    UsageEvent,
    UsageKind,
)
from consentinel.streams.policy.engine import Evaluation, Finding


def _usage(n: int) -> UsageEvent:
    return UsageEvent(
        f"esp:{n}",
        10,
        11,
        "esp",
        "t",
        Channel.SMS,
        UsageKind.SEND,
        "d" * 64,
        "+33 6** ** ** 12",
        "acme",
        sender="36180",
        attributes={"k": 1},
    )


def _alerted(n: int, at: int = 100) -> Alerted:
    evaluation = Evaluation(
        Decision.VIOLATION,
        [Finding("R5", "[S6 art. 21]", Severity.CRITICAL, "sent after STOP")],
        "cmp:1",
        ConsentSummary("withdrawn", ["cmp:1"], channels=["sms"]),
        "marketing.direct",
        "acme",
        "sender:36180",
    )
    decl = Declaration("sender:36180", "sender", "36180", "acme", "marketing.direct", Channel.SMS)
    return Alerted(_usage(n), decl, evaluation, at, {"R5": RuleState(1, AlertStatus.FIRING)})


def test_holds_round_trip() -> None:
    holds = Holds(pending=[Held(_usage(1), 500)], alerted=[_alerted(2)])
    again = Holds.from_bytes(holds.to_bytes())
    assert again == holds
    assert again.knows("esp:1") and again.knows("esp:2") and not again.knows("esp:3")
    assert again.next_deadline() == 500
    assert Holds.from_bytes(None) == Holds() and not Holds()


def test_alerted_uses_are_bounded_and_replaced_per_use() -> None:
    holds = Holds()
    for n in range(MAX_ALERTED + 5):
        holds.remember(_alerted(n, at=n))
    assert len(holds.alerted) == MAX_ALERTED
    assert holds.alerted[0].usage.event_id == "esp:5"  # the oldest went first
    holds.remember(_alerted(10, at=1000))
    assert [a.usage.event_id for a in holds.alerted].count("esp:10") == 1
    assert holds.forget_before(1000) == MAX_ALERTED - 1


def test_ticks() -> None:
    assert Tick.decode(Tick(5, 7).encode()) == Tick(5, 7)
    assert Tick.decode(b'{"t": 5}') == Tick(5, None)
    with pytest.raises(InvalidInput):
        Tick.decode(b'{"t": "soon"}')
    committed: dict[int, int] = {}
    clock = TickClock(committed.get)
    assert not clock.caught_up(0, Tick(1, 3))
    assert not clock.caught_up(0, Tick(1, None))
    clock.consent_done(0, 2)  # offsets 0..2 done: position 3
    assert clock.caught_up(0, Tick(1, 3)) and not clock.caught_up(0, Tick(1, 4))
    committed[1] = 9
    assert clock.caught_up(1, Tick(1, 9))


def test_tick_topic_and_interval(make_settings) -> None:
    s = make_settings(topic_prefix="tX.", grace_seconds=2)
    assert tick_topic(s) == "tX.consentinel-tick"
    assert tick_interval(s) == 1.0
    assert tick_interval(make_settings(grace_seconds=120)) == 5.0


def test_an_unreadable_alerted_use_is_dropped_not_the_subject() -> None:
    from consentinel.streams.events import codec

    holds = Holds(pending=[Held(_usage(1), 500)], alerted=[_alerted(2), _alerted(3)])
    obj = codec.loads(holds.to_bytes())
    obj["a"][0]["ev"]["decision"] = "a decision from the future"
    again = Holds.from_bytes(codec.dumps(obj))
    assert [a.usage.event_id for a in again.alerted] == ["esp:3"]
    assert again.pending == holds.pending


def test_kept_uses_round_trip_through_their_table_value() -> None:
    holds = Holds()
    raw = codec.encode(_usage(1))
    holds.keep(Kept.of(_usage(1), 500, raw))  # the record as it came
    holds.keep(Kept.of(_usage(2), 600))  # encoded here
    value = holds.kept_to_bytes()
    assert value is not None
    again = Holds()
    again.load_kept(value)
    assert [(k.event_id, k.occurred_at_ms, k.decided_at_ms) for k in again.kept] == [
        (k.event_id, k.occurred_at_ms, k.decided_at_ms) for k in holds.kept
    ]
    assert again.kept[0].raw == raw
    assert [k.usage for k in again.kept] == [_usage(1), _usage(2)]
    assert again.kept_to_bytes() == value  # written back as read
    damaged = Holds()
    damaged.load_kept(value[:-3])  # the last one truncated: the first is kept
    assert [k.event_id for k in damaged.kept] == [_usage(1).event_id]
