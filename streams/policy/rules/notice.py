"""Notice and signals: R4 (notice changed without renewed consent), R21 (GPC), R22 (TCF
purpose and vendor)."""

from __future__ import annotations

from functools import lru_cache

from ...events.records import LegalBasis, Severity, UsageKind
from ...events.tcf import TCString, TCStringError, decode_tc_string, permits
from ..history import ConsentEntry
from ..purposes import PARTNER_TRANSFER
from .base import Finding, RuleContext, finding, rule

#: R21: what a third-party transfer or sale is, by usage kind or by purpose.
TRANSFER_KINDS = frozenset({UsageKind.LIST_TRANSFER, UsageKind.LEAD_DELIVERED})
SALE_PURPOSES = frozenset({PARTNER_TRANSFER, "data.sale_enrichment"})


@rule("R4", "[S2 RenewedConsentGiven; F7]", Severity.WARNING)
def r4_notice_changed(ctx: RuleContext) -> Finding | None:
    """A use resting on a consent given to another notice than the one the declaration says
    is in force (``Declaration.notice_version``), with no renewed consent since.

    Compared: the declaration's ``notice_version`` with the ``proof.notice_version`` of the
    controller's own grant the use rests on. Any difference counts as a material change:
    ops bump the declaration's version only for new purposes or recipients. Not judged when
    either side is unknown (a grant without a notice version is R3's business), for a
    partner's grant (its notice is the partner's), or for a use that does not rest on
    consent.
    """
    decl = ctx.declaration
    grant = ctx.grant
    if decl is None or decl.notice_version is None or grant is None or ctx.via is not None:
        return None
    if not ctx.needs_consent or grant.proof is None or grant.proof.notice_version is None:
        return None
    if grant.proof.notice_version == decl.notice_version:
        return None
    return finding(
        r4_notice_changed,
        f"{ctx.what()} rests on consent event {grant.event_id}, given to notice "
        f"{grant.proof.notice_version}; the notice in force is {decl.notice_version} and the "
        f"person has not consented again since it changed",
    )


def _gpc_entry(ctx: RuleContext) -> ConsentEntry | None:
    if ctx.grant is not None and ctx.grant.gpc:
        return ctx.grant
    return next((e for e in reversed(ctx.own.entries) if e.gpc), None)


@rule("R21", "[S5]", Severity.CRITICAL)
def r21_gpc(ctx: RuleContext) -> Finding | None:
    """A third-party transfer or sale (a list transfer or lead delivery, or a use for
    ``marketing.partner_transfer`` or ``data.sale_enrichment``) of a contact collected with
    ``Sec-GPC: 1``: a consent event in force for the controller, or the grant the use rests
    on, says the connector saw the signal (``ConsentEvent.gpc``). The rule is US law's
    (S5): only connectors serving US properties report the signal, so elsewhere it stays
    silent. Unknown (``gpc`` absent) is no signal."""
    if ctx.usage.kind not in TRANSFER_KINDS and ctx.purpose not in SALE_PURPOSES:
        return None
    entry = _gpc_entry(ctx)
    if entry is None:
        return None
    return finding(
        r21_gpc,
        f"{ctx.what()}: the contact was collected with Sec-GPC: 1 (consent event "
        f"{entry.event_id}), an opt-out of sale and sharing",
    )


@lru_cache(maxsize=256)
def _decoded(raw: str) -> TCString | str:
    """The decoded TC string, or why it cannot be decoded (cached: one string, many uses)."""
    try:
        return decode_tc_string(raw)
    except TCStringError as exc:
        return str(exc)


def _latest_tc_string(ctx: RuleContext) -> tuple[str, ConsentEntry] | None:
    """The TC string kept as proof of the latest TCF consent event in force: the
    controller's own, else any other controller's."""
    for states in ([ctx.own], [ctx.others[c] for c in sorted(ctx.others)]):
        found = [
            e
            for state in states
            for e in state.entries
            if e.proof is not None and e.proof.method == "tcf" and e.proof.vendor_receipt
        ]
        if found:
            latest = max(found, key=lambda e: (e.at_ms, e.event_id))
            assert latest.proof is not None and latest.proof.vendor_receipt is not None
            return latest.proof.vendor_receipt, latest
    return None


def _tcf_problem(tc: TCString, purpose: int, vendor: int) -> str | None:
    if permits(tc, purpose, vendor):
        return None
    if purpose not in tc.purposes_consent:
        return f"has no consent for TCF purpose {purpose}"
    if vendor not in tc.vendor_consents:
        return f"has no consent for vendor {vendor}"
    return f"carries a publisher restriction on purpose {purpose} for vendor {vendor}"


@rule("R22", "[S4]", Severity.CRITICAL)
def r22_tcf(ctx: RuleContext) -> Finding | None:
    """A use declared under TCF purpose *p* by vendor *v* (``Declaration.tcf_purpose`` and
    ``tcf_vendor``), on consent, when the person's TC string lacks consent for *p* or for
    *v*, or a publisher restriction forbids it (``events.tcf.permits``). The TC string is
    the one a CMP connector kept as ``proof.vendor_receipt`` on its latest TCF consent
    event (``method: tcf``) in force at the time of use; none on record, or one that cannot
    be decoded, is no TCF consent (fail closed). Uses declared on another basis are not
    judged (``permits`` answers for the consent basis only)."""
    decl = ctx.declaration
    if decl is None or decl.tcf_purpose is None or decl.tcf_vendor is None:
        return None
    if decl.legal_basis is not LegalBasis.CONSENT:
        return None
    what = f"{ctx.what()} (TCF purpose {decl.tcf_purpose}, vendor {decl.tcf_vendor})"
    found = _latest_tc_string(ctx)
    if found is None:
        return finding(r22_tcf, f"{what}: no TC string on record for the person")
    raw, entry = found
    tc = _decoded(raw)
    if isinstance(tc, str):
        return finding(
            r22_tcf, f"{what}: the TC string of consent event {entry.event_id} is unreadable: {tc}"
        )
    why = _tcf_problem(tc, decl.tcf_purpose, decl.tcf_vendor)
    if why is None:
        return None
    return finding(r22_tcf, f"{what}: the TC string of consent event {entry.event_id} {why}")


RULES = (r4_notice_changed, r21_gpc, r22_tcf)
