"""``fastinit.maker``: the record it builds is the one the class builds."""

from __future__ import annotations

import dataclasses

import pytest
from consentinel.streams.events.fastinit import maker
from consentinel.streams.events.records import Channel, Decision, Verdict


def test_the_record_made_equals_the_one_the_class_makes() -> None:
    values = ("u1", "s1", 1, 2, Decision.ALLOWED, ["R1"], "c1", "ctl", Channel.SMS, "p", "src")
    values += ("d1", True, 1)
    made = maker(Verdict)(*values)
    built = Verdict(*values)
    assert made == built
    assert dataclasses.astuple(made) == values
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.decision = Decision.VIOLATION  # type: ignore[misc]


def test_every_field_must_be_given() -> None:
    with pytest.raises(TypeError):
        maker(Verdict)("u1", "s1", 1, 2, Decision.ALLOWED)


def test_a_class_whose_init_does_more_is_refused() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        n: int

        def __post_init__(self) -> None:
            if self.n < 0:
                raise ValueError("negative")

    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        n: int

    for cls in (Checked, NoSlots):
        with pytest.raises(TypeError):
            maker(cls)
