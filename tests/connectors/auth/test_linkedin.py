"""LinkedIn X-LI-Signature and challengeCode validation: §8 vectors and tampering."""

import hashlib
import hmac
from collections.abc import Callable

import pytest
from consentinel.connectors.auth import (
    AuthenticationFailed,
    linkedin_challenge_reply,
    linkedin_challenge_response,
    linkedin_signature,
    verify_linkedin,
)

SECRET = "client_secret_synthetic"
BODY = (
    b'{"type":"LEAD_ACTION","leadGenFormResponse":"urn:li:leadGenFormResponse:synthetic-1",'
    b'"leadAction":"CREATED","occurredAt":1767225600000}'
)
SIGNATURE = "069c344220375a906ee65a65ce5d03f4cfd48772ca9a69583c1fa8541ac0624a"
CHALLENGE = "f2b8c7a0-0000-4000-8000-000000000001"
CHALLENGE_RESPONSE = "cf00c41693b3f9f941b09d7874786106ac1a36e04d976d1029503f24c3b80f8a"


def mutate(text: str, index: int) -> str:
    replacement = "1" if text[index] != "1" else "2"
    return text[:index] + replacement + text[index + 1 :]


def fails(reason: str, call: Callable[[], None]) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        call()
    assert info.value.reason == reason
    assert SECRET not in str(info.value)
    assert "LEAD_ACTION" not in str(info.value)


def test_vector_signature() -> None:
    assert linkedin_signature(SECRET, BODY) == SIGNATURE
    verify_linkedin(SECRET, BODY, {"X-LI-Signature": SIGNATURE})


def test_challenge_vector() -> None:
    assert linkedin_challenge_response(SECRET, CHALLENGE) == CHALLENGE_RESPONSE
    assert linkedin_challenge_reply(SECRET, CHALLENGE) == {
        "challengeCode": CHALLENGE,
        "challengeResponse": CHALLENGE_RESPONSE,
    }


def test_both_plausible_forms_accepted() -> None:
    """connectors.md marks the string to sign [P]: prefixed body or bare body."""
    bare = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    verify_linkedin(SECRET, BODY, {"X-LI-Signature": bare})
    verify_linkedin(SECRET, BODY, {"x-li-signature": "hmacsha256=" + SIGNATURE})
    verify_linkedin(SECRET, BODY, {"X-LI-Signature": SIGNATURE.upper()})


@pytest.mark.parametrize("index", [0, 30, len(BODY) // 2, len(BODY) - 1])
def test_changed_body_byte_fails(index: int) -> None:
    body = bytearray(BODY)
    body[index] ^= 0x01
    fails(
        "bad_signature", lambda: verify_linkedin(SECRET, bytes(body), {"X-LI-Signature": SIGNATURE})
    )


@pytest.mark.parametrize("index", [0, 13, 40, len(SIGNATURE) - 1])
def test_changed_signature_fails(index: int) -> None:
    headers = {"X-LI-Signature": mutate(SIGNATURE, index)}
    fails("bad_signature", lambda: verify_linkedin(SECRET, BODY, headers))


def test_missing_signature() -> None:
    fails("missing_signature", lambda: verify_linkedin(SECRET, BODY, {"X-LI-Sig": SIGNATURE}))


def test_wrong_secret() -> None:
    fails("bad_signature", lambda: verify_linkedin("other", BODY, {"X-LI-Signature": SIGNATURE}))
