"""Political messages (France): R17 (rented file), R18 (first message names the source and
offers opt-out), R19 (HR, payroll or administrative files)."""

from __future__ import annotations

from ...events.records import Severity, Sourcing, UsageKind
from ..purposes import ELECTRONIC_MESSAGES, POLITICAL
from .base import SENDS, Finding, RuleContext, finding, rule
from .transfers import missing_notice

_THIRD_PARTY_FILES = frozenset({Sourcing.RENTED, Sourcing.PURCHASED, Sourcing.PARTNER})
_POLITICAL = frozenset({POLITICAL})
#: R19: file categories political use must never draw on.
FORBIDDEN_CATEGORIES = frozenset({"hr", "payroll", "administrative"})


@rule("R17", "[FR5]", Severity.CRITICAL, purposes=_POLITICAL)
def r17_political_rented_file(ctx: RuleContext) -> Finding | None:
    """Political e-mail/SMS to a rented, purchased or partner file whose consent does not
    name ``political.communication`` explicitly (an all-purpose grant is not explicit).
    A transfer is not a message: the file's rental itself is judged by R2, R13, R14, R16."""
    if ctx.purpose != POLITICAL or ctx.sourcing not in _THIRD_PARTY_FILES:
        return None
    if ctx.channel not in ELECTRONIC_MESSAGES or ctx.usage.kind is UsageKind.LIST_TRANSFER:
        return None
    grant = ctx.grant
    if grant is not None and POLITICAL in grant.purposes:
        return None
    return finding(
        r17_political_rented_file,
        f"{ctx.what()} to a {ctx.sourcing} file whose consent covers "
        f"{ctx.consent_landscape()}, not political messages",
    )


@rule("R18", "[FR5]", Severity.CRITICAL, kinds=SENDS, purposes=_POLITICAL)
def r18_political_notice(ctx: RuleContext) -> Finding | None:
    """The first political message a controller sends the person does not say where the
    address came from or how to object (``transfers.missing_notice``: what the connector saw,
    else the declaration; unknown is no finding). Judged on the first message only; opt-out
    in every message is R6's, and applying it without delay R5's."""
    if ctx.purpose != POLITICAL or ctx.usage.kind is not UsageKind.SEND:
        return None
    if not ctx.first_message:
        return None
    missing = missing_notice(ctx)
    if not missing:
        return None
    return finding(
        r18_political_notice,
        f"first {ctx.what()} does not say {' nor '.join(missing)}",
    )


def source_categories(ctx: RuleContext) -> list[str]:
    """The file categories the use draws on: the declaration's ``source_categories`` and a
    transfer's ``source_category`` attribute (what the manifest says of the file)."""
    found = list(ctx.declaration.source_categories) if ctx.declaration else []
    stated = ctx.usage.attributes.get("source_category")
    if isinstance(stated, str) and stated:
        found.append(stated.lower())
    return sorted(set(found))


@rule("R19", "[FR5]", Severity.CRITICAL, purposes=_POLITICAL)
def r19_political_forbidden_files(ctx: RuleContext) -> Finding | None:
    """Political use (a message, a call, a transfer) of addresses from an HR, payroll or
    administrative file, as the declaration or the transfer states. Selecting recipients
    by the sound of their names cannot be seen from a use and is not judged."""
    if ctx.purpose != POLITICAL:
        return None
    forbidden = [c for c in source_categories(ctx) if c in FORBIDDEN_CATEGORIES]
    if not forbidden:
        return None
    return finding(
        r19_political_forbidden_files,
        f"{ctx.what()} draws on {', '.join(forbidden)} files, which political messages "
        f"must never use",
    )


RULES = (r17_political_rented_file, r18_political_notice, r19_political_forbidden_files)
