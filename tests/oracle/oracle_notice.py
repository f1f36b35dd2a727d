"""The oracle's own reading of R4, R6, R21 and R22 of rules.md, kept apart from the checker:
nothing here comes from consentinel.streams.policy (the TC string is decoded by the shared
decoder, like records are read by the shared codec; whether it permits is read here).

R4: a use resting on the controller's own grant that was given to another notice than the
one its declaration says is in force (``notice_version``) is a warning; a use on another
basis, a partner's grant, or an unknown version on either side is not judged.
R6: a promotional SMS must say how to opt out; a promotional e-mail must carry both
``List-Unsubscribe`` and ``List-Unsubscribe-Post``. For each, what the connector saw in the
message, else what the declaration states (``opt_out_in_message``); unknown is no finding.
R21: a transfer or sale (list transfer, lead delivery, a use for partner transfer or data
sale) of a contact whose consent in force, or the grant used, was collected with
``Sec-GPC: 1`` is a violation.
R22: a use on consent declared under TCF purpose p for vendor v is a violation unless the
latest TC string kept as TCF proof among the consent in force (the controller's own, else
the other controllers') consents to p and to v and no publisher restriction other than
"require consent" covers p for v. No string, or an unreadable one, is no consent.
"""

from __future__ import annotations

from collections.abc import Callable

from consentinel.streams.events.records import (
    Channel,
    ConsentEvent,
    Declaration,
    LegalBasis,
    UsageEvent,
    UsageKind,
)
from consentinel.streams.events.tcf import TCStringError, decode_tc_string

TRANSFERS = {UsageKind.LIST_TRANSFER, UsageKind.LEAD_DELIVERED}
SALES = {"marketing.partner_transfer", "data.sale_enrichment"}
REQUIRE_CONSENT = 1


def _r6(u: UsageEvent, channel: str, decl: Declaration | None) -> bool:
    declared = decl.opt_out_in_message if decl else None
    if channel == Channel.SMS:
        seen = [u.opt_out_instruction]
    elif channel == Channel.EMAIL:
        seen = [u.list_unsubscribe, u.list_unsubscribe_post]
    else:
        return False
    return any((declared if s is None else s) is False for s in seen)


def _tcf_allows(raw: str, purpose: int, vendor: int) -> bool:
    try:
        tc = decode_tc_string(raw)
    except TCStringError:
        return False
    if purpose not in tc.purposes_consent or vendor not in tc.vendor_consents.ids:
        return False
    for r in tc.publisher_restrictions:
        if (
            r.purpose_id == purpose
            and vendor in r.vendor_ids
            and r.restriction_type != REQUIRE_CONSENT
        ):
            return False
    return True


def _latest_tc(groups: list[list[ConsentEvent]]) -> str | None:
    for events in groups:
        tcf = [e for e in events if e.proof and e.proof.method == "tcf" and e.proof.vendor_receipt]
        if tcf:
            latest = max(tcf, key=lambda e: (e.occurred_at_ms, e.event_id))
            assert latest.proof is not None
            return latest.proof.vendor_receipt
    return None


def notice_findings(
    u: UsageEvent,
    channel: str,
    decl: Declaration | None,
    promotional: bool,
    needs_consent: bool,
    grant: ConsentEvent | None,
    via: str | None,
    own_in_force: list[ConsentEvent],
    others_in_force: Callable[[], list[ConsentEvent]],
) -> set[str]:
    """The rule ids among R4, R6, R21, R22 that hold against use ``u``."""
    found: set[str] = set()
    purpose = decl.purpose if decl else u.declared_purpose
    if (
        decl is not None
        and decl.notice_version is not None
        and needs_consent
        and grant is not None
        and via is None
        and grant.proof is not None
        and grant.proof.notice_version is not None
        and grant.proof.notice_version != decl.notice_version
    ):
        found.add("R4")
    if u.kind is UsageKind.SEND and promotional and _r6(u, channel, decl):
        found.add("R6")
    if (u.kind in TRANSFERS or purpose in SALES) and (
        (grant is not None and grant.gpc) or any(e.gpc for e in own_in_force)
    ):
        found.add("R21")
    if (
        decl is not None
        and decl.tcf_purpose is not None
        and decl.tcf_vendor is not None
        and decl.legal_basis is LegalBasis.CONSENT
    ):
        raw = _latest_tc([own_in_force]) or _latest_tc([others_in_force()])
        if raw is None or not _tcf_allows(raw, decl.tcf_purpose, decl.tcf_vendor):
            found.add("R22")
    return found
