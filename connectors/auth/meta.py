"""Meta (Facebook/Instagram) webhooks: ``X-Hub-Signature-256`` and the subscription handshake
(connectors.md §3.1).

The signature header is ``sha256=<hex HMAC-SHA256(app secret, raw body)>``. Meta may also send
a legacy ``X-Hub-Signature: sha1=<hex>`` [P]; it is used only when the SHA-256 header is absent
and the caller opts in with ``accept_legacy_sha1=True``.
"""

import hashlib
import hmac
from collections.abc import Mapping

from ._common import Secret, Secrets, get_header, matches_any, secret_list, to_bytes
from .errors import AuthenticationFailed

SCHEME = "meta"
SIGNATURE_HEADER = "X-Hub-Signature-256"
LEGACY_SIGNATURE_HEADER = "X-Hub-Signature"


def meta_signature(app_secret: Secret, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value (with its ``sha256=`` prefix) for ``body``."""
    return "sha256=" + hmac.new(to_bytes(app_secret), body, hashlib.sha256).hexdigest()


def verify_meta(
    app_secret: Secrets,
    body: bytes,
    headers: Mapping[str, str],
    *,
    accept_legacy_sha1: bool = False,
) -> None:
    """Check a Meta webhook POST; return None or raise :class:`AuthenticationFailed`.

    The hex digest is compared case-insensitively; the ``sha256=`` prefix is required.
    """
    secrets = secret_list(app_secret, scheme=SCHEME, what="app secret")
    value = get_header(headers, SIGNATURE_HEADER)
    algorithm, prefix, header = hashlib.sha256, "sha256=", SIGNATURE_HEADER
    if (value is None or not value.strip()) and accept_legacy_sha1:
        value = get_header(headers, LEGACY_SIGNATURE_HEADER)
        algorithm, prefix, header = hashlib.sha1, "sha1=", LEGACY_SIGNATURE_HEADER
    if value is None or not value.strip():
        raise AuthenticationFailed(
            "missing_signature", f"the {SIGNATURE_HEADER} header is missing or empty", scheme=SCHEME
        )
    value = value.strip()
    if value[: len(prefix)].lower() != prefix:
        raise AuthenticationFailed(
            "malformed_signature", f"{header} does not start with {prefix!r}", scheme=SCHEME
        )
    expected = [hmac.new(s, body, algorithm).hexdigest().encode("ascii") for s in secrets]
    if not matches_any(expected, value[len(prefix) :].lower()):
        raise AuthenticationFailed(
            "bad_signature",
            f"{header} does not match; check the app secret and that the body is the raw bytes "
            "received (not re-serialized JSON)",
            scheme=SCHEME,
        )


def meta_subscription_challenge(query: Mapping[str, str], verify_token: Secrets) -> str:
    """Handle the subscription GET: return the ``hub.challenge`` to echo as the plain body.

    Raises :class:`AuthenticationFailed` (``malformed_request`` when ``hub.mode`` is not
    ``subscribe`` or the challenge is missing; ``missing_credentials`` / ``bad_credentials`` for
    the ``hub.verify_token``).
    """
    tokens = secret_list(verify_token, scheme=SCHEME, what="verify token")
    if query.get("hub.mode") != "subscribe":
        raise AuthenticationFailed(
            "malformed_request", "hub.mode is not 'subscribe'", scheme=SCHEME
        )
    challenge = query.get("hub.challenge")
    if not challenge:
        raise AuthenticationFailed("malformed_request", "hub.challenge is missing", scheme=SCHEME)
    presented = query.get("hub.verify_token")
    if not presented:
        raise AuthenticationFailed(
            "missing_credentials", "hub.verify_token is missing", scheme=SCHEME
        )
    if not matches_any(tokens, presented):
        raise AuthenticationFailed(
            "bad_credentials",
            "hub.verify_token does not match the verify token configured for this connector",
            scheme=SCHEME,
        )
    return challenge
