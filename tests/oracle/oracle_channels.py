"""The oracle's own reading of the SMS and telephone rules of rules.md (R8, R9, R10, R12),
kept apart from the checker: nothing here comes from consentinel.streams.policy.

R8: a promotional SMS sent from an ordinary (06/07) number, which the connector records as
``sender_type = long_code``, is a violation. R9: a promotional SMS or RCS sent outside
08:00-21:30, French time, is a warning (the 2026 charter: every day of the week).
R10: a sales call outside Monday-Friday 10:00-13:00 and 14:00-20:00 in the consumer's
zone (the ``tz`` the connector saw, else France), or on a French public holiday, without
provable prior consent. R12: until 10 Aug 2026 a sales call from a file not cleaned
against Bloctel within 30 days (press and current contracts excepted); from 11 Aug 2026 a
sales call without provable prior consent (current contracts excepted); home-energy-
renovation canvassing by call or electronic message, always.
R11: a sales call is a violation when the same professional has already made 4 or more
sales calls to the person in the 30 days up to it (a rolling 30 x 24 h, the call itself
making the fifth), or when it comes less than 60 days after the person refused during a
call: an objection (refusal or withdrawal) towards that professional that names the phone
among its channels, strictly before the call. A consent given since does not lift it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from consentinel.streams.events.records import (
    Channel,
    ConsentAction,
    ConsentEvent,
    Declaration,
    LegalBasis,
    UsageEvent,
    UsageKind,
)

FRANCE = ZoneInfo("Europe/Paris")
OPENS = (8, 0)
CLOSES = (21, 30)
DAY_MS = 86_400_000


def _local(t_ms: int, zone: ZoneInfo) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)  # noqa: UP017
    return (epoch + timedelta(milliseconds=t_ms)).astimezone(zone)


def _easter(year: int) -> date:
    """Anonymous Gregorian computus."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (8 * b + 13) // 25
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    ell = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * ell) // 451
    month, day = divmod(h + ell - 7 * m + 114, 31)
    return date(year, month, day + 1)


def french_public_holiday(d: date) -> bool:
    """The eleven French public holidays (Code du travail L3133-1)."""
    fixed = {(1, 1), (5, 1), (5, 8), (7, 14), (8, 15), (11, 1), (11, 11), (12, 25)}
    if (d.month, d.day) in fixed:
        return True
    easter = _easter(d.year)
    return d in {easter + timedelta(days=n) for n in (1, 39, 50)}


def _zone(tz: object) -> ZoneInfo:
    try:
        return ZoneInfo(tz) if isinstance(tz, str) and tz else FRANCE
    except (ValueError, KeyError):
        return FRANCE


def _call_hours(t_ms: int, tz: object) -> bool:
    at = _local(t_ms, _zone(tz))
    if at.weekday() > 4 or french_public_holiday(at.date()):
        return False
    hm = (at.hour, at.minute)
    return (10, 0) <= hm < (13, 0) or (14, 0) <= hm < (20, 0)


def channel_findings(
    u: UsageEvent,
    channel: str,
    promotional: bool,
    decl: Declaration | None = None,
    provable_consent: bool = False,
) -> set[str]:
    """The SMS and telephone rule ids that hold against use ``u``."""
    found: set[str] = set()
    if not promotional:
        return found
    sent = u.kind in (UsageKind.SEND, UsageKind.DELIVER)
    if channel == "sms" and sent and u.attributes.get("sender_type") == "long_code":
        found.add("R8")
    if channel in ("sms", "rcs") and u.kind is UsageKind.SEND:
        at = _local(u.occurred_at_ms, FRANCE)
        if not OPENS <= (at.hour, at.minute) < CLOSES:
            found.add("R9")
    sales_call = u.kind is UsageKind.CALL
    if (
        sales_call
        and not provable_consent
        and not _call_hours(u.occurred_at_ms, u.attributes.get("tz"))
    ):
        found.add("R10")
    sector = decl.sector if decl else None
    renovation = sector == "home_energy_renovation"
    if renovation and (sales_call or (u.kind is UsageKind.SEND and channel != "phone")):
        found.add("R12")
    elif sales_call and not (decl is not None and decl.legal_basis is LegalBasis.CONTRACT):
        if _local(u.occurred_at_ms, FRANCE).date() >= date(2026, 8, 11):
            if not provable_consent:
                found.add("R12")
        elif sector != "press":
            cleaned = decl.bloctel_cleaned_at_ms if decl else None
            if cleaned is None or u.occurred_at_ms - cleaned > 30 * DAY_MS:
                found.add("R12")
    return found


def too_many_calls(
    u: UsageEvent, sales_calls: list[UsageEvent], consents: list[ConsentEvent]
) -> bool:
    """R11 for the sales call ``u``: ``sales_calls`` are the professional's sales calls to
    the person, ``consents`` its consent events, both after any erasure."""
    t = u.occurred_at_ms
    for e in consents:
        objection = e.action in (ConsentAction.REFUSE, ConsentAction.WITHDRAW)
        if objection and Channel.PHONE in e.channels and 0 < t - e.occurred_at_ms < 60 * DAY_MS:
            return True
    window = {c.event_id for c in sales_calls if t - 30 * DAY_MS < c.occurred_at_ms <= t}
    return len(window | {u.event_id}) > 4
