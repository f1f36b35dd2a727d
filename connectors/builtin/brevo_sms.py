"""Brevo transactional SMS webhooks (Brevo's "Transactional webhooks" page, SMS events).

A payload is an SMS event when it carries the recipient's number ``to`` and no ``email``
(or a ``msg_status``). Fields as Brevo documents them: ``id`` (the webhook id, not an event
id), ``to`` (the number, international digits without ``+``), ``msg_status`` (``sent``,
``delivered``, ``soft_bounce``, ``hard_bounce``; [P] also ``accepted``, ``replied``,
``unsubscribed``, ``skip``, ``rejected`` as its SMS statistics name them; camelCase
spellings accepted), ``messageId`` (number), ``reference`` (the id of each transactional
SMS), ``date`` (CET/CEST, as for every transactional ``date``), ``type``
(marketing/transactional), ``sms_count``, ``tag``. [U] ``event`` is read when there is no
``msg_status``; ``ts_event``/``ts`` (Unix seconds) are preferred to ``date`` when present.

Mapping: ``sent`` -> send, ``delivered`` -> deliver, ``soft_bounce``/``hard_bounce`` ->
bounce, ``skip``/``rejected``/``blocked`` -> drop (Brevo did not send), ``accepted`` ->
nothing (the operator took a message already reported ``sent``: a second use would be
judged twice), ``reply``/``replied`` -> reply (the text is never kept; a STOP word also
withdraws, START grants), ``unsubscribed``/``unsubscription`` -> withdraw on the SMS
channel, all purposes (method ``sms_unsubscription``). Dedupe: reference (else
messageId) + status + time. ``type`` and ``sms_count`` are attributes; ``tag`` the tags.
Brevo's SMS webhook names no sender: ``sender_type`` is ``unknown`` (R8 cannot judge it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from consentinel.connectors import toolkit as tk
from consentinel.connectors.builtin import _email as em
from consentinel.connectors.builtin import _msgutil as u
from consentinel.connectors.toolkit import times as tt
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import Channel, ConsentAction, UsageKind

#: Brevo's ``date`` of transactional events is Paris time
BREVO_ZONE = ZoneInfo("Europe/Paris")

KINDS: dict[str, UsageKind] = {
    "sent": UsageKind.SEND,
    "delivered": UsageKind.DELIVER,
    "soft_bounce": UsageKind.BOUNCE,
    "hard_bounce": UsageKind.BOUNCE,
    "skip": UsageKind.DROP,
    "skipped": UsageKind.DROP,
    "rejected": UsageKind.DROP,
    "blocked": UsageKind.DROP,
}
REPLIES = frozenset({"reply", "replied"})
UNSUBSCRIBES = frozenset({"unsubscribed", "unsubscribe", "unsubscription"})
IGNORED = frozenset({"accepted"})
#: the statuses as Brevo names them (for the reference); aliases are accepted too
EVENTS: tuple[str, ...] = (
    "sent",
    "accepted",
    "delivered",
    "soft_bounce",
    "hard_bounce",
    "replied",
    "unsubscribed",
    "skip",
    "rejected",
)


def is_sms(item: Mapping[str, Any]) -> bool:
    """Whether a Brevo payload is a transactional SMS event."""
    return "msg_status" in item or ("to" in item and "email" not in item)


def status_of(item: Mapping[str, Any], where: str) -> str:
    """``msg_status`` (else ``event``) in snake case (``softBounce`` -> ``soft_bounce``)."""
    raw = em.text(item, "msg_status", f"{where}.msg_status") or em.text(
        item, "event", f"{where}.event"
    )
    if raw is None:
        raise InvalidInput("missing_field", f"{where}.msg_status is missing")
    return re.sub(r"(?<=[a-z])([A-Z])", r"_\1", raw).lower()


def occurred_ms(item: Mapping[str, Any], where: str) -> tuple[int, str]:
    """(epoch ms, the raw value used): ``ts_event``/``ts`` seconds, else ``date`` in Paris."""
    for name in ("ts_event", "ts"):
        value = item.get(name)
        if value is not None and value != "":
            return tt.seconds_ms(value, f"{where}.{name}"), f"{name}={value}"
    value = item.get("date")
    if value is None or value == "":
        raise InvalidInput("missing_field", f"{where}.date is missing")
    return tt.local_ms(value, f"{where}.date", BREVO_ZONE), f"date={value}"


def map_sms(
    connector: tk.Connector, emit: tk.Emitter, item: Mapping[str, Any], where: str
) -> tk.Output:
    """One Brevo SMS event; raises ``InvalidInput`` naming ``where``."""
    status = status_of(item, where)
    known = status in KINDS or status in REPLIES or status in UNSUBSCRIBES
    if not known and status not in IGNORED:
        raise InvalidInput("unknown_event", f"{where}.msg_status is not a Brevo SMS status")
    number = u.text(item, "to", what=f"{where}.to")
    if number is None:
        raise InvalidInput("missing_field", f"{where}.to is missing")
    if status in IGNORED:
        return tk.Output()
    address = connector.edge.address(number, "sms", connector.instance.default_region)
    occurred, stamp = occurred_ms(item, where)
    reference = u.text(item, "reference", what=f"{where}.reference")
    message_id = u.text(item, "messageId", what=f"{where}.messageId")
    if reference is None and message_id is None:
        raise InvalidInput("missing_field", f"{where}.reference / messageId is missing")
    receipt = u.bounded(reference or message_id)
    dedupe = ("sms", receipt, status, stamp, address.key)
    controller = connector.instance.controller
    attributes: dict[str, Any] = {
        "sms_type": em.attr_text(em.text(item, "type", f"{where}.type")),
        "sms_count": None
        if item.get("sms_count") is None
        else tk.bounded_int(item.get("sms_count"), f"{where}.sms_count", high=1000),
        "message_id": u.bounded(message_id) if message_id else None,
        "sender_type": u.sender_type(None),
    }
    tags = em.strings(item.get("tag")) or em.strings(item.get("tags"))
    at = emit.at(dedupe, address, occurred)
    if status in UNSUBSCRIBES:
        withdraw = at.proven(
            ConsentAction.WITHDRAW,
            channels=(Channel.SMS,),
            method="sms_unsubscription",
            collection_point="brevo:sms",
            vendor_receipt=receipt,
            attributes={"sms_type": attributes["sms_type"]},
        )
        return tk.Output(consent=[withdraw])
    if status in REPLIES:
        text = item.get("reply") if isinstance(item.get("reply"), str) else item.get("text")
        keyword = u.classify_keyword(text if isinstance(text, str) else None)
        return u.reply(
            emit,
            dedupe,
            (*dedupe, "keyword"),
            receipt,
            address,
            occurred,
            channel=Channel.SMS,
            controller=controller,
            sender=None,
            event_type=f"sms.{status}",
            keyword=keyword,
            scope=None,
            attributes={**attributes, "keyword": keyword or "none"},
            tags=tags,
        )
    usage = at.usage(
        KINDS[status],
        channel=Channel.SMS,
        source_event_type=f"sms.{status}",
        tags=tags,
        attributes=attributes,
    )
    return tk.Output(usage=[usage])
