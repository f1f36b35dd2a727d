"""Event times as platforms write them, to epoch milliseconds UTC, with ONE set of bounds.

Every parser here refuses a time outside [2000-01-01, 2100-01-01) with ``bad_timestamp``:
a time that far off is a unit mix-up (seconds read as milliseconds, or the reverse), and
placing consent or use there would be wrong evidence. Nothing here reads the clock.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, tzinfo
from email.utils import parsedate_to_datetime
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from consentinel.connectors.contract import Instance
from consentinel.streams.events.errors import FatalConfigError, InvalidInput

MIN_MS: Final = 946_684_800_000  # 2000-01-01T00:00:00Z, included
MAX_MS: Final = 4_102_444_800_000  # 2100-01-01T00:00:00Z, excluded
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
# compiled once (a pattern given as text is looked up in re's cache on every call)
_DECIMAL = re.compile(r"\s*\d{1,16}(\.\d{1,9})?\s*")
_UNSIGNED = re.compile(r"\s*\d+(\.\d+)?\s*")
_UNIX_SECONDS = re.compile(r"\d{9,11}(\.\d+)?")
_UNIX_ANY = re.compile(r"\s*\d{9,13}(\.\d+)?\s*")
_BEYOND_MICROS = re.compile(r"(\.\d{6})\d+")
_RFC2822_DAY = re.compile(r"\s*[A-Za-z]{3},")


def bounded_ms(ms: int, field: str) -> int:
    """``ms`` when it lies in [2000, 2100); ``bad_timestamp`` naming ``field`` otherwise."""
    if not MIN_MS <= ms < MAX_MS:
        raise InvalidInput("bad_timestamp", f"{field} is outside 2000..2100 (wrong unit?)")
    return ms


def _missing(value: Any, field: str) -> None:
    if value is None or value == "":
        raise InvalidInput("missing_field", f"{field} is missing")


def _number(value: Any, field: str) -> float:
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput("bad_timestamp", f"{field} is not a Unix time")
    if not math.isfinite(value):
        raise InvalidInput("bad_timestamp", f"{field} is not a finite number")
    return float(value)


def _of(parsed: datetime, field: str) -> int:
    try:
        return bounded_ms(int((parsed - _EPOCH) / _MS), field)
    except (OverflowError, ValueError):
        raise InvalidInput("bad_timestamp", f"{field} is out of range") from None


def seconds_ms(value: Any, field: str) -> int:
    """Unix seconds (number or digit string)."""
    _missing(value, field)
    return bounded_ms(round(_number(value, field) * 1000), field)


def millis_ms(value: Any, field: str) -> int:
    """Unix milliseconds (number or digit string)."""
    _missing(value, field)
    return bounded_ms(int(_number(value, field)), field)


def epoch_ms(value: Any, field: str) -> int:
    """Unix seconds or milliseconds, told apart by magnitude (>= 1e11 is milliseconds)."""
    number = _number(value, field)
    if number <= 0:
        raise InvalidInput("bad_timestamp", f"{field} is not a positive Unix time")
    return bounded_ms(int(number) if number >= 1e11 else round(number * 1000), field)


def iso_ms(value: Any, field: str, *, zone: tzinfo | None = UTC) -> int:
    """ISO 8601 / RFC 3339 (``T`` or space; ``Z``, ``±HH:MM``, ``±HHMM``; digits beyond
    microseconds dropped). A time without an offset is read in ``zone``; with
    ``zone=None`` it is ``bad_timestamp`` (guessing a zone would shift consent against use)."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("bad_timestamp", f"{field} is not a date-time text")
    raw = value.strip()
    if "." in raw:
        raw = _BEYOND_MICROS.sub(r"\1", raw)
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput("bad_timestamp", f"{field} is not an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        if zone is None:
            raise InvalidInput("bad_timestamp", f"{field} has no time zone (add Z or +00:00)")
        parsed = parsed.replace(tzinfo=zone)
    return _of(parsed, field)


def epoch_or_iso_ms(value: Any, field: str, *, zone: tzinfo | None = UTC) -> int:
    """A Unix time (see :func:`epoch_ms`) or an ISO 8601 text (see :func:`iso_ms`)."""
    if isinstance(value, bool) or value is None:
        raise InvalidInput("bad_timestamp", f"{field} is not a time")
    if isinstance(value, int | float) or _UNSIGNED.fullmatch(str(value)):
        return epoch_ms(value, field)
    return iso_ms(value, field, zone=zone)


def local_ms(value: Any, field: str, zone: tzinfo) -> int:
    """``YYYY-MM-DD HH:MM:SS`` read in ``zone``, ISO 8601 with its own offset, or Unix
    seconds (exports differ)."""
    _missing(value, field)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return seconds_ms(value, field)
    if not isinstance(value, str):
        raise InvalidInput("bad_timestamp", f"{field} is not a date and time")
    text = value.strip()
    if _UNIX_SECONDS.fullmatch(text):
        return seconds_ms(text, field)
    return iso_ms(text.replace("Z", "+00:00"), field, zone=zone)


def compact_ms(value: str, field: str) -> int:
    """Carrier times ``YYMMDDhhmm`` or ``YYMMDDhhmmss``, taken as UTC."""
    raw = value.strip()
    fmt = {10: "%y%m%d%H%M", 12: "%y%m%d%H%M%S"}.get(len(raw))
    if fmt is None or not raw.isdigit():
        raise InvalidInput("bad_timestamp", f"{field} is not YYMMDDhhmm[ss]")
    try:
        parsed = datetime.strptime(raw, fmt).replace(tzinfo=UTC)
    except ValueError:
        raise InvalidInput("bad_timestamp", f"{field} is not a valid YYMMDDhhmm[ss]") from None
    return _of(parsed, field)


def any_time_ms(value: Any, field: str) -> int:
    """Whatever a file export holds: Unix s/ms, ISO 8601, or RFC 2822 (Twilio's API)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return epoch_ms(value, field)
    if isinstance(value, str) and _UNIX_ANY.fullmatch(value):
        return epoch_ms(value, field)
    if isinstance(value, str) and _RFC2822_DAY.match(value):
        try:
            parsed = parsedate_to_datetime(value.strip())
        except (TypeError, ValueError):
            raise InvalidInput("bad_timestamp", f"{field} is not an RFC 2822 date") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return _of(parsed, field)
    return iso_ms(value, field)


def ms_of(dt: datetime, field: str = "time") -> int:
    """A zoned datetime (e.g. a TC string's ``last_updated``) to bounded epoch ms."""
    return _of(dt, field)


def zone_option(instance: Instance, option: str = "timezone") -> tzinfo:
    """The IANA time zone named by an instance option (default UTC); a wrong name stops start
    (``FatalConfigError``)."""
    name = instance.options.get(option) or "UTC"
    where = f"connector instance {instance.name!r}"
    if not isinstance(name, str):
        raise FatalConfigError([f"{option} must be an IANA time zone name"], where)
    if name.upper() in ("UTC", "Z", "ETC/UTC"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise FatalConfigError(
            [f"{option}: {name!r} is not an IANA time zone (e.g. UTC, Europe/Paris)"], where
        ) from None
