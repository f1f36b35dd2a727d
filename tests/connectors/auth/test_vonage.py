"""Vonage SMS `sig`: connectors.md §8 vectors, Vonage SDK vectors, tampering, freshness."""

from collections.abc import Callable
from typing import get_args

import pytest
from consentinel.connectors.auth import (
    AuthConfigError,
    AuthenticationFailed,
    VonageSigMethod,
    verify_vonage_sms,
    vonage_sms_signature,
)

SECRET = "sig_secret_synthetic"
# The inbound parameters of connectors.md §2.2, without `sig`.
PARAMS = {
    "msisdn": "447700900001",
    "to": "447700900000",
    "messageId": "0A0000000123ABCD1",
    "text": "STOP",
    "type": "text",
    "keyword": "STOP",
    "api-key": "abcd1234",
    "message-timestamp": "2026-01-01 00:00:00",
    "timestamp": "1767225600",
    "nonce": "n0nce-synthetic",
}
MD5HASH = "4aa9e007bc04e7accec170d2e8ab585a"
SHA256 = "37e5e131a9cd50899acbabeba7dd1eb73ae846ca3a7b9b948b851b515df556af"
NOW = 1767225600 + 10


def mutate(text: str, index: int) -> str:
    replacement = "1" if text[index] != "1" else "2"
    return text[:index] + replacement + text[index + 1 :]


def fails(reason: str, call: Callable[[], None]) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        call()
    assert info.value.reason == reason
    assert SECRET not in str(info.value)
    assert "STOP" not in str(info.value)


def signed(sig: str, **changes: str) -> dict[str, str]:
    return dict(PARAMS, sig=sig, **changes)


def test_vectors() -> None:
    assert vonage_sms_signature(SECRET, PARAMS) == MD5HASH
    assert vonage_sms_signature(SECRET, PARAMS, "sha256") == SHA256
    verify_vonage_sms(SECRET, signed(MD5HASH), now=NOW)
    verify_vonage_sms(SECRET, signed(SHA256), method="sha256", now=NOW)


def test_sig_compared_case_insensitively_and_pairs_accepted() -> None:
    verify_vonage_sms(SECRET, signed(MD5HASH.upper()), now=NOW)
    verify_vonage_sms(SECRET, list(signed(SHA256).items()), method="sha256", now=NOW)


@pytest.mark.parametrize("name", ["msisdn", "text", "messageId", "nonce", "timestamp"])
@pytest.mark.parametrize(("method", "sig"), [("md5hash", MD5HASH), ("sha256", SHA256)])
def test_changed_param_fails(name: str, method: VonageSigMethod, sig: str) -> None:
    params = signed(sig, **{name: mutate(PARAMS[name], 2)})
    fails("bad_signature", lambda: verify_vonage_sms(SECRET, params, method=method, now=NOW))


def test_added_param_fails() -> None:
    params = signed(MD5HASH, concat="true")
    fails("bad_signature", lambda: verify_vonage_sms(SECRET, params, now=NOW))


@pytest.mark.parametrize("index", [0, 9, 20, 31])
def test_changed_signature_fails(index: int) -> None:
    params = signed(mutate(MD5HASH, index))
    fails("bad_signature", lambda: verify_vonage_sms(SECRET, params, now=NOW))


def test_wrong_method_fails() -> None:
    fails(
        "bad_signature", lambda: verify_vonage_sms(SECRET, signed(MD5HASH), method="md5", now=NOW)
    )


def test_missing_signature() -> None:
    fails("missing_signature", lambda: verify_vonage_sms(SECRET, PARAMS, now=NOW))
    fails("missing_signature", lambda: verify_vonage_sms(SECRET, signed(""), now=NOW))


def test_missing_timestamp() -> None:
    params = {k: v for k, v in PARAMS.items() if k != "timestamp"}
    params["sig"] = vonage_sms_signature(SECRET, params)
    fails("missing_timestamp", lambda: verify_vonage_sms(SECRET, params, now=NOW))


def test_malformed_timestamp() -> None:
    params = dict(PARAMS, timestamp="yesterday")
    params["sig"] = vonage_sms_signature(SECRET, params)
    fails("malformed_timestamp", lambda: verify_vonage_sms(SECRET, params, now=NOW))


@pytest.mark.parametrize("now", [1767225600 + 301, 1767225600 - 301])
def test_stale_timestamp(now: float) -> None:
    fails("stale_timestamp", lambda: verify_vonage_sms(SECRET, signed(MD5HASH), now=now))
    verify_vonage_sms(SECRET, signed(MD5HASH), now=now, tolerance=600)
    verify_vonage_sms(SECRET, signed(MD5HASH), now=now, tolerance=None)


@pytest.mark.parametrize("method", get_args(VonageSigMethod))
def test_every_method_round_trips(method: VonageSigMethod) -> None:
    sig = vonage_sms_signature(SECRET, PARAMS, method)
    verify_vonage_sms(SECRET, signed(sig), method=method, now=NOW)
    others = [m for m in get_args(VonageSigMethod) if m != method]
    assert all(vonage_sms_signature(SECRET, PARAMS, m) != sig for m in others)


def test_unknown_method_is_a_configuration_error() -> None:
    with pytest.raises(AuthConfigError):
        verify_vonage_sms(SECRET, signed(MD5HASH), method="sha3", now=NOW)  # type: ignore[arg-type]


def test_rotation() -> None:
    verify_vonage_sms(["old", SECRET], signed(MD5HASH), now=NOW)


# Vectors from the test suite of Vonage's official Python SDK (secret "signature_secret").
SDK_PARAMS = {"param1": "value1", "param2": "value2", "timestamp": "1234567890"}


@pytest.mark.parametrize(
    ("params", "method", "expected"),
    [
        (SDK_PARAMS, "sha256", "280c4320703dbc98bfa22db676655ed2acfbfe8792b062ff7622e67f1183c287"),
        (SDK_PARAMS, "md5", "724c2bf6ca423c36e20631b11d1c5753"),
        (
            dict(SDK_PARAMS, param1="value&1", param2="value=2"),
            "md5",
            "2bbf0abafb2c55e5af6231513896a2ac",
        ),
        ({"param": "value", "timestamp": "1234567890"}, "md5", "655a4d0b7f064dff438defc52b012cf5"),
    ],
)
def test_sdk_vectors(params: dict[str, str], method: VonageSigMethod, expected: str) -> None:
    assert vonage_sms_signature("signature_secret", params, method) == expected
    verify_vonage_sms("signature_secret", dict(params, sig=expected), method=method, now=1234567890)
