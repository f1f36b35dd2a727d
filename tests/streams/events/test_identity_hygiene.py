"""Addresses holding invisible or invalid characters are refused with a reason that names
the character class and its position, never the address."""

from __future__ import annotations

import pytest
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.identity import normalize

CASES = [
    ("\x00", "control character (Cc)"),
    ("\u200b", "format character (Cf"),
    ("\u202e", "format character (Cf"),
    ("\ud800", "surrogate (Cs)"),
    ("\ue000", "private-use character (Co)"),
    ("\u0378", "unassigned character (Cn)"),
    ("\ufffd", "U+FFFD"),
]


@pytest.mark.parametrize(("char", "words"), CASES)
def test_email_with_a_forbidden_character(char: str, words: str) -> None:
    raw = f"j{char}ean.dupont@example.org"
    with pytest.raises(InvalidInput) as info:
        normalize(raw, "email")
    assert info.value.code == "bad_email"
    assert words in info.value.message and "at position 2" in info.value.message
    assert "dupont" not in info.value.message and char not in info.value.message


@pytest.mark.parametrize(("char", "words"), CASES)
def test_phone_with_a_forbidden_character(char: str, words: str) -> None:
    with pytest.raises(InvalidInput) as info:
        normalize(f"+33 6{char}12 34 56 78", "sms", "FR")
    assert info.value.code == "bad_phone"
    assert words in info.value.message and "at position 6" in info.value.message
    assert "34 56" not in info.value.message


def test_ordinary_international_addresses_still_pass() -> None:
    assert normalize(" José.Dupont@Example.org\n", "email") == "josé.dupont@example.org"
    assert normalize("+33 6 12 34 56 78", "sms") == "+33612345678"
