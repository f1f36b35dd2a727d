"""Shared-secret tokens in the URL, a header, or a body field."""

from collections.abc import Callable

import pytest
from consentinel.connectors.auth import (
    AuthConfigError,
    AuthenticationFailed,
    verify_header_token,
    verify_shared_token,
    verify_url_token,
)

TOKEN = "tok_8f2c4e0a9b7d6c5e"


def fails(reason: str, call: Callable[[], None]) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        call()
    assert info.value.reason == reason
    assert TOKEN not in str(info.value)


def test_shared_token() -> None:
    verify_shared_token(TOKEN, TOKEN)
    verify_shared_token(["old", TOKEN], TOKEN, name="google_key")
    fails("bad_credentials", lambda: verify_shared_token(TOKEN, TOKEN[:-1]))
    fails("bad_credentials", lambda: verify_shared_token(TOKEN, TOKEN + "x"))
    fails("bad_credentials", lambda: verify_shared_token(TOKEN, "ü" * 5))
    fails("missing_credentials", lambda: verify_shared_token(TOKEN, None))
    fails("missing_credentials", lambda: verify_shared_token(TOKEN, ""))


def test_url_token() -> None:
    verify_url_token(TOKEN, f"https://in.example.test/mailchimp?token={TOKEN}&tenant=acme")
    verify_url_token(TOKEN, f"https://in.example.test/h?k={TOKEN}", param="k")
    fails("bad_credentials", lambda: verify_url_token(TOKEN, "https://in.example.test/h?token=x"))
    fails("missing_credentials", lambda: verify_url_token(TOKEN, "https://in.example.test/h"))
    fails(
        "missing_credentials", lambda: verify_url_token(TOKEN, "https://in.example.test/h?token=")
    )


def test_header_token() -> None:
    verify_header_token(TOKEN, {"Authorization": f"Bearer {TOKEN}"})
    verify_header_token(TOKEN, {"authorization": f"bearer {TOKEN}"})
    verify_header_token(
        TOKEN, {"X-Webhook-Token": TOKEN}, header="X-Webhook-Token", auth_scheme=None
    )
    fails("bad_credentials", lambda: verify_header_token(TOKEN, {"Authorization": "Bearer nope"}))
    fails("malformed_credentials", lambda: verify_header_token(TOKEN, {"Authorization": TOKEN}))
    fails("missing_credentials", lambda: verify_header_token(TOKEN, {}))
    fails("missing_credentials", lambda: verify_header_token(TOKEN, {"Authorization": "Bearer "}))


@pytest.mark.parametrize("secret", ["", [], [TOKEN, ""]])
def test_an_empty_secret_never_lets_an_empty_token_through(secret: str | list[str]) -> None:
    with pytest.raises(AuthConfigError):
        verify_shared_token(secret, "")
