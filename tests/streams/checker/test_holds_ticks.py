"""Held and alerted uses survive a round trip through bytes; ticks and their clock."""

from __future__ import annotations

import struct

import pytest
from consentinel.streams.checker.holds import (
    ALERTED_WINDOW_MS,
    MAX_ALERTED,
    MAX_INLINE,
    MAX_KEPT,
    Alerted,
    Held,
    Holds,
    KeptUses,
    RuleState,
    is_use_key,
    subject_of_use_key,
    use_key,
)
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


def _kept(*uses: tuple[int, int]) -> KeptUses:
    kept = KeptUses()
    for n, at in uses:
        kept.add(_usage(n), at)
    return kept


def _use_of(kept: KeptUses, event_id: str) -> UsageEvent | None:
    return kept.usage(next(k for k in kept.entries() if k.event_id == event_id))


def _ids(kept: KeptUses) -> list[str]:
    return [k.event_id for k in kept.entries()]


def test_kept_uses_round_trip_through_their_table_value() -> None:
    kept = KeptUses()
    raw = codec.encode(_usage(1))
    kept.add(_usage(1), 500, raw)  # the record as it came
    kept.add(_usage(2), 600)  # encoded here
    assert kept.records == {}  # a few uses: their records inside the value, one write
    value = kept.to_bytes()
    assert value is not None and raw in value
    again = KeptUses.from_bytes(value)
    assert [(k.event_id, k.occurred_at_ms, k.decided_at_ms) for k in again.entries()] == [
        ("esp:1", 10, 500),
        ("esp:2", 10, 600),
    ]
    assert _use_of(again, "esp:1") == _usage(1) and _use_of(again, "esp:2") == _usage(2)
    assert again.knows("esp:1") and not again.knows("esp:3") and not again.knows("esp:")
    assert again.to_bytes() == value  # written back as read
    assert again.oldest_decided_ms == 500 and len(again) == 2
    assert KeptUses.from_bytes(value[:5]).to_bytes() is None  # damaged: nothing
    assert KeptUses.from_bytes(b"?" + value).to_bytes() is None  # unknown format: nothing


def test_the_records_of_older_uses_move_under_keys_of_their_own_once() -> None:
    kept = _kept(*((n, 100 + n) for n in range(MAX_INLINE)))
    assert kept.records == {}
    kept.add(_usage(MAX_INLINE), 200)
    assert list(kept.records) == ["esp:0"], "the oldest record moved out"
    stored = dict(kept.records)
    kept.records.clear()  # written
    kept.add(_usage(MAX_INLINE + 1), 201)
    assert list(kept.records) == ["esp:1"], "one more each use, never twice"
    stored.update(kept.records)
    value = kept.to_bytes()
    assert value is not None and codec.encode(_usage(0)) not in value
    again = KeptUses.from_bytes(value, stored.get)
    assert _ids(again) == [f"esp:{n}" for n in range(MAX_INLINE + 2)]
    assert [_use_of(again, f"esp:{n}") for n in range(MAX_INLINE + 2)] == [
        _usage(n) for n in range(MAX_INLINE + 2)
    ]
    lost = KeptUses.from_bytes(value, {}.get)  # a record that never reached the table
    assert lost.knows("esp:0") and _use_of(lost, "esp:0") is None


def test_kept_uses_are_bounded_oldest_decided_first() -> None:
    kept = _kept(*((n, 1000 + n) for n in range(MAX_KEPT)))
    kept.records.clear()  # written
    kept.add(_usage(MAX_KEPT), 5000)
    assert len(kept) == MAX_KEPT and not kept.knows("esp:0")
    assert list(kept.gone) == ["esp:0"], "its record deleted"
    assert list(kept.records) == [f"esp:{MAX_KEPT - MAX_INLINE}"]
    assert kept.oldest_decided_ms == 1001
    kept.records.clear()
    kept.add(_usage(1), 6000)  # a repeat moves to the end, its record inside again
    assert _ids(kept)[-2:] == [f"esp:{MAX_KEPT}", "esp:1"]
    assert "esp:1" in kept.gone and "esp:1" not in kept.records
    assert len(kept) == MAX_KEPT and kept.oldest_decided_ms == 1002
    assert _use_of(kept, "esp:1") == _usage(1)
    early = _kept((1, 900), (2, 1000))
    early.add(_usage(3), 950)  # a clock gone back: still oldest first
    assert _ids(early) == ["esp:1", "esp:3", "esp:2"]
    assert early.oldest_decided_ms == 900


def test_kept_uses_leave_with_the_correction_window() -> None:
    holds = Holds(kept=_kept(*((n, 100 * n) for n in range(1, MAX_INLINE + 3))))
    assert list(holds.kept.records) == ["esp:1", "esp:2"]
    holds.kept.records.clear()
    assert holds.due() == 100 + ALERTED_WINDOW_MS
    assert holds.forget_before(350) == 3
    assert _ids(holds.kept)[0] == "esp:4"
    assert list(holds.kept.gone) == ["esp:1", "esp:2"]  # the records outside deleted
    assert holds.due() == 400 + ALERTED_WINDOW_MS
    assert holds.knows("esp:4") and not holds.knows("esp:1")
    for n in range(4, MAX_INLINE + 3):
        holds.kept.remove(f"esp:{n}")
    assert holds.due() is None and holds.kept.to_bytes() is None


def test_values_of_the_formats_before_are_read() -> None:
    """Before 2026-12 each subject's kept uses were one value holding every record; for a
    while after, one value of ids and times with every record under its own key."""
    n_uses = MAX_INLINE + 2
    raws = {f"esp:{n}": codec.encode(_usage(n)) for n in range(n_uses)}
    legacy = b"K1" + b"".join(
        struct.pack(">qqHI", 10, 500 + n, len(f"esp:{n}"), len(raw)) + f"esp:{n}".encode() + raw
        for n, raw in enumerate(raws.values())
    )
    kept = KeptUses.from_bytes(legacy, {}.get)
    assert [(k.event_id, k.decided_at_ms) for k in kept.entries()] == [
        (f"esp:{n}", 500 + n) for n in range(n_uses)
    ]
    assert kept.records == {"esp:0": raws["esp:0"], "esp:1": raws["esp:1"]}  # moved out
    assert [_use_of(kept, f"esp:{n}") for n in range(n_uses)] == [_usage(n) for n in range(n_uses)]
    damaged = KeptUses.from_bytes(legacy[: len(legacy) - 3])  # the last one truncated
    assert _ids(damaged) == [f"esp:{n}" for n in range(n_uses - 1)]
    index = (
        b"K2"
        + struct.pack(">qqI", 500, 501, 2)
        + b"".join(struct.pack(">qqH", 10, 500 + n, 5) + f"esp:{n}".encode() for n in range(2))
    )
    kept = KeptUses.from_bytes(index, raws.get)
    assert _ids(kept) == ["esp:0", "esp:1"] and kept.records == {}
    assert _use_of(kept, "esp:1") == _usage(1)


def test_a_damaged_value_keeps_the_uses_before_the_damage(caplog) -> None:  # type: ignore[no-untyped-def]
    """The value is parsed lazily, so damage shows while judging: it must not stop the
    subject (every later use would go to the dead letters), only lose what is damaged."""
    value = _kept(*((n, 100 + n) for n in range(MAX_INLINE + 2))).to_bytes()
    assert value is not None
    truncated = KeptUses.from_bytes(value[:-10])
    assert not truncated.knows("esp:9")  # not in the bytes: nothing parsed
    truncated.add(_usage(9), 900)
    assert _ids(truncated) == [f"esp:{n}" for n in range(MAX_INLINE + 1)] + ["esp:9"]
    assert "damaged" in caplog.text
    rest = value[30:]  # after the magic and the head
    miscounted = KeptUses.from_bytes(
        value[:2] + struct.pack(">qqIII", 100, 105, 9, 9, len(rest)) + rest
    )
    miscounted.add(_usage(9), 900)  # moving records out walks past the end: counted again
    assert len(miscounted) == MAX_INLINE + 3 and _ids(miscounted)[-1] == "esp:9"
    assert _use_of(miscounted, "esp:9") == _usage(9)
    many = KeptUses.from_bytes(value[:2] + struct.pack(">qqIII", 100, 105, 99, 2, len(rest)) + rest)
    many.add(_usage(9), 900)  # past the cap by its head: counted again, nothing dropped
    assert len(many) == MAX_INLINE + 3


def test_use_keys_name_their_subject() -> None:
    key = use_key(b"abc", "esp:1")
    assert is_use_key(key) and subject_of_use_key(key) == b"abc"
