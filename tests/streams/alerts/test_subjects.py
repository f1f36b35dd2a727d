"""The pure parts of the subject lookup (no broker): reading a holds changelog value."""

from __future__ import annotations

import pytest
from consentinel.streams.alerts.subjects import held_uses
from consentinel.streams.events.errors import InvalidInput


def test_a_tombstone_holds_nothing() -> None:
    assert held_uses(None) == [] and held_uses(b"") == []


@pytest.mark.parametrize("value", [b'{"p": [{"d": 1}]}', b'{"a": [{"u": {}}]}', b"[1]"])
def test_a_holds_value_of_another_shape_is_invalid_input(value: bytes) -> None:
    with pytest.raises(InvalidInput) as err:
        held_uses(value)
    assert err.value.code == "holds_format"
