"""Event times in the declarative mapping: unix_s, unix_ms, rfc3339 or a strptime pattern.

Every format gives integer epoch milliseconds UTC. Naive times (RFC 3339 without offset,
strptime without ``%z``) are read in the mapping's ``timezone`` (default UTC).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from typing import Any

from consentinel.streams.events.errors import InvalidInput

NAMED = ("unix_s", "unix_ms", "rfc3339")
_MIN_MS, _MAX_MS = 946_684_800_000, 4_102_444_800_000  # 2000 .. 2100


@dataclass(frozen=True, slots=True)
class TimeFormat:
    format: str = "rfc3339"
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if self.format not in NAMED and "%" not in self.format:
            raise ValueError(
                f"time format {self.format!r}: use unix_s, unix_ms, rfc3339 or a strptime "
                f"pattern such as '%Y-%m-%d %H:%M:%S'"
            )
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"time zone {self.timezone!r} is unknown (e.g. UTC, Europe/Paris)"
            ) from None

    def to_ms(self, value: Any) -> int:
        """Epoch ms UTC; ``InvalidInput('bad_time')`` when the value does not fit."""
        ms = self._convert(value)
        if not _MIN_MS <= ms <= _MAX_MS:
            raise InvalidInput("bad_time", f"event time is outside 2000-2100 ({self.format})")
        return ms

    def _convert(self, value: Any) -> int:
        if self.format in ("unix_s", "unix_ms"):
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise InvalidInput("bad_time", f"event time is not a number ({self.format})")
            try:
                number = float(value)
            except ValueError:
                raise InvalidInput(
                    "bad_time", f"event time is not a number ({self.format})"
                ) from None
            if number != number or number in (float("inf"), float("-inf")):
                raise InvalidInput("bad_time", "event time is not a finite number")
            return round(number * 1000) if self.format == "unix_s" else int(number)
        if not isinstance(value, str):
            raise InvalidInput("bad_time", f"event time is not a string ({self.format})")
        try:
            if self.format == "rfc3339":
                parsed = dt.datetime.fromisoformat(value.strip())
            else:
                parsed = dt.datetime.strptime(value.strip(), self.format)
        except ValueError:
            raise InvalidInput(
                "bad_time", f"event time does not match the format {self.format!r}"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=zoneinfo.ZoneInfo(self.timezone))
        return int(parsed.timestamp() * 1000)
