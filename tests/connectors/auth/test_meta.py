"""Meta X-Hub-Signature-256 and the hub.challenge handshake: §8 vector and tampering."""

import hashlib
import hmac
from collections.abc import Callable

import pytest
from consentinel.connectors.auth import (
    AuthenticationFailed,
    meta_signature,
    meta_subscription_challenge,
    verify_meta,
)

SECRET = "app_secret_synthetic"
BODY = (
    b'{"object":"page","entry":[{"id":"100000000000001","time":1767225600,"changes":[{"field":'
    b'"leadgen","value":{"leadgen_id":"200000000000001","page_id":"100000000000001","form_id":'
    b'"300000000000001","ad_id":"400000000000001","adgroup_id":"400000000000001",'
    b'"created_time":1767225599}}]}]}'
)
SIGNATURE = "sha256=face5fe40700c12c756056d68fd085f88f9d74820b905a420adc8ee25dcaca70"
HEADERS = {"X-Hub-Signature-256": SIGNATURE}


def mutate(text: str, index: int) -> str:
    replacement = "1" if text[index] != "1" else "2"
    return text[:index] + replacement + text[index + 1 :]


def fails(reason: str, call: Callable[[], object]) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        call()
    assert info.value.reason == reason
    assert SECRET not in str(info.value)
    assert "leadgen" not in str(info.value)


def test_vector() -> None:
    assert meta_signature(SECRET, BODY) == SIGNATURE
    verify_meta(SECRET, BODY, HEADERS)
    verify_meta(
        SECRET, BODY, {"x-hub-signature-256": SIGNATURE.upper().replace("SHA256", "sha256")}
    )


@pytest.mark.parametrize("index", [0, 40, len(BODY) // 2, len(BODY) - 1])
def test_changed_body_byte_fails(index: int) -> None:
    body = bytearray(BODY)
    body[index] ^= 0x01
    fails("bad_signature", lambda: verify_meta(SECRET, bytes(body), HEADERS))


def test_reserialized_body_fails() -> None:
    fails("bad_signature", lambda: verify_meta(SECRET, BODY.replace(b",", b", "), HEADERS))


@pytest.mark.parametrize("index", [7, 20, 50, len(SIGNATURE) - 1])
def test_changed_signature_fails(index: int) -> None:
    headers = {"X-Hub-Signature-256": mutate(SIGNATURE, index)}
    fails("bad_signature", lambda: verify_meta(SECRET, BODY, headers))


def test_missing_signature() -> None:
    fails("missing_signature", lambda: verify_meta(SECRET, BODY, {}))


def test_prefix_is_required() -> None:
    headers = {"X-Hub-Signature-256": SIGNATURE.removeprefix("sha256=")}
    fails("malformed_signature", lambda: verify_meta(SECRET, BODY, headers))


def test_legacy_sha1_only_when_opted_in() -> None:
    legacy = "sha1=" + hmac.new(SECRET.encode(), BODY, hashlib.sha1).hexdigest()
    headers = {"X-Hub-Signature": legacy}
    fails("missing_signature", lambda: verify_meta(SECRET, BODY, headers))
    verify_meta(SECRET, BODY, headers, accept_legacy_sha1=True)
    fails(
        "bad_signature", lambda: verify_meta(SECRET, BODY + b" ", headers, accept_legacy_sha1=True)
    )
    # The SHA-256 header wins when both are present.
    both = {"X-Hub-Signature": legacy, "X-Hub-Signature-256": mutate(SIGNATURE, 10)}
    fails("bad_signature", lambda: verify_meta(SECRET, BODY, both, accept_legacy_sha1=True))


QUERY = {"hub.mode": "subscribe", "hub.verify_token": "vt-synthetic", "hub.challenge": "1158201444"}


def test_subscription_challenge_echoed() -> None:
    assert meta_subscription_challenge(QUERY, "vt-synthetic") == "1158201444"
    assert meta_subscription_challenge(QUERY, ["old", "vt-synthetic"]) == "1158201444"


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        (dict(QUERY, **{"hub.verify_token": "vt-synthetiC"}), "bad_credentials"),
        ({k: v for k, v in QUERY.items() if k != "hub.verify_token"}, "missing_credentials"),
        (dict(QUERY, **{"hub.mode": "unsubscribe"}), "malformed_request"),
        ({k: v for k, v in QUERY.items() if k != "hub.challenge"}, "malformed_request"),
    ],
)
def test_subscription_challenge_refused(query: dict[str, str], reason: str) -> None:
    fails(reason, lambda: meta_subscription_challenge(query, "vt-synthetic"))
