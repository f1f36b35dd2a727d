"""The address scanner's fast yes/no answer agrees with the list it is a shortcut for."""

from __future__ import annotations

import random

import privacy  # tests/ is on pytest's pythonpath
import pytest

CASES = [
    b"",
    b"ana.lopez@example.org",
    b"x ana.lopez@example.org y",
    b'{"hint":"a***@e***.org","subject":"3f9a0c"}',
    b"a@b.com.x@c.org",
    b"deadbeef" * 40 + b"@example",
    b"deadbeef" * 40 + b"@example.org",
    b"%%..--@x.io",
    b"+33612345678",
    b"+3361234567a",
    b"k +33 6 12 34 56 78",
    b"0123456789" * 30,
]


@pytest.mark.parametrize("data", CASES)
def test_holds_address_is_raw_addresses_not_empty(data: bytes) -> None:
    assert privacy.holds_address(data) is bool(privacy.raw_addresses(data))


def test_holds_address_agrees_on_random_text_near_addresses() -> None:
    rng = random.Random(20261207)
    pieces = [b"a", b"bc", b"Z9", b".", b".", b"@", b"+", b"1", b"2345678", b"org", b"-", b"_",
              b"%", b"'", b" ", b"\n", b'"', b"*", b":", b"@ex.org", b".com", b"+4479"]  # fmt: skip
    flagged = 0
    for _ in range(20_000):
        data = b"".join(rng.choice(pieces) for _ in range(rng.randrange(1, 16)))
        expected = bool(privacy.raw_addresses(data))
        flagged += expected
        assert privacy.holds_address(data) is expected, data
    assert 100 < flagged < 19_900  # both answers were exercised
