"""Political messages (France): R17."""

from __future__ import annotations

from ...events.records import Severity, Sourcing
from ..purposes import ELECTRONIC_MESSAGES, POLITICAL
from .base import Finding, RuleContext, finding, rule

_THIRD_PARTY_FILES = frozenset({Sourcing.RENTED, Sourcing.PURCHASED, Sourcing.PARTNER})


@rule("R17", "[FR5]", Severity.CRITICAL)
def r17_political_rented_file(ctx: RuleContext) -> Finding | None:
    """Political e-mail/SMS to a rented, purchased or partner file whose consent does not
    name ``political.communication`` explicitly (an all-purpose grant is not explicit)."""
    if ctx.purpose != POLITICAL or ctx.sourcing not in _THIRD_PARTY_FILES:
        return None
    if ctx.channel not in ELECTRONIC_MESSAGES:
        return None
    grant = ctx.grant
    if grant is not None and POLITICAL in grant.purposes:
        return None
    return finding(
        r17_political_rented_file,
        f"{ctx.what()} to a {ctx.sourcing} file whose consent covers "
        f"{ctx.consent_landscape()}, not political messages",
    )


RULES = (r17_political_rented_file,)
