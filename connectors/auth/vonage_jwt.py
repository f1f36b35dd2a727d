"""Vonage Messages API signed webhooks: ``Authorization: Bearer <JWT>`` (connectors.md §2.2).

The JWT is HS256-signed with the account's signature secret. Checked here, with ``hmac`` only:
the header's ``alg`` is ``HS256`` (anything else, ``none`` included, is refused); the signature;
``exp``/``nbf`` when present; ``iat`` freshness when present (the claim list is [P] in
connectors.md, so a token without ``iat`` is accepted); and, when the request body is given,
the ``payload_hash`` claim (hex SHA-256 of the raw body), which is then required.
"""

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any

from ._common import (
    DEFAULT_TOLERANCE,
    Secret,
    Secrets,
    check_fresh,
    matches_any,
    require_header,
    secret_list,
    to_bytes,
)
from .errors import AuthenticationFailed

SCHEME = "vonage_jwt"
AUTHORIZATION_HEADER = "Authorization"
DEFAULT_LEEWAY = 30.0
"""Seconds of clock skew allowed on ``exp`` and ``nbf``."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    raw = base64.urlsafe_b64decode(padded.encode("ascii"))
    if _b64url(raw) != text:  # refuse non-canonical encodings
        raise ValueError("non-canonical base64url")
    return raw


def sign_vonage_jwt(signature_secret: Secret, claims: Mapping[str, Any]) -> str:
    """An HS256 JWT carrying ``claims``, as Vonage would send it (for tests and sample requests)."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps(dict(claims), separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    sig = hmac.new(to_bytes(signature_secret), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(sig)}"


def _malformed(what: str) -> AuthenticationFailed:
    return AuthenticationFailed("malformed_signature", f"the bearer JWT {what}", scheme=SCHEME)


def _json_object(segment: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_b64url_decode(segment))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _malformed(f"{what} is not base64url-encoded JSON") from None
    if not isinstance(value, dict):
        raise _malformed(f"{what} is not a JSON object")
    return value


def _numeric_claim(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthenticationFailed(
            "malformed_timestamp", f"the JWT claim {name!r} is not a number", scheme=SCHEME
        )
    return float(value)


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
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise _malformed("does not have three dot-separated parts")
    header_b64, payload_b64, sig_b64 = parts
    header = _json_object(header_b64, "header")
    if header.get("alg") != "HS256":
        raise _malformed("is not signed with HS256 (only HS256 is accepted)")

    signing_input = f"{header_b64}.{payload_b64}".encode("ascii", "replace")
    expected = [
        _b64url(hmac.new(s, signing_input, hashlib.sha256).digest()).encode("ascii")
        for s in secrets
    ]
    if not matches_any(expected, sig_b64):
        raise AuthenticationFailed(
            "bad_signature",
            "the bearer JWT signature does not match; check the signature secret of the "
            "Vonage account (the api_key claim says which account sent it)",
            scheme=SCHEME,
        )

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
