"""Twilio SendGrid Event Webhook, signed (connectors.md §1.4, §7, §8), and suppression
exports.

Transport: POST ``application/json``, a JSON array of events (batched).

Authentication: the Signed Event Webhook, ECDSA P-256/SHA-256 over the
``X-Twilio-Email-Event-Webhook-Timestamp`` value followed by the raw body
(``connectors.auth.verify_sendgrid``). The verification key (Base64 DER, from SendGrid's
settings) is the instance secret ``verification_key`` (``verification_key_previous`` while
rotating); it is loaded once, so a wrong key stops the instance at start. The timestamp
must be within ``max_age_s`` (default 300 s; null disables) of the request's receipt time.
``sign`` needs the matching private key as secret ``signing_key`` (PEM; tests and the demo
feed only: SendGrid holds the real one).

Mapping, one event per array item (``timestamp`` = event time; dedupe ``sg_event_id``):
``processed`` → send, ``deferred`` → defer, ``delivered`` → deliver, ``bounce`` → bounce
(attribute ``bounce_type``: bounce|blocked), ``dropped`` → drop, ``open`` → open (attribute
``machine_open``), ``click`` → click (URL host only), ``spamreport`` → complaint +
withdraw (all purposes), ``unsubscribe`` → unsubscribe_link + withdraw (all purposes: a
global unsubscribe), ``group_unsubscribe`` → unsubscribe_link + withdraw of the group's
purpose (``purpose_map[str(asm_group_id)]``, scope = group id), ``group_resubscribe`` →
grant of the group's purpose (no usage: nothing was sent). ``account_status_change`` gives
nothing; any other event is ``unknown_event``. ``list_id`` = ``asm_group_id``;
``campaign_id`` = ``marketing_campaign_id`` (or [U] ``singlesend_id``); ``tags`` =
``category`` (string or array); ``sender`` = the ``account`` option (subuser);
``declared_purpose`` = the flattened custom arg named by ``purpose_key`` (default
``consentinel_purpose``) through ``purpose_map``. Other custom args are not copied: they
may hold personal data.

Import (``map_row``): rows of the suppression exports (``email``, ``created`` as Unix
seconds or ``YYYY-MM-DD HH:MM:SS`` UTC, optional ``group_id``/``asm_group_id``, ``ip``).
Which export is given by a ``suppression`` column or the ``import_kind`` option:
``unsubscribes`` (default; withdraw, all purposes), ``group_unsubscribes`` (withdraw of the
group's purpose; also whenever a group column is filled), ``spam_reports`` (withdraw, all
purposes); ``bounces``, ``blocks`` and ``invalid_emails`` are not consent: no events.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC
from typing import Any, ClassVar

from consentinel.connectors import toolkit as tk
from consentinel.connectors.auth import load_sendgrid_key, verify_sendgrid
from consentinel.connectors.auth.sendgrid import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sendgrid_signature,
)
from consentinel.connectors.builtin import _email as em
from consentinel.connectors.toolkit import times as tt
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import ConsentAction, UsageKind

KINDS: dict[str, UsageKind] = {
    "processed": UsageKind.SEND,
    "deferred": UsageKind.DEFER,
    "delivered": UsageKind.DELIVER,
    "bounce": UsageKind.BOUNCE,
    "dropped": UsageKind.DROP,
    "open": UsageKind.OPEN,
    "click": UsageKind.CLICK,
    "spamreport": UsageKind.COMPLAINT,
    "unsubscribe": UsageKind.UNSUBSCRIBE_LINK,
    "group_unsubscribe": UsageKind.UNSUBSCRIBE_LINK,
}
_IGNORED = frozenset({"account_status_change"})
_METHODS = {
    "spamreport": "spam_complaint",
    "unsubscribe": "unsubscribe_link",
    "group_unsubscribe": "unsubscribe_link",
    "group_resubscribe": "preference_center",
}
_ROW_KINDS = {
    "unsubscribes": "unsubscribe_link",
    "global_unsubscribes": "unsubscribe_link",
    "group_unsubscribes": "unsubscribe_link",
    "spam_reports": "spam_complaint",
}
_ROW_NOT_CONSENT = frozenset({"bounces", "blocks", "invalid_emails"})


class SendGridConnector(tk.Connector):
    name: ClassVar[str] = "sendgrid"
    title: ClassVar[str] = "Twilio SendGrid signed Event Webhook and suppression exports"
    produces: ClassVar[str] = "usage+consent"
    auth: ClassVar[str] = "ECDSA P-256/SHA-256 over the timestamp header + raw body"
    events: ClassVar[tuple[str, ...]] = (*KINDS, "group_resubscribe")
    event_time: ClassVar[str] = (
        '"timestamp" (Unix seconds) of each event; suppression exports: "created"'
    )
    config_schema: ClassVar[tuple[tk.ConfigField, ...]] = (
        *tk.rotating_secret(
            "verification_key", "the Signed Event Webhook verification key (Base64)"
        ),
        tk.ConfigField("signing_key", "PEM private key for sign() (tests, demo feed)", secret=True),
        tk.option(
            "max_age_s", "number", "accepted age of the signed timestamp, s (null: no check)", 300
        ),
        tk.option("account", "text", "the SendGrid account or subuser, reported as sender"),
        tk.option(
            "purpose_key", "text", "custom arg holding the sender's purpose", "consentinel_purpose"
        ),
        tk.option(
            "import_kind", "text", "default kind of imported suppression rows", "unsubscribes"
        ),
    )

    def __init__(self, instance: tk.Instance, edge: tk.Edge) -> None:
        super().__init__(instance, edge)
        self.keys = [
            load_sendgrid_key(k.decode("utf-8")) for k in tk.secrets(instance, "verification_key")
        ]
        max_age = instance.options.get("max_age_s", 300)
        self.max_age: float | None = None if max_age is None else float(max_age)
        self._purpose_key = tk.option_text(instance, "purpose_key", "consentinel_purpose")
        self._account = tk.option_text(instance, "account") or None

    def verify(self, request: tk.Request) -> None:
        now = request.received_at_ms / 1000 if request.received_at_ms else None
        verify_sendgrid(self.keys, request.body, request.headers, tolerance=self.max_age, now=now)

    def map_request(self, request: tk.Request) -> tk.Output:
        body = tk.json_body(request.body, "the body")
        emit = tk.Emitter(self, tk.received_ms(request))
        return tk.map_batch(body, "the body", lambda i, item: self._item(emit, item, f"event[{i}]"))

    def _item(self, emit: tk.Emitter, item: Mapping[str, Any], where: str) -> tk.Output:
        event = em.text(item, "event", f"{where}.event", required=True)
        assert event is not None
        if event in _IGNORED:
            return tk.Output()
        if event not in KINDS and event != "group_resubscribe":
            raise InvalidInput("unknown_event", f"{where}.event is not a SendGrid event")
        address = em.email(self.edge, item.get("email"), f"{where}.email")
        ts = tt.seconds_ms(item.get("timestamp"), f"{where}.timestamp")
        event_id = em.ident(item, "sg_event_id", f"{where}.sg_event_id")
        message_id = em.ident(item, "sg_message_id", f"{where}.sg_message_id")
        dedupe: tuple[object, ...] = (
            (event_id,) if event_id else (message_id, event, item.get("timestamp"), address.key)
        )
        group = em.ident(item, "asm_group_id", f"{where}.asm_group_id")
        at = emit.at(dedupe, address, ts)
        out = tk.Output()
        kind = KINDS.get(event)
        if kind is not None:
            vendor_purpose = tk.short_text(item.get(self._purpose_key))
            purpose = em.declared_purpose(self, vendor_purpose)
            campaign = em.ident(item, "marketing_campaign_id", f"{where}.marketing_campaign_id")
            campaign = campaign or em.ident(item, "singlesend_id", f"{where}.singlesend_id")
            machine = item.get("sg_machine_open")
            attributes = {
                "message_id": em.attr_text(message_id),
                "vendor_purpose": em.attr_text(vendor_purpose) if purpose is None else None,
                "machine_open": machine if isinstance(machine, bool) else None,
                "bounce_type": tk.short_text(item.get("type"))
                if kind is UsageKind.BOUNCE
                else None,
                "bounce_classification": tk.short_text(item.get("bounce_classification")),
                "url_host": em.url_host(item.get("url")) if event == "click" else None,
                "campaign_name": tk.short_text(item.get("marketing_campaign_name")),
            }
            usage = at.usage(
                kind,
                source_event_type=event,
                tags=em.strings(item.get("category")),
                campaign_id=campaign,
                list_id=group,
                sender=self._account,
                declared_purpose=purpose,
                attributes=attributes,
            )
            out.usage.append(usage)
        method = _METHODS.get(event)
        if method is not None:
            if event.startswith("group_") and group is None:
                raise InvalidInput("missing_field", f"{where}.asm_group_id is missing")
            action = ConsentAction.GRANT if event == "group_resubscribe" else ConsentAction.WITHDRAW
            consent = at.scoped(
                action,
                scope=group if event.startswith("group_") else None,
                platform="sendgrid",
                kind="asm_group",
                method=method,
                ip_hash=em.ip_hash(item.get("ip")),
                vendor_receipt=em.attr_text(event_id),
            )
            out.consent.append(consent)
        return out

    # -- file import -----------------------------------------------------------------

    def map_row(self, row: Mapping[str, Any]) -> tk.Output:
        kind = tk.first_cell(row, "suppression") or tk.option_text(
            self.instance, "import_kind", "unsubscribes"
        )
        kind = kind.lower()
        if kind in _ROW_NOT_CONSENT:
            return tk.Output()
        if kind not in _ROW_KINDS:
            raise InvalidInput("unknown_event", "the suppression column names no known export")
        address = em.email(self.edge, tk.first_cell(row, "email", "Email"), "email")
        created = tk.first_cell(row, "created", "created_at", "Created")
        at = tt.local_ms(created, "created", UTC)
        group = tk.first_cell(row, "group_id", "asm_group_id", "Group ID")
        if kind == "group_unsubscribes" and group is None:
            raise InvalidInput("missing_field", "group_id is missing for a group unsubscribe")
        emit = tk.Emitter(self, tk.Edge.now_ms())
        withdraw = emit.at(("row", kind, group, address.key, at), address, at).scoped(
            ConsentAction.WITHDRAW,
            scope=group,
            platform="sendgrid",
            kind="asm_group",
            method=_ROW_KINDS[kind],
            ip_hash=em.ip_hash(tk.first_cell(row, "ip")),
            attributes={"imported": True, "suppression": kind},
        )
        return tk.Output(consent=[withdraw])


def sign(request: tk.Request, instance: tk.Instance) -> tk.Request:
    """The request signed as SendGrid would, with the instance's ``signing_key`` (PEM
    private key whose public half is ``verification_key``). The timestamp header is kept
    when present, else the request's receipt time (or now) in Unix seconds."""
    stamp = request.header(TIMESTAMP_HEADER)
    if not stamp:
        seconds = request.received_at_ms // 1000 if request.received_at_ms else int(time.time())
        stamp = str(seconds)
    signature = sendgrid_signature(instance.secret("signing_key"), stamp, request.body)
    return request.with_headers({SIGNATURE_HEADER: signature, TIMESTAMP_HEADER: stamp})
