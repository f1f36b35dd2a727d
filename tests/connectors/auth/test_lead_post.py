"""consentinel's own lead-post signature (connectors.md §3.4): round trip, tampering, freshness."""

import hashlib
import hmac
from collections.abc import Callable

import pytest
from consentinel.connectors.auth import (
    AuthenticationFailed,
    lead_post_signature,
    verify_lead_post,
)

SECRET = "lead_secret_synthetic"
BODY = b'{"lead_id":"cr-2026-000184","email":"ana.lima@example.org","partners":["Acme Shop"]}'
T = 1767225600
HEADER = "X-Consentinel-Signature"
NOW = T + 1


def fails(reason: str, call: Callable[[], None]) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        call()
    assert info.value.reason == reason
    assert SECRET not in str(info.value)
    assert "ana.lima" not in str(info.value)


def test_header_format_matches_the_contract() -> None:
    expected = hmac.new(SECRET.encode(), b"1767225600." + BODY, hashlib.sha256).hexdigest()
    assert lead_post_signature(SECRET, BODY, T) == f"t=1767225600,v1={expected}"


def test_round_trip() -> None:
    value = lead_post_signature(SECRET, BODY, T)
    verify_lead_post(SECRET, BODY, {HEADER: value}, now=NOW)
    verify_lead_post(SECRET, BODY, {HEADER.lower(): value.replace(",", ", ")}, now=NOW)
    verify_lead_post(
        SECRET, BODY, {HEADER: value.upper().replace("T=", "t=").replace("V1=", "v1=")}, now=NOW
    )


def test_several_v1_and_unknown_keys() -> None:
    good = lead_post_signature(SECRET, BODY, T).split(",")[1]
    value = f"t={T},v1={'0' * 64},{good},v2=ignored"
    verify_lead_post(SECRET, BODY, {HEADER: value}, now=NOW)
    verify_lead_post(["old", SECRET], BODY, {HEADER: lead_post_signature(SECRET, BODY, T)}, now=NOW)


@pytest.mark.parametrize("index", [0, 20, len(BODY) // 2, len(BODY) - 1])
def test_changed_body_byte_fails(index: int) -> None:
    body = bytearray(BODY)
    body[index] ^= 0x01
    value = lead_post_signature(SECRET, BODY, T)
    fails("bad_signature", lambda: verify_lead_post(SECRET, bytes(body), {HEADER: value}, now=NOW))


@pytest.mark.parametrize("delta", [1, -1, 100])
def test_changed_timestamp_fails(delta: int) -> None:
    value = lead_post_signature(SECRET, BODY, T).replace(f"t={T}", f"t={T + delta}")
    fails("bad_signature", lambda: verify_lead_post(SECRET, BODY, {HEADER: value}, now=NOW))


@pytest.mark.parametrize("index", [0, 17, 40, 63])
def test_changed_signature_fails(index: int) -> None:
    t, v1 = lead_post_signature(SECRET, BODY, T).split(",")
    digest = v1[3:]
    changed = digest[:index] + ("1" if digest[index] != "1" else "2") + digest[index + 1 :]
    headers = {HEADER: f"{t},v1={changed}"}
    fails("bad_signature", lambda: verify_lead_post(SECRET, BODY, headers, now=NOW))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "missing_signature"),
        ("v1=" + "0" * 64, "missing_timestamp"),
        ("t=,v1=" + "0" * 64, "missing_timestamp"),
        ("t=soon,v1=" + "0" * 64, "malformed_timestamp"),
        ("t=1.5,v1=" + "0" * 64, "malformed_timestamp"),
        (f"t={T},t={T},v1=" + "0" * 64, "malformed_timestamp"),
        (f"t={T}", "malformed_signature"),
        (f"t={T},garbage", "malformed_signature"),
    ],
)
def test_malformed_headers(value: str, reason: str) -> None:
    headers = {HEADER: value} if value else {}
    fails(reason, lambda: verify_lead_post(SECRET, BODY, headers, now=NOW))


@pytest.mark.parametrize("now", [T + 301, T - 301])
def test_stale(now: float) -> None:
    headers = {HEADER: lead_post_signature(SECRET, BODY, T)}
    fails("stale_timestamp", lambda: verify_lead_post(SECRET, BODY, headers, now=now))
    verify_lead_post(SECRET, BODY, headers, now=now, tolerance=600)
