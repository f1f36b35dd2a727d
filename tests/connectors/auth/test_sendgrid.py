"""SendGrid Signed Event Webhook (ECDSA P-256): §8 vector, SDK vector, tampering, freshness."""

import base64
from collections.abc import Callable

import pytest
from consentinel.connectors.auth import (
    AuthConfigError,
    AuthenticationFailed,
    load_sendgrid_key,
    verify_sendgrid,
)
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEsHuGGiympyRMrWvmJISN+fAeHMEGxB7aOostM7jMHjhApbhvZ53A3Cin"
    "W67+eqLRbwehwyCh8OU5Oarwp62MtA=="
)
TIMESTAMP = "1767225601"
BODY = (
    b'[{"email":"ana@example.org","event":"delivered","sg_event_id":"c3ludGhldGljLWV2ZW50LTAwMDE",'
    b'"sg_message_id":"synthMsg001.filter-0","timestamp":1767225600}]\r\n'
)
SIGNATURE = (
    "MEUCIBPuNzyXu3t+BsfRXUyd1H8bMTn8pfl02M4/lMjy+LFEAiEA7hmBI7TjwpKcB2fN7C5rHCyAo1XirfUbqtE908"
    "AGHrk="
)
NOW = 1767225601 + 30
SIG_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TS_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


def headers(signature: str = SIGNATURE, timestamp: str = TIMESTAMP) -> dict[str, str]:
    return {SIG_HEADER: signature, TS_HEADER: timestamp}


def mutate(text: str, index: int) -> str:
    replacement = "1" if text[index] != "1" else "2"
    return text[:index] + replacement + text[index + 1 :]


def fails(reason: str, call: Callable[[], None]) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        call()
    assert info.value.reason == reason
    assert "ana@example.org" not in str(info.value)


def test_vector_verifies() -> None:
    verify_sendgrid(KEY, BODY, headers(), now=NOW)
    verify_sendgrid(load_sendgrid_key(KEY), BODY, headers(), now=NOW)
    lower = {k.lower(): v for k, v in headers().items()}
    verify_sendgrid(KEY, BODY, lower, now=NOW)


def test_pem_armored_key_accepted() -> None:
    pem = f"-----BEGIN PUBLIC KEY-----\n{KEY}\n-----END PUBLIC KEY-----\n"
    verify_sendgrid(pem, BODY, headers(), now=NOW)


@pytest.mark.parametrize("index", [0, 20, len(BODY) // 2, len(BODY) - 3, len(BODY) - 1])
def test_changed_body_byte_fails(index: int) -> None:
    body = bytearray(BODY)
    body[index] ^= 0x01
    fails("bad_signature", lambda: verify_sendgrid(KEY, bytes(body), headers(), now=NOW))


def test_body_without_trailing_crlf_fails() -> None:
    fails("bad_signature", lambda: verify_sendgrid(KEY, BODY[:-2], headers(), now=NOW))


@pytest.mark.parametrize("index", [0, 5, 9])
def test_changed_timestamp_fails(index: int) -> None:
    changed = headers(timestamp=mutate(TIMESTAMP, index))
    fails("bad_signature", lambda: verify_sendgrid(KEY, BODY, changed, now=NOW))


@pytest.mark.parametrize("index", [0, 10, 40, 80])
def test_changed_signature_fails(index: int) -> None:
    changed = headers(signature=mutate(SIGNATURE, index))
    fails("bad_signature", lambda: verify_sendgrid(KEY, BODY, changed, now=NOW))


@pytest.mark.parametrize(
    "bad", ["not base64!", SIGNATURE.rstrip("="), "====", SIGNATURE[:-2] + "l="]
)
def test_non_canonical_or_garbage_signature_is_malformed(bad: str) -> None:
    changed = headers(signature=bad)
    fails("malformed_signature", lambda: verify_sendgrid(KEY, BODY, changed, now=NOW))


def test_missing_headers() -> None:
    fails("missing_signature", lambda: verify_sendgrid(KEY, BODY, {TS_HEADER: TIMESTAMP}, now=NOW))
    fails("missing_timestamp", lambda: verify_sendgrid(KEY, BODY, {SIG_HEADER: SIGNATURE}, now=NOW))


@pytest.mark.parametrize("now", [1767225601 + 301, 1767225601 - 301])
def test_stale_timestamp(now: float) -> None:
    fails("stale_timestamp", lambda: verify_sendgrid(KEY, BODY, headers(), now=now))
    verify_sendgrid(KEY, BODY, headers(), now=now, tolerance=None)


def _generated_key() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, base64.b64encode(der).decode()


def test_rotation_and_own_signatures() -> None:
    private, other = _generated_key()
    verify_sendgrid([other, KEY], BODY, headers(), now=NOW)
    sig = base64.b64encode(private.sign(b"1767225700" + BODY, ec.ECDSA(hashes.SHA256()))).decode()
    verify_sendgrid(other, BODY, headers(sig, "1767225700"), now=1767225700)
    fails("bad_signature", lambda: verify_sendgrid(KEY, BODY, headers(sig, "1767225700"), now=NOW))
    fails("bad_signature", lambda: verify_sendgrid(other, BODY, headers(), now=NOW))


def test_bad_keys_are_configuration_errors() -> None:
    rsa_der = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    p384_der = (
        ec.generate_private_key(ec.SECP384R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for bad in (
        "",
        "not a key",
        KEY[:40],
        base64.b64encode(rsa_der).decode(),
        base64.b64encode(p384_der).decode(),
    ):
        with pytest.raises(AuthConfigError):
            load_sendgrid_key(bad)
    with pytest.raises(AuthConfigError):
        verify_sendgrid([], BODY, headers(), now=NOW)


def test_sdk_vector() -> None:
    """Key, payload and signature from the test suite of SendGrid's official Python SDK."""
    key = (
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62"
        "gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
    )
    signature = (
        "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15Tlu"
        "LtEZtM="
    )
    body = (
        b'[{"email":"hello@world.com","event":"dropped","reason":"Bounced Address",'
        b'"sg_event_id":"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",'
        b'"sg_message_id":"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C'
        b'-9.0","smtp-id":"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>",'
        b'"timestamp":1600112492}]\r\n'
    )
    verify_sendgrid(key, body, headers(signature, "1600112502"), now=1600112502)
