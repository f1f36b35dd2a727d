"""A generic "HMAC of the body in a header" scheme, for declarative connectors.

Configured by :class:`HmacHeaderScheme`: the header name, the algorithm (``sha1``, ``sha256``,
``sha512``), the encoding (``hex``, compared case-insensitively, or ``base64``, standard alphabet
with padding, compared exactly), an optional prefix on the header value (``"sha256="``), and
optionally a timestamp header whose value is signed in front of the body
(``timestamp + separator + body``) and must be fresh. Covers GitHub/Meta-style ``sha256=<hex>``,
Shopify-style Base64, and Stripe-like timestamped bodies split over two headers.
"""

import base64
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Final, Literal, TypeAlias, cast

from . import _common as c
from .errors import AuthConfigError, AuthenticationFailed

SCHEME = "hmac_header"

HmacAlgorithm: TypeAlias = Literal["sha1", "sha256", "sha512"]
HmacEncoding: TypeAlias = Literal["hex", "base64"]
ALGORITHMS: Final[tuple[str, ...]] = ("sha1", "sha256", "sha512")
ENCODINGS: Final[tuple[str, ...]] = ("hex", "base64")


@dataclass(frozen=True, slots=True)
class HmacHeaderScheme:
    """How a platform signs its webhooks. Invalid settings raise :class:`AuthConfigError`."""

    header: str
    algorithm: HmacAlgorithm = "sha256"
    encoding: HmacEncoding = "hex"
    prefix: str = ""
    timestamp_header: str | None = None
    timestamp_separator: str = "."
    tolerance: float | None = c.DEFAULT_TOLERANCE

    def __post_init__(self) -> None:
        problems = _value_problems(
            self.header, self.algorithm, self.encoding, self.timestamp_header, self.tolerance
        )
        if problems:
            raise AuthConfigError(f"{SCHEME}: " + "; ".join(problems))

    @classmethod
    def from_mapping(cls, config: Mapping[str, object]) -> "HmacHeaderScheme":
        """Build from declarative configuration (e.g. a YAML mapping), listing every problem."""
        known = {f.name for f in fields(cls)}
        problems = [f"unknown setting {key!r}" for key in config if key not in known]
        header = config.get("header")
        algorithm = config.get("algorithm", "sha256")
        encoding = config.get("encoding", "hex")
        prefix = config.get("prefix", "")
        stamp = config.get("timestamp_header")
        separator = config.get("timestamp_separator", ".")
        tolerance = config.get("tolerance", c.DEFAULT_TOLERANCE)
        if header is None:
            problems.append("'header' is required (the name of the signature header)")
        for key, value in (
            ("header", header if header is not None else ""),
            ("algorithm", algorithm),
            ("encoding", encoding),
            ("prefix", prefix),
            ("timestamp_separator", separator),
        ):
            if not isinstance(value, str):
                problems.append(f"{key!r} must be a string")
        if stamp is not None and not isinstance(stamp, str):
            problems.append("'timestamp_header' must be a string or absent")
        if tolerance is not None and (
            isinstance(tolerance, bool) or not isinstance(tolerance, int | float)
        ):
            problems.append("'tolerance' must be a number of seconds or null")
        if (
            isinstance(header, str)
            and isinstance(algorithm, str)
            and isinstance(encoding, str)
            and isinstance(prefix, str)
            and isinstance(separator, str)
            and (stamp is None or isinstance(stamp, str))
            and (tolerance is None or isinstance(tolerance, int | float))
        ):
            problems += _value_problems(header, algorithm, encoding, stamp, tolerance)
            if not problems:
                return cls(
                    header=header,
                    algorithm=cast(HmacAlgorithm, algorithm),
                    encoding=cast(HmacEncoding, encoding),
                    prefix=prefix,
                    timestamp_header=stamp,
                    timestamp_separator=separator,
                    tolerance=None if tolerance is None else float(tolerance),
                )
        raise AuthConfigError(f"{SCHEME}: " + "; ".join(problems))


def _value_problems(
    header: str,
    algorithm: str,
    encoding: str,
    timestamp_header: str | None,
    tolerance: float | None,
) -> list[str]:
    problems = []
    if not header.strip():
        problems.append("'header' is empty")
    if algorithm not in ALGORITHMS:
        problems.append(f"'algorithm' is {algorithm!r}; use one of {', '.join(ALGORITHMS)}")
    if encoding not in ENCODINGS:
        problems.append(f"'encoding' is {encoding!r}; use one of {', '.join(ENCODINGS)}")
    if timestamp_header is not None and not timestamp_header.strip():
        problems.append("'timestamp_header' is empty; omit it or name the header")
    if tolerance is not None and tolerance <= 0:
        problems.append("'tolerance' must be positive (seconds) or null to disable")
    return problems


def _digest(scheme: HmacHeaderScheme, secret: bytes, message: bytes) -> str:
    mac = hmac.new(secret, message, scheme.algorithm).digest()
    if scheme.encoding == "hex":
        return mac.hex()
    return base64.b64encode(mac).decode("ascii")


def _message(scheme: HmacHeaderScheme, body: bytes, timestamp: str | None) -> bytes:
    if scheme.timestamp_header is None:
        return body
    return c.to_bytes(timestamp or "") + c.to_bytes(scheme.timestamp_separator) + body


def hmac_header_signature(
    scheme: HmacHeaderScheme, secret: c.Secret, body: bytes, *, timestamp: str | None = None
) -> str:
    """The signature header value (prefix included) for ``body`` (and ``timestamp``, if the
    scheme signs one)."""
    if scheme.timestamp_header is not None and timestamp is None:
        raise ValueError("this scheme signs a timestamp; pass timestamp=")
    return scheme.prefix + _digest(scheme, c.to_bytes(secret), _message(scheme, body, timestamp))


def verify_hmac_header(
    scheme: HmacHeaderScheme,
    secret: c.Secrets,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: float | None = None,
) -> None:
    """Check a request against ``scheme``; return None or raise :class:`AuthenticationFailed`.

    The prefix is matched case-insensitively. When the scheme has a timestamp header, its value
    must be Unix seconds within ``scheme.tolerance`` of ``now``.
    """
    secrets = c.secret_list(secret, scheme=SCHEME)
    value = c.require_header(headers, scheme.header, scheme=SCHEME)
    timestamp: str | None = None
    if scheme.timestamp_header is not None:
        timestamp = c.require_header(
            headers, scheme.timestamp_header, scheme=SCHEME, reason="missing_timestamp"
        )
    prefix = scheme.prefix
    if value[: len(prefix)].lower() != prefix.lower():
        raise AuthenticationFailed(
            "malformed_signature", f"{scheme.header} does not start with {prefix!r}", scheme=SCHEME
        )
    presented = value[len(prefix) :].strip()
    if scheme.encoding == "hex":
        presented = presented.lower()
    message = _message(scheme, body, timestamp)
    expected = [_digest(scheme, s, message).encode("ascii") for s in secrets]
    if not c.matches_any(expected, presented):
        raise AuthenticationFailed(
            "bad_signature",
            f"{scheme.header} does not match; check the secret and the scheme settings "
            f"({scheme.algorithm}, {scheme.encoding})",
            scheme=SCHEME,
        )
    if timestamp is not None:
        what = f"the {scheme.timestamp_header} header"
        signed_at = c.parse_unix_seconds(timestamp, scheme=SCHEME, what=what)
        c.check_fresh(signed_at, tolerance=scheme.tolerance, now=now, scheme=SCHEME, what=what)
