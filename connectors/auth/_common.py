"""Helpers shared by the scheme modules: header lookup, secrets, comparisons, timestamps."""

import base64
import binascii
import hmac
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, TypeAlias
from urllib.parse import parse_qsl

from .errors import AuthConfigError, AuthenticationFailed, Reason

Secret: TypeAlias = str | bytes
Secrets: TypeAlias = Secret | Sequence[Secret]
"""One secret, or several accepted at once while a secret is being rotated."""

FormParams: TypeAlias = Mapping[str, str | Sequence[str]] | Iterable[tuple[str, str]]
"""Form or query parameters: a mapping (values may be lists for repeated keys; a multidict's
``items()`` yields every pair), or ``(name, value)`` pairs as from ``parse_qsl``."""

DEFAULT_TOLERANCE: Final[float] = 300.0
"""Default freshness window for signed timestamps, in seconds (either direction)."""

MAX_FORM_FIELDS: Final[int] = 256
"""Most form or query parameters a signed request may carry before it is refused unread.

The schemes that sign parsed parameters (Twilio, Mandrill, Vonage SMS) must parse before they
can authenticate; this bound keeps that unauthenticated work small. Twilio sends about 40
parameters at most (an MMS with ten media), Mandrill one, Vonage about 15."""


def to_bytes(value: str | bytes) -> bytes:
    """UTF-8 bytes of ``value``; never fails, so attacker-chosen header text cannot crash us."""
    if isinstance(value, bytes):
        return value
    return value.encode("utf-8", "surrogatepass")


def secret_list(secrets: Secrets, *, scheme: str, what: str = "secret") -> tuple[bytes, ...]:
    """Normalize ``secrets`` to a non-empty tuple of non-empty byte strings."""
    items: Sequence[Secret] = [secrets] if isinstance(secrets, str | bytes) else secrets
    out = tuple(to_bytes(s) for s in items)
    if not out:
        raise AuthConfigError(f"{scheme}: no {what} configured; set at least one")
    if any(not s for s in out):
        raise AuthConfigError(f"{scheme}: the configured {what} is empty; set the real value")
    return out


def matches_any(expected: Iterable[bytes], presented: str | bytes) -> bool:
    """Constant-time comparison of ``presented`` against every candidate (no short-circuit)."""
    got = to_bytes(presented)
    found = False
    for candidate in expected:
        found |= hmac.compare_digest(candidate, got)
    return found


def get_header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup on any mapping (plain dicts included)."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    value = headers.get(wanted)  # the ingest server's requests have lowercase names
    if value is not None:
        return value
    for key, val in headers.items():
        if key.lower() == wanted:
            return val
    return None


def require_header(
    headers: Mapping[str, str], name: str, *, scheme: str, reason: Reason = "missing_signature"
) -> str:
    """The stripped value of header ``name``; raises ``reason`` when absent or blank."""
    value = get_header(headers, name)
    if value is None or not value.strip():
        raise AuthenticationFailed(reason, f"the {name} header is missing or empty", scheme=scheme)
    return value.strip()


def form_pairs(params: FormParams) -> list[tuple[str, str]]:
    """Flatten :data:`FormParams` to a list of ``(name, value)`` pairs, keeping repeats."""
    pairs: list[tuple[str, str]] = []
    if isinstance(params, Mapping):
        for key, value in params.items():
            if isinstance(value, str):
                pairs.append((key, value))
            else:
                pairs.extend((key, v) for v in value)
    else:
        pairs.extend(params)
    return pairs


def too_many_fields(scheme: str, limit: int) -> AuthenticationFailed:
    """The refusal of a request with more than ``limit`` parameters."""
    return AuthenticationFailed(
        "malformed_request",
        f"the request has more than {limit} parameters; no platform signs that many, so it "
        "was refused unread",
        scheme=scheme,
    )


def bounded_pairs(
    params: FormParams, *, scheme: str, limit: int = MAX_FORM_FIELDS
) -> list[tuple[str, str]]:
    """:func:`form_pairs`, refusing more than ``limit`` pairs, or a name or value that is not
    text (``malformed_request``), before any of them is used."""
    pairs: list[tuple[str, str]] = []
    for name, value in form_pairs(params):
        if len(pairs) >= limit:
            raise too_many_fields(scheme, limit)
        if not isinstance(name, str) or not isinstance(value, str):
            raise AuthenticationFailed(
                "malformed_request",
                "a signed parameter is not text (pass the values as the strings received)",
                scheme=scheme,
            )
        pairs.append((name, value))
    return pairs


def parse_form(
    body: bytes, *, scheme: str = "form", limit: int = MAX_FORM_FIELDS
) -> list[tuple[str, str]]:
    """Pairs of an ``application/x-www-form-urlencoded`` body (blank values kept).

    More than ``limit`` fields is refused before anything is decoded: raises
    :class:`AuthenticationFailed` (``malformed_request``). Never raises anything else.
    """
    if not body:
        return []
    if body.count(b"&") >= limit:
        raise too_many_fields(scheme, limit)
    try:
        return parse_qsl(
            body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=limit
        )
    except ValueError:
        raise too_many_fields(scheme, limit) from None


def url_query(url: str) -> str:
    """The query string of ``url`` (between the first ``?`` and any ``#``); never raises.

    Used instead of ``urlsplit``, which raises on a malformed host (the server may build the
    URL from the request's Host header, which the sender chooses).
    """
    return url.partition("#")[0].partition("?")[2]


def parse_unix_seconds(value: str, *, scheme: str, what: str) -> float:
    """Parse a decimal Unix-seconds value; raises ``malformed_timestamp``."""
    try:
        seconds = float(value.strip())
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds):
        raise AuthenticationFailed(
            "malformed_timestamp", f"{what} is not a Unix time in seconds", scheme=scheme
        )
    return seconds


def check_fresh(
    signed_at: float,
    *,
    tolerance: float | None,
    now: float | None,
    scheme: str,
    what: str,
) -> None:
    """Raise ``stale_timestamp`` when ``signed_at`` is more than ``tolerance`` s from ``now``.

    ``tolerance=None`` disables the check (for replays of already verified requests).
    """
    if tolerance is None:
        return
    current = time.time() if now is None else now
    skew = current - signed_at
    if abs(skew) > tolerance:
        direction = "old" if skew > 0 else "in the future"
        raise AuthenticationFailed(
            "stale_timestamp",
            f"{what} is {abs(skew):.0f} s {direction}; the accepted window is ±{tolerance:.0f} s "
            "(check the server clock, or whether this is a replay)",
            scheme=scheme,
        )


def b64url(data: bytes) -> str:
    """Unpadded base64url, as in JWTs and signed tokens."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    """The bytes of unpadded base64url ``text``; ValueError unless it is the canonical
    encoding (another spelling of the same bytes would be a second valid token)."""
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url(raw) != text:
        raise ValueError("non-canonical base64url")
    return raw


def basic_credentials(value: str, *, scheme: str, what: str) -> tuple[bytes, bytes]:
    """(user, password) of an ``Authorization: Basic`` header value; ``malformed_credentials``
    when it is not Basic or not Base64 of ``user:password`` (``what`` names the pair)."""
    kind, _, encoded = value.partition(" ")
    if kind.lower() != "basic":
        raise AuthenticationFailed(
            "malformed_credentials", f"the Authorization header is not Basic {what}", scheme=scheme
        )
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (ValueError, binascii.Error):
        decoded = b""
    user, sep, secret = decoded.partition(b":")
    if not sep:
        raise AuthenticationFailed(
            "malformed_credentials",
            f"the Basic {what} are not Base64 of 'user:password'",
            scheme=scheme,
        )
    return user, secret
