"""The oracle's reading of the duties that come with transfers: R15, R16, R18, R19.

Independent of ``consentinel.streams.policy`` (see ``oracle``): straight from rules.md and
the brief of issue #13, with the same settings as the checker.

- A **transfer** is a ``list_transfer`` use. Its sender is the ``transfer_from`` attribute
  when the report names one, else the declaration's ``acquired_from``; the recipient (the
  use's controller) is never its own sender.
- **R16**: the sender must hold, at the time of the transfer, an "opt-in partenaires"
  grant (``marketing.partner_transfer``) with proof R3 accepts: its own, or one held by
  another organisation (not the recipient) that names the sender among its recipients.
- A **first message**: among every ``send`` of one controller to one person (after its
  erasure of the person, if any), the one with the smallest (event time, event id).
- **R15**: the first message of a controller whose declaration says the addresses came from
  someone else's file (rented, purchased, partner, or another supplier in
  ``acquired_from``), not political, that lacks the source or the opt-out.
- **R18**: the first political message that lacks the source or the opt-out.
- Source and opt-out: what the connector saw in the message, else what the declaration
  says; unknown on both sides is not missing. Opt-out seen: e-mail ``List-Unsubscribe``;
  SMS, RCS, WhatsApp the opt-out instruction.
- **R19**: a political use of addresses from HR, payroll or administrative files (the
  declaration's ``source_categories`` or the use's ``source_category`` attribute).
"""

from __future__ import annotations

from collections.abc import Callable

from consentinel.streams.events.records import (
    ConsentAction,
    ConsentEvent,
    Declaration,
    Sourcing,
    UsageEvent,
    UsageKind,
)

PARTNER = "marketing.partner_transfer"
POLITICAL = "political.communication"
RENTED_FILES = {Sourcing.RENTED, Sourcing.PURCHASED, Sourcing.PARTNER}
FORBIDDEN = {"hr", "payroll", "administrative"}

#: (controller, purpose, channel, refs) -> the latest event of that controller speaking about it
Answer = Callable[[str, str, str], ConsentEvent | None]


def senders(u: UsageEvent, decl: Declaration | None, controller: str) -> list[str]:
    named = u.attributes.get("transfer_from")
    found = (
        [named] if isinstance(named, str) and named else list(decl.acquired_from if decl else [])
    )
    out: list[str] = []
    for s in found:
        if s != controller and s not in out:
            out.append(s)
    return out


def _upstream_proven(
    sender: str,
    controller: str,
    everyone: set[str],
    answer: Answer,
    channel: str,
    provable: Callable[[object], bool],
) -> bool:
    for holder in sorted(everyone | {sender}):
        if holder == controller:
            continue
        e = answer(holder, PARTNER, channel)
        if e is None or e.action is not ConsentAction.GRANT:
            continue
        if (holder == sender or sender in e.recipients) and provable(e.proof):
            return True
    return False


def _notice_missing(u: UsageEvent, channel: str, decl: Declaration | None) -> bool:
    named = u.source_named if u.source_named is not None else (decl.names_source if decl else None)
    if channel == "email":
        seen = u.list_unsubscribe
    elif channel in ("sms", "rcs", "whatsapp"):
        seen = u.opt_out_instruction
    else:
        seen = None
    opt_out = seen if seen is not None else (decl.opt_out_in_message if decl else None)
    return named is False or opt_out is False


def duty_findings(
    u: UsageEvent,
    channel: str,
    decl: Declaration | None,
    controller: str,
    purpose: str | None,
    first: bool,
    everyone: set[str],
    answer: Answer,
    provable: Callable[[object], bool],
) -> set[str]:
    """The rule ids among R15, R16, R18, R19 that hold against use ``u``."""
    found: set[str] = set()
    if u.kind is UsageKind.LIST_TRANSFER:
        for s in senders(u, decl, controller):
            if not _upstream_proven(s, controller, everyone, answer, channel, provable):
                found.add("R16")
    if u.kind is UsageKind.SEND and first and _notice_missing(u, channel, decl):
        if purpose == POLITICAL:
            found.add("R18")
        elif decl is not None and (
            decl.sourcing in RENTED_FILES or any(a != controller for a in decl.acquired_from)
        ):
            found.add("R15")
    if purpose == POLITICAL:
        categories = set(decl.source_categories if decl else [])
        stated = u.attributes.get("source_category")
        if isinstance(stated, str):
            categories.add(stated.lower())
        if categories & FORBIDDEN:
            found.add("R19")
    return found
