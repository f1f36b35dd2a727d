"""LinkedIn Lead Sync webhooks: ``X-LI-Signature`` and endpoint validation (connectors.md §3.2).

``X-LI-Signature`` is hex HMAC-SHA256 keyed with the app's client secret. The string to sign is
marked [P] in connectors.md: reported as ``"hmacsha256=" + raw body``, possibly the bare body.
:func:`verify_linkedin` accepts either, and also tolerates an ``hmacsha256=`` prefix on the
header value itself. :func:`linkedin_signature` produces the prefixed form (which matches the
reference vector).

Endpoint validation (``GET ?challengeCode=<uuid>``) makes us compute HMAC-SHA256(client secret,
challengeCode) for anyone who asks: an oracle keyed with the very secret that signs webhooks.
Two rules keep its answers from ever being accepted as a signature (domain separation):

* only a challenge code shaped as LinkedIn sends it, a UUID in its canonical 36-character
  ``8-4-4-4-12`` hex form, is answered (:func:`is_challenge_code`); anything else is refused;
* a body that is itself challenge-shaped is never accepted under the bare-body reading.

So the strings the oracle signs (UUIDs) and the strings a signature is checked over
(``"hmacsha256=" + body``, which never is a UUID, or a bare body that is not a UUID) are
disjoint. A real notification is a JSON object and never a bare UUID, so nothing is lost.
"""

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Final

from ._common import Secret, Secrets, matches_any, require_header, secret_list, to_bytes
from .errors import AuthenticationFailed

SCHEME = "linkedin"
SIGNATURE_HEADER = "X-LI-Signature"
_PREFIX = b"hmacsha256="
_CHALLENGE_SHAPE: Final = re.compile(
    rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_HEX_SHA256_LENGTH: Final = 64


def is_challenge_code(value: str | bytes) -> bool:
    """True when ``value`` is exactly a UUID in canonical text form (what LinkedIn sends as
    ``challengeCode``). Never raises."""
    return _CHALLENGE_SHAPE.fullmatch(to_bytes(value)) is not None


def linkedin_signature(client_secret: Secret, body: bytes) -> str:
    """The ``X-LI-Signature`` value: hex HMAC-SHA256 over ``"hmacsha256=" + body``."""
    return hmac.new(to_bytes(client_secret), _PREFIX + body, hashlib.sha256).hexdigest()


def linkedin_challenge_response(client_secret: Secret, challenge_code: str) -> str:
    """``challengeResponse`` for endpoint validation: hex HMAC-SHA256 of ``challengeCode``.

    Raises :class:`AuthenticationFailed` (``malformed_request``) unless ``challenge_code`` is
    UUID-shaped (:func:`is_challenge_code`): answering any other string would sign
    attacker-chosen text with the webhook secret. Pure CPU, never blocks.
    """
    if not is_challenge_code(challenge_code):
        raise AuthenticationFailed(
            "malformed_request",
            "challengeCode is not a UUID (8-4-4-4-12 hex digits) as LinkedIn sends it; "
            "not answered",
            scheme=SCHEME,
        )
    mac = hmac.new(to_bytes(client_secret), to_bytes(challenge_code), hashlib.sha256)
    return mac.hexdigest()


def linkedin_challenge_reply(client_secret: Secret, challenge_code: str) -> dict[str, str]:
    """The JSON object to answer the validation GET with (200, ``application/json``).

    Raises :class:`AuthenticationFailed` (``malformed_request``, answered 401) for a challenge
    code that is not UUID-shaped. Pure CPU, never blocks.
    """
    return {
        "challengeCode": challenge_code,
        "challengeResponse": linkedin_challenge_response(client_secret, challenge_code),
    }


def verify_linkedin(client_secret: Secrets, body: bytes, headers: Mapping[str, str]) -> None:
    """Check a LinkedIn webhook POST; return None or raise :class:`AuthenticationFailed`.

    Reasons: ``missing_signature``, ``malformed_signature`` (not 64 hex digits),
    ``bad_signature``. The bare-body reading is never tried for a challenge-shaped body, so a
    ``challengeResponse`` is never a valid signature. Pure CPU (two HMACs over ``body`` per
    secret), never blocks.
    """
    secrets = secret_list(client_secret, scheme=SCHEME, what="client secret")
    presented = require_header(headers, SIGNATURE_HEADER, scheme=SCHEME).lower()
    if presented.startswith(_PREFIX.decode()):
        presented = presented[len(_PREFIX) :]
    if len(presented) != _HEX_SHA256_LENGTH:
        raise AuthenticationFailed(
            "malformed_signature",
            f"{SIGNATURE_HEADER} is not 64 hex digits (hex HMAC-SHA256)",
            scheme=SCHEME,
        )
    signed_forms = [_PREFIX + body]
    if not is_challenge_code(body):
        signed_forms.append(body)
    expected = [
        hmac.new(secret, signed, hashlib.sha256).hexdigest().encode("ascii")
        for secret in secrets
        for signed in signed_forms
    ]
    if not matches_any(expected, presented):
        raise AuthenticationFailed(
            "bad_signature",
            f"{SIGNATURE_HEADER} does not match; check the client secret of the LinkedIn app",
            scheme=SCHEME,
        )
