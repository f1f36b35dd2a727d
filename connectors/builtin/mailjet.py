"""Mailjet event callbacks (connectors.md §1.5, §7) and unsubscribe exports.

Transport: POST ``application/json``; a bare object, or an array with "group events" on:
both are accepted.

Authentication [U]: Mailjet signs nothing; Basic credentials embedded in the callback URL
are assumed (``https://<basic_user>:<token>@host/...``, arriving as ``Authorization:
Basic``). The instance secret ``token`` (``token_previous`` while rotating) is also
accepted as a bearer token or in the URL (query ``token`` or last path segment), in case the
account is set up that way. ``sign`` uses the ``auth`` option (default ``basic``).

Mapping (``time`` = event time; dedupe ``MessageID`` + event + ``time``; ``MessageID`` kept
as text, it is a 64-bit integer): Mailjet reports no separate send, so ``sent`` (accepted
by the receiving server) gives a ``send`` (the use the checker judges; attribute
``derived_from=sent``) and a ``deliver``; ``open``, ``click`` (URL host only), ``bounce``
(attribute ``hard_bounce``), ``blocked`` → drop, ``spam`` → complaint + withdraw (all
purposes), ``unsub`` → unsubscribe_link + withdraw of the list's purpose
(``purpose_map[mj_list_id]``, scope the list; all purposes when no list is named). Proof of
an unsubscribe: method ``list_unsubscribe_header`` when ``agent`` is ``List-Unsubscribe``
(the mailbox's one-click button), else ``unsubscribe_link``; IP hash.
``campaign_id`` = ``customcampaign`` (the sender's X-Mailjet-Campaign) else
``mj_campaign_id``; ``declared_purpose`` = key ``purpose_key`` (default ``purpose``) of the
JSON ``Payload`` through ``purpose_map``; ``sender`` = the ``account`` option.

Import (``map_row``) [U]: rows of an unsubscribed-contacts export: an e-mail column
(``email``/``Email``/``Contact``), a time column (``unsub_date``/``UnsubscribedAt``/
``date``/``created_at``: Unix seconds or ``YYYY-MM-DD HH:MM:SS`` UTC) and an optional list
column (``list_id``/``ListID``/``mj_list_id``) → withdraw.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import Any, ClassVar

from consentinel.connectors import toolkit as tk
from consentinel.connectors.builtin import _email as em
from consentinel.connectors.toolkit import times as tt
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import ConsentAction, UsageKind

KINDS: dict[str, UsageKind] = {
    "sent": UsageKind.DELIVER,
    "open": UsageKind.OPEN,
    "click": UsageKind.CLICK,
    "bounce": UsageKind.BOUNCE,
    "blocked": UsageKind.DROP,
    "spam": UsageKind.COMPLAINT,
    "unsub": UsageKind.UNSUBSCRIBE_LINK,
}


class MailjetConnector(em.UnsignedBatchConnector):
    name: ClassVar[str] = "mailjet"
    title: ClassVar[str] = "Mailjet event callbacks and unsubscribe exports"
    produces: ClassVar[str] = "usage+consent"
    auth: ClassVar[str] = "unsigned: Basic credentials in the callback URL [U] (or URL token)"
    events: ClassVar[tuple[str, ...]] = tuple(KINDS)
    event_time: ClassVar[str] = '"time" (Unix seconds); export rows: unsub_date'
    config_schema: ClassVar[tuple[tk.ConfigField, ...]] = em.unsigned_schema(
        "Mailjet",
        token_doc="the Basic password of the callback URL",
        default_auth="basic",
        purpose_doc="key of the JSON Payload",
    )

    def _item(self, emit: tk.Emitter, item: Mapping[str, Any], where: str) -> tk.Output:
        event = em.text(item, "event", f"{where}.event", required=True)
        kind = KINDS.get(event or "")
        if kind is None or event is None:
            raise InvalidInput("unknown_event", f"{where}.event is not a Mailjet event")
        address = em.email(self.edge, item.get("email"), f"{where}.email")
        occurred = tt.seconds_ms(item.get("time"), f"{where}.time")
        message_id = em.ident(item, "MessageID", f"{where}.MessageID") or em.ident(
            item, "mj_message_id", f"{where}.mj_message_id"
        )
        custom = em.text(item, "customcampaign", f"{where}.customcampaign")
        mj_campaign = em.ident(item, "mj_campaign_id", f"{where}.mj_campaign_id")
        campaign = custom or (mj_campaign if mj_campaign not in (None, "0") else None)
        list_id = em.ident(item, "mj_list_id", f"{where}.mj_list_id")
        list_id = None if list_id == "0" else list_id
        purpose_key = tk.option_text(self.instance, "purpose_key", "purpose")
        vendor_purpose = em.metadata_purpose(item.get("Payload"), purpose_key)
        purpose = em.declared_purpose(self, vendor_purpose)
        agent = item.get("agent")
        header_unsub = isinstance(agent, str) and agent.strip().lower() == "list-unsubscribe"
        hard = item.get("hard_bounce")
        common: dict[str, Any] = {
            "source_event_type": event,
            "campaign_id": em.attr_text(campaign),
            "list_id": list_id,
            "sender": tk.option_text(self.instance, "account") or None,
            "declared_purpose": purpose,
            "tags": [custom[:256]] if custom else [],
        }
        common["attributes"] = {
            "message_id": message_id,
            "mj_campaign_id": mj_campaign,
            "custom_id": em.attr_text(em.ident(item, "CustomID", f"{where}.CustomID")),
            "vendor_purpose": vendor_purpose if purpose is None else None,
            "url_host": em.url_host(item.get("url")) if event == "click" else None,
            "hard_bounce": hard if isinstance(hard, bool) else None,
            "error_related_to": tk.short_text(item.get("error_related_to")),
            "error": tk.short_text(item.get("error")),
            "list_unsubscribe_header": True if header_unsub else None,
        }
        at = emit.at((message_id, event, item.get("time"), address.key), address, occurred)
        send_from = "sent" if event == "sent" else None
        out = tk.Output(usage=at.usages(kind, send_derived_from=send_from, **common))
        if event in ("spam", "unsub"):
            method = "list_unsubscribe_header" if header_unsub else "unsubscribe_link"
            withdraw = at.scoped(
                ConsentAction.WITHDRAW,
                scope=list_id if event == "unsub" else None,
                platform="mailjet",
                method="spam_complaint" if event == "spam" else method,
                ip_hash=em.ip_hash(item.get("ip")),
                vendor_receipt=message_id,
                attributes={"geo": tk.short_text(item.get("geo"))},
            )
            out.consent.append(withdraw)
        return out

    # -- file import -----------------------------------------------------------------

    def map_row(self, row: Mapping[str, Any]) -> tk.Output:
        address = em.email(self.edge, tk.first_cell(row, "email", "Email", "Contact"), "email")
        when = tk.first_cell(row, "unsub_date", "UnsubscribedAt", "date", "created_at", "Date")
        occurred = tt.local_ms(when, "unsub_date", UTC)
        list_id = tk.first_cell(row, "list_id", "ListID", "mj_list_id")
        at = tk.Emitter(self, tk.Edge.now_ms()).at(
            ("row", list_id, address.key, occurred), address, occurred
        )
        withdraw = at.scoped(
            ConsentAction.WITHDRAW,
            scope=list_id,
            platform="mailjet",
            method="unsubscribe",
            attributes={"imported": True},
        )
        return tk.Output(consent=[withdraw])


def sign(request: tk.Request, instance: tk.Instance) -> tk.Request:
    """The request carrying the instance token as Mailjet would: ``Authorization: Basic``
    from credentials in the callback URL (``auth`` option: ``basic`` default, ``url``,
    ``bearer``)."""
    return em.sign_unsigned(request, instance, default_mode="basic")
