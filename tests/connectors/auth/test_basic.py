"""HTTP Basic credentials."""

import base64
from collections.abc import Callable

import pytest
from consentinel.connectors.auth import (
    AuthConfigError,
    AuthenticationFailed,
    basic_auth_header,
    verify_basic_auth,
)

USER, PASSWORD = "brevo-hook", "pässwörd:with-colon"


def fails(reason: str, call: Callable[[], None]) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        call()
    assert info.value.reason == reason
    assert PASSWORD not in str(info.value)


def test_accepts_the_right_credentials() -> None:
    header = basic_auth_header(USER, PASSWORD)
    assert header == "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    verify_basic_auth(USER, PASSWORD, {"Authorization": header})
    verify_basic_auth(USER, PASSWORD, {"authorization": "basic " + header.split()[1]})
    verify_basic_auth(USER, ["old", PASSWORD], {"Authorization": header})


@pytest.mark.parametrize(
    ("user", "password"),
    [(USER, "wrong"), ("other", PASSWORD), (USER, PASSWORD[:-1]), (USER + "x", PASSWORD), ("", "")],
)
def test_wrong_credentials(user: str, password: str) -> None:
    headers = {"Authorization": basic_auth_header(user, password)}
    fails("bad_credentials", lambda: verify_basic_auth(USER, PASSWORD, headers))


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing_credentials"),
        ({"Authorization": "  "}, "missing_credentials"),
        ({"Authorization": "Bearer abc"}, "malformed_credentials"),
        ({"Authorization": "Basic !!!"}, "malformed_credentials"),
        (
            {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()},
            "malformed_credentials",
        ),
    ],
)
def test_missing_or_malformed(headers: dict[str, str], reason: str) -> None:
    fails(reason, lambda: verify_basic_auth(USER, PASSWORD, headers))


def test_empty_configuration_refused() -> None:
    with pytest.raises(AuthConfigError):
        verify_basic_auth(USER, "", {"Authorization": basic_auth_header(USER, "")})
    with pytest.raises(AuthConfigError):
        verify_basic_auth("", PASSWORD, {"Authorization": basic_auth_header("", PASSWORD)})
