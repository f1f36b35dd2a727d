"""Configuration alerts: CFG-UNDECLARED, CFG-UNMAPPED."""

from __future__ import annotations

from ...events.records import Severity
from .base import Finding, RuleContext, finding, rule


@rule("CFG-UNDECLARED", "[DESIGN.md, Records: Declaration]", Severity.WARNING)
def cfg_undeclared(ctx: RuleContext) -> Finding | None:
    """The use names no declared campaign, list, form, sender or tag (only once final)."""
    if ctx.declaration is not None or not ctx.final:
        return None
    u = ctx.usage
    named = [
        f"{kind} {ref}"
        for kind, ref in (
            ("campaign", u.campaign_id),
            ("list", u.list_id),
            ("form", u.form_id),
            ("sender", u.sender),
        )
        if ref
    ] + [f"tag {t}" for t in u.tags]
    return finding(
        cfg_undeclared,
        f"{u.kind} by {u.controller} via {u.source} names no declaration "
        f"({', '.join(named) or 'no campaign, list, form, sender or tag'}): "
        f"declare it in the purpose registry",
    )


@rule(
    "CFG-UNMAPPED",
    "[rules.md: canonical purpose taxonomy, unmapped fails closed]",
    Severity.WARNING,
)
def cfg_unmapped(ctx: RuleContext) -> Finding | None:
    """The consent consulted carries vendor purposes with no canonical mapping.

    They were treated as not consented (fail closed); the connector's mapping table needs
    them.
    """
    unmapped = set(ctx.effective.unmapped_purposes)
    if ctx.via is not None:
        partner = ctx.others.get(ctx.via)
        if partner is not None:
            unmapped |= partner.unmapped_purposes
    if not unmapped:
        return None
    return finding(
        cfg_unmapped,
        f"consent for {ctx.via or ctx.controller} carries unmapped vendor purposes "
        f"{', '.join(sorted(unmapped))}: treated as not consented; map them in the "
        f"connector's purpose mapping",
    )


RULES = (cfg_undeclared, cfg_unmapped)
