"""Issue #11, item 4: every scheme refuses hostile input with AuthenticationFailed, nothing else.

Any other exception escaping a ``verify_*`` function is a 500 at the ingest server. Each case
below is what an unauthenticated sender controls: header values, the body, the form
parameters, and the Host header (the server builds the URL from it when no public URL is set).
The schemes that must parse before they can authenticate refuse oversized input unread.
"""

from collections.abc import Callable, Mapping
from urllib.parse import urlencode

import pytest
from consentinel.connectors.auth import (
    AuthenticationFailed,
    HmacHeaderScheme,
    mandrill_signature,
    twilio_signature,
    verify_basic_auth,
    verify_header_token,
    verify_hmac_header,
    verify_lead_post,
    verify_linkedin,
    verify_mandrill,
    verify_meta,
    verify_sendgrid,
    verify_twilio,
    verify_url_token,
    verify_vonage_jwt,
    verify_vonage_sms,
    vonage_sms_signature,
)
from consentinel.connectors.auth import client_credentials as cc
from consentinel.connectors.auth._common import MAX_FORM_FIELDS
from consentinel.connectors.auth.twilio import MAX_FORM_BYTES
from consentinel.connectors.auth.vonage import MAX_SIGNED_CHARS

SECRET = "secret_synthetic_0000"
SENDGRID_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEsHuGGiympyRMrWvmJISN+fAeHMEGxB7aOostM7jMHjhApbhvZ53A3Cin"
    "W67+eqLRbwehwyCh8OU5Oarwp62MtA=="
)
NOW = 1767225600.0
URL = "https://hooks.example.test/hooks/x?tenant=acme"
BAD_HOST_URLS = ["http://[/hooks/x", "http://[::1/hooks/x?token=t", "http://h:99999999/x", "\udcff"]
HMAC_SCHEME = HmacHeaderScheme(header="X-Sig", prefix="sha256=", timestamp_header="X-Ts")

Verify = Callable[[Mapping[str, str], bytes, str], None]

VERIFIERS: dict[str, Verify] = {
    "basic": lambda h, b, u: verify_basic_auth("user", SECRET, h),
    "bearer": lambda h, b, u: verify_header_token(SECRET, h),
    "client_credentials": lambda h, b, u: cc.verify_client_token(
        SECRET, h, audience="x", now_s=int(NOW)
    ),
    "url_token": lambda h, b, u: verify_url_token(SECRET, u),
    "hmac_header": lambda h, b, u: verify_hmac_header(HMAC_SCHEME, SECRET, b, h, now=NOW),
    "lead_post": lambda h, b, u: verify_lead_post(SECRET, b, h, now=NOW),
    "linkedin": lambda h, b, u: verify_linkedin(SECRET, b, h),
    "mandrill": lambda h, b, u: verify_mandrill(SECRET, u, h, b),
    "meta": lambda h, b, u: verify_meta(SECRET, b, h, accept_legacy_sha1=True),
    "sendgrid": lambda h, b, u: verify_sendgrid(SENDGRID_KEY, b, h, now=NOW),
    "twilio": lambda h, b, u: verify_twilio(SECRET, u, h, b),
    "vonage_jwt": lambda h, b, u: verify_vonage_jwt(SECRET, h, b, now=NOW),
    "vonage_sms": lambda h, b, u: verify_vonage_sms(SECRET, [*_pairs(b), ("sig", "0" * 32)]),
}

HEADER_NAMES = [
    "Authorization",
    "X-Sig",
    "X-Ts",
    "X-Consentinel-Signature",
    "X-LI-Signature",
    "X-Mandrill-Signature",
    "X-Hub-Signature-256",
    "X-Hub-Signature",
    "X-Twilio-Email-Event-Webhook-Signature",
    "X-Twilio-Email-Event-Webhook-Timestamp",
    "X-Twilio-Signature",
]

HOSTILE_VALUES = [
    "",
    " ",
    "\x00",
    "\udcff\udcfe",
    "é" * 3000,
    "Bearer " + "[" * 1100,
    "Bearer " + "a." * 4000,
    "Basic " + "=" * 5000,
    "Basic \udcff",
    "sha256=" + "z" * 8000,
    "t=" + "9" * 5000 + ",v1=" + "0" * 64,
    "t=1e400,v1=00",
    ",".join(["v1=00"] * 2000),
    "1e400",
    "-" + "9" * 400,
    "nan",
    "MEUCIQ" + "A" * 6000,
    "hmacsha256=" + "0" * 64,
]

HOSTILE_BODIES = [
    b"",
    b"[" * 1100,
    b"{" * 100_000,
    b'{"a":' + b"1" * 5000 + b"}",
    b"\xff\xfe\x00",
    b"&" * 200_000,
    b"a=1&" * 100_000,
    b"sig=%ED%A0%80&timestamp=%FF&text=%00",
    b"x" * (MAX_FORM_BYTES + 1),
]


def _pairs(body: bytes) -> list[tuple[str, str]]:
    """What a connector might hand over as already parsed parameters (never fails)."""
    text = body.decode("utf-8", "surrogateescape")
    return [(p, text) for p in ("text", "timestamp")]


def only_auth_failures(call: Callable[[], None]) -> None:
    with pytest.raises(AuthenticationFailed):
        call()


@pytest.mark.parametrize("scheme", sorted(VERIFIERS))
@pytest.mark.parametrize("value", HOSTILE_VALUES, ids=range(len(HOSTILE_VALUES)))
def test_hostile_header_values(scheme: str, value: str) -> None:
    headers = {name: value for name in HEADER_NAMES}
    only_auth_failures(lambda: VERIFIERS[scheme](headers, b'{"a":1}', URL))


@pytest.mark.parametrize("scheme", sorted(VERIFIERS))
@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES)))
def test_hostile_bodies(scheme: str, body: bytes) -> None:
    headers = {name: "0" * 64 for name in HEADER_NAMES}
    headers["Authorization"] = "Basic dXNlcjpub3Bl"
    only_auth_failures(lambda: VERIFIERS[scheme](headers, body, URL))


@pytest.mark.parametrize("scheme", sorted(VERIFIERS))
@pytest.mark.parametrize("url", BAD_HOST_URLS)
def test_malformed_host_in_the_url(scheme: str, url: str) -> None:
    """A Host header of '[' made urlsplit raise ValueError in the Twilio and URL-token checks."""
    headers = {name: "0" * 64 for name in HEADER_NAMES}
    only_auth_failures(lambda: VERIFIERS[scheme](headers, b"a=1", url))


def test_url_token_still_read_with_a_malformed_host() -> None:
    verify_url_token(SECRET, f"http://[/hooks/x?token={SECRET}")


def test_twilio_signature_still_checked_with_a_malformed_host() -> None:
    url = "http://[/hooks/x"
    body = b"MessageSid=SM1&MessageStatus=sent"
    signature = twilio_signature(SECRET, url, [("MessageSid", "SM1"), ("MessageStatus", "sent")])
    verify_twilio(SECRET, url, {"X-Twilio-Signature": signature}, body)


# -- parse-before-authenticate schemes: bounded, refused unread ---------------------------


def refused_unread(call: Callable[[], None]) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        call()
    assert info.value.reason == "malformed_request"
    assert "refused unread" in info.value.message


def test_twilio_refuses_a_large_form_unread() -> None:
    body = b"Body=" + b"x" * MAX_FORM_BYTES
    refused_unread(lambda: verify_twilio(SECRET, URL, {"X-Twilio-Signature": "x"}, body))


def test_twilio_large_json_is_only_hashed() -> None:
    """JSON webhooks sign the URL (with bodySHA256): size is the server's business."""
    import hashlib

    body = b'{"a":"' + b"x" * (2 * MAX_FORM_BYTES) + b'"}'
    url = URL + "&bodySHA256=" + hashlib.sha256(body).hexdigest()
    verify_twilio(SECRET, url, {"X-Twilio-Signature": twilio_signature(SECRET, url)}, body)


@pytest.mark.parametrize("fields", [MAX_FORM_FIELDS + 1, 100_000])
def test_too_many_form_fields_are_refused_unread(fields: int) -> None:
    body = b"&".join(b"a%d=1" % i for i in range(fields))
    refused_unread(lambda: verify_twilio(SECRET, URL, {"X-Twilio-Signature": "x"}, body))
    refused_unread(lambda: verify_mandrill(SECRET, URL, {"X-Mandrill-Signature": "x"}, body))
    pairs = [(f"a{i}", "1") for i in range(fields)]
    refused_unread(
        lambda: verify_twilio(SECRET, URL, {"X-Twilio-Signature": "x"}, body, params=pairs)
    )
    refused_unread(lambda: verify_vonage_sms(SECRET, [*pairs, ("sig", "0")]))


def test_forms_at_the_bounds_are_checked() -> None:
    pairs = [(f"a{i:03d}", "1") for i in range(MAX_FORM_FIELDS)]
    body = urlencode(pairs).encode()
    signature = twilio_signature(SECRET, URL, pairs)
    verify_twilio(SECRET, URL, {"X-Twilio-Signature": signature}, body)
    mandrill = mandrill_signature(SECRET, URL, pairs)
    verify_mandrill(SECRET, URL, {"X-Mandrill-Signature": mandrill}, body)
    signed = [*pairs[:-2], ("timestamp", str(int(NOW)))]
    sig = vonage_sms_signature(SECRET, signed)
    verify_vonage_sms(SECRET, [*signed, ("sig", sig)], now=NOW)


def test_vonage_sms_refuses_huge_values_unread() -> None:
    params = {"text": "x" * MAX_SIGNED_CHARS, "timestamp": "1", "sig": "0"}
    refused_unread(lambda: verify_vonage_sms(SECRET, params))


@pytest.mark.parametrize("value", ["\udcff", "a\udc80b", "\ud800"])
def test_lone_surrogates_in_parameters(value: str) -> None:
    """Parameters parsed with surrogateescape made str.encode('utf-8') raise (a 500)."""
    params = [("Body", value), ("MessageSid", "SM1")]
    only_auth_failures(
        lambda: verify_twilio(SECRET, URL, {"X-Twilio-Signature": "x"}, b"", params=params)
    )
    only_auth_failures(
        lambda: verify_mandrill(SECRET, URL, {"X-Mandrill-Signature": "x"}, b"", params=params)
    )
    only_auth_failures(
        lambda: verify_vonage_sms(SECRET, [*params, ("sig", "00"), ("timestamp", "1")])
    )


@pytest.mark.parametrize("value", [1, None, b"bytes", {"nested": "x"}, ["a"]])
def test_parameters_that_are_not_text(value: object) -> None:
    """A connector handing over parsed JSON values as they are: refused, not a crash."""
    params: list[tuple[str, str]] = [("text", value), ("timestamp", "1"), ("sig", "0")]  # type: ignore[list-item]
    only_auth_failures(lambda: verify_vonage_sms(SECRET, params))
    only_auth_failures(
        lambda: verify_twilio(SECRET, URL, {"X-Twilio-Signature": "x"}, b"", params=params)
    )
    only_auth_failures(
        lambda: verify_mandrill(SECRET, URL, {"X-Mandrill-Signature": "x"}, b"", params=params)
    )
