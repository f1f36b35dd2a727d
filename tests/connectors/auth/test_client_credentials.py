"""OAuth client credentials in reverse: our token endpoint, then the bearer on webhooks."""

from __future__ import annotations

import base64
from urllib.parse import urlencode

import pytest
from consentinel.connectors.auth import AuthConfigError, AuthenticationFailed, basic_auth_header
from consentinel.connectors.auth import client_credentials as cc
from consentinel.streams.events import codec
from consentinel.streams.events.errors import InvalidInput

CLIENT = "didomi-client-7f3a"
SECRET = "cc_secret_synthetic_0123456789abcdef"
OLD = "cc_secret_previous_fedcba9876543210"
NOW = 1_767_225_600
FORM = {"content-type": "application/x-www-form-urlencoded"}


def ask(body: bytes, headers: dict[str, str] | None = None, **kw: object) -> dict[str, object]:
    answer = cc.token_response(
        client_id=CLIENT,
        secrets=kw.pop("secrets", [SECRET, OLD]),  # type: ignore[arg-type]
        audience=str(kw.pop("audience", "didomi-acme")),
        body=body,
        headers=headers if headers is not None else FORM,
        now_s=int(kw.pop("now_s", NOW)),  # type: ignore[call-overload]
    )
    obj: dict[str, object] = codec.loads(answer)
    return obj


def post_form(**fields: str) -> bytes:
    return urlencode(fields).encode()


def bearer(token: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_client_secret_post_gets_a_token_the_webhook_check_accepts() -> None:
    got = ask(post_form(grant_type="client_credentials", client_id=CLIENT, client_secret=SECRET))
    assert got["token_type"] == "Bearer" and got["expires_in"] == cc.DEFAULT_TTL_S
    token = got["access_token"]
    assert isinstance(token, str) and SECRET not in token and len(token) < cc.MAX_TOKEN
    cc.verify_client_token([SECRET, OLD], bearer(token), audience="didomi-acme", now_s=NOW + 60)


def test_client_secret_basic_and_the_previous_secret_while_rotating() -> None:
    basic = {**FORM, "Authorization": basic_auth_header(CLIENT, OLD)}
    got = ask(post_form(grant_type="client_credentials"), basic)
    cc.verify_client_token(
        [SECRET, OLD], bearer(got["access_token"]), audience="didomi-acme", now_s=NOW
    )


def test_a_json_token_request_is_accepted_too() -> None:
    body = codec.dumps(
        {"grant_type": "client_credentials", "client_id": CLIENT, "client_secret": SECRET}
    )
    got = ask(body, {"content-type": "application/json"})
    assert got["token_type"] == "Bearer"


@pytest.mark.parametrize(
    ("body", "headers", "reason"),
    [
        (post_form(grant_type="client_credentials"), FORM, "missing_credentials"),
        (
            post_form(
                grant_type="client_credentials",
                client_id=CLIENT,
                client_secret="presented-bad-secret-xyz",
            ),
            FORM,
            "bad_credentials",
        ),
        (
            post_form(grant_type="client_credentials", client_id="other", client_secret=SECRET),
            FORM,
            "bad_credentials",
        ),
        (
            b"grant_type=client_credentials",
            {**FORM, "Authorization": "Bearer x"},
            "malformed_credentials",
        ),
        (
            b"grant_type=client_credentials",
            {**FORM, "Authorization": "Basic !!!"},
            "malformed_credentials",
        ),
        (
            b"grant_type=client_credentials",
            {**FORM, "Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
            "malformed_credentials",
        ),
    ],
)
def test_wrong_client_credentials_are_invalid_client(
    body: bytes, headers: dict[str, str], reason: str
) -> None:
    with pytest.raises(AuthenticationFailed) as err:
        ask(body, headers)
    assert err.value.reason == reason
    assert SECRET not in str(err.value) and "presented-bad-secret-xyz" not in str(err.value)


@pytest.mark.parametrize(
    ("body", "headers", "code"),
    [
        (post_form(client_id=CLIENT, client_secret=SECRET), FORM, "invalid_request"),
        (
            post_form(grant_type="password", client_id=CLIENT, client_secret=SECRET),
            FORM,
            "unsupported_grant_type",
        ),
        (
            b"grant_type=client_credentials&grant_type=client_credentials&client_id="
            + CLIENT.encode()
            + b"&client_secret="
            + SECRET.encode(),
            FORM,
            "invalid_request",
        ),
        (b"x" * (cc.MAX_REQUEST_BYTES + 1), FORM, "invalid_request"),
        (b"&" * 300, FORM, "invalid_request"),
        (b"[1, 2]", {"content-type": "application/json"}, "invalid_request"),
        (b"{not json", {"content-type": "application/json"}, "invalid_request"),
    ],
)
def test_bad_token_requests_are_invalid_request(
    body: bytes, headers: dict[str, str], code: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        ask(body, headers)
    assert err.value.code == code and SECRET not in err.value.message


def _token(now_s: int = NOW, audience: str = "didomi-acme", ttl_s: int = 600) -> str:
    return cc.issue_token([SECRET], audience, now_s=now_s, ttl_s=ttl_s)


@pytest.mark.parametrize(
    ("headers", "now_s", "reason"),
    [
        ({}, NOW, "missing_credentials"),
        ({"Authorization": "Basic abc"}, NOW, "malformed_credentials"),
        (bearer("x" * (cc.MAX_TOKEN + 1)), NOW, "malformed_credentials"),
        (bearer("no-dot"), NOW, "malformed_credentials"),
        (bearer("%%%.***"), NOW, "malformed_credentials"),
        (bearer(_token(audience="other-instance")), NOW, "bad_credentials"),
        (bearer(_token()[:-2] + "AA"), NOW, "bad_credentials"),
        (bearer(_token()), NOW + 601, "stale_timestamp"),
        (bearer(_token(ttl_s=cc.DEFAULT_TTL_S * 2)), NOW, "stale_timestamp"),
    ],
)
def test_the_webhook_bearer_is_checked(headers: dict[str, str], now_s: int, reason: str) -> None:
    with pytest.raises(AuthenticationFailed) as err:
        cc.verify_client_token([SECRET], headers, audience="didomi-acme", now_s=now_s)
    assert err.value.reason == reason


def test_a_rotated_out_secret_retires_its_tokens() -> None:
    old_token = cc.issue_token([OLD], "didomi-acme", now_s=NOW, ttl_s=600)
    cc.verify_client_token([SECRET, OLD], bearer(old_token), audience="didomi-acme", now_s=NOW)
    with pytest.raises(AuthenticationFailed):
        cc.verify_client_token([SECRET], bearer(old_token), audience="didomi-acme", now_s=NOW)


def test_no_secret_configured_is_a_configuration_error() -> None:
    with pytest.raises(AuthConfigError):
        cc.verify_client_token([], bearer(_token()), audience="didomi-acme", now_s=NOW)


HOSTILE_HEADERS = [
    "",
    "\x00",
    "\udcff\udcfe",
    "Basic " + "=" * 5000,
    "Basic \udcff",
    "Bearer " + "a." * 4000,
    "é" * 3000,
]
HOSTILE_BODIES = [
    b"",
    b"\xff\xfe\x00",
    b"&" * 5000,
    b"a=1&" * 2000,
    b"grant_type=%ED%A0%80&client_id=%FF&client_secret=%00",
    b"{" * 3000,
]


@pytest.mark.parametrize("authorization", HOSTILE_HEADERS, ids=range(len(HOSTILE_HEADERS)))
@pytest.mark.parametrize("body", HOSTILE_BODIES, ids=range(len(HOSTILE_BODIES)))
@pytest.mark.parametrize("ctype", ["application/x-www-form-urlencoded", "application/json"])
def test_hostile_token_requests_are_refused_as_4xx_only(
    authorization: str, body: bytes, ctype: str
) -> None:
    headers = {"content-type": ctype, "Authorization": authorization}
    with pytest.raises((InvalidInput, AuthenticationFailed)):
        ask(body, headers)
