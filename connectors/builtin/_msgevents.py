"""The events of SMS gateways (twilio, vonage, cmcom), shared: status reports with the
opt-out a refused send proves, inbound replies with their STOP/START consent, and the
senders they are scoped to. Re-exported by ``_msgutil``, where the gateways find them.

Nothing here sees an address except as a key and hint (``tk.Address``); nothing logs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from consentinel.connectors import toolkit as tk
from consentinel.streams.events.records import (
    Channel,
    ConsentAction,
    ConsentEvent,
    Proof,
    UsageKind,
)

# -- senders ----------------------------------------------------------------------------


def sender_type(sender: str | None) -> str:
    """``short_code``, ``alphanumeric``, ``long_code`` (a full number) or ``unknown``."""
    if not sender:
        return "unknown"
    digits = re.sub(r"[\s\-]", "", sender)
    if re.fullmatch(r"\d{3,8}", digits):
        return "short_code"
    if re.fullmatch(r"\+?\d{9,17}", digits):
        return "long_code"
    if re.fullmatch(r"[A-Za-z0-9 .&\-_]{1,20}", sender) and re.search(r"[A-Za-z]", sender):
        return "alphanumeric"
    return "unknown"


def sender_scope(sender: str | None) -> str | None:
    """What a keyword opt-out is scoped to: a short code or alphanumeric id as given. A full
    number is never put in ``scope`` (it would be an address in an event): None, i.e. the
    opt-out covers every SMS of the controller (fails closed)."""
    if sender and sender_type(sender) in ("short_code", "alphanumeric"):
        return sender
    return None


def controller_for(connector: tk.Connector, *refs: str | None) -> str:
    """``options['controllers']`` maps a sender / service / organization to a controller."""
    table = connector.instance.options.get("controllers") or {}
    if isinstance(table, Mapping):
        for ref in refs:
            if ref and isinstance(table.get(ref), str):
                return str(table[ref])
    return connector.instance.controller


# -- events -----------------------------------------------------------------------------


def keyword_consent(
    emit: tk.Emitter,
    keyword: str,
    dedupe: tuple[Any, ...],
    address: tk.Address,
    occurred: int,
    *,
    controller: str,
    channel: Channel,
    scope: str | None,
    receipt: str | None,
) -> ConsentEvent:
    """The ConsentEvent of an SMS STOP (withdraw, all purposes) or START (grant of the
    purpose mapped for the scope, else unmapped)."""
    connector = emit.connector
    purposes: list[str] = []
    unmapped: list[str] = []
    action = ConsentAction.WITHDRAW
    if keyword == "start":
        action = ConsentAction.GRANT
        key = scope or "sms_opt_in"
        canonical = (connector.purpose(scope) if scope else None) or connector.purpose("sms_opt_in")
        if canonical:
            purposes.append(canonical)
        else:
            unmapped.append(key)
    proof = Proof(
        method=f"keyword_{keyword}",
        collected_at_ms=occurred,
        collection_point=scope,
        vendor_receipt=receipt,
    )
    return emit.consent(
        dedupe,
        action,
        address,
        occurred,
        role=None,
        channels=[channel],
        purposes=purposes,
        unmapped=unmapped,
        scope=scope,
        proof=proof,
        controller=controller,
    )


def opted_out(
    emit: tk.Emitter,
    receipt: str,
    address: tk.Address,
    occurred: int,
    *,
    channel: Channel,
    scope: str | None,
    controller: str,
    evidence: str,
) -> ConsentEvent:
    """The withdrawal a gateway reports by refusing a send to a number on its opt-out list
    (Twilio error 21610, Vonage err-code 9)."""
    return emit.consent(
        (receipt, "opted_out"),
        ConsentAction.WITHDRAW,
        address,
        occurred,
        role=None,
        channels=[channel],
        scope=scope,
        proof=Proof(method="gateway_opt_out_list", vendor_receipt=receipt),
        attributes={"evidence": evidence},
        controller=controller,
    )


def status_report(
    at: tk.Occurrence,
    kind: UsageKind,
    *,
    opt_out: tuple[str, str] | None = None,
    scope: str | None = None,
    **usage: Any,
) -> tk.Output:
    """A gateway's status report: its usage (``usage``: the keyword arguments of
    ``Emitter.usage``, ``channel`` and ``controller`` required) and, when the gateway refused the
    send because the number is on its opt-out list (``opt_out``: the message id and the
    evidence), the withdrawal that proves (see :func:`opted_out`), scoped to ``scope``."""
    out = tk.Output(usage=[at.usage(kind, role=None, **usage)])
    if opt_out is not None:
        receipt, evidence = opt_out
        channel, controller = usage.get("channel", Channel.SMS), usage["controller"]
        where = {"channel": channel, "scope": scope, "controller": controller}
        withdraw = opted_out(
            at.emit, receipt, at.address, at.occurred_at_ms, **where, evidence=evidence
        )
        out.consent.append(withdraw)
    return out


def reply(
    emit: tk.Emitter,
    dedupe: tuple[Any, ...],
    consent_dedupe: tuple[Any, ...],
    receipt: str | None,
    address: tk.Address,
    occurred: int,
    *,
    channel: Channel,
    controller: str,
    sender: str | None,
    event_type: str,
    keyword: str | None,
    scope: str | None,
    attributes: Mapping[str, Any],
    list_id: str | None = None,
    campaign_id: str | None = None,
    tags: list[str] | None = None,
) -> tk.Output:
    """An inbound message: its REPLY usage (id from ``dedupe``) and, for STOP or START, the
    keyword's consent event (id from ``consent_dedupe``)."""
    out = tk.Output()
    out.usage.append(
        emit.usage(
            dedupe,
            UsageKind.REPLY,
            address,
            occurred,
            role=None,
            channel=channel,
            controller=controller,
            list_id=list_id,
            campaign_id=campaign_id,
            tags=tags,
            sender=sender,
            source_event_type=event_type,
            attributes=attributes,
        )
    )
    if keyword in ("stop", "start"):
        out.consent.append(
            keyword_consent(
                emit,
                keyword,
                consent_dedupe,
                address,
                occurred,
                controller=controller,
                channel=channel,
                scope=scope,
                receipt=receipt,
            )
        )
    return out


def reply_to(
    at: tk.Occurrence,
    consent_dedupe: tuple[Any, ...],
    receipt: str | None,
    *,
    own: str | None,
    keyword: str | None,
    service: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    **reply_kw: Any,
) -> tk.Output:
    """:func:`reply` (the inbound message ``at``) to one of our numbers or sender ids
    (``own``), or to a messaging ``service`` that holds it (Twilio): the service, else
    ``own``, is the sender and the scope of a keyword (a full number never is: see
    :func:`sender_scope`), and picks the controller. The attributes say the keyword and the
    kind of sender, then ``attributes``. ``reply_kw``: ``channel``, ``event_type`` and the
    optional arguments of :func:`reply`."""
    kw: dict[str, Any] = {
        "controller": controller_for(at.emit.connector, service, own),
        "sender": service or own,
        "keyword": keyword,
        "scope": service or sender_scope(own),
        "attributes": {
            "keyword": keyword or "none",
            "sender_type": sender_type(own),
            **(attributes or {}),
        },
    }
    occurred = at.occurred_at_ms
    return reply(
        at.emit, at.dedupe, consent_dedupe, receipt, at.address, occurred, **kw, **reply_kw
    )
