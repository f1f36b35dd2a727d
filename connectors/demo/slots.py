"""When the demo's telephone and SMS traffic happened: Paris wall-clock slots before "now".

The calling-hours and quiet-hours rules (R9, R10) judge the local time of a use, so the
demo cannot post that traffic "now" like the rest: a call at 21:30 or an SMS at 23:45 must
carry that time. The platforms report it (Twilio Voice's ``Timestamp``, the Vonage
Messages API's ``timestamp``), so each slot is a Paris wall-clock time on a day before the
day of ``now``:

- ``weekdays``: Monday to Friday, French public holidays excluded (``holidays``, the
  library the rules use for the same calendar), latest first;
- ``last_sunday`` and ``last_holiday``: the latest Sunday, the latest French public
  holiday before today;
- ``last_evening``: the latest day before today at a given time (every day qualifies).

Pure: everything depends on ``now_ms`` alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import holidays

PARIS = ZoneInfo("Europe/Paris")


def paris_day(now_ms: int) -> date:
    """The Paris calendar day of ``now_ms``."""
    return datetime.fromtimestamp(now_ms / 1000, tz=UTC).astimezone(PARIS).date()


def at(day: date, hour: int, minute: int = 0) -> int:
    """Epoch ms of ``day`` at ``hour:minute`` Paris time."""
    local = datetime.combine(day, time(hour, minute), tzinfo=PARIS)
    return int(local.timestamp() * 1000)


def _french_holidays(year: int) -> holidays.HolidayBase:
    return holidays.country_holidays("FR", years=[year - 1, year])


def _days_before(now_ms: int) -> Iterator[date]:
    day = paris_day(now_ms)
    while True:
        day -= timedelta(days=1)
        yield day


def weekdays(now_ms: int, count: int) -> list[date]:
    """The latest ``count`` working days (Mon-Fri, not a public holiday) before today."""
    off = _french_holidays(paris_day(now_ms).year)
    working = (d for d in _days_before(now_ms) if d.weekday() < 5 and d not in off)
    return list(islice(working, count))


def last_sunday(now_ms: int) -> date:
    return next(d for d in _days_before(now_ms) if d.weekday() == 6)


def last_holiday(now_ms: int) -> date:
    off = _french_holidays(paris_day(now_ms).year)
    return next(d for d in _days_before(now_ms) if d in off)


def last_evening(now_ms: int, hour: int, minute: int) -> int:
    """Epoch ms of the latest ``hour:minute`` Paris time on a day before today."""
    return at(next(_days_before(now_ms)), hour, minute)
