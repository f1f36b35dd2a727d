"""Errors raised by the webhook authentication checks.

Two kinds, matching what the runtime does with them:

* :class:`AuthenticationFailed`: this request is not authentic. The ingest server answers 401,
  counts it in a metric labelled with ``scheme`` and ``reason``, and ingests nothing.
* :class:`AuthConfigError`: the connector is configured wrongly (empty secret, unreadable public
  key, unknown algorithm). Raised when a check is set up or first used; the process should refuse
  to start and print the message.

Neither message ever contains a secret, a request body, or the signature that was presented.
"""

from typing import Final, Literal, TypeAlias, get_args

from consentinel.streams.events.errors import ConsentinelError

Reason: TypeAlias = Literal[
    "missing_signature",
    "malformed_signature",
    "bad_signature",
    "missing_timestamp",
    "malformed_timestamp",
    "stale_timestamp",
    "body_hash_mismatch",
    "missing_credentials",
    "malformed_credentials",
    "bad_credentials",
    "malformed_request",
]
"""Machine codes for :attr:`AuthenticationFailed.reason`; a small, fixed set (metric label)."""

REASONS: Final[frozenset[str]] = frozenset(get_args(Reason))


class AuthenticationFailed(ConsentinelError):
    """A request failed its platform's authentication check.

    ``reason`` is one of :data:`Reason`; ``scheme`` names the check (``"twilio"``, ``"meta"``, ...);
    ``message`` says, for a person, what was wrong and what to check.
    """

    def __init__(self, reason: Reason, message: str, *, scheme: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason
        self.message = message
        self.scheme = scheme

    def __str__(self) -> str:
        return f"{self.scheme}: {self.message} [{self.reason}]"

    def __repr__(self) -> str:
        return f"AuthenticationFailed(reason={self.reason!r}, scheme={self.scheme!r})"


class AuthConfigError(ConsentinelError, ValueError):
    """The authentication settings of a connector cannot work; fix the configuration."""
