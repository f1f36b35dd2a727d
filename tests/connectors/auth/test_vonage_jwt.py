"""Vonage Messages signed webhooks (HS256 JWT): signature, claims, payload_hash."""

import base64
import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import pytest
from consentinel.connectors.auth import AuthenticationFailed, sign_vonage_jwt, verify_vonage_jwt
from consentinel.connectors.auth.vonage_jwt import MAX_TOKEN_CHARS
from consentinel.streams.events.codec import dumps

SECRET = "vonage_signature_secret_synthetic"
BODY = (
    b'{"message_uuid":"aaaaaaaa-bbbb-cccc-dddd-0123456789ab","to":"447700900001",'
    b'"status":"delivered"}'
)
IAT = 1767225600
CLAIMS = {
    "iat": IAT,
    "jti": "c5ba8f24-1a14-4c10-bfdf-3fbe8ce511b5",
    "iss": "Vonage",
    "payload_hash": hashlib.sha256(BODY).hexdigest(),
    "api_key": "abcd1234",
    "application_id": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
}
NOW = IAT + 5


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + token}


def mutate(text: str, index: int) -> str:
    replacement = "1" if text[index] != "1" else "2"
    return text[:index] + replacement + text[index + 1 :]


def fails(reason: str, call: Callable[[], None]) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        call()
    assert info.value.reason == reason
    assert SECRET not in str(info.value)
    assert "message_uuid" not in str(info.value)


def token_with(claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    """A token signed with SECRET whose header/claims are exactly as given."""
    return raw_token(dumps(header or {"alg": "HS256", "typ": "JWT"}), dumps(claims))


def raw_token(header: bytes, payload: bytes, secret: str = SECRET) -> str:
    """A token over exactly these header and payload bytes (which need not be JSON)."""
    head, body = b64url(header), b64url(payload)
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


TOKEN = sign_vonage_jwt(SECRET, CLAIMS)


def test_valid_token_and_body() -> None:
    verify_vonage_jwt(SECRET, bearer(TOKEN), BODY, now=NOW)
    verify_vonage_jwt(SECRET, {"authorization": "bearer " + TOKEN}, BODY, now=NOW)
    verify_vonage_jwt(["old", SECRET], bearer(TOKEN), BODY, now=NOW)


@pytest.mark.parametrize("index", [0, 20, len(BODY) // 2, len(BODY) - 1])
def test_changed_body_byte_fails(index: int) -> None:
    body = bytearray(BODY)
    body[index] ^= 0x01
    fails(
        "body_hash_mismatch", lambda: verify_vonage_jwt(SECRET, bearer(TOKEN), bytes(body), now=NOW)
    )


@pytest.mark.parametrize("part", [0, 1, 2])
def test_changed_token_fails(part: int) -> None:
    parts = TOKEN.split(".")
    parts[part] = mutate(parts[part], 5)
    token = ".".join(parts)
    with pytest.raises(AuthenticationFailed) as info:
        verify_vonage_jwt(SECRET, bearer(token), BODY, now=NOW)
    # A changed header may no longer be JSON; otherwise the signature no longer matches.
    assert info.value.reason in {"bad_signature", "malformed_signature"}
    if part > 0:
        assert info.value.reason == "bad_signature"


def test_swapped_claims_fail() -> None:
    head, _, sig = TOKEN.split(".")
    forged = b64url(dumps(dict(CLAIMS, api_key="other")))
    fails(
        "bad_signature",
        lambda: verify_vonage_jwt(SECRET, bearer(f"{head}.{forged}.{sig}"), BODY, now=NOW),
    )


def test_wrong_secret_fails() -> None:
    fails("bad_signature", lambda: verify_vonage_jwt("other", bearer(TOKEN), BODY, now=NOW))


@pytest.mark.parametrize("alg", ["none", "HS512", "RS256", None])
def test_only_hs256_accepted(alg: str | None) -> None:
    token = token_with(CLAIMS, {"alg": alg, "typ": "JWT"})
    fails("malformed_signature", lambda: verify_vonage_jwt(SECRET, bearer(token), BODY, now=NOW))


@pytest.mark.parametrize(
    "authorization",
    ["Basic " + TOKEN, "Bearer", "Bearer a.b", "Bearer " + TOKEN + ".x", "Bearer !!.??.**"],
)
def test_malformed_authorization(authorization: str) -> None:
    headers = {"Authorization": authorization}
    fails("malformed_signature", lambda: verify_vonage_jwt(SECRET, headers, BODY, now=NOW))


def test_missing_authorization() -> None:
    fails("missing_signature", lambda: verify_vonage_jwt(SECRET, {}, BODY, now=NOW))


@pytest.mark.parametrize("now", [IAT + 301, IAT - 301])
def test_stale_iat(now: float) -> None:
    fails("stale_timestamp", lambda: verify_vonage_jwt(SECRET, bearer(TOKEN), BODY, now=now))
    verify_vonage_jwt(SECRET, bearer(TOKEN), BODY, now=now, tolerance=None)


def test_exp_and_nbf() -> None:
    expired = token_with(dict(CLAIMS, exp=IAT + 60))
    verify_vonage_jwt(SECRET, bearer(expired), BODY, now=IAT + 60)
    fails("stale_timestamp", lambda: verify_vonage_jwt(SECRET, bearer(expired), BODY, now=IAT + 91))
    early = token_with(dict(CLAIMS, nbf=IAT + 120))
    fails("stale_timestamp", lambda: verify_vonage_jwt(SECRET, bearer(early), BODY, now=IAT))
    bad = token_with(dict(CLAIMS, iat="yesterday"))
    fails("malformed_timestamp", lambda: verify_vonage_jwt(SECRET, bearer(bad), BODY, now=IAT))


def test_payload_hash_required_when_body_given() -> None:
    no_hash = token_with({k: v for k, v in CLAIMS.items() if k != "payload_hash"})
    fails("body_hash_mismatch", lambda: verify_vonage_jwt(SECRET, bearer(no_hash), BODY, now=NOW))
    verify_vonage_jwt(SECRET, bearer(no_hash), None, now=NOW)


def test_token_without_iat_accepted() -> None:
    """The claim list is [P] in connectors.md: iat is checked when present, not required."""
    token = token_with({k: v for k, v in CLAIMS.items() if k != "iat"})
    verify_vonage_jwt(SECRET, bearer(token), BODY, now=NOW)


def test_sdk_vector() -> None:
    """Token and secret from the test suite of Vonage's official Python SDK."""
    token = (
        "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJPbmxpbmUgSldUIEJ1aWxkZXIiLCJpYXQiOjE2OTc2"
        "MzQ2ODAsImV4cCI6MzMyNTQ1NDA4MjgsImF1ZCI6IiIsInN1YiI6IiJ9.88vJc3I2HhuqEDixHXVhc9R30tA6U_HQHZ"
        "TC29y6CGM"
    )
    verify_vonage_jwt("qwertyuiopasdfghjklzxcvbnm123456", bearer(token), None, now=1697634680)
    fails(
        "bad_signature",
        lambda: verify_vonage_jwt("asdf", bearer(token), None, now=1697634680),
    )


# -- issue #11: nothing an unauthenticated sender chose is parsed; no exception but ours ---

DEEP = b"[" * 1100


def test_deep_header_without_the_secret_is_a_bad_signature() -> None:
    """A header of 1,100 '[' raised RecursionError (a 500) before the signature was checked."""
    token = raw_token(DEEP, dumps(CLAIMS), secret="not-the-secret")
    fails("bad_signature", lambda: verify_vonage_jwt(SECRET, bearer(token), BODY, now=NOW))


@pytest.mark.parametrize("part", ["header", "payload"])
def test_deep_json_even_when_signed_is_malformed(part: str) -> None:
    if part == "header":
        token = raw_token(DEEP, dumps(CLAIMS))
    else:
        token = raw_token(dumps({"alg": "HS256", "typ": "JWT"}), DEEP)
    fails("malformed_signature", lambda: verify_vonage_jwt(SECRET, bearer(token), BODY, now=NOW))


@pytest.mark.parametrize("claim", ["iat", "exp", "nbf"])
@pytest.mark.parametrize(
    "value",
    [
        b"9223372036854775808",
        b"18446744073709551616",
        b"-9223372036854775809",
        b"1767225600.5",
        b"1e300",
        b'"1767225600"',
        b"true",
        b"[1767225600]",
        b"{}",
    ],
)
def test_time_claims_beyond_64_bits_or_not_integers(claim: str, value: bytes) -> None:
    payload = dumps({k: v for k, v in CLAIMS.items() if k != claim})[:-1] + b',"' + claim.encode()
    token = raw_token(dumps({"alg": "HS256", "typ": "JWT"}), payload + b'":' + value + b"}")
    fails("malformed_timestamp", lambda: verify_vonage_jwt(SECRET, bearer(token), BODY, now=NOW))


@pytest.mark.parametrize("digits", [400, 5000])
def test_time_claims_too_large_for_a_double(digits: int) -> None:
    """10**400 overflowed float() (OverflowError, a 500); any refusal is an AuthenticationFailed."""
    payload = dumps(CLAIMS)[:-1] + b',"exp":1' + b"0" * digits + b"}"
    token = raw_token(dumps({"alg": "HS256", "typ": "JWT"}), payload)
    with pytest.raises(AuthenticationFailed) as info:
        verify_vonage_jwt(SECRET, bearer(token), BODY, now=NOW)
    assert info.value.reason in {"malformed_timestamp", "malformed_signature"}


def test_64_bit_bounds_are_accepted_as_numbers() -> None:
    far = token_with(dict(CLAIMS, exp=2**63 - 1, nbf=-(2**63)))
    verify_vonage_jwt(SECRET, bearer(far), BODY, now=NOW)


def test_oversized_token_is_refused_before_any_work() -> None:
    token = token_with(dict(CLAIMS, padding="x" * MAX_TOKEN_CHARS))
    fails("malformed_signature", lambda: verify_vonage_jwt(SECRET, bearer(token), BODY, now=NOW))


@pytest.mark.parametrize(
    "token",
    ["é.é.é", "\udcff.a.b", "a..b", "a.b.c=", "a.b.c\nd", " a.b.c d", "a.b\x00.c", "+/.+/.+/"],
)
def test_odd_characters_are_malformed(token: str) -> None:
    fails("malformed_signature", lambda: verify_vonage_jwt(SECRET, bearer(token), BODY, now=NOW))
