"""Purchased leads: R23 (a lead certificate that is claimed and verified).

A **purchased lead** is a use whose declaration says its addresses are purchased leads
(``sourcing: purchased`` in the registry), any judged use but a transfer (a transfer is
R16's). Its certificate is the ``proof.certificate_id`` (a TrustedForm certificate URL or a
LeadiD token, as ``lead_post`` stores it) of the grant the use rests on. Its status:

- no certificate id on that grant: none at all;
- ``claimed``: a certificate id and no verification result yet for the use's controller
  (the buyer); the engine holds the use (``PENDING``) for ``certificate_wait_ms``;
- the latest ``verify`` result for that certificate and controller otherwise (verified,
  expired, mismatch), kept by the consent history.

A use with no grant at all is R1's, R2's or R5's, not R23's.
"""

from __future__ import annotations

from ...events.records import (
    CertificateStatus,
    Declaration,
    Severity,
    Sourcing,
    UsageEvent,
    UsageKind,
)
from ..history import CertificateResult, ConsentEntry
from .base import Finding, RuleContext, days, finding, rule


def purchased_lead(usage: UsageEvent, declaration: Declaration | None) -> bool:
    """The use draws on purchased leads: its declaration says so, and it is not a transfer."""
    return (
        declaration is not None
        and declaration.sourcing is Sourcing.PURCHASED
        and usage.kind is not UsageKind.LIST_TRANSFER
    )


def certificate_of(grant: ConsentEntry | None) -> str | None:
    """The certificate id the grant's proof carries, if any."""
    if grant is None or grant.proof is None:
        return None
    return grant.proof.certificate_id or None


def awaits_verification(
    usage: UsageEvent,
    declaration: Declaration | None,
    grant: ConsentEntry | None,
    result: CertificateResult | None,
) -> bool:
    """A purchased lead whose certificate is claimed and not verified yet: held."""
    return (
        purchased_lead(usage, declaration)
        and certificate_of(grant) is not None
        and (result is None)
    )


@rule("R23", "[L1][L2]", Severity.WARNING)
def r23_lead_certificate(ctx: RuleContext) -> Finding | None:
    """A purchased lead used with no certificate on its consent, with a certificate never
    verified within ``certificate_wait_ms``, or with one that expired: a warning (the
    reference holds such a lead; the use is unproven rather than shown unlawful). A
    certificate that does not match the lead, or whose disclosure does not name the buyer,
    is critical: it shows the consent does not cover this use."""
    if ctx.grant is None or not purchased_lead(ctx.usage, ctx.declaration):
        return None
    if certificate_of(ctx.grant) is None:
        return finding(
            r23_lead_certificate,
            f"{ctx.what()} uses a purchased lead whose consent carries no certificate "
            f"(TrustedForm, LeadiD)",
        )
    result = ctx.certificate
    if result is None:
        return finding(
            r23_lead_certificate,
            f"{ctx.what()} uses a purchased lead whose certificate was not verified within "
            f"{days(ctx.policy.certificate_wait_ms)}",
        )
    why = f" ({result.reason})" if result.reason else ""
    if result.status is CertificateStatus.EXPIRED:
        return finding(
            r23_lead_certificate,
            f"{ctx.what()} uses a purchased lead whose certificate expired{why}",
        )
    if result.status is CertificateStatus.MISMATCH:
        return finding(
            r23_lead_certificate,
            f"{ctx.what()} uses a purchased lead whose certificate does not match the lead "
            f"or does not name the buyer{why}",
            Severity.CRITICAL,
        )
    return None


RULES = (r23_lead_certificate,)
