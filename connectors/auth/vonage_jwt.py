"""Vonage Messages API signed webhooks: ``Authorization: Bearer <JWT>`` (connectors.md §2.2).

The JWT is HS256-signed with the account's signature secret. Checked here, with ``hmac`` only,
in this order, so that nothing an unauthenticated sender chose is parsed:

1. the token's shape, on the raw text: at most :data:`MAX_TOKEN_CHARS` characters, three
   base64url segments (no JSON is decoded yet);
2. the HS256 signature over the raw ``header.payload`` bytes;
3. only then the header (through the one codec, never the standard-library parser): ``alg``
   must be ``HS256`` (anything else, ``none`` included, is refused);
4. the claims: ``exp``/``nbf`` when present; ``iat`` freshness when present (the claim list is
   [P] in connectors.md, so a token without ``iat`` is accepted); each a whole number within a
   signed 64-bit integer, else ``malformed_timestamp``; and, when the request body is given,
   the ``payload_hash`` claim (hex SHA-256 of the raw body), which is then required.

Every failure is :class:`AuthenticationFailed`; nothing else escapes for any input.
"""

import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from typing import Any, Final

from consentinel.streams.events import codec
from consentinel.streams.events.errors import InvalidInput

from ._common import (
    DEFAULT_TOLERANCE,
    Secret,
    Secrets,
    b64url,
    check_fresh,
    matches_any,
    require_header,
    secret_list,
    to_bytes,
    unb64url,
)
from .errors import AuthenticationFailed

SCHEME = "vonage_jwt"
AUTHORIZATION_HEADER = "Authorization"
DEFAULT_LEEWAY = 30.0
"""Seconds of clock skew allowed on ``exp`` and ``nbf``."""
MAX_TOKEN_CHARS: Final = 8192
"""Longest bearer token considered; Vonage's tokens are a few hundred characters."""
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_TOKEN_SHAPE: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def sign_vonage_jwt(signature_secret: Secret, claims: Mapping[str, Any]) -> str:
    """An HS256 JWT carrying ``claims``, as Vonage would send it (for tests and sample requests)."""
    header = b64url(codec.dumps({"alg": "HS256", "typ": "JWT"}))
    payload = b64url(codec.dumps(dict(claims)))
    signing_input = f"{header}.{payload}".encode("ascii")
    sig = hmac.new(to_bytes(signature_secret), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(sig)}"


def _malformed(what: str) -> AuthenticationFailed:
    return AuthenticationFailed("malformed_signature", f"the bearer JWT {what}", scheme=SCHEME)


def _json_object(segment: str, what: str) -> dict[str, Any]:
    """Decode an already authenticated segment with the one codec (bounded nesting)."""
    try:
        value = codec.loads(unb64url(segment))
    except (InvalidInput, ValueError, binascii.Error):
        raise _malformed(f"{what} is not base64url-encoded JSON") from None
    if not isinstance(value, dict):
        raise _malformed(f"{what} is not a JSON object")
    return value


def _numeric_claim(claims: Mapping[str, Any], name: str) -> int | None:
    value = claims.get(name)
    if value is None:
        return None
    if type(value) is not int or not _INT64_MIN <= value <= _INT64_MAX:
        raise AuthenticationFailed(
            "malformed_timestamp",
            f"the JWT claim {name!r} is not a whole number of Unix seconds within 64 bits",
            scheme=SCHEME,
        )
    return value


def verify_vonage_jwt(
    signature_secret: Secrets,
    headers: Mapping[str, str],
    body: bytes | None,
    *,
    tolerance: float | None = DEFAULT_TOLERANCE,
    leeway: float = DEFAULT_LEEWAY,
    now: float | None = None,
) -> None:
    """Check a Vonage Messages webhook; return None or raise :class:`AuthenticationFailed`.

    ``body`` is the raw request body; pass None only for requests without one (then
    ``payload_hash`` is not checked). ``tolerance`` bounds the age of ``iat`` (seconds, default
    300; None disables it); ``leeway`` is the clock skew allowed on ``exp``/``nbf``.
    Reasons: ``missing_signature``, ``malformed_signature`` (shape, size, non-JSON or non-HS256
    header), ``bad_signature``, ``malformed_timestamp`` (a time claim that is not an integer
    within 64 bits), ``stale_timestamp``, ``body_hash_mismatch``. Pure CPU (one HMAC per
    secret over at most :data:`MAX_TOKEN_CHARS` bytes, one SHA-256 of ``body``), never blocks.
    """
    secrets = secret_list(signature_secret, scheme=SCHEME, what="signature secret")
    authorization = require_header(headers, AUTHORIZATION_HEADER, scheme=SCHEME)
    kind, _, token = authorization.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed(
            "malformed_signature",
            "the Authorization header is not 'Bearer <token>'",
            scheme=SCHEME,
        )
    token = token.strip()
    if len(token) > MAX_TOKEN_CHARS:
        raise _malformed(f"is longer than {MAX_TOKEN_CHARS} characters")
    if _TOKEN_SHAPE.fullmatch(token) is None:
        raise _malformed("is not three dot-separated base64url segments")
    header_b64, payload_b64, sig_b64 = token.split(".")

    signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
    expected = [
        b64url(hmac.new(s, signing_input, hashlib.sha256).digest()).encode("ascii") for s in secrets
    ]
    if not matches_any(expected, sig_b64):
        raise AuthenticationFailed(
            "bad_signature",
            "the bearer JWT signature does not match; check the signature secret of the "
            "Vonage account (the api_key claim says which account sent it)",
            scheme=SCHEME,
        )
    header = _json_object(header_b64, "header")
    if header.get("alg") != "HS256":
        raise _malformed("is not signed with HS256 (only HS256 is accepted)")

    claims = _json_object(payload_b64, "payload")
    current = time.time() if now is None else now
    exp = _numeric_claim(claims, "exp")
    nbf = _numeric_claim(claims, "nbf")
    iat = _numeric_claim(claims, "iat")
    if exp is not None and current > exp + leeway:
        raise AuthenticationFailed(
            "stale_timestamp", f"the JWT expired {current - exp:.0f} s ago", scheme=SCHEME
        )
    if nbf is not None and current < nbf - leeway:
        raise AuthenticationFailed(
            "stale_timestamp", "the JWT is not valid yet (nbf is in the future)", scheme=SCHEME
        )
    if iat is not None:
        check_fresh(iat, tolerance=tolerance, now=current, scheme=SCHEME, what="the JWT 'iat'")

    if body is not None:
        claimed = claims.get("payload_hash")
        if not isinstance(claimed, str) or not claimed:
            raise AuthenticationFailed(
                "body_hash_mismatch", "the JWT carries no payload_hash claim", scheme=SCHEME
            )
        actual = hashlib.sha256(body).hexdigest().encode("ascii")
        if not matches_any([actual], claimed.strip().lower()):
            raise AuthenticationFailed(
                "body_hash_mismatch",
                "the body does not match the JWT payload_hash (was the body altered?)",
                scheme=SCHEME,
            )
