"""Withdrawal: R5 (a message after STOP, unsubscribe, objection or erasure) and R6 (no
opt-out means in the message)."""

from __future__ import annotations

from ...events.records import Channel, ConsentAction, Severity, UsageKind
from .base import SENDS, Finding, RuleContext, days, finding, rule


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


def _opt_out_means(ctx: RuleContext) -> list[tuple[str, bool | None]]:
    """The opt-out means R6 asks of this message, each present, absent or unknown (None)."""
    u = ctx.usage
    if ctx.channel == Channel.SMS.value:
        return [('an opt-out instruction ("STOP au 36xxx")', u.opt_out_instruction)]
    if ctx.channel == Channel.EMAIL.value:
        return [
            ("List-Unsubscribe", u.list_unsubscribe),
            ("List-Unsubscribe-Post: List-Unsubscribe=One-Click", u.list_unsubscribe_post),
        ]
    return []


@rule("R6", "[CPCE L34-5; FR10; RFC 8058 in S8]", Severity.CRITICAL, kinds=SENDS)
def r6_opt_out_means(ctx: RuleContext) -> Finding | None:
    """A promotional SMS without an opt-out instruction, or a promotional e-mail without
    both ``List-Unsubscribe`` and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``.

    Each means is what the connector saw in the message (``UsageEvent.opt_out_instruction``,
    ``list_unsubscribe``, ``list_unsubscribe_post``); where it saw nothing (None), what the
    declaration states (``opt_out_in_message``). What the connector saw wins: it is the
    message itself, the declaration a promise about it. Unknown on both sides is no finding:
    most platforms do not report the message, and R6 must not flag every use they carry.
    Every promotional e-mail counts as bulk: a per-use rule cannot see a sender's volume.
    """
    u = ctx.usage
    if u.kind is not UsageKind.SEND or not ctx.promotional or u.is_test:
        return None
    declared = ctx.declaration.opt_out_in_message if ctx.declaration else None
    missing: list[str] = []
    how: set[str] = set()
    for means, seen in _opt_out_means(ctx):
        present = seen if seen is not None else declared
        if present is False:
            missing.append(means)
            how.add("as the connector saw it" if seen is not None else "as its declaration says")
    if not missing:
        return None
    return finding(
        r6_opt_out_means,
        f"{ctx.what()} without {' and '.join(missing)} ({', '.join(sorted(how))}): every "
        f"marketing message must offer a free way to opt out",
    )


RULES = (r5_after_withdrawal, r6_opt_out_means)
