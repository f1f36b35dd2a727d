"""Mailchimp Transactional (Mandrill) webhooks (connectors.md §1.2, §7, §8).

Transport: POST form with one field, ``mandrill_events``: a JSON array of events (batched).
The unsigned HEAD Mandrill sends when the webhook is created is answered 200.

Authentication: ``X-Mandrill-Signature``, HMAC-SHA1 with the webhook key (secret
``webhook_key``; ``webhook_key_previous`` while rotating) over the webhook URL followed by
the sorted POST parameters (``connectors.auth.verify_mandrill``). The URL is the
``webhook_url`` option when set (the URL exactly as registered in Mandrill), else the URL
the request came to (the runtime rebuilds it from ``public_url`` behind a proxy).

Mapping, one event per array item (``ts`` = event time, dedupe ``_id`` + event + ``ts``):
``send`` → send, ``deferral`` → defer, ``hard_bounce``/``soft_bounce`` → bounce, ``open``,
``click`` (only the URL's host is kept: paths may carry addresses), ``reject`` → drop,
``spam`` → complaint + ConsentEvent withdraw, ``unsub`` → unsubscribe_link + ConsentEvent
withdraw. A Mandrill unsubscribe or complaint blocks every later message of the
(sub)account, so the withdraw covers all purposes (``purposes=[]``) on e-mail, scoped to
the subaccount when there is one. Sync events (``type`` instead of ``event``): ``blacklist``
added for ``unsub`` or ``spam`` → ConsentEvent withdraw (no usage: nothing was sent);
other sync events and ``inbound`` give nothing. Any other event name is ``unknown_event``
(the whole batch goes to dead letters and can be replayed once the mapping is fixed).

Fields: ``sender`` = ``msg.sender``, the business From address; ``tags`` = ``msg.tags``;
``list_id`` = ``msg.template`` (as connectors.md §7.1); ``campaign_id`` =
``msg.metadata.campaign_id`` (or ``campaign``); ``declared_purpose`` = the metadata key
named by the ``purpose_key`` option (default ``purpose``) through ``purpose_map``; the raw
value is kept as attribute ``vendor_purpose`` when it is not mapped. [P] ``ip``,
``location`` and ``subaccount`` may be absent on any event: all optional here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from consentinel.connectors import toolkit as tk
from consentinel.connectors.auth import mandrill_signature, verify_mandrill
from consentinel.connectors.builtin import _email as em
from consentinel.connectors.toolkit import times as tt
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import ConsentAction, ConsentEvent, UsageKind

SIGNATURE_HEADER = "x-mandrill-signature"

KINDS: dict[str, UsageKind] = {
    "send": UsageKind.SEND,
    "deferral": UsageKind.DEFER,
    "hard_bounce": UsageKind.BOUNCE,
    "soft_bounce": UsageKind.BOUNCE,
    "open": UsageKind.OPEN,
    "click": UsageKind.CLICK,
    "spam": UsageKind.COMPLAINT,
    "unsub": UsageKind.UNSUBSCRIBE_LINK,
    "reject": UsageKind.DROP,
}
_WITHDRAW = {"spam": "spam_complaint", "unsub": "unsubscribe_link"}
_IGNORED = frozenset({"inbound"})
_SYNC = frozenset({"whitelist", "blacklist"})


class MandrillConnector(tk.Connector):
    name: ClassVar[str] = "mandrill"
    title: ClassVar[str] = "Mailchimp Transactional (Mandrill) message event webhooks"
    produces: ClassVar[str] = "usage+consent"
    auth: ClassVar[str] = "X-Mandrill-Signature: HMAC-SHA1 of the URL + sorted POST params"
    events: ClassVar[tuple[str, ...]] = tuple(KINDS)
    event_time: ClassVar[str] = '"ts" (Unix seconds) of each event'
    config_schema: ClassVar[tuple[tk.ConfigField, ...]] = (
        *tk.rotating_secret("webhook_key", "the webhook's key shown by Mandrill (not the API key)"),
        tk.option(
            "webhook_url",
            "text",
            "the webhook URL exactly as registered in Mandrill (default: the request's URL)",
        ),
        tk.option(
            "purpose_key", "text", "msg.metadata key holding the sender's purpose", "purpose"
        ),
    )

    def handshake(self, request: tk.Request) -> tk.Response | None:
        if request.method.upper() == "HEAD":
            return tk.Response(200, b"", "text/plain")
        return None

    def verify(self, request: tk.Request) -> None:
        verify_mandrill(
            tk.secrets(self.instance, "webhook_key"),
            signed_url(request, self.instance),
            request.headers,
            request.body,
        )

    def map_request(self, request: tk.Request) -> tk.Output:
        form = request.form()
        values = form.get("mandrill_events")
        if not values or not values[-1].strip():
            raise InvalidInput("missing_field", "the mandrill_events form field is missing")
        body = tk.json_body(values[-1].encode("utf-8"), "mandrill_events")
        emit = tk.Emitter(self, tk.received_ms(request))
        return tk.map_batch(
            body, "mandrill_events", lambda i, it: self._item(emit, it, f"mandrill_events[{i}]")
        )

    def _item(self, emit: tk.Emitter, item: Mapping[str, Any], where: str) -> tk.Output:
        event = em.text(item, "event", f"{where}.event")
        if event is None:
            sync = em.text(item, "type", f"{where}.type")
            if sync in _SYNC:
                return self._sync(emit, item, sync, where)
            raise InvalidInput("missing_field", f"{where}.event is missing")
        if event in _IGNORED:
            return tk.Output()
        kind = KINDS.get(event)
        if kind is None:
            raise InvalidInput("unknown_event", f"{where}.event is not a Mandrill event")
        msg = em.sub(item, "msg", f"{where}.msg", required=True)
        address = em.email(self.edge, msg.get("email"), f"{where}.msg.email")
        ts = tt.seconds_ms(item.get("ts"), f"{where}.ts")
        message_id = em.ident(item, "_id", f"{where}._id") or em.ident(
            msg, "_id", f"{where}.msg._id"
        )
        dedupe = (message_id, event, item.get("ts"), address.key)
        metadata = msg.get("metadata")
        purpose_key = tk.option_text(self.instance, "purpose_key", "purpose")
        vendor_purpose = em.metadata_purpose(metadata, purpose_key)
        purpose = em.declared_purpose(self, vendor_purpose)
        subaccount = em.text(msg, "subaccount", f"{where}.msg.subaccount")
        campaign = None
        if isinstance(metadata, dict):
            campaign = em.ident(metadata, "campaign_id", f"{where}.msg.metadata.campaign_id") or (
                em.ident(metadata, "campaign", f"{where}.msg.metadata.campaign")
            )
        attributes = {
            "message_id": message_id,
            "subaccount": em.attr_text(subaccount),
            "vendor_purpose": vendor_purpose if purpose is None else None,
            "url_host": em.url_host(item.get("url")) if event == "click" else None,
            "bounce_description": em.attr_text(
                em.text(msg, "bounce_description", f"{where}.msg.bounce_description")
            )
            if kind is UsageKind.BOUNCE
            else None,
        }
        at = emit.at(dedupe, address, ts)
        usage = at.usage(
            kind,
            source_event_type=event,
            attributes=attributes,
            tags=em.strings(msg.get("tags")),
            campaign_id=campaign,
            list_id=em.attr_text(em.text(msg, "template", f"{where}.msg.template")),
            sender=em.sender_address(msg.get("sender")),
            declared_purpose=purpose,
        )
        out = tk.Output(usage=[usage])
        if event in _WITHDRAW:
            receipt = {"ip_hash": em.ip_hash(item.get("ip")), "vendor_receipt": message_id}
            out.consent.append(_withdraw(at, _WITHDRAW[event], "mandrill", subaccount, **receipt))
        return out

    def _sync(self, emit: tk.Emitter, item: Mapping[str, Any], sync: str, where: str) -> tk.Output:
        if sync != "blacklist":
            return tk.Output()
        reject = em.sub(item, "reject", f"{where}.reject", required=True)
        action = (em.text(item, "action", f"{where}.action") or "add").lower()
        reason = (em.text(reject, "reason", f"{where}.reject.reason") or "").lower()
        if action != "add" or reason not in _WITHDRAW:
            return tk.Output()
        address = em.email(self.edge, reject.get("email"), f"{where}.reject.email")
        ts = tt.seconds_ms(item.get("ts"), f"{where}.ts")
        subaccount = em.text(reject, "subaccount", f"{where}.reject.subaccount")
        at = emit.at(("sync", sync, action, reason, item.get("ts"), address.key), address, ts)
        point = "mandrill:rejection_list"
        return tk.Output(consent=[_withdraw(at, _WITHDRAW[reason], point, subaccount, sync=sync)])


def _withdraw(
    at: tk.Occurrence,
    method: str,
    point: str,
    subaccount: str | None,
    *,
    sync: str | None = None,
    **receipt: Any,
) -> ConsentEvent:
    """A withdrawal scoped to the sub-account (all its purposes); ``receipt``: ``ip_hash``
    and ``vendor_receipt``; ``sync``: the rejection-list sync that reported it."""
    return at.proven(
        ConsentAction.WITHDRAW,
        scope=em.attr_text(subaccount),
        method=method,
        collection_point=point,
        attributes={"subaccount": em.attr_text(subaccount), "sync": sync},
        **receipt,
    )


def signed_url(request: tk.Request, instance: tk.Instance) -> str:
    configured = instance.options.get("webhook_url")
    return configured if isinstance(configured, str) and configured else request.url


def sign(request: tk.Request, instance: tk.Instance) -> tk.Request:
    """The request with the ``X-Mandrill-Signature`` Mandrill would send for its body."""
    signature = mandrill_signature(
        instance.secret("webhook_key"),
        signed_url(request, instance),
        _pairs(request.body),
    )
    return request.with_headers({SIGNATURE_HEADER: signature})


def _pairs(body: bytes) -> list[tuple[str, str]]:
    return parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True) if body else []
