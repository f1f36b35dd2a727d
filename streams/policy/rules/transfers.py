"""Transfers and their duties: R15 (a recipient's first message names the source and offers
opt-out) and R16 (the sender of a file holds auditable proof of upstream consent).

A transfer is a ``list_transfer`` use (a list rental or sale, a CDP audience sync, an upload
to an ad platform's audience): its controller is the **recipient**, its purpose the one the
recipient declared, and its sender is the usage attribute ``transfer_from`` (what the
manifest or the report says), else the declaration's ``acquired_from``.
"""

from __future__ import annotations

from ...events.records import Channel, Declaration, Severity, Sourcing, UsageEvent, UsageKind
from ..history import ConsentEntry
from ..purposes import PARTNER_TRANSFER, POLITICAL
from .base import SENDS, Finding, RuleContext, finding, rule
from .basis import provable

#: Declared sourcings that make the controller a recipient of someone else's file.
THIRD_PARTY_FILES = frozenset({Sourcing.RENTED, Sourcing.PURCHASED, Sourcing.PARTNER})
#: Channels whose messages carry an opt-out instruction in their text.
_TEXT_CHANNELS = frozenset({Channel.SMS.value, Channel.RCS.value, Channel.WHATSAPP.value})


def transfer_senders(ctx: RuleContext) -> list[str]:
    """Who passed the addresses on in a transfer: the ``transfer_from`` attribute, else the
    declaration's suppliers; never the recipient itself. Empty for any other use."""
    if ctx.usage.kind is not UsageKind.LIST_TRANSFER:
        return []
    named = ctx.usage.attributes.get("transfer_from")
    if isinstance(named, str) and named:
        senders = [named]
    else:
        senders = list(ctx.declaration.acquired_from) if ctx.declaration else []
    return [s for s in dict.fromkeys(senders) if s != ctx.controller]


def received_from_others(ctx: RuleContext) -> bool:
    """The declaration says the addresses came from another organisation's file."""
    decl = ctx.declaration
    if decl is None:
        return False
    return decl.sourcing in THIRD_PARTY_FILES or any(
        a != ctx.controller for a in decl.acquired_from
    )


def missing_notice(ctx: RuleContext) -> list[str]:
    """What a first message lacks of the notice R15 and R18 ask: the source of the address,
    a way to object. Each is what the connector saw in the message (``source_named``;
    ``list_unsubscribe`` for e-mail, ``opt_out_instruction`` for SMS, RCS, WhatsApp), else
    what the declaration states (``names_source``, ``opt_out_in_message``). Unknown on both
    sides is not missing (as for R6)."""
    return notice_missing(ctx.usage, ctx.declaration, ctx.channel)


def notice_missing(usage: UsageEvent, decl: Declaration | None, channel: str) -> list[str]:
    """``missing_notice`` of a use of ``channel`` under ``decl``. Empty: R15 and R18 find
    nothing whether or not it is a first message (the engine's decision memo reads it)."""
    u = usage
    named = u.source_named if u.source_named is not None else (decl.names_source if decl else None)
    seen: bool | None = None
    if channel == Channel.EMAIL.value:
        seen = u.list_unsubscribe
    elif channel in _TEXT_CHANNELS:
        seen = u.opt_out_instruction
    opt_out = seen if seen is not None else (decl.opt_out_in_message if decl else None)
    missing = []
    if named is False:
        missing.append("where the address came from")
    if opt_out is False:
        missing.append("how to object")
    return missing


@rule(
    "R15",
    "[S6 art. 14(2)(f), 14(3)(b); FR1]",
    Severity.CRITICAL,
    kinds=SENDS,
)
def r15_recipient_first_message(ctx: RuleContext) -> Finding | None:
    """The first message a recipient of transferred data sends the person (its declaration
    says the addresses were rented, purchased or received from a partner, or names another
    supplier) does not say where the address came from or how to object. Later messages are
    not judged here (opt-out in every message is R6's). A political message is R18's."""
    if ctx.usage.kind is not UsageKind.SEND or not ctx.first_message:
        return None
    if ctx.purpose == POLITICAL or not received_from_others(ctx):
        return None
    missing = missing_notice(ctx)
    if not missing:
        return None
    return finding(
        r15_recipient_first_message,
        f"first {ctx.what()} to an address received from another organisation does not "
        f"say {' nor '.join(missing)}",
    )


def _upstream_grants(ctx: RuleContext, sender: str) -> list[tuple[str, ConsentEntry]]:
    """The grants that let ``sender`` pass the address on at the time of the transfer: its
    own "opt-in partenaires" (``marketing.partner_transfer``), or another controller's that
    names it among the recipients (the collector's). Each with the controller holding it."""
    out: list[tuple[str, ConsentEntry]] = []
    own = ctx.state_of(sender)
    if own is not None:
        grant = own.grant_for(PARTNER_TRANSFER, ctx.channel, ctx.refs)
        if grant is not None:
            out.append((sender, grant))
    for name, state in sorted(ctx.others.items()):
        if name == sender:
            continue
        grant = state.grant_for(PARTNER_TRANSFER, ctx.channel, ctx.refs)
        if grant is not None and sender in grant.recipients:
            out.append((name, grant))
    return out


@rule("R16", "[FR4]", Severity.CRITICAL)
def r16_upstream_proof(ctx: RuleContext) -> Finding | None:
    """A transfer whose sender (a broker or any holder passing a file on) holds no auditable
    proof of the person's upstream consent to be passed on, at the time of the transfer: no
    "opt-in partenaires" grant of its own or naming it, or only grants without proof (R3's
    notion: the four elements, or a referenced proof record). Misleading upstream forms
    cannot be seen from here."""
    for sender in transfer_senders(ctx):
        grants = _upstream_grants(ctx, sender)
        if any(provable(g.proof) for _, g in grants):
            continue
        if grants:
            holder, grant = grants[0]
            why = f"consent event {grant.event_id} (held by {holder}) has no auditable proof"
        else:
            why = "no consent to pass it on is on record"
        return finding(
            r16_upstream_proof,
            f"{ctx.what()} from {sender}: {why} for the address it passed on",
        )
    return None


RULES = (r15_recipient_first_message, r16_upstream_proof)
