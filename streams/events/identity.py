"""Addresses at the edge: normalize, pseudonymize, mask.

- E-mail: trimmed, lowercased as a whole (a deliberate product decision: platforms treat
  local parts case-insensitively in practice, and two keys for one person would hide a
  withdrawal).
- Phone: E.164 with a configured default region for national forms.
- Subject key: HMAC-SHA256(pepper, normalized address), hex. The pepper never leaves the
  process; without it a key cannot be linked back to an address by dictionary attack.
- Hints for people: ``a***@e***.org`` and ``+33 6** ** ** 12``: the first character of
  the local part and of the domain, the top-level domain; for phones the country code,
  the first national digit and the last two digits. Nothing else.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

import phonenumbers

from .errors import InvalidInput

_EMAIL = re.compile(
    r"^[^@\s<>(),;:\"\[\]]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)


class AddressError(InvalidInput):
    """An address that cannot be normalized. The message never repeats the address."""

    def __init__(self, kind: str, why: str) -> None:
        super().__init__(f"bad_{kind}", f"{kind} address rejected: {why}")


#: Unicode categories an address never holds: control, format (zero-width space, RTL
#: override), surrogate, private use, unassigned.
_FORBIDDEN = {
    "Cc": "a control character (Cc)",
    "Cf": "a format character (Cf, e.g. zero-width or direction override)",
    "Cs": "a surrogate (Cs)",
    "Co": "a private-use character (Co)",
    "Cn": "an unassigned character (Cn)",
}


def _check_characters(value: str, kind: str) -> None:
    """``AddressError`` naming the class and position (1-based) of the first character an
    address cannot hold, or U+FFFD (what a decoder left for invalid bytes)."""
    if value.isascii() and value.isprintable():
        return
    for position, char in enumerate(value, start=1):
        if char == "\ufffd":
            why = "the replacement character U+FFFD (invalid encoding upstream)"
        else:
            why = _FORBIDDEN.get(unicodedata.category(char), "")
        if why:
            raise AddressError(kind, f"{why} at position {position}")


def normalize_email(raw: str) -> str:
    """Trim and lowercase; reject what is not an address (``AddressError``)."""
    if not isinstance(raw, str):
        raise AddressError("email", f"expected a string, got {type(raw).__name__}")
    value = raw.strip()
    _check_characters(value, "email")
    lowered = value.lower()
    if lowered.startswith("mailto:"):
        lowered = value[7:].lower()
    value = lowered
    if len(value) > 254 or not _EMAIL.match(value):
        raise AddressError("email", "not an e-mail address (a local part, @, a dotted domain)")
    return value


def normalize_phone(raw: str, default_region: str | None = None) -> str:
    """Parse a written phone number to E.164 (``+33612345678``).

    International forms (``+44 …``, ``0044 …``) parse anywhere; national forms
    (``06 12 34 56 78``) need ``default_region`` (ISO 3166 alpha-2, e.g. ``FR``). Bare
    MSISDNs as Vonage sends them (``447700900001``) parse as international when they do
    not parse nationally.
    """
    if not isinstance(raw, str):
        raise AddressError("phone", f"expected a string, got {type(raw).__name__}")
    text = raw.strip()
    _check_characters(text, "phone")
    if text.lower().startswith("tel:"):
        text = text[4:]
    digits = re.sub(r"[\s().\-/]", "", text)
    if not digits or not re.fullmatch(r"\+?\d{4,17}", digits):
        raise AddressError("phone", "not a phone number (digits, spaces, dots, dashes, +)")
    candidates: list[tuple[str, str | None]] = []
    if digits.startswith("+"):
        candidates.append((digits, None))
    elif digits.startswith("00"):
        candidates.append(("+" + digits[2:], None))
    else:
        if default_region:
            candidates.append((digits, default_region.upper()))
        candidates.append(("+" + digits, None))
    for number, region in candidates:
        try:
            parsed = phonenumbers.parse(number, region)
        except phonenumbers.NumberParseException:
            continue
        # Possible (right length for its country), not "valid": numbering plans change
        # faster than the metadata, and reserved test ranges are real for platforms.
        if phonenumbers.is_possible_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if not default_region and not digits.startswith(("+", "00")):
        raise AddressError("phone", "national number and no default region configured")
    raise AddressError("phone", "not a possible number for its country (wrong length?)")


def normalize(raw: str, channel: str, default_region: str | None = None) -> str:
    """Normalize for a channel: e-mail for ``email``, E.164 for phone-like channels."""
    if channel == "email":
        return normalize_email(raw)
    return normalize_phone(raw, default_region)


_BLOCK = 64  # SHA-256's block size, in bytes
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


class Pseudonymizer:
    """Turns normalized addresses into subject keys with a secret pepper."""

    __slots__ = ("_inner", "_outer", "_pepper", "key_id")

    def __init__(self, pepper: bytes) -> None:
        if len(pepper) < 16:
            raise ValueError("the pepper must be at least 16 bytes")
        self._pepper = pepper
        #: A short, public fingerprint of the pepper (to tell peppers apart in logs).
        self.key_id = hashlib.sha256(b"consentinel-key-id:" + pepper).hexdigest()[:8]
        # HMAC-SHA256 (RFC 2104, as ``hmac.new``) with the padded keys hashed once: a
        # subject key then costs two context copies instead of a new key schedule.
        key = hashlib.sha256(pepper).digest() if len(pepper) > _BLOCK else pepper
        key = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))

    def subject_key(self, normalized: str) -> str:
        """HMAC-SHA256(pepper, normalized address), hex."""
        inner = self._inner.copy()
        inner.update(normalized.encode("utf-8"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def __repr__(self) -> str:
        return f"Pseudonymizer(key_id={self.key_id!r})"


def mask_email(normalized: str) -> str:
    """``ana.lopez@example.org`` -> ``a***@e***.org``."""
    local, _, domain = normalized.partition("@")
    head, _, tld = domain.rpartition(".")
    return f"{local[:1]}***@{head[:1]}***.{tld}" if head else f"{local[:1]}***@***"


def mask_phone(e164: str) -> str:
    """``+33612345612`` -> ``+33 6** ** ** 12``; other countries alike in shape."""
    try:
        parsed = phonenumbers.parse(e164, None)
        cc = str(parsed.country_code)
        national = str(parsed.national_number)
    except phonenumbers.NumberParseException:
        cc, national = "", e164.lstrip("+")
    if len(national) < 4:
        return f"+{cc} ****"
    starred = national[0] + "*" * (len(national) - 3) + national[-2:]
    head, rest = starred[:3], starred[3:]
    pairs = [rest[max(0, i - 2) : i] for i in range(len(rest), 0, -2)][::-1]
    return " ".join([f"+{cc}", head, *pairs])


def mask(normalized: str, channel: str) -> str:
    return mask_email(normalized) if channel == "email" else mask_phone(normalized)
