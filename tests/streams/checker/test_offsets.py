"""The guard against records the stream skipped."""

from __future__ import annotations

from consentinel.streams.checker.offsets import Action, OffsetGuard


def test_records_in_order_are_handled_and_repeats_only_acknowledged() -> None:
    g = OffsetGuard()
    assert g.check("usage", 0, 7) is Action.HANDLE  # first record since the rebalance
    g.handled("usage", 0, 7)
    assert g.check("usage", 0, 8) is Action.HANDLE
    g.handled("usage", 0, 8)
    assert g.check("usage", 0, 8) is Action.REPEAT
    assert g.check("usage", 1, 0) is Action.HANDLE  # partitions are independent


def test_a_hole_is_reported_with_where_it_starts() -> None:
    g = OffsetGuard()
    g.handled("usage", 0, 4)
    assert g.check("usage", 0, 9) is Action.HOLE  # 5..8 were skipped
    assert g.expected("usage", 0) == 5 and g.holes == 1
    g.handled("usage", 0, 9)  # the agent read 5..8 from the broker, then handled 9
    assert g.check("usage", 0, 10) is Action.HANDLE
    assert g.check("usage", 0, 6) is Action.REPEAT  # Faust delivering the hole after all


def test_a_rebalance_forgets_everything() -> None:
    g = OffsetGuard()
    g.handled("consent", 2, 40)
    g.reset()
    assert g.expected("consent", 2) is None
    assert g.check("consent", 2, 10) is Action.HANDLE


def test_the_first_record_after_a_seek_is_checked_against_the_committed_offset() -> None:
    # Faust seeks to the committed offset, then clears its queues when it resumes the
    # flow: what it fetched in between is dropped, and the stream starts further on.
    g = OffsetGuard()
    g.sought("consent", 1, 120)
    g.reset()  # the rebalance signal may come after the seek: the seek position stays
    assert g.check("consent", 1, 175) is Action.HOLE
    assert g.expected("consent", 1) == 120 and g.holes == 1


def test_a_record_at_the_committed_offset_is_handled_and_one_below_only_acknowledged() -> None:
    g = OffsetGuard()
    g.sought("usage", 0, 50)
    assert g.check("usage", 0, 49) is Action.REPEAT  # committed already: nothing to do
    assert g.check("usage", 0, 50) is Action.HANDLE
    g.handled("usage", 0, 50)
    g.sought("usage", 0, 30)  # a later seek (a rebalance) wins over what was handled
    assert g.check("usage", 0, 30) is Action.HANDLE


def test_a_partition_read_from_its_beginning_is_not_checked() -> None:
    g = OffsetGuard()
    g.sought("usage", 3, 80)
    g.sought("usage", 3, None)  # no committed offset: read from the log start
    assert g.check("usage", 3, 12) is Action.HANDLE
