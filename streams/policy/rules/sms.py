"""SMS (France): R8 (promotional SMS from a long code) and R9 (charter quiet hours)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from ...events.records import Channel, Severity, UsageKind
from .base import SENDS, Finding, RuleContext, finding, rule

PARIS = ZoneInfo("Europe/Paris")
_SENT = frozenset({UsageKind.SEND, UsageKind.DELIVER})
_CHARTER_CHANNELS = frozenset({Channel.SMS.value, Channel.RCS.value})


def local_minutes(t_ms: int, tz: ZoneInfo = PARIS) -> int:
    """Minutes since local midnight of ``t_ms`` in ``tz``."""
    at = datetime.fromtimestamp(t_ms / 1000, tz=UTC).astimezone(tz)
    return at.hour * 60 + at.minute


@rule("R8", "[FR10]", Severity.CRITICAL, kinds=_SENT, channels=frozenset({Channel.SMS.value}))
def r8_sms_from_long_code(ctx: RuleContext) -> Finding | None:
    """Promotional SMS whose sender the connector saw as a full (06/07) number, not a
    short code. Only what the connector recorded (``sender_type``) counts: unknown is no
    finding."""
    u = ctx.usage
    if ctx.channel != Channel.SMS.value or u.kind not in _SENT or not ctx.promotional:
        return None
    if u.attributes.get("sender_type") != "long_code":
        return None
    return finding(
        r8_sms_from_long_code,
        f"{ctx.what()} sent from a long (06/07) number: promotional SMS must come "
        f"from a 36xxx short code (ARCEP 18-0881)",
    )


@rule(
    "R9",
    "[FR10]",
    Severity.WARNING,
    kinds=SENDS,
    channels=_CHARTER_CHANNELS,
)
def r9_sms_quiet_hours(ctx: RuleContext) -> Finding | None:
    """Promotional SMS/RCS sent outside the charter hours (08:00-21:30 Paris time by
    default; ``PolicySettings.sms_hours``)."""
    u = ctx.usage
    if ctx.channel not in _CHARTER_CHANNELS or u.kind is not UsageKind.SEND:
        return None
    if not ctx.promotional:
        return None
    start, end = ctx.policy.sms_hours
    now = local_minutes(ctx.t_ms)
    if start <= now < end:
        return None
    return finding(
        r9_sms_quiet_hours,
        f"{ctx.what()} sent at {now // 60:02d}:{now % 60:02d} Paris time, outside the "
        f"charter hours {start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}",
    )


RULES = (r8_sms_from_long_code, r9_sms_quiet_hours)
