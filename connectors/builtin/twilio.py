"""Twilio Programmable Messaging: status callbacks and inbound messages (connectors.md §2.1).

Authentication: ``X-Twilio-Signature`` (HMAC-SHA1 with the Auth Token over the full URL plus
the sorted form parameters), checked by :func:`consentinel.connectors.auth.verify_twilio`;
``auth_token_previous`` is accepted too while a token is rotated.

Status callbacks (``MessageStatus``, legacy ``SmsStatus``), one UsageEvent each:

* ``queued``/``accepted``/``sending``/``sent`` -> ``send``. All share ONE id per message
  (``MessageSid`` + "send"): Twilio calls back several of them for one message, and one
  message is one use to judge, not two.
* ``delivered``/``partially_delivered`` -> ``deliver`` (time: ``RawDlrDoneDate``
  ``YYMMDDhhmm[ss]``, taken as UTC [P], else receipt time); ``undelivered``/``failed`` ->
  ``fail``; ``read`` -> ``open``; ``scheduled``/``canceled`` -> nothing; other -> ``unknown_event``.
* ``ErrorCode`` 21610 (recipient unsubscribed): the ``fail`` plus a ConsentEvent ``withdraw``,
  evidence of an earlier STOP (method ``gateway_opt_out_list``).

Inbound messages (``SmsStatus``/``MessageStatus`` ``received``, or a ``Body``): a ``reply``
UsageEvent, and for ``OptOutType`` STOP a ``withdraw``, for START a ``grant`` (HELP: none).
Without ``OptOutType`` the body itself is classified [U]: STOP, STOPALL, UNSUBSCRIBE, CANCEL,
END, QUIT, REVOKE, OPTOUT, ARRET/ARRÊT, STOP SMS (whole message, any case) -> STOP; START,
UNSTOP -> START. Only the classification is kept, never the body.

Scope of an opt-out: the Messaging Service (``MessagingServiceSid``) when there is one, else a
short code / alphanumeric sender; a full phone number is never written into ``scope``, so a
number-level STOP withdraws every SMS of the controller (fails closed). A START grant names
the canonical purpose ``purpose_map[<scope>]`` (or ``purpose_map['sms_opt_in']``); unmapped,
the scope goes to ``unmapped_purposes`` (with ``purposes`` empty, meaning none were mapped).
``sender`` is the Messaging Service, else our own number. WhatsApp/RCS (``whatsapp:``/``rcs:``
prefixes) set the channel. ``options['controllers']`` may map a service or sender to a
controller. ``map_row`` imports an opt-out export [U: column names accepted loosely:
phone number, messaging service sid, date, type].
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar

from consentinel.connectors import toolkit as tk
from consentinel.connectors.auth import twilio_signature, verify_twilio
from consentinel.connectors.builtin import _msgutil as u
from consentinel.connectors.toolkit import times as tt
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import (
    UsageKind,
)

_KINDS = {
    "queued": UsageKind.SEND,
    "accepted": UsageKind.SEND,
    "sending": UsageKind.SEND,
    "sent": UsageKind.SEND,
    "delivered": UsageKind.DELIVER,
    "partially_delivered": UsageKind.DELIVER,
    "undelivered": UsageKind.FAIL,
    "failed": UsageKind.FAIL,
    "read": UsageKind.OPEN,
}
_IGNORED = frozenset({"scheduled", "canceled"})
_INBOUND = frozenset({"received", "receiving"})
_OPTED_OUT_ERROR = "21610"
_MAX_COUNT = 1_000_000  # NumSegments, NumMedia: anything larger is not a real message


class TwilioConnector(tk.Connector):
    name = "twilio"
    title = "Twilio Programmable Messaging: status callbacks, inbound replies, STOP/START"
    produces = "usage+consent"
    auth = "X-Twilio-Signature: HMAC-SHA1 (Auth Token) of the full URL + sorted form params"
    events: ClassVar[tuple[str, ...]] = (*_KINDS, *sorted(_INBOUND))
    event_time: ClassVar[str] = (
        "receive time (Twilio sends none), RawDlrDoneDate for delivered "
        "reports; export rows: their date column"
    )
    config_schema = (
        *tk.rotating_secret("auth_token", "account Auth Token"),
        tk.option("controllers", "mapping", "map MessagingServiceSid or sender -> controller"),
    )

    def verify(self, request: tk.Request) -> None:
        params: list[tuple[str, str]] | None = None if request.body.strip() else []  # GET
        verify_twilio(
            tk.secrets(self.instance, "auth_token"),
            request.url,
            request.headers,
            request.body,
            params=params,
        )

    def map_request(self, request: tk.Request) -> tk.Output:
        params = u.flat_params(request)
        sid = u.text(params, "MessageSid") or u.text(params, "SmsSid")
        if sid is None:
            raise InvalidInput("missing_field", "MessageSid is missing")
        status = (u.text(params, "MessageStatus") or u.text(params, "SmsStatus") or "").lower()
        if status in _INBOUND or (not status and "Body" in params):
            return self._inbound(request, params, sid)
        if status in _IGNORED:
            return tk.Output()
        if status not in _KINDS:
            raise InvalidInput("unknown_event", "MessageStatus is not a known Twilio status")
        return self._status(request, params, sid, status)

    # -- status callbacks ----------------------------------------------------------------

    def _status(self, request: tk.Request, p: dict[str, str], sid: str, status: str) -> tk.Output:
        to = u.text(p, "To", required=True)
        assert to is not None
        channel, number = u.split_channel(to)
        addr = self.edge.address(number, channel.value, self.instance.default_region)
        kind = _KINDS[status]
        received = tk.received_ms(request)
        occurred = received
        raw_dlr = u.text(p, "RawDlrDoneDate")
        if kind is UsageKind.DELIVER and raw_dlr:
            occurred = tt.compact_ms(raw_dlr, "RawDlrDoneDate")
        service = u.text(p, "MessagingServiceSid")
        from_ = u.text(p, "From")
        own = u.split_channel(from_)[1] if from_ else None
        sender = service or own
        controller = u.controller_for(self, service, own)
        error = u.text(p, "ErrorCode")
        dedupe = (sid, "send") if kind is UsageKind.SEND else (sid, status)
        attributes: dict[str, Any] = {"status": status, "sender_type": u.sender_type(own)}
        if error:
            attributes["error_code"] = u.bounded(error)
        if u.text(p, "AccountSid"):
            attributes["account"] = u.bounded(p["AccountSid"])
        at = tk.Emitter(self, received).at(dedupe, addr, occurred)
        return u.status_report(
            at,
            kind,
            opt_out=(sid, "error_21610") if error == _OPTED_OUT_ERROR else None,
            scope=service or u.sender_scope(own),
            channel=channel,
            controller=controller,
            list_id=service,
            sender=sender,
            source_event_type=status,
            attributes=attributes,
        )

    # -- inbound -------------------------------------------------------------------------

    def _inbound(self, request: tk.Request, p: dict[str, str], sid: str) -> tk.Output:
        from_ = u.text(p, "From", required=True)
        assert from_ is not None
        channel, number = u.split_channel(from_)
        addr = self.edge.address(number, channel.value, self.instance.default_region)
        to = u.text(p, "To")
        own = u.split_channel(to)[1] if to else None
        opt_out_type = (u.text(p, "OptOutType") or "").upper()
        keyword = {"STOP": "stop", "START": "start", "HELP": "help"}.get(opt_out_type)
        if keyword is None:
            keyword = u.classify_keyword(p.get("Body"))
        attributes: dict[str, Any] = {"keyword_source": "opt_out_type" if opt_out_type else "body"}
        for name in ("NumSegments", "NumMedia"):
            value = u.text(p, name)
            if value:
                attributes[name.lower()] = tk.bounded_int(value, name, high=_MAX_COUNT)
        received = tk.received_ms(request)
        service = u.text(p, "MessagingServiceSid")
        return u.reply_to(
            tk.Emitter(self, received).at((sid, "received"), addr, received),
            (sid, keyword),
            sid,
            own=own,
            keyword=keyword,
            service=service,
            attributes=attributes,
            channel=channel,
            event_type="received",
            list_id=service,
        )

    # -- file import ---------------------------------------------------------------------

    def map_row(self, row: Mapping[str, Any]) -> tk.Output:
        phone = u.ci_get(row, "phone_number", "phone", "number", "from", "address")
        if not isinstance(phone, str) or not phone.strip():
            raise InvalidInput("missing_field", "the row has no phone number column")
        channel, number = u.split_channel(phone.strip())
        addr = self.edge.address(number, channel.value, self.instance.default_region)
        when = u.ci_get(row, "date_created", "opted_out_at", "created_at", "date", "timestamp")
        if when is None:
            raise InvalidInput("missing_field", "the row has no date column")
        occurred = tt.any_time_ms(when, "the row date")
        service = u.ci_get(row, "messaging_service_sid", "service_sid", "messaging_service")
        service = str(service).strip() if isinstance(service, str | int) else None
        kind = u.ci_get(row, "opt_out_type", "type", "keyword", "status")
        keyword = u.classify_keyword(str(kind)) if kind is not None else "stop"
        if keyword not in ("stop", "start"):
            keyword = "stop"
        consent = u.keyword_consent(
            tk.Emitter(self, tk.received_ms(None)),
            keyword,
            ("export", addr.key, service, occurred, keyword),
            addr,
            occurred,
            controller=u.controller_for(self, service),
            channel=channel,
            scope=service,
            receipt=None,
        )
        return tk.Output(consent=[replace(consent, attributes={"import": "opt_out_export"})])


def sign(request: tk.Request, instance: tk.Instance) -> tk.Request:
    """``request`` with the ``X-Twilio-Signature`` Twilio would send for ``instance``."""
    pairs = u.parse_form_pairs(request.body) if request.body.strip() else []
    signature = twilio_signature(instance.secret("auth_token"), request.url, pairs)
    return request.with_headers({"x-twilio-signature": signature})
