"""What the lead-generator connectors share (meta_leads, linkedin_leads, google_ads_leads,
lead_post): JSON bodies, times, hashes, secrets under rotation, channels per address.

Nothing here keeps or prints an address: addresses go straight to ``Edge.address``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from consentinel.connectors.contract import Address, Edge, Instance, Request
from consentinel.streams.events.codec import loads
from consentinel.streams.events.errors import FatalConfigError, InvalidInput
from consentinel.streams.events.records import Channel

#: Channels a phone number can be used on; e-mail addresses have only ``email``.
PHONE_CHANNELS = frozenset({Channel.SMS, Channel.PHONE, Channel.WHATSAPP, Channel.RCS})

_TRUE = frozenset({"1", "true", "yes", "y", "on", "checked"})
_FALSE = frozenset({"", "0", "false", "no", "n", "off", "unchecked", "null", "none"})


def json_object(body: bytes, what: str) -> dict[str, Any]:
    """The body as a JSON object; ``malformed_json`` otherwise (message names ``what``)."""
    data = loads(body)
    if not isinstance(data, dict):
        raise InvalidInput("malformed_json", f"{what} is not a JSON object")
    return data


def received_ms(request: Request | None) -> int:
    return int(request.received_at_ms) if request and request.received_at_ms else Edge.now_ms()


_MIN_MS, _MAX_MS = 946_684_800_000, 4_102_444_800_000  # 2000-01-01 .. 2100-01-01


def epoch_ms(value: Any, field: str) -> int:
    """Epoch milliseconds UTC (see ``_epoch_ms``), refused outside 2000..2100: a time that far
    off is a unit mix-up, and placing consent there would be wrong evidence."""
    ms = _epoch_ms(value, field)
    if not _MIN_MS <= ms < _MAX_MS:
        raise InvalidInput("bad_timestamp", f"{field} is outside 2000..2100 (wrong unit?)")
    return ms


def _epoch_ms(value: Any, field: str) -> int:
    """Epoch milliseconds UTC from Unix seconds or milliseconds (numbers or digit strings,
    told apart by size) or an ISO 8601 string that carries a time zone (``Z``, ``+00:00``,
    ``+0000``). A string without a zone is ``bad_timestamp``: guessing one would shift
    consent against use."""
    if isinstance(value, bool) or value is None:
        raise InvalidInput("bad_timestamp", f"{field} is not a time")
    if isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
        value = float(value)
    if isinstance(value, int | float):
        if not math.isfinite(value) or value <= 0:
            raise InvalidInput("bad_timestamp", f"{field} is not a positive Unix time")
        return int(value) if value >= 1e11 else round(value * 1000)
    if not isinstance(value, str):
        raise InvalidInput("bad_timestamp", f"{field} is neither a number nor a string")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput("bad_timestamp", f"{field} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise InvalidInput("bad_timestamp", f"{field} has no time zone (add Z or +00:00)")
    try:
        return int(parsed.astimezone(UTC).timestamp() * 1000)
    except (OverflowError, ValueError):
        raise InvalidInput("bad_timestamp", f"{field} is out of range") from None


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()


def text_id(value: Any, field: str, *, required: bool = False) -> str | None:
    """An identifier as text: strings and integers (Google and Meta ids are int64)."""
    if value is None or value == "":
        if required:
            raise InvalidInput("missing_field", f"{field} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInput("bad_value", f"{field} is not a string or an integer")
    return str(value).strip()


def flag(value: Any, field: str) -> bool:
    """A tick or a yes/no in any of the encodings platforms use: booleans, 1/0, ``"1"``/``""``,
    ``"true"``/``"false"``, ``"yes"``/``"no"``; absent (None) is false."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise InvalidInput("bad_value", f"{field} is not a recognisable yes/no value")


def secrets(instance: Instance, name: str) -> list[bytes]:
    """The secret ``name`` and, while rotating, ``<name>_previous`` when configured."""
    found = [instance.secret(name)]
    if f"{name}_previous" in instance.secrets:
        found.append(instance.secret(f"{name}_previous"))
    return found


def with_headers(request: Request, **headers: str) -> Request:
    merged = {**request.headers, **{k.replace("_", "-").lower(): v for k, v in headers.items()}}
    return dataclasses.replace(request, headers=merged)


_ADDRESS_LIKE = re.compile(r"@|\d[\d\s().+-]{6,}")


def safe_url(url: str) -> str:
    """The URL minus credentials, fragment, and query values or path segments that may hold an
    address (an ``@``, or a run of 7+ digits): proof of where, without the who."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise InvalidInput("bad_value", "source URL is not a URL") from None
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not _ADDRESS_LIKE.search(v) and not _ADDRESS_LIKE.search(k)
    ]
    path = "/".join(
        "-" if _ADDRESS_LIKE.search(unquote(segment)) else segment
        for segment in parts.path.split("/")
    )
    host = parts.hostname or ""
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, path, urlencode(query), ""))


def mapping_option(instance: Instance, name: str, problems: list[str]) -> dict[str, Any]:
    """An option that must be a mapping (absent: empty); a problem is noted otherwise."""
    value = instance.options.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append(f"option {name!r} must be a mapping")
        return {}
    return {str(k): v for k, v in value.items()}


def check_options(instance: Instance, problems: list[str]) -> None:
    """Refuse to start with every problem listed (``FatalConfigError``)."""
    if problems:
        raise FatalConfigError(problems, f"connector instance {instance.name!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class LeadAddress:
    """One address of a lead: its key and hint, and whether it is an e-mail or a phone."""

    address: Address
    kind: str  # "email" | "phone"


class ChannelPolicy:
    """Which channels a consent covers for one address, from instance options:

    - ``phone_channel`` (default ``sms``): the channel of a phone address in usage events and,
      unless configured otherwise, in its consent events.
    Configuration problems are appended to ``problems`` (see ``check_options``).

    - ``consent_channels``: vendor consent id (checkbox key, consent id, form id, purpose) ->
      channel or list of channels. A consent configured for e-mail only yields no event for the
      lead's phone, and the reverse.
    """

    def __init__(self, instance: Instance, problems: list[str]) -> None:
        self.phone_channel = _channel(instance.options.get("phone_channel", "sms"), problems)
        if self.phone_channel is not None and self.phone_channel not in PHONE_CHANNELS:
            problems.append("phone_channel must be one of sms, phone, whatsapp, rcs")
        self.configured: dict[str, list[Channel]] = {}
        raw = instance.options.get("consent_channels") or {}
        if not isinstance(raw, Mapping):
            problems.append("consent_channels must map a consent id to channels")
            raw = {}
        for key, value in raw.items():
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, Iterable):
                problems.append(f"consent_channels[{key!r}] must be a channel or a list")
                continue
            channels = [_channel(v, problems) for v in values]
            self.configured[str(key)] = [c for c in channels if c is not None]

    def usage_channel(self, kind: str) -> Channel:
        return Channel.EMAIL if kind == "email" else self.phone_channel or Channel.SMS

    def consent_channels(
        self, kind: str, consent_id: str | None, given: Iterable[Channel] | None = None
    ) -> list[Channel]:
        """Channels for an address of ``kind``: those ``given`` (the payload's), else those
        configured for ``consent_id``, else the address's usage channel; restricted to what
        the address can carry. Empty means: this consent says nothing for this address."""
        chosen = list(given) if given is not None else self.configured.get(consent_id or "")
        if chosen is None:
            return [self.usage_channel(kind)]
        fits = {Channel.EMAIL} if kind == "email" else PHONE_CHANNELS
        return [c for c in dict.fromkeys(chosen) if c in fits]


def _channel(value: Any, problems: list[str]) -> Channel | None:
    try:
        return Channel(str(value).strip().lower())
    except ValueError:
        problems.append(f"{value!r} is not a channel ({', '.join(c.value for c in Channel)})")
        return None


def parse_channels(values: Any, field: str) -> list[Channel]:
    """A payload's channel list (``email``, ``sms``, ``phone``…); unknown names are bad input."""
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list):
        raise InvalidInput("bad_value", f"{field} is not a list of channels")
    out = []
    for value in values:
        try:
            out.append(Channel(str(value).strip().lower()))
        except ValueError:
            raise InvalidInput("unknown_channel", f"{field} names an unknown channel") from None
    return out
