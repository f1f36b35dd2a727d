"""The error types: reason codes, messages, hierarchy."""

from typing import get_args

from consentinel.connectors.auth import REASONS, AuthConfigError, AuthenticationFailed, Reason


def test_reason_codes_are_a_small_fixed_set() -> None:
    assert frozenset(get_args(Reason)) == REASONS
    assert {"missing_signature", "bad_signature", "stale_timestamp"} <= REASONS
    assert all(code.isascii() and code.islower() and " " not in code for code in REASONS)


def test_error_carries_reason_scheme_and_message() -> None:
    error = AuthenticationFailed("bad_signature", "X-Sig does not match", scheme="demo")
    assert (error.reason, error.scheme, error.message) == (
        "bad_signature",
        "demo",
        "X-Sig does not match",
    )
    assert str(error) == "demo: X-Sig does not match [bad_signature]"
    assert repr(error) == "AuthenticationFailed(reason='bad_signature', scheme='demo')"
    assert isinstance(error, Exception)
    assert issubclass(AuthConfigError, ValueError)
    assert not issubclass(AuthenticationFailed, ValueError)
