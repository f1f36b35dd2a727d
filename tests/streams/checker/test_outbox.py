"""The outbox's values and slots (``checker.outbox``): pure, no broker."""

from __future__ import annotations

import pytest
from consentinel.streams.checker import outbox
from consentinel.streams.events.errors import InvalidInput

OUTPUTS = [
    ("verdicts", b"a" * 64, b'{"decision":"allowed"}'),
    ("alerts", b"le-quotidien|-|R5", b'{"status":"firing"}'),
    ("deadletter", None, b"sealed"),
    ("verdicts", b"", b""),
]


def test_a_value_gives_back_its_outputs_keyless_and_empty_ones_apart() -> None:
    assert outbox.decode(outbox.encode(OUTPUTS)) == OUTPUTS
    assert outbox.decode(outbox.encode([])) == []
    assert outbox.read(outbox.encode(OUTPUTS, seq=41)) == (41, OUTPUTS)


def test_outputs_too_large_for_one_slot_are_split_in_order_within_the_limit() -> None:
    big = [("verdicts", b"k%d" % i, b"v" * 1000) for i in range(100)]
    values = outbox.chunks(big, seq=5, limit=10_000)
    assert [outbox.read(v)[0] for v in values] == list(range(5, 17)), "numbered in order"
    assert len(values) == 12  # 9 outputs of about 1,020 bytes framed per slot: 100 = 11 x 9 + 1
    assert all(len(v) <= 10_000 + 16 for v in values)
    assert [o for v in values for o in outbox.decode(v)] == big
    assert outbox.chunks([], limit=10) == []
    huge = [("alerts", b"k", b"x" * 50), ("alerts", b"k", b"y")]
    assert [outbox.decode(v) for v in outbox.chunks(huge, limit=10)] == [[huge[0]], [huge[1]]]


@pytest.mark.parametrize(
    "raw", [b"", b"{}", b"O1\x00\x05\x00\x00\x00\x01", outbox.encode(OUTPUTS)[:-3]]
)
def test_a_value_that_is_not_one_is_refused_with_a_reason(raw: bytes) -> None:
    with pytest.raises(InvalidInput) as err:
        outbox.decode(raw)
    assert err.value.code == "outbox_format"


def test_slot_keys_are_per_partition_and_never_a_subject_key() -> None:
    assert outbox.key(3, 17) == b"o:3:17" != outbox.key(31, 7)
    assert outbox.is_outbox_key(outbox.key(0, 0))
    assert not outbox.is_outbox_key(b"0f" * 32) and not outbox.is_outbox_key(b"k:" + b"0" * 64)


def test_slots_are_taken_lowest_first_freed_and_held_per_partition() -> None:
    slots = outbox.Slots(slots=3)
    assert [slots.take(1), slots.take(1), slots.take(2)] == [0, 1, 0]
    slots.free(1, 0)
    slots.hold(1, 2)  # found written after a restart
    assert slots.busy(1, 2) and not slots.busy(1, 0)
    assert slots.take(1) == 0
    with pytest.raises(RuntimeError, match="every outbox slot of partition 1"):
        slots.take(1)
