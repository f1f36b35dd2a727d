"""Retention: R20 (prospect contacted more than the retention period after the last contact)."""

from __future__ import annotations

from ...events.records import Severity
from .base import Finding, RuleContext, days, finding, rule


@rule("R20", "[FR9]", Severity.WARNING)
def r20_stale_prospect(ctx: RuleContext) -> Finding | None:
    """Promotional use more than ``retention_days`` after the person's last contact.

    Last contact = the later of the person's last grant to this controller (or the
    partner grant the use rests on) and the last click or reply noted in the history
    (``ConsentHistory.note_contact``; an open is not a contact). Unknown → not judged.
    """
    last = last_contact(ctx)
    if last is None:
        return None
    since = ctx.t_ms - last
    if since <= ctx.policy.retention_ms:
        return None
    return finding(
        r20_stale_prospect,
        f"{ctx.what()} {days(since)} after the person's last contact "
        f"(retention {ctx.policy.retention_days} days): re-ask once or delete",
    )


def last_contact(ctx: RuleContext) -> int | None:
    """The person's last contact R20 counts from, for a promotional use (else None: R20
    does not judge it). R20 finds something exactly when ``ctx.t_ms`` is later than this
    plus the retention period (the engine's decision memo reads it for that boundary)."""
    if not ctx.promotional:
        return None
    known = [t for t in (ctx.own.last_contact_ms,) if t is not None]
    if ctx.grant is not None:
        known.append(ctx.grant.at_ms)
    return max(known) if known else None


RULES = (r20_stale_prospect,)
