"""consentinel's own inbound lead contract: ``X-Consentinel-Signature`` (connectors.md §3.4).

Header value ``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, t + "." + raw body)>``. This is our
design, not a vendor standard. Several ``v1=`` entries may be present (a sender signing with old
and new secret during rotation); one match suffices. Unknown keys are ignored so that a later
``v2`` can be added without breaking senders.
"""

import hashlib
import hmac
from collections.abc import Mapping

from . import _common as c
from .errors import AuthenticationFailed

SCHEME = "lead_post"
SIGNATURE_HEADER = "X-Consentinel-Signature"


def _v1(secret: bytes, timestamp: str, body: bytes) -> str:
    return hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def lead_post_signature(secret: c.Secret, body: bytes, timestamp: int) -> str:
    """The ``X-Consentinel-Signature`` header value for ``body`` signed at ``timestamp``."""
    t = str(int(timestamp))
    return f"t={t},v1={_v1(c.to_bytes(secret), t, body)}"


def verify_lead_post(
    secret: c.Secrets,
    body: bytes,
    headers: Mapping[str, str],
    *,
    tolerance: float | None = c.DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Check a lead post; return None or raise :class:`AuthenticationFailed`.

    ``tolerance`` (seconds, default 300) bounds the age of ``t``; None disables that check.
    """
    secrets = c.secret_list(secret, scheme=SCHEME)
    value = c.require_header(headers, SIGNATURE_HEADER, scheme=SCHEME)
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in value.split(","):
        key, sep, val = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            timestamps.append(val.strip())
        elif key == "v1":
            signatures.append(val.strip().lower())
    if not timestamps or not timestamps[0]:
        raise AuthenticationFailed(
            "missing_timestamp", f"{SIGNATURE_HEADER} has no t=<unix seconds>", scheme=SCHEME
        )
    if len(timestamps) > 1:
        raise AuthenticationFailed(
            "malformed_timestamp", f"{SIGNATURE_HEADER} has more than one t=", scheme=SCHEME
        )
    timestamp = timestamps[0]
    if not timestamp.isascii() or not timestamp.isdigit():
        raise AuthenticationFailed(
            "malformed_timestamp",
            f"t= in {SIGNATURE_HEADER} is not a whole number of Unix seconds",
            scheme=SCHEME,
        )
    if not signatures:
        raise AuthenticationFailed(
            "malformed_signature", f"{SIGNATURE_HEADER} has no v1=<hex>", scheme=SCHEME
        )
    expected = [_v1(s, timestamp, body).encode("ascii") for s in secrets]
    found = False
    for presented in signatures:
        found |= c.matches_any(expected, presented)
    if not found:
        raise AuthenticationFailed(
            "bad_signature",
            f"v1= in {SIGNATURE_HEADER} does not match; check the shared secret and that the "
            "body is signed exactly as sent",
            scheme=SCHEME,
        )
    signed_at = c.parse_unix_seconds(timestamp, scheme=SCHEME, what=f"t= in {SIGNATURE_HEADER}")
    c.check_fresh(
        signed_at, tolerance=tolerance, now=now, scheme=SCHEME, what=f"t= in {SIGNATURE_HEADER}"
    )
