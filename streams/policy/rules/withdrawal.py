"""Withdrawal: R5 (a message after STOP, unsubscribe, objection or erasure)."""

from __future__ import annotations

from ...events.records import ConsentAction, Severity
from .base import Finding, RuleContext, days, finding, rule


@rule("R5", "[S6 art. 7(3), 21(2)–(3); S8; G1–G3]", Severity.CRITICAL)  # noqa: RUF001 - the source as rules.md writes it
def r5_after_withdrawal(ctx: RuleContext) -> Finding | None:
    """A use after the person withdrew (past the channel's processing allowance).

    Applies to uses on consent and to every promotional use (an objection to direct
    marketing binds whatever the basis, art. 21(3)); a transactional message after an
    unsubscribe is not R5's business (R7). The allowance comes from the settings per
    channel (e-mail 2 days, SMS and phone 0 by default): a withdrawal younger than that is
    not yet in effect. A refusal counts as an objection only when the use does not rest on
    consent (otherwise R1/R2 say it). A use after the controller erased the address is a
    use after withdrawal too.
    """
    if not (ctx.needs_consent or ctx.promotional):
        return None
    if ctx.erased_at_use and ctx.own.erased_at_ms is not None:
        return finding(
            r5_after_withdrawal,
            f"{ctx.what()} {days(ctx.t_ms - ctx.own.erased_at_ms)} after {ctx.controller} "
            f"erased the address",
        )
    block = ctx.block
    if block is None or ctx.grant is not None:
        return None
    if block.action is ConsentAction.WITHDRAW or (
        block.action is ConsentAction.REFUSE and not ctx.needs_consent
    ):
        what = "withdrawal" if block.action is ConsentAction.WITHDRAW else "objection"
        allowance = ctx.policy.allowance_ms(ctx.channel)
        allowed = f" (allowance {days(allowance)})" if allowance else ""
        return finding(
            r5_after_withdrawal,
            f"{ctx.what()} {days(ctx.t_ms - block.at_ms)} after the person's {what} "
            f"(consent event {block.event_id}){allowed}",
        )
    return None


RULES = (r5_after_withdrawal,)
