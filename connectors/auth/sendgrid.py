"""SendGrid Signed Event Webhook: ECDSA P-256 / SHA-256 (connectors.md §1.4).

Headers ``X-Twilio-Email-Event-Webhook-Signature`` (Base64 of a DER ECDSA signature) and
``X-Twilio-Email-Event-Webhook-Timestamp`` (decimal Unix seconds). The signed message is the
timestamp header value followed by the raw body bytes (which usually end in ``\\r\\n``; keep
them). The verification key from SendGrid's settings is a Base64 DER SubjectPublicKeyInfo.
"""

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import TypeAlias

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ._common import DEFAULT_TOLERANCE, check_fresh, parse_unix_seconds, require_header
from .errors import AuthConfigError, AuthenticationFailed

SCHEME = "sendgrid"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())  # immutable: built once, not per request

SendGridKey: TypeAlias = str | ec.EllipticCurvePublicKey
"""A verification key: the Base64 text from SendGrid (PEM armor accepted), or a loaded key."""


def load_sendgrid_key(key: str) -> ec.EllipticCurvePublicKey:
    """Load SendGrid's verification key; raises :class:`AuthConfigError` if it is not a P-256
    public key in Base64 DER (``MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE...``) or PEM form."""
    text = key.strip()
    try:
        if text.startswith("-----BEGIN"):
            loaded = serialization.load_pem_public_key(text.encode("ascii"))
        else:
            loaded = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error, UnsupportedAlgorithm, UnicodeEncodeError):
        raise AuthConfigError(
            f"{SCHEME}: the verification key is not a Base64 DER or PEM public key; copy it "
            "again from SendGrid (Mail Settings → Signed Event Webhook)"
        ) from None
    if not isinstance(loaded, ec.EllipticCurvePublicKey) or not isinstance(
        loaded.curve, ec.SECP256R1
    ):
        raise AuthConfigError(f"{SCHEME}: the verification key is not an ECDSA P-256 key")
    return loaded


def _keys(public_key: SendGridKey | Sequence[SendGridKey]) -> list[ec.EllipticCurvePublicKey]:
    items: Sequence[SendGridKey] = (
        [public_key] if isinstance(public_key, str | ec.EllipticCurvePublicKey) else public_key
    )
    keys = [k if isinstance(k, ec.EllipticCurvePublicKey) else load_sendgrid_key(k) for k in items]
    if not keys:
        raise AuthConfigError(f"{SCHEME}: no verification key configured")
    return keys


def verify_sendgrid(
    public_key: SendGridKey | Sequence[SendGridKey],
    body: bytes,
    headers: Mapping[str, str],
    *,
    tolerance: float | None = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Check a SendGrid Event Webhook POST; return None or raise :class:`AuthenticationFailed`.

    Load keys once with :func:`load_sendgrid_key` and pass the loaded key(s); Base64 strings are
    accepted too. ``tolerance`` (seconds, default 300) bounds the signed timestamp's age; None
    disables that check.
    """
    keys = _keys(public_key)
    signature_b64 = require_header(headers, SIGNATURE_HEADER, scheme=SCHEME)
    timestamp = require_header(headers, TIMESTAMP_HEADER, scheme=SCHEME, reason="missing_timestamp")
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (ValueError, binascii.Error):
        signature = b""
    if not signature or base64.b64encode(signature).decode("ascii") != signature_b64:
        raise AuthenticationFailed(
            "malformed_signature", f"{SIGNATURE_HEADER} is not canonical Base64", scheme=SCHEME
        )
    message = timestamp.encode("utf-8", "surrogatepass") + body
    valid = False
    for key in keys:
        try:
            key.verify(signature, message, _ECDSA_SHA256)
        except (InvalidSignature, ValueError):
            continue
        valid = True
        break
    if not valid:
        raise AuthenticationFailed(
            "bad_signature",
            f"{SIGNATURE_HEADER} does not verify; check the verification key and that the body "
            "is the raw bytes received, trailing CRLF included",
            scheme=SCHEME,
        )
    signed_at = parse_unix_seconds(timestamp, scheme=SCHEME, what=TIMESTAMP_HEADER)
    check_fresh(signed_at, tolerance=tolerance, now=now, scheme=SCHEME, what=TIMESTAMP_HEADER)


def sendgrid_signature(private_key_pem: bytes, timestamp: str, body: bytes) -> str:
    """The signature header value SendGrid would send for ``timestamp`` and ``body``, made
    with the PEM private key whose public half is the verification key (tests, demo feeds).
    Raises :class:`AuthConfigError` when the key is not an EC private key in PEM."""
    try:
        key = serialization.load_pem_private_key(private_key_pem, password=None)
    except ValueError:
        raise AuthConfigError(f"{SCHEME}: signing_key is not a PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise AuthConfigError(f"{SCHEME}: signing_key is not an EC key")
    signature = key.sign(timestamp.encode("utf-8") + body, _ECDSA_SHA256)
    return base64.b64encode(signature).decode("ascii")
