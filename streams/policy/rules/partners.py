"""List rental and partners: R13 (recipient not named at collection), R14 (second hop)."""

from __future__ import annotations

from ...events.records import Severity
from ..history import ConsentState
from ..settings import strength_severity
from .base import Finding, RuleContext, finding, rule


@rule("R13", "[FR1][FR3]", Severity.CRITICAL)
def r13_named_partner(ctx: RuleContext) -> Finding | None:
    """The consent used was collected by someone else, who did not name this controller.

    Two shapes: the controller's own consent event says ``collected_by`` another
    organisation and its ``recipients`` lack the controller; or the controller has no
    consent of its own and uses a partner's "opt-in partenaires" grant
    (``marketing.partner_transfer``) whose recipients lack it. Whether partners must be
    *named* is before the CJEU (FR3): ``r13_strength`` = violation | warning | off; with
    ``off`` such a partner grant simply counts as consent.
    """
    severity = strength_severity(ctx.policy.r13_strength)
    grant = ctx.grant
    if severity is None or grant is None or ctx.controller in grant.recipients:
        return None
    if ctx.via is not None:
        collector = grant.collected_by or ctx.via
    elif grant.collected_by not in (None, ctx.controller):
        collector = grant.collected_by
    else:
        return None
    named = ", ".join(sorted(grant.recipients)) or "no partner"
    return finding(
        r13_named_partner,
        f"{ctx.what()}: consent collected by {collector} named {named}, not {ctx.controller}",
        severity,
    )


def _collects_itself(state: ConsentState, controller: str) -> bool:
    return any(e.is_grant and e.collected_by in (None, controller) for e in state.entries)


def _partner_of(ctx: RuleContext, supplier: str) -> str | None:
    """Who ``supplier`` holds the addresses from when it is only a named partner, else None."""
    state = ctx.state_of(supplier)
    if state is not None and state.entries:
        if _collects_itself(state, supplier):
            return None
        for entry in state.entries:
            if entry.is_grant and entry.collected_by not in (None, supplier):
                return entry.collected_by
    for name, other in sorted(ctx.others.items()):
        if name == supplier:
            continue
        if any(e.is_grant and supplier in e.recipients for e in other.entries):
            return name
    return None


@rule("R14", "[FR1]", Severity.CRITICAL)
def r14_second_hop(ctx: RuleContext) -> Finding | None:
    """The declaration's addresses were passed on by a controller that was itself only a
    named partner of the collector ("opt-in partenaires" does not travel a second hop).

    Judged from the consent records at the time of use: a supplier in ``acquired_from``
    is "only a partner" when none of its consent was collected by itself and either its
    consent says ``collected_by`` someone else or another controller's grant names it
    among recipients. Not judged when the person consented to this controller directly.
    """
    decl = ctx.declaration
    if decl is None or not decl.acquired_from:
        return None
    if (
        ctx.grant is not None
        and ctx.via is None
        and ctx.grant.collected_by in (None, ctx.controller)
    ):
        return None
    for supplier in decl.acquired_from:
        if supplier == ctx.controller:
            continue
        origin = _partner_of(ctx, supplier)
        if origin is not None:
            return finding(
                r14_second_hop,
                f"{ctx.what()} to addresses passed on by {supplier}, which itself received "
                f"them as a partner of {origin} (second hop)",
            )
    return None


RULES = (r13_named_partner, r14_second_hop)
