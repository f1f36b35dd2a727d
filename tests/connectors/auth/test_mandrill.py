"""Mandrill X-Mandrill-Signature: connectors.md §8 vector and tampering."""

from collections.abc import Callable
from urllib.parse import urlencode

import pytest
from consentinel.connectors.auth import (
    AuthenticationFailed,
    mandrill_signature,
    verify_mandrill,
)

KEY = "whk_synthetic_key"
URL = "https://hooks.example.test/mandrill"
EVENTS = (
    '[{"event":"open","ts":1767225600,"_id":"synthetic0001","msg":{"email":"ana@example.org"}}]'
)
SIGNATURE = "+h9D3aJQ1vDe5ka4+ZO5B9B7KBE="
BODY = urlencode({"mandrill_events": EVENTS}).encode()
HEADERS = {"X-Mandrill-Signature": SIGNATURE}


def mutate(text: str, index: int) -> str:
    replacement = "1" if text[index] != "1" else "2"
    return text[:index] + replacement + text[index + 1 :]


def fails(reason: str, call: Callable[[], None]) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        call()
    assert info.value.reason == reason
    assert KEY not in str(info.value)
    assert "ana@example.org" not in str(info.value)


def test_vector_signature() -> None:
    assert mandrill_signature(KEY, URL, {"mandrill_events": EVENTS}) == SIGNATURE


def test_vector_verifies_from_raw_body_and_from_params() -> None:
    verify_mandrill(KEY, URL, HEADERS, BODY)
    verify_mandrill(KEY, URL, HEADERS, b"", params={"mandrill_events": EVENTS})
    verify_mandrill(KEY, URL, {"x-mandrill-signature": SIGNATURE}, BODY)


@pytest.mark.parametrize("index", [0, 8, 20, len(URL) - 1])
def test_changed_url_fails(index: int) -> None:
    fails("bad_signature", lambda: verify_mandrill(KEY, mutate(URL, index), HEADERS, BODY))


@pytest.mark.parametrize("index", [2, 30, 60, len(EVENTS) - 3])
def test_changed_param_fails(index: int) -> None:
    params = {"mandrill_events": mutate(EVENTS, index)}
    fails("bad_signature", lambda: verify_mandrill(KEY, URL, HEADERS, b"", params=params))


@pytest.mark.parametrize("index", [0, 16, len(BODY) // 2, len(BODY) - 1])
def test_changed_body_byte_fails(index: int) -> None:
    body = bytearray(BODY)
    body[index] ^= 0x01
    fails("bad_signature", lambda: verify_mandrill(KEY, URL, HEADERS, bytes(body)))


@pytest.mark.parametrize("index", [0, 7, 15, 26])
def test_changed_signature_fails(index: int) -> None:
    headers = {"X-Mandrill-Signature": mutate(SIGNATURE, index)}
    fails("bad_signature", lambda: verify_mandrill(KEY, URL, headers, BODY))


def test_extra_param_is_signed() -> None:
    body = BODY + b"&extra=1"
    fails("bad_signature", lambda: verify_mandrill(KEY, URL, HEADERS, body))


def test_missing_signature() -> None:
    fails("missing_signature", lambda: verify_mandrill(KEY, URL, {}, BODY))


def test_params_sorted_by_name_and_last_value_wins() -> None:
    pairs = [("b", "2"), ("a", "x"), ("a", "1")]
    assert mandrill_signature(KEY, URL, pairs) == mandrill_signature(KEY, URL, {"a": "1", "b": "2"})


def test_rotation() -> None:
    verify_mandrill(("old", KEY), URL, HEADERS, BODY)
