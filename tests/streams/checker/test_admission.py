"""The cache's admission: which subject keys were read once lately (the processor's use of
it is tested with the batch pipeline, ``test_batches``)."""

from __future__ import annotations

from consentinel.streams.checker.admission import SecondTouch


def test_a_key_is_seen_once_noted_and_admitted_once() -> None:
    touched = SecondTouch(4)
    assert not touched.seen(b"a"), "never noted"
    touched.note(b"a")
    assert touched.seen(b"a"), "noted: admitted"
    assert not touched.seen(b"a"), "admitted keys are forgotten"


def test_keys_noted_long_ago_are_forgotten_two_generations_at_most() -> None:
    touched = SecondTouch(2)
    for key in (b"a", b"b"):  # the young generation fills: it becomes the old one
        touched.note(key)
    touched.note(b"c")
    assert len(touched) == 3
    touched.note(b"d")  # the young fills again: a and b are dropped
    assert len(touched) == 2
    assert not touched.seen(b"a") and not touched.seen(b"b")
    assert touched.seen(b"c") and touched.seen(b"d")
