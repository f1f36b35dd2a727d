"""Vonage SMS API signed webhooks: the ``sig`` parameter (connectors.md §2.2).

Over all received parameters except ``sig``: in each value replace ``&`` and ``=`` with ``_``,
sort by name, concatenate ``"&name=value"`` for each. Then, by the method chosen in the Vonage
dashboard (keyed with the *signature secret*, not the API secret):

* ``md5hash``: hex MD5 of ``string + secret`` (Vonage's default);
* ``md5``, ``sha1``, ``sha256``, ``sha512``: hex HMAC of ``string``.

The received ``sig`` is compared case-insensitively, and the signed ``timestamp`` parameter
(Unix seconds) must be fresh. The Messages API's JWT scheme is in :mod:`.vonage_jwt`.
"""

import hashlib
import hmac
from typing import Final, Literal, TypeAlias

from ._common import (
    DEFAULT_TOLERANCE,
    FormParams,
    Secret,
    Secrets,
    bounded_pairs,
    check_fresh,
    form_pairs,
    matches_any,
    parse_unix_seconds,
    secret_list,
    to_bytes,
)
from .errors import AuthConfigError, AuthenticationFailed

SCHEME = "vonage"
MAX_SIGNED_CHARS: Final = 64 * 1024
"""Most characters of names and values signed; Vonage's callbacks are well under 2 KiB."""
SIGNATURE_PARAM = "sig"
TIMESTAMP_PARAM = "timestamp"

VonageSigMethod: TypeAlias = Literal["md5hash", "md5", "sha1", "sha256", "sha512"]
VONAGE_SIG_METHODS: Final[tuple[VonageSigMethod, ...]] = (
    "md5hash",
    "md5",
    "sha1",
    "sha256",
    "sha512",
)


def _check_method(method: str) -> None:
    if method not in VONAGE_SIG_METHODS:
        raise AuthConfigError(
            f"{SCHEME}: unknown signature method {method!r}; "
            f"use one of {', '.join(VONAGE_SIG_METHODS)} (as set in the Vonage dashboard)"
        )


def _signing_string(params: FormParams) -> bytes:
    values: dict[str, str] = {}
    for name, value in form_pairs(params):
        if name != SIGNATURE_PARAM:
            values[name] = value
    return to_bytes(
        "".join(
            f"&{name}={values[name].replace('&', '_').replace('=', '_')}" for name in sorted(values)
        )
    )


def vonage_sms_signature(
    signature_secret: Secret, params: FormParams, method: VonageSigMethod = "md5hash"
) -> str:
    """The lower-case hex ``sig`` for ``params`` (any ``sig`` among them is ignored).

    Values must be the strings exactly as received; for a repeated name the last value counts.
    """
    signed = _signing_string(params)
    secret = to_bytes(signature_secret)
    if method == "md5hash":
        return hashlib.md5(signed + secret).hexdigest()
    _check_method(method)
    return hmac.new(secret, signed, method).hexdigest()


def verify_vonage_sms(
    signature_secret: Secrets,
    params: FormParams,
    *,
    method: VonageSigMethod = "md5hash",
    tolerance: float | None = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Check a signed Vonage SMS webhook (inbound or DLR); return None or raise.

    ``params`` are the received parameters, from the query string (GET), the form body, or a
    JSON body's top level; pass JSON values as the strings received. ``tolerance`` (seconds,
    default 300) bounds the age of the signed ``timestamp``; None disables that check.
    Reasons: ``malformed_request`` (more than :data:`~._common.MAX_FORM_FIELDS` parameters or
    :data:`MAX_SIGNED_CHARS` characters, refused before hashing), ``missing_signature``,
    ``missing_timestamp``, ``bad_signature``, ``malformed_timestamp``, ``stale_timestamp``.
    Pure CPU, bounded as above, never blocks.
    """
    secrets = secret_list(signature_secret, scheme=SCHEME, what="signature secret")
    _check_method(method)
    pairs = bounded_pairs(params, scheme=SCHEME)
    if sum(len(name) + len(value) for name, value in pairs) > MAX_SIGNED_CHARS:
        raise AuthenticationFailed(
            "malformed_request",
            f"the parameters total more than {MAX_SIGNED_CHARS} characters, more than any "
            "Vonage callback; refused unread",
            scheme=SCHEME,
        )
    received = dict(pairs)
    presented = received.get(SIGNATURE_PARAM, "").strip()
    if not presented:
        raise AuthenticationFailed(
            "missing_signature", f"the {SIGNATURE_PARAM} parameter is missing", scheme=SCHEME
        )
    timestamp = received.get(TIMESTAMP_PARAM, "").strip()
    if not timestamp:
        raise AuthenticationFailed(
            "missing_timestamp",
            f"the signed {TIMESTAMP_PARAM} parameter is missing",
            scheme=SCHEME,
        )
    expected = [vonage_sms_signature(s, pairs, method).encode("ascii") for s in secrets]
    if not matches_any(expected, presented.lower()):
        raise AuthenticationFailed(
            "bad_signature",
            f"{SIGNATURE_PARAM} does not match; check the signature secret (not the API secret) "
            f"and that the method ({method}) is the one chosen in the Vonage dashboard",
            scheme=SCHEME,
        )
    signed_at = parse_unix_seconds(
        timestamp, scheme=SCHEME, what=f"the {TIMESTAMP_PARAM} parameter"
    )
    check_fresh(
        signed_at,
        tolerance=tolerance,
        now=now,
        scheme=SCHEME,
        what=f"the {TIMESTAMP_PARAM} parameter",
    )
