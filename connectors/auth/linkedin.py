"""LinkedIn Lead Sync webhooks: ``X-LI-Signature`` and endpoint validation (connectors.md §3.2).

``X-LI-Signature`` is hex HMAC-SHA256 keyed with the app's client secret. The string to sign is
marked [P] in connectors.md: reported as ``"hmacsha256=" + raw body``, possibly the bare body.
:func:`verify_linkedin` accepts either, and also tolerates an ``hmacsha256=`` prefix on the
header value itself. :func:`linkedin_signature` produces the prefixed form (which matches the
reference vector).
"""

import hashlib
import hmac
from collections.abc import Mapping

from ._common import Secret, Secrets, matches_any, require_header, secret_list, to_bytes
from .errors import AuthenticationFailed

SCHEME = "linkedin"
SIGNATURE_HEADER = "X-LI-Signature"
_PREFIX = b"hmacsha256="


def linkedin_signature(client_secret: Secret, body: bytes) -> str:
    """The ``X-LI-Signature`` value: hex HMAC-SHA256 over ``"hmacsha256=" + body``."""
    return hmac.new(to_bytes(client_secret), _PREFIX + body, hashlib.sha256).hexdigest()


def linkedin_challenge_response(client_secret: Secret, challenge_code: str) -> str:
    """``challengeResponse`` for endpoint validation: hex HMAC-SHA256 of ``challengeCode``."""
    mac = hmac.new(to_bytes(client_secret), challenge_code.encode("utf-8"), hashlib.sha256)
    return mac.hexdigest()


def linkedin_challenge_reply(client_secret: Secret, challenge_code: str) -> dict[str, str]:
    """The JSON object to answer the validation GET with (200, ``application/json``)."""
    return {
        "challengeCode": challenge_code,
        "challengeResponse": linkedin_challenge_response(client_secret, challenge_code),
    }


def verify_linkedin(client_secret: Secrets, body: bytes, headers: Mapping[str, str]) -> None:
    """Check a LinkedIn webhook POST; return None or raise :class:`AuthenticationFailed`."""
    secrets = secret_list(client_secret, scheme=SCHEME, what="client secret")
    presented = require_header(headers, SIGNATURE_HEADER, scheme=SCHEME).lower()
    if presented.startswith(_PREFIX.decode()):
        presented = presented[len(_PREFIX) :]
    expected = [
        hmac.new(secret, signed, hashlib.sha256).hexdigest().encode("ascii")
        for secret in secrets
        for signed in (_PREFIX + body, body)
    ]
    if not matches_any(expected, presented):
        raise AuthenticationFailed(
            "bad_signature",
            f"{SIGNATURE_HEADER} does not match; check the client secret of the LinkedIn app",
            scheme=SCHEME,
        )
