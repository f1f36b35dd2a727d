"""The oracle's own reading of the SMS rules of rules.md (R8, R9), kept apart from the
checker: nothing here comes from consentinel.streams.policy.

R8: a promotional SMS sent from an ordinary (06/07) number, which the connector records as
``sender_type = long_code``, is a violation. R9: a promotional SMS or RCS sent outside
08:00-21:30, French time, is a warning (the 2026 charter: every day of the week).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from consentinel.streams.events.records import UsageEvent, UsageKind

FRANCE = ZoneInfo("Europe/Paris")
OPENS = (8, 0)
CLOSES = (21, 30)


def _inside_charter_hours(t_ms: int) -> bool:
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)  # noqa: UP017
    local = (epoch + timedelta(milliseconds=t_ms)).astimezone(FRANCE)
    return OPENS <= (local.hour, local.minute) < CLOSES


def channel_findings(u: UsageEvent, channel: str, promotional: bool) -> set[str]:
    """The SMS rule ids that hold against use ``u``."""
    found: set[str] = set()
    if not promotional:
        return found
    if (
        channel == "sms"
        and u.kind in (UsageKind.SEND, UsageKind.DELIVER)
        and u.attributes.get("sender_type") == "long_code"
    ):
        found.add("R8")
    if (
        channel in ("sms", "rcs")
        and u.kind is UsageKind.SEND
        and not _inside_charter_hours(u.occurred_at_ms)
    ):
        found.add("R9")
    return found
