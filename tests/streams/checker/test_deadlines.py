"""The deadline index: due, not due, corrected, removed; built once from a table."""

from __future__ import annotations

from consentinel.streams.checker.deadlines import DeadlineIndex

A, B, C = b"a" * 64, b"b" * 64, b"c" * 64


def test_only_what_is_due_comes_out_earliest_first() -> None:
    index = DeadlineIndex()
    index.set(0, A, 300)
    index.set(0, B, 100)
    index.set(0, C, 200)
    index.set(1, A, 50)  # another partition
    assert index.pop_due(0, 99) == []
    assert index.next_due(0) == 100
    assert index.pop_due(0, 200) == [B, C]
    assert index.pop_due(0, 200) == [], "popped subjects are out until set again"
    assert index.get(0, A) == 300 and index.next_due(0) == 300
    assert index.pop_due(1, 1_000) == [A]


def test_a_corrected_due_time_replaces_the_old_one() -> None:
    index = DeadlineIndex()
    index.set(0, A, 100)
    index.set(0, A, 500)  # later: the old entry must not fire
    assert index.pop_due(0, 400) == []
    assert index.next_due(0) == 500
    index.set(0, A, 50)  # earlier again
    assert index.pop_due(0, 60) == [A]
    assert index.pop_due(0, 10_000) == [], "the superseded entries never come out"


def test_a_subject_with_nothing_due_leaves_the_index() -> None:
    index = DeadlineIndex()
    index.set(0, A, 100)
    index.set(0, A, None)
    assert index.pop_due(0, 10_000) == [] and len(index) == 0
    assert index.next_due(0) is None


def test_build_keeps_what_changed_since_the_table_was_read() -> None:
    index = DeadlineIndex()
    index.set(2, A, 900)  # changed by a record handled before the partition's first tick
    assert not index.built(2)
    index.build(2, [(A, 100), (B, 200), (C, None)])
    assert index.built(2)
    assert index.pop_due(2, 500) == [B]
    assert index.get(2, A) == 900
    index.forget()
    assert not index.built(2) and len(index) == 0


def test_a_run_of_skipped_ticks_is_said_once_a_minute_with_its_reason(caplog) -> None:
    import logging

    from consentinel.streams.checker.ticks import TickSkips

    now = [0.0]
    skips = TickSkips(logging.getLogger("t"), every_s=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "t"):
        for t in range(0, 150, 5):  # one skip every 5 s for 150 s
            now[0] = float(t)
            skips.skipped("the consent end offsets were not read (KafkaTimeoutError: x)")
        said = [r.getMessage() for r in caplog.records]
        assert len(said) == 2  # at 60 s and at 120 s: not at start-up, not every skip
        assert "KafkaTimeoutError" in said[0] and "for 60 s" in said[0]
        now[0] = 151.0
        skips.sent()
        assert "sent again after 151 s (30 skipped)" in caplog.records[-1].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, "t"):
        now[0] = 200.0
        skips.skipped("a rebalance")
        skips.sent()  # a short gap is normal: nothing said
        assert not caplog.records
