"""Opt-in and basis: R1 (prior opt-in for marketing e-mail/SMS), R2 (purpose), R3 (proof)."""

from __future__ import annotations

from functools import lru_cache

from ...events.records import LegalBasis, Proof, Severity, UsageKind
from ..purposes import CHANNEL_LABELS, ELECTRONIC_MESSAGES
from ..settings import strength_severity
from .base import Finding, RuleContext, finding, rule


@rule("R1", "[S7 art. 13(1)–(2); CPCE L34-5 via FR2; FR11]", Severity.CRITICAL)  # noqa: RUF001 - the source as rules.md writes it
def r1_opt_in(ctx: RuleContext) -> Finding | None:
    """Promotional electronic message with no opt-in for that channel.

    Exempt: a valid soft opt-in (declared basis ``soft_opt_in``, addresses sourced from the
    controller's own customers, own similar products: see the engine) and the B2B basis
    (taken on trust from the declaration: the person is addressed in a professional
    capacity). A withdrawal is R5's case, not R1's. A list transfer is not a message.
    """
    if ctx.channel not in ELECTRONIC_MESSAGES or not ctx.promotional or not ctx.needs_consent:
        return None
    if ctx.usage.kind is UsageKind.LIST_TRANSFER:
        return None  # a transfer is not a message: R2, R13, R14, R16 judge it
    if ctx.grant is not None or ctx.withdrawn:
        return None
    if ctx.effective.grants_channel(ctx.channel):
        return None  # an opt-in for the channel exists; a purpose mismatch is R2's
    why = (
        f"; declared soft opt-in does not hold: {ctx.soft_opt_in_problem}"
        if (ctx.soft_opt_in_problem)
        else ""
    )
    return finding(
        r1_opt_in,
        f"{ctx.what()} to an address with no {CHANNEL_LABELS.get(ctx.channel, ctx.channel)} "
        f"opt-in for {ctx.controller}"
        f" ({ctx.consent_landscape()}){why}",
    )


@rule("R2", "[S6 art. 5(1)(b), 6(4)]", Severity.CRITICAL)
def r2_purpose(ctx: RuleContext) -> Finding | None:
    """A use on consent whose purpose the consent does not cover (and was not withdrawn)."""
    if not ctx.needs_consent or ctx.purpose is None or ctx.grant is not None or ctx.withdrawn:
        return None
    refused = ""
    if ctx.block is not None:
        refused = f" ({ctx.block.action}d for {ctx.controller})"  # refused, expired
    return finding(
        r2_purpose,
        f"{ctx.what()} to an address whose consent covers {ctx.consent_landscape()}{refused}",
    )


#: Proof elements (R3) and the Proof fields that satisfy each.
_PROOF_PARTS = (
    ("timestamp", ("collected_at_ms",)),
    ("notice version or text hash", ("notice_version", "text_hash")),
    ("collection point", ("collection_point",)),
    ("method", ("method",)),
)


#: Proof fields that name a proof record kept by whoever collected the consent: a CMP's
#: consent record, a receipt or TCF consent string, a lead certificate (TrustedForm, LeadiD).
_PROOF_REFERENCES = ("record_ref", "vendor_receipt", "certificate_id")


def proof_reference(proof: Proof | None) -> str | None:
    """The proof record ``proof`` points to (``record_ref: cmp-123``), or None."""
    if proof is None:
        return None
    for name in _PROOF_REFERENCES:
        value = getattr(proof, name)
        if value:
            return f"{name}: {value}"
    return None


def provable(proof: Proof | None) -> bool:
    """R3's notion of proof: a proof record referenced, or every element rules.md lists."""
    if proof_reference(proof) is not None:
        return True
    return proof is not None and all(
        any(getattr(proof, n) is not None for n in names) for _, names in _PROOF_PARTS
    )


@lru_cache(maxsize=4096)
def _missing_parts(proof: Proof | None) -> tuple[str, ...]:
    """The proof elements ``proof`` lacks (none when it references a proof record).

    Cached: a grant's proof is one of few values and R3 asks on every use that rests on
    a grant (a Proof is frozen, so it is its own key)."""
    if proof_reference(proof) is not None:
        return ()
    return tuple(
        label
        for label, names in _PROOF_PARTS
        if proof is None or all(getattr(proof, n) is None for n in names)
    )


@rule("R3", "[S6 art. 7(1); S1; S3]", Severity.CRITICAL)
def r3_proof(ctx: RuleContext) -> Finding | None:
    """The consent the use rests on has no proof anywhere ("unprovable consent").

    Provable: the event carries the elements rules.md lists (timestamp, notice version or
    text hash, collection point, method), or it references a proof record its collector
    keeps (``Proof.record_ref``: a CMP's consent record; ``vendor_receipt``: a receipt id
    or TCF string; ``certificate_id``: a lead certificate). The reference travels in the
    alert's evidence (the consent summary's proof). Strength configurable (``r3_strength``).
    """
    severity = strength_severity(ctx.policy.r3_strength)
    if severity is None or not ctx.needs_consent or ctx.grant is None:
        return None
    missing = _missing_parts(ctx.grant.proof)
    if not missing:
        return None
    holder = ctx.via or ctx.controller
    return finding(
        r3_proof,
        f"unprovable consent: {ctx.what()} rests on consent event {ctx.grant.event_id} "
        f"for {holder}, which lacks {', '.join(missing)} and references no proof record "
        f"(CMP record, receipt or TCF string, lead certificate)",
        severity,
    )


def soft_opt_in_problem(
    basis: LegalBasis, sourcing: str, acquired_from: list[str], controller: str, purpose: str | None
) -> str | None:
    """Why a declared soft opt-in does not hold, or None when it does (R1's exception).

    Checked: addresses from the controller's own customers during a sale (sourcing
    ``customer``, acquired from nobody else), promoting its own products
    (``marketing.direct``). Not checkable here and left to the declaration: "similar
    products" and the opt-out offered at collection and in every message (R6).
    """
    if basis is not LegalBasis.SOFT_OPT_IN:
        return None
    if sourcing != "customer":
        return f"the addresses are sourced '{sourcing}', not from the controller's customers"
    others = [c for c in acquired_from if c != controller]
    if others:
        return f"the addresses came from {', '.join(others)}, not from {controller} itself"
    if purpose != "marketing.direct":
        what = purpose or "an undeclared purpose"
        return f"soft opt-in covers own-product marketing.direct, not {what}"
    return None


RULES = (r1_opt_in, r2_purpose, r3_proof)
