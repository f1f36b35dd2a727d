"""Telephone (France): R10 (calling hours and public holidays), R11 (at most 4 attempts in
30 days, none within 60 days of a refusal; the subject's call records are in ``calls``) and
R12 (Bloctel, then consent-only sales calls from 11 Aug 2026; the home-energy-renovation
ban)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from ...events.records import Channel, LegalBasis, Severity, UsageKind
from ..calls import MAX_ATTEMPTS_IN_WINDOW, REFUSAL_MS, WINDOW_MS
from .base import CALLS, Finding, RuleContext, days, finding, rule
from .basis import provable

PARIS = ZoneInfo("Europe/Paris")
#: Mon-Fri 10:00-13:00 and 14:00-20:00, minutes after local midnight [start, end)
CALL_WINDOWS = ((600, 780), (840, 1200))
#: The law of 30 June 2025: consent-only sales calls from this day (Paris time).
CONSENT_ONLY_FROM = date(2026, 8, 11)
BLOCTEL_MAX_AGE_MS = 30 * 86_400_000
PRESS = "press"
HOME_ENERGY_RENOVATION = "home_energy_renovation"


def consumer_zone(tz: object) -> ZoneInfo:
    """The zone the connector saw for the consumer (attribute ``tz``), else Paris."""
    if isinstance(tz, str) and tz:
        try:
            return ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            return PARIS
    return PARIS


@lru_cache(maxsize=16)
def _french_holidays(year: int) -> holidays.HolidayBase:
    return holidays.country_holidays("FR", years=year)


def local_time(t_ms: int, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(t_ms / 1000, tz=UTC).astimezone(tz)


def sales_call(ctx: RuleContext) -> bool:
    return ctx.usage.kind is UsageKind.CALL and ctx.promotional


def provable_consent(ctx: RuleContext) -> bool:
    return ctx.grant is not None and provable(ctx.grant.proof)


def outside_hours(at: datetime) -> str | None:
    """Why ``at`` (local) is outside the legal calling hours, or None."""
    if at.date() in _french_holidays(at.year):
        return f"on a public holiday ({_french_holidays(at.year).get(at.date())})"
    if at.weekday() >= 5:
        return f"on a {at.strftime('%A')}"
    minutes = at.hour * 60 + at.minute
    if any(start <= minutes < end for start, end in CALL_WINDOWS):
        return None
    return f"at {at.strftime('%H:%M')}, outside 10:00-13:00 / 14:00-20:00"


@rule("R10", "[FR6]", Severity.CRITICAL, kinds=CALLS)  # sales_call() requires a call
def r10_calling_hours(ctx: RuleContext) -> Finding | None:
    """A sales call outside Mon-Fri 10:00-13:00 / 14:00-20:00 in the consumer's time zone,
    or on a French public holiday, without provable prior consent."""
    if not sales_call(ctx) or provable_consent(ctx):
        return None
    zone = consumer_zone(ctx.usage.attributes.get("tz"))
    why = outside_hours(local_time(ctx.t_ms, zone))
    if why is None:
        return None
    return finding(
        r10_calling_hours,
        f"{ctx.what()} {why} ({zone.key}) with no provable prior consent",
    )


@rule("R11", "[FR6]", Severity.CRITICAL, kinds=CALLS)
def r11_call_frequency(ctx: RuleContext) -> Finding | None:
    """A sales call that is the 5th (or later) attempt by the same professional (the
    declaration's controller, agents included) to the person within 30 days (a rolling
    window ending at the call), or that comes less than 60 days after the person refused
    during a call (a ``refuse`` or ``withdraw`` consent event naming the phone channel,
    strictly before the call). Only sales calls count and are judged; consent does not lift
    it. The records come from the subject's history (``calls``)."""
    if not sales_call(ctx):
        return None
    calls = ctx.calls
    refusal = calls.last_refusal
    if refusal is not None and ctx.t_ms - refusal[0] < REFUSAL_MS:
        return finding(
            r11_call_frequency,
            f"{ctx.what()} {days(ctx.t_ms - refusal[0])} after the person refused during a "
            f"call (consent event {refusal[1]}): no call for 60 days after a refusal",
        )
    if calls.attempt_number > MAX_ATTEMPTS_IN_WINDOW:
        first = calls.attempts_before[0][0]
        return finding(
            r11_call_frequency,
            f"{ctx.what()} is call attempt {calls.attempt_number} to the person within "
            f"{days(ctx.t_ms - first)} (at most {MAX_ATTEMPTS_IN_WINDOW} in "
            f"{days(WINDOW_MS)})",
        )
    return None


def _r12_problem(ctx: RuleContext) -> str | None:
    decl = ctx.declaration
    sector = decl.sector if decl else None
    if sector == HOME_ENERGY_RENOVATION:
        return "is home-energy-renovation canvassing, banned outright (law of 30 June 2025)"
    if ctx.basis is LegalBasis.CONTRACT:
        return None  # a current contract
    if local_time(ctx.t_ms, PARIS).date() >= CONSENT_ONLY_FROM:
        if provable_consent(ctx):
            return None
        return "has no provable prior consent (sales calls are consent-only since 11 Aug 2026)"
    if sector == PRESS:
        return None
    cleaned = decl.bloctel_cleaned_at_ms if decl else None
    if cleaned is None:
        return "comes from a call file with no Bloctel cleaning date on its declaration"
    if ctx.t_ms - cleaned > BLOCTEL_MAX_AGE_MS:
        return f"comes from a call file last cleaned against Bloctel {days(ctx.t_ms - cleaned)} ago"
    return None


@rule("R12", "[FR7][FR8]", Severity.CRITICAL)
def r12_bloctel_consent_only(ctx: RuleContext) -> Finding | None:
    """Until 10 Aug 2026: a sales call from a file not cleaned against Bloctel in the last
    30 days (declaration's ``bloctel_cleaned_at_ms``), unless a current contract or press.
    From 11 Aug 2026: a sales call without provable prior consent, unless a current
    contract. Home-energy-renovation sales calls and electronic prospecting: always."""
    renovation = ctx.declaration is not None and ctx.declaration.sector == HOME_ENERGY_RENOVATION
    electronic = (
        ctx.usage.kind is UsageKind.SEND and ctx.channel != Channel.PHONE.value and ctx.promotional
    )
    if not sales_call(ctx) and not (renovation and electronic):
        return None
    why = _r12_problem(ctx)
    if why is None:
        return None
    return finding(r12_bloctel_consent_only, f"{ctx.what()} {why}")


RULES = (r10_calling_hours, r11_call_frequency, r12_bloctel_consent_only)
