"""Twilio X-Twilio-Signature: connectors.md §8 vector, Twilio SDK vectors, tampering."""

import hashlib
from collections.abc import Callable
from urllib.parse import urlencode

import pytest
from consentinel.connectors.auth import (
    AuthConfigError,
    AuthenticationFailed,
    FormParams,
    Secrets,
    twilio_signature,
    verify_twilio,
)
from consentinel.connectors.auth.twilio import url_variants

TOKEN = "test_auth_token_0000000000000000"
URL = "https://hooks.example.test/sms/status?tenant=acme"
PARAMS = {
    "MessageSid": "SM0123456789abcdef0123456789abcdef",
    "MessageStatus": "delivered",
    "AccountSid": "AC0123456789abcdef0123456789abcdef",
    "From": "+15005550006",
    "To": "+15551230000",
    "ApiVersion": "2010-04-01",
    "SmsSid": "SM0123456789abcdef0123456789abcdef",
    "SmsStatus": "delivered",
}
SIGNATURE = "Eod2WWDrN5RsKRdCmFBBOAE5ay8="
BODY = urlencode(PARAMS).encode()


def mutate(text: str, index: int) -> str:
    """Replace one character with a different one that stays in every alphabet used here."""
    replacement = "1" if text[index] != "1" else "2"
    return text[:index] + replacement + text[index + 1 :]


def fails(reason: str, call: Callable[[], None]) -> AuthenticationFailed:
    with pytest.raises(AuthenticationFailed) as info:
        call()
    assert info.value.reason == reason
    assert info.value.scheme == "twilio"
    assert TOKEN not in str(info.value) and TOKEN not in repr(info.value)
    return info.value


def test_vector_signature() -> None:
    assert twilio_signature(TOKEN, URL, PARAMS) == SIGNATURE


def test_vector_verifies_from_raw_form_body() -> None:
    verify_twilio(TOKEN, URL, {"X-Twilio-Signature": SIGNATURE}, BODY)


@pytest.mark.parametrize(
    "params",
    [PARAMS, list(PARAMS.items()), {k: [v] for k, v in PARAMS.items()}],
    ids=["mapping", "pairs", "mapping-of-lists"],
)
def test_vector_verifies_from_parsed_params(params: FormParams) -> None:
    verify_twilio(TOKEN, URL, {"X-Twilio-Signature": SIGNATURE}, params=params)


def test_header_lookup_is_case_insensitive() -> None:
    verify_twilio(TOKEN, URL, {"x-twilio-signature": SIGNATURE}, BODY)


@pytest.mark.parametrize("index", [0, 9, 20, len(URL) - 1])
def test_changed_url_fails(index: int) -> None:
    fails(
        "bad_signature",
        lambda: verify_twilio(TOKEN, mutate(URL, index), {"X-Twilio-Signature": SIGNATURE}, BODY),
    )


@pytest.mark.parametrize("name", ["MessageSid", "MessageStatus", "To", "SmsStatus"])
def test_changed_param_fails(name: str) -> None:
    params = dict(PARAMS, **{name: mutate(PARAMS[name], 3)})
    fails(
        "bad_signature",
        lambda: verify_twilio(TOKEN, URL, {"X-Twilio-Signature": SIGNATURE}, params=params),
    )


def test_added_or_dropped_param_fails() -> None:
    headers = {"X-Twilio-Signature": SIGNATURE}
    fails(
        "bad_signature",
        lambda: verify_twilio(TOKEN, URL, headers, params=dict(PARAMS, ErrorCode="30003")),
    )
    dropped = {k: v for k, v in PARAMS.items() if k != "From"}
    fails("bad_signature", lambda: verify_twilio(TOKEN, URL, headers, params=dropped))


@pytest.mark.parametrize("index", [0, len(BODY) // 3, len(BODY) // 2, len(BODY) - 1])
def test_changed_body_byte_fails(index: int) -> None:
    body = bytearray(BODY)
    body[index] ^= 0x01
    fails(
        "bad_signature",
        lambda: verify_twilio(TOKEN, URL, {"X-Twilio-Signature": SIGNATURE}, bytes(body)),
    )


@pytest.mark.parametrize("index", [0, 5, 14, 26])
def test_changed_signature_fails(index: int) -> None:
    fails(
        "bad_signature",
        lambda: verify_twilio(TOKEN, URL, {"X-Twilio-Signature": mutate(SIGNATURE, index)}, BODY),
    )


def test_wrong_token_fails() -> None:
    fails(
        "bad_signature",
        lambda: verify_twilio("another_token", URL, {"X-Twilio-Signature": SIGNATURE}, BODY),
    )


@pytest.mark.parametrize("headers", [{}, {"X-Twilio-Signature": ""}, {"X-Other": SIGNATURE}])
def test_missing_signature(headers: dict[str, str]) -> None:
    fails("missing_signature", lambda: verify_twilio(TOKEN, URL, headers, BODY))


def test_non_ascii_header_does_not_crash() -> None:
    fails(
        "bad_signature", lambda: verify_twilio(TOKEN, URL, {"X-Twilio-Signature": "é" * 28}, BODY)
    )


def test_rotation_accepts_any_configured_token() -> None:
    verify_twilio(["old_token", TOKEN], URL, {"X-Twilio-Signature": SIGNATURE}, BODY)


@pytest.mark.parametrize("token", ["", b"", [], ["ok", ""]])
def test_empty_token_is_a_configuration_error(token: Secrets) -> None:
    with pytest.raises(AuthConfigError):
        verify_twilio(token, URL, {"X-Twilio-Signature": SIGNATURE}, BODY)


# Vectors from the test suite of Twilio's official Python SDK (token "12345").
SDK_TOKEN = "12345"
SDK_URI = "https://mycompany.com/myapp.php?foo=1&bar=2"
SDK_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}


def test_sdk_vector() -> None:
    assert twilio_signature(SDK_TOKEN, SDK_URI, SDK_PARAMS) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_sdk_vector_repeated_params_sorted_and_deduplicated() -> None:
    pairs = [
        ("Sid", "CA123"),
        ("SidAccount", "AC123"),
        ("Digits", "5678"),
        ("Digits", "1234"),
        ("Digits", "1234"),
    ]
    assert twilio_signature(SDK_TOKEN, SDK_URI, pairs) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    body = urlencode(pairs).encode()
    verify_twilio(SDK_TOKEN, SDK_URI, {"X-Twilio-Signature": "IK+Dwps556ElfBT0I3Rgjkr1wJU="}, body)


@pytest.mark.parametrize(
    ("uri", "signature"),
    [
        (SDK_URI.replace(".com", ".com:1234"), "RSOYDt4T1cUTdK1PDd93/VVr8B8="),  # port removed
        (SDK_URI, "kvajT1Ptam85bY51eRf/AJRuM3w="),  # signed with :443 added
        (SDK_URI.replace("https", "http"), "0ZXoZLH/DfblKGATFgpif+LLRf4="),  # signed with :80
    ],
)
def test_sdk_port_variants(uri: str, signature: str) -> None:
    verify_twilio(SDK_TOKEN, uri, {"X-Twilio-Signature": signature}, params=SDK_PARAMS)


def test_url_variants_keep_userinfo_and_query() -> None:
    assert url_variants("https://u:p@h.example:8443/x?a=1") == (
        "https://u:p@h.example:8443/x?a=1",
        "https://u:p@h.example/x?a=1",
    )
    assert url_variants("http://h.example/x") == ("http://h.example/x", "http://h.example:80/x")
    assert url_variants("https://h.example:bad/x") == ("https://h.example:bad/x",)


SDK_BODY = b'{"property": "value", "boolean": true}'
SDK_BODY_URI = (
    SDK_URI + "&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
)


def test_sdk_json_body_vector() -> None:
    verify_twilio(
        SDK_TOKEN, SDK_BODY_URI, {"X-Twilio-Signature": "a9nBmqA0ju/hNViExpshrM61xv4="}, SDK_BODY
    )


@pytest.mark.parametrize("index", [0, 10, len(SDK_BODY) - 1])
def test_json_body_change_fails_on_hash(index: int) -> None:
    body = bytearray(SDK_BODY)
    body[index] ^= 0x01
    headers = {"X-Twilio-Signature": "a9nBmqA0ju/hNViExpshrM61xv4="}
    fails(
        "body_hash_mismatch", lambda: verify_twilio(SDK_TOKEN, SDK_BODY_URI, headers, bytes(body))
    )


def test_json_body_hash_in_url_is_signed() -> None:
    # A forger who swaps body and bodySHA256 together still fails the signature.
    body = b'{"property": "forged"}'
    uri = SDK_URI + "&bodySHA256=" + hashlib.sha256(body).hexdigest()
    headers = {"X-Twilio-Signature": "a9nBmqA0ju/hNViExpshrM61xv4="}
    fails("bad_signature", lambda: verify_twilio(SDK_TOKEN, uri, headers, body))
