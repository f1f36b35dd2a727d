from __future__ import annotations

import re

import pytest
from consentinel.streams.events.identity import (
    AddressError,
    Pseudonymizer,
    mask_email,
    mask_phone,
    normalize_email,
    normalize_phone,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Ana.Lopez@Example.ORG ", "ana.lopez@example.org"),
        ("mailto:bob+news@example.co.uk", "bob+news@example.co.uk"),
        ("O'Brien@example.ie", "o'brien@example.ie"),
    ],
)
def test_email_normalization(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "ana",
        "ana@",
        "@example.org",
        "ana@example",
        "a b@example.org",
        "ana@@example.org",
        "ana@exa_mple.org",
        "x" * 250 + "@example.org",
    ],
)
def test_email_garbage_is_rejected(raw: str) -> None:
    with pytest.raises(AddressError) as err:
        normalize_email(raw)
    assert err.value.code == "bad_email"
    assert raw.strip() == "" or raw not in str(err.value)


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        # France
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("06.12.34.56.78", "FR", "+33612345678"),
        ("+33 6 12 34 56 78", None, "+33612345678"),
        ("+33 (0)6 12 34 56 78", None, "+33612345678"),
        ("0033612345678", None, "+33612345678"),
        ("01-42-68-53-00", "FR", "+33142685300"),
        # Portugal
        ("912 345 678", "PT", "+351912345678"),
        ("+351 912 345 678", "FR", "+351912345678"),
        ("00351 21 123 4567", None, "+351211234567"),
        # United Kingdom
        ("07700 900123", "GB", "+447700900123"),
        ("+44 7700 900123", None, "+447700900123"),
        ("447700900001", None, "+447700900001"),  # Vonage MSISDN, no plus
        ("020 7946 0018", "GB", "+442079460018"),
        # United States
        ("(202) 555-0143", "US", "+12025550143"),
        ("202-555-0143", "US", "+12025550143"),
        ("+1 555 123 0000", "FR", "+15551230000"),
        ("tel:+1-202-555-0143", None, "+12025550143"),
    ],
)
def test_phone_normalization(raw: str, region: str | None, expected: str) -> None:
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("hello", "FR"),
        ("12", "FR"),
        ("06 12", "FR"),
        ("+33 6 12", None),
        ("06 12 34 56 78", None),
        ("++33612345678", None),
        ("0612345678901234567", "FR"),
        ("", "FR"),
    ],
)
def test_phone_garbage_is_rejected(raw: str, region: str | None) -> None:
    with pytest.raises(AddressError) as err:
        normalize_phone(raw, region)
    assert err.value.code == "bad_phone"


def test_pseudonym_stable_per_pepper_and_different_across_peppers() -> None:
    a = Pseudonymizer(b"pepper-one-0123456789")
    b = Pseudonymizer(b"pepper-two-0123456789")
    key = a.subject_key("ana@example.org")
    assert key == a.subject_key("ana@example.org")
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert key != b.subject_key("ana@example.org")
    assert key != a.subject_key("ann@example.org")
    assert "pepper" not in repr(a)


def test_short_pepper_is_refused() -> None:
    with pytest.raises(ValueError):
        Pseudonymizer(b"short")


@pytest.mark.parametrize(
    ("address", "hint"),
    [
        ("ana.lopez@example.org", "a***@e***.org"),
        ("b@mail.example.co.uk", "b***@m***.uk"),
    ],
)
def test_email_hint(address: str, hint: str) -> None:
    assert mask_email(address) == hint


@pytest.mark.parametrize(
    ("number", "hint"),
    [
        ("+33612345612", "+33 6** ** ** 12"),
        ("+351912345678", "+351 9** ** ** 78"),
        ("+447700900123", "+44 7** * ** ** 23"),
        ("+12025550143", "+1 2** * ** ** 43"),
    ],
)
def test_phone_hint(number: str, hint: str) -> None:
    assert mask_phone(number) == hint


@pytest.mark.parametrize("address", ["ana.lopez@example.org", "zoe.martin@newsdaily.example.fr"])
def test_email_hint_reveals_no_more_than_documented(address: str) -> None:
    hint = mask_email(address)
    local, domain = address.split("@")
    visible = hint.replace("*", "").replace("@", "").replace(".", "")
    # first letter of the local part, first letter of the domain, the top-level domain
    assert visible == local[0] + domain[0] + domain.rsplit(".", 1)[1]


@pytest.mark.parametrize("number", ["+33612345612", "+12025550143", "+447700900123"])
def test_phone_hint_reveals_no_more_than_documented(number: str) -> None:
    hint = mask_phone(number)
    digits = re.sub(r"\D", "", hint)
    cc = hint.split()[0][1:]
    national = number[1 + len(cc) :]
    assert digits == cc + national[0] + national[-2:]
