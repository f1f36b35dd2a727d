"""Brevo (ex-Sendinblue) transactional and marketing webhooks (connectors.md §1.3, §7).

Transport: POST ``application/json``, one event object per request; [U] the "batched
webhooks" format is not documented to us, so an array of such objects is accepted too.

Authentication: Brevo signs nothing. The instance secret ``token`` (``token_previous`` while
rotating) is accepted in every form Brevo can send it: Basic credentials embedded in the
callback URL (``https://<basic_user>:<token>@host/...``, arriving as ``Authorization:
Basic``), a bearer token configured on the webhook, or in the URL itself (query ``token``
or the last path segment). ``sign`` uses the ``auth`` option: ``url`` (default), ``basic``
or ``bearer``.

A payload is a marketing (campaign) event when it carries ``camp_id`` or is a contact event
(``list_addition``, ``contact_updated``, ``contact_deleted``), else transactional. The
camelCase names used when configuring a webhook (``hardBounce``, ``unsubscribed``,
``listAddition``…) are accepted as aliases [P].

Transactional (time ``ts_epoch`` ms, else ``ts_event`` s; dedupe message-id + event +
ts_epoch): ``request`` → send, ``delivered`` → deliver, ``hard_bounce``/``soft_bounce`` →
bounce, ``blocked``/``invalid_email`` → drop, ``deferred`` → defer, ``opened``,
``unique_opened``, ``proxy_open``, ``unique_proxy_open`` → open (attribute ``proxy_open``),
``click`` → click (URL host only), ``spam``/``complaint`` → complaint + withdraw (all
purposes), ``unsubscribe`` → unsubscribe_link + withdraw (all purposes), ``error`` → fail.
The Message-ID looks like an address (``local@host``), so events keep only its sha256
(attribute ``message_id_sha256``, proof receipt). ``declared_purpose`` = key
``purpose_key`` (default ``purpose``) of ``X-Mailin-custom`` through ``purpose_map``;
``list_id`` = ``template_id``; ``tags`` = ``tags``/``tag``.

Marketing (time ``ts_event`` s; dedupe camp_id + address + event + ts_event): Brevo reports
no send, so ``delivered`` gives a ``send`` (the use the checker judges; attribute
``derived_from=delivered``) and a ``deliver``; ``opened``/``proxy_open`` → open, ``click``,
``*_bounce`` → bounce, ``spam`` → complaint + withdraw (all purposes), ``unsubscribe`` →
unsubscribe_link + one withdraw per list in ``list_id`` (purpose ``purpose_map[list id]``,
scope the list), or one for all purposes when no list is named. ``list_addition`` → one
``join`` per list: membership evidence, never consent (it also fires when an operator
imports a rented file into a list; the checker puts the address on the list, and the
list's campaigns are judged against the consent the person gave, if any).
``unique_coupon_sent`` (a unique coupon code of a coupon collection sent to the contact)
→ a send: a marketing use of the address (campaign ``camp_id`` when named; the
collection's id as an attribute [U: Brevo documents the event, we saw not its fields];
the coupon code itself is never kept). ``contact_updated``/``contact_deleted`` give
nothing. ``campaign_id`` = ``camp_id``.
[U] ``list_id`` is accepted as an array (``[12, 31]``), a number, a string or a
comma-separated string.

Transactional SMS (a ``to`` number and no ``email``): see ``brevo_sms``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from consentinel.connectors import toolkit as tk
from consentinel.connectors.builtin import _email as em
from consentinel.connectors.builtin import brevo_sms
from consentinel.connectors.toolkit import times as tt
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import ConsentAction, ConsentEvent, UsageKind

TRANSACTIONAL: dict[str, UsageKind] = {
    "request": UsageKind.SEND,
    "delivered": UsageKind.DELIVER,
    "hard_bounce": UsageKind.BOUNCE,
    "soft_bounce": UsageKind.BOUNCE,
    "blocked": UsageKind.DROP,
    "invalid_email": UsageKind.DROP,
    "deferred": UsageKind.DEFER,
    "opened": UsageKind.OPEN,
    "unique_opened": UsageKind.OPEN,
    "proxy_open": UsageKind.OPEN,
    "unique_proxy_open": UsageKind.OPEN,
    "click": UsageKind.CLICK,
    "spam": UsageKind.COMPLAINT,
    "complaint": UsageKind.COMPLAINT,
    "unsubscribe": UsageKind.UNSUBSCRIBE_LINK,
    "error": UsageKind.FAIL,
}
MARKETING: dict[str, UsageKind] = {
    "delivered": UsageKind.DELIVER,
    "opened": UsageKind.OPEN,
    "unique_opened": UsageKind.OPEN,
    "proxy_open": UsageKind.OPEN,
    "click": UsageKind.CLICK,
    "hard_bounce": UsageKind.BOUNCE,
    "soft_bounce": UsageKind.BOUNCE,
    "spam": UsageKind.COMPLAINT,
    "unsubscribe": UsageKind.UNSUBSCRIBE_LINK,
}
CONTACT_EVENTS = frozenset(
    {"list_addition", "contact_updated", "contact_deleted", "unique_coupon_sent"}
)
#: the coupon collection's id in a ``unique_coupon_sent`` [U]; never the code (nor a name)
_COLLECTION_ID = ("coupon_collection_id", "collection_id")
_ALIASES = {"unsubscribed": "unsubscribe", "open": "opened", "sent": "request"}
_WITHDRAW = {
    "spam": "spam_complaint",
    "complaint": "spam_complaint",
    "unsubscribe": "unsubscribe_link",
}


def event_name(raw: str) -> str:
    """Payload or configuration spelling → the payload's snake_case (``hardBounce`` →
    ``hard_bounce``, ``unsubscribed`` → ``unsubscribe``)."""
    snake = re.sub(r"(?<=[a-z])([A-Z])", r"_\1", raw.strip()).lower()
    return _ALIASES.get(snake, snake)


class BrevoConnector(em.UnsignedBatchConnector):
    name: ClassVar[str] = "brevo"
    title: ClassVar[str] = "Brevo (Sendinblue) transactional and marketing webhooks"
    produces: ClassVar[str] = "usage+consent"
    auth: ClassVar[str] = "unsigned: shared token as Basic credentials, bearer token or in the URL"
    #: Brevo drops a webhook answered with any 5xx; a 429 makes it retry
    busy_status = 429
    events: ClassVar[tuple[str, ...]] = (
        "delivered",
        "opened",
        "click",
        "soft_bounce",
        "hard_bounce",
        "spam",
        "unsubscribed",
        "list_addition",
        "contact_deleted",
        "unique_coupon_sent",
        *(f"sms:{status}" for status in brevo_sms.EVENTS),
    )
    event_time: ClassVar[str] = '"ts_epoch" (Unix ms), else "ts_event" / "ts" (Unix seconds)'
    config_schema: ClassVar[tuple[tk.ConfigField, ...]] = em.unsigned_schema(
        "Brevo",
        token_doc="Basic password, bearer token or URL token",
        default_auth="url",
        purpose_doc="X-Mailin-custom key",
    )

    def _item(self, emit: tk.Emitter, item: Mapping[str, Any], where: str) -> tk.Output:
        if brevo_sms.is_sms(item):
            return brevo_sms.map_sms(self, emit, item, where)
        raw_event = em.text(item, "event", f"{where}.event", required=True)
        assert raw_event is not None
        event = event_name(raw_event)
        marketing = "camp_id" in item or event in CONTACT_EVENTS
        if marketing:
            return self._marketing(emit, item, event, where)
        return self._transactional(emit, item, event, where)

    # -- transactional ---------------------------------------------------------------

    def _transactional(
        self, emit: tk.Emitter, item: Mapping[str, Any], event: str, where: str
    ) -> tk.Output:
        kind = TRANSACTIONAL.get(event)
        if kind is None:
            raise InvalidInput("unknown_event", f"{where}.event is not a Brevo transactional event")
        address = em.email(self.edge, item.get("email"), f"{where}.email")
        occurred, stamp = _when(item, ("ts_epoch", "ts_event", "ts"), where)
        message_id = em.ident(item, "message-id", f"{where}.message-id")
        at = emit.at(("transactional", message_id, event, stamp, address.key), address, occurred)
        # a Message-ID looks like an address (local@host): kept only as a hash
        receipt = hashlib.sha256(message_id.encode("utf-8")).hexdigest() if message_id else None
        vendor_purpose = em.metadata_purpose(
            item.get("X-Mailin-custom"), tk.option_text(self.instance, "purpose_key", "purpose")
        )
        purpose = em.declared_purpose(self, vendor_purpose)
        attributes = {
            "message_id_sha256": receipt,
            "vendor_purpose": vendor_purpose if purpose is None else None,
            "proxy_open": True if "proxy" in event else None,
            "url_host": em.url_host(item.get("link")) if event == "click" else None,
            "webhook_id": em.attr_text(em.ident(item, "id", f"{where}.id")),
        }
        usage = at.usage(
            kind,
            source_event_type=event,
            tags=em.strings(item.get("tags")) or em.strings(item.get("tag")),
            list_id=em.ident(item, "template_id", f"{where}.template_id"),
            sender=tk.option_text(self.instance, "account") or None,
            declared_purpose=purpose,
            attributes=attributes,
        )
        out = tk.Output(usage=[usage])
        if event in _WITHDRAW:
            point = "brevo:transactional"
            method = _WITHDRAW[event]
            withdraw = at.proven(
                ConsentAction.WITHDRAW,
                method=method,
                collection_point=point,
                vendor_receipt=receipt,
            )
            out.consent.append(withdraw)
        return out

    # -- marketing -------------------------------------------------------------------

    def _marketing(
        self, emit: tk.Emitter, item: Mapping[str, Any], event: str, where: str
    ) -> tk.Output:
        if event in ("contact_updated", "contact_deleted"):
            return tk.Output()
        if event == "unique_coupon_sent":
            return self._coupon(emit, item, where)
        if event != "list_addition" and event not in MARKETING:
            raise InvalidInput("unknown_event", f"{where}.event is not a Brevo marketing event")
        address = em.email(self.edge, item.get("email"), f"{where}.email")
        occurred, stamp = _when(item, ("ts_event", "ts_epoch", "ts"), where)
        campaign = em.ident(item, "camp_id", f"{where}.camp_id")
        lists = em.id_list(item.get("list_id"), f"{where}.list_id")
        dedupe = ("marketing", campaign, address.key, event, stamp)
        at = emit.at(dedupe, address, occurred)

        def per_list(action: ConsentAction, method: str) -> list[ConsentEvent]:
            return [
                emit.at((*dedupe, list_id), address, occurred).scoped(
                    action, scope=list_id, platform="brevo", method=method, vendor_receipt=campaign
                )
                for list_id in lists
            ]

        if event == "list_addition":  # membership, not consent: a rented file fires it too
            joins = [
                emit.at((*dedupe, list_id), address, occurred).consent(
                    ConsentAction.JOIN, scope=list_id, attributes={"evidence": "list_addition"}
                )
                for list_id in lists
            ]
            return tk.Output(consent=joins)
        attributes: dict[str, Any] = {
            "campaign_name": em.attr_text(em.text(item, "campaign name", f"{where}.campaign name")),
            "list_ids": ",".join(lists)[:256] if lists else None,
            "proxy_open": True if "proxy" in event else None,
            "url_host": em.url_host(item.get("URL") or item.get("link"))
            if event == "click"
            else None,
        }
        usages = at.usages(
            MARKETING[event],
            send_derived_from="delivered" if event == "delivered" else None,
            attributes=attributes,
            source_event_type=event,
            tags=em.strings(item.get("tag")) or em.strings(item.get("tags")),
            campaign_id=campaign,
            list_id=lists[0] if len(lists) == 1 else None,
            sender=tk.option_text(self.instance, "account") or None,
        )
        out = tk.Output(usage=usages)
        if event == "unsubscribe" and lists:
            out.consent.extend(per_list(ConsentAction.WITHDRAW, "unsubscribe_link"))
        elif event in _WITHDRAW:
            method = _WITHDRAW[event]
            withdraw = at.proven(
                ConsentAction.WITHDRAW,
                method=method,
                collection_point="brevo:marketing",
                vendor_receipt=campaign,
            )
            out.consent.append(withdraw)
        return out

    def _coupon(self, emit: tk.Emitter, item: Mapping[str, Any], where: str) -> tk.Output:
        """A unique coupon sent to the contact: a marketing use (a send)."""
        address = em.email(self.edge, item.get("email"), f"{where}.email")
        occurred, stamp = _when(item, ("ts_event", "ts_epoch", "ts"), where)
        campaign = em.ident(item, "camp_id", f"{where}.camp_id")
        collection = next(
            (c for c in (em.ident(item, k, f"{where}.{k}") for k in _COLLECTION_ID) if c), None
        )
        at = emit.at(("coupon", collection, campaign, address.key, stamp), address, occurred)
        send = at.usage(
            UsageKind.SEND,
            source_event_type="unique_coupon_sent",
            campaign_id=campaign,
            tags=em.strings(item.get("tag")) or em.strings(item.get("tags")),
            sender=tk.option_text(self.instance, "account") or None,
            attributes={"coupon_collection_id": em.attr_text(collection)},
        )
        return tk.Output(usage=[send])


def _when(item: Mapping[str, Any], fields: tuple[str, ...], where: str) -> tuple[int, str]:
    """(epoch ms, the raw value used) from the first present of ``fields``; ``ts_epoch`` is
    milliseconds, the others seconds."""
    for name in fields:
        value = item.get(name)
        if value is None or value == "":
            continue
        field = f"{where}.{name}"
        ms = tt.millis_ms(value, field) if name == "ts_epoch" else tt.seconds_ms(value, field)
        return ms, f"{name}={value}"
    raise InvalidInput("missing_field", f"{where}.{fields[0]} is missing")


def sign(request: tk.Request, instance: tk.Instance) -> tk.Request:
    """The request carrying the instance token where Brevo would (``auth`` option: ``url``
    query token by default, ``basic`` for credentials in the callback URL, ``bearer``)."""
    return em.sign_unsigned(request, instance, default_mode="url")
