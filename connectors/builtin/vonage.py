"""Vonage (ex-Nexmo): SMS API receipts and inbound messages, Messages API webhooks
(connectors.md §2.2).

Authentication:

* SMS API: the ``sig`` parameter over all other parameters, ``md5hash`` (default) or an HMAC
  (``options['signature_method']``: md5, sha1, sha256, sha512), keyed by the signature secret;
  the signed ``timestamp`` must be within ``options['max_age_s']`` (default 300; None turns the
  check off, for replays). Parameters come from the query (GET), a form body, or a JSON body's
  top level [P: all three accepted].
* Messages API: ``Authorization: Bearer <JWT>`` HS256 with the same signature secret, with a
  ``payload_hash`` claim over the raw body.

Both checks are :mod:`consentinel.connectors.auth`'s; ``signature_secret_previous`` is also
accepted while rotating.

SMS API delivery receipts (``status``): ``accepted``/``buffered`` -> ``send`` (one id per
``messageId``), ``delivered`` -> ``deliver`` (time ``scts`` YYMMDDhhmm UTC, else
``message-timestamp``), ``failed``/``rejected``/``expired`` -> ``fail``, ``unknown`` ->
nothing. ``err-code`` 9 (recipient opted out of this sender) adds a ConsentEvent ``withdraw``,
evidence of an earlier opt-out (method ``gateway_opt_out_list``; we do not know when it
happened, so it carries the receipt's time). ``client-ref`` is read as
``<campaign>[|purpose=<vendor purpose>][|list=<list>]``; the purpose goes through
``purpose_map`` into ``declared_purpose`` (unmapped: attribute ``vendor_purpose``).

SMS API inbound (``text``/``keyword``): a ``reply`` UsageEvent; STOP/START (Vonage's
``keyword``, the first word upper-cased, or the whole text, see ``_msgutil.classify_keyword``)
add ``withdraw``/``grant`` as for Twilio. Message text is never kept.

Messages API (JSON with ``message_uuid``): status ``submitted`` -> ``send``, ``delivered`` ->
``deliver``, ``read`` -> ``open``, ``rejected``/``undeliverable`` -> ``fail``; inbound (no
``status``) -> ``reply`` + keyword consent. ``to``/``from`` may be a string or an object with
``number`` [U: both accepted]. Channels sms/mms, whatsapp, rcs; others are
``unsupported_channel``.

MSISDNs come without ``+``; ``Edge.address`` reads them as international when they are not a
national number of the default region.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any, ClassVar
from urllib.parse import urlencode

from consentinel.connectors import toolkit as tk
from consentinel.connectors.auth import (
    sign_vonage_jwt,
    verify_vonage_jwt,
    verify_vonage_sms,
    vonage_sms_signature,
)
from consentinel.connectors.builtin import _msgutil as u
from consentinel.connectors.toolkit import times as tt
from consentinel.streams.events import codec
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import (
    Channel,
    UsageKind,
)

_DLR_KINDS = {
    "accepted": UsageKind.SEND,
    "buffered": UsageKind.SEND,
    "delivered": UsageKind.DELIVER,
    "failed": UsageKind.FAIL,
    "rejected": UsageKind.FAIL,
    "expired": UsageKind.FAIL,
}
_MESSAGES_KINDS = {
    "submitted": UsageKind.SEND,
    "delivered": UsageKind.DELIVER,
    "read": UsageKind.OPEN,
    "rejected": UsageKind.FAIL,
    "undeliverable": UsageKind.FAIL,
}
_IGNORED = frozenset({"unknown"})
_DEFAULT_MAX_AGE = 300.0


def _max_age(instance: tk.Instance) -> float | None:
    if "max_age_s" not in instance.options:
        return _DEFAULT_MAX_AGE
    value = instance.options["max_age_s"]
    return float(value) if value else None


def _bearer(request: tk.Request) -> bool:
    return (request.header("authorization") or "").lower().startswith("bearer ")


def _sms_params(request: tk.Request) -> dict[str, str]:
    if u.is_json(request):
        data = tk.json_object(request.body)
        return {
            k: (v if isinstance(v, str) else codec.dumps(v).decode())
            for k, v in data.items()
            if v is not None
        }
    return u.flat_params(request)


def _number(value: Any, what: str) -> str:
    """``to``/``from`` of the Messages API: a string or ``{"type": ..., "number": ...}``."""
    if isinstance(value, dict):
        value = value.get("number") or value.get("id")
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
        raise InvalidInput("missing_field", f"the field {what!r} is missing or not a number")
    return str(value).strip()


class VonageConnector(tk.Connector):
    name = "vonage"
    title = "Vonage SMS API receipts and inbound SMS, Messages API status and inbound"
    produces = "usage+consent"
    auth = "SMS API: signed `sig` param (md5hash or HMAC); Messages API: Bearer JWT HS256"
    events: ClassVar[tuple[str, ...]] = ("dlr", "inbound", *_MESSAGES_KINDS)
    event_time: ClassVar[str] = (
        'SMS API: "scts" of receipts, "message-timestamp" of inbound; Messages '
        'API: "timestamp"; else receive time'
    )
    config_schema = (
        *tk.rotating_secret("signature_secret", "account signature secret"),
        tk.option("signature_method", "text", "md5hash (default), md5, sha1, sha256 or sha512"),
        tk.option("max_age_s", "number", "freshness window of signed timestamps (s)", 300),
        tk.option("api_key", "text", "account API key (put in JWTs made by `sign`)"),
        tk.option("controllers", "mapping", "map sender id / number -> controller"),
    )

    def verify(self, request: tk.Request) -> None:
        secrets = tk.secrets(self.instance, "signature_secret")
        max_age = _max_age(self.instance)
        if _bearer(request):
            verify_vonage_jwt(secrets, request.headers, request.body, tolerance=max_age)
            return
        try:
            params = _sms_params(request)
        except InvalidInput:
            params = {}  # undecodable: fails below as an unsigned request
        method = tk.option_text(self.instance, "signature_method", "md5hash")
        verify_vonage_sms(secrets, params, method=method, tolerance=max_age)  # type: ignore[arg-type]

    def map_request(self, request: tk.Request) -> tk.Output:
        if u.is_json(request):
            data = tk.json_object(request.body)
            if "message_uuid" in data:
                return self._messages(request, data)
        params = _sms_params(request)
        if "status" in params:
            return self._dlr(request, params)
        if any(k in params for k in ("text", "keyword", "type")):
            return self._sms_inbound(request, params)
        raise InvalidInput("unknown_event", "neither a delivery receipt nor an inbound message")

    # -- SMS API -------------------------------------------------------------------------

    def _client_ref(self, ref: str | None) -> tuple[str | None, str | None, dict[str, Any]]:
        """``(campaign, declared purpose, attributes)`` from a ``client-ref``."""
        if not ref:
            return None, None, {}
        campaign, *pairs = ref.split("|")
        purpose: str | None = None
        attrs: dict[str, Any] = {}
        for pair in pairs:
            key, _, value = pair.partition("=")
            if key.strip() == "purpose" and value.strip():
                purpose = self.purpose(value.strip())
                if purpose is None:
                    attrs["vendor_purpose"] = u.bounded(value.strip())
            elif key.strip() == "list" and value.strip():
                attrs["list"] = u.bounded(value.strip())
        return (u.bounded(campaign.strip()) or None), purpose, attrs

    def _dlr(self, request: tk.Request, p: dict[str, str]) -> tk.Output:
        message_id = u.text(p, "messageId", required=True)
        status = (u.text(p, "status") or "").lower()
        if status in _IGNORED:
            return tk.Output()
        if status not in _DLR_KINDS:
            raise InvalidInput("unknown_event", "status is not a known Vonage receipt status")
        kind = _DLR_KINDS[status]
        msisdn = u.text(p, "msisdn", required=True)
        assert msisdn is not None and message_id is not None
        addr = self.edge.address(msisdn, "sms", self.instance.default_region)
        received = tk.received_ms(request)
        occurred = received
        stamp = u.text(p, "message-timestamp")
        scts = u.text(p, "scts")
        if kind is UsageKind.DELIVER and scts:
            occurred = tt.compact_ms(scts, "scts")
        elif stamp:
            occurred = tt.iso_ms(stamp, "message-timestamp")
        sender = u.text(p, "to")
        controller = u.controller_for(self, sender)
        campaign, purpose, attrs = self._client_ref(u.text(p, "client-ref"))
        err = u.text(p, "err-code")
        attrs.update({"status": status, "sender_type": u.sender_type(sender)})
        if err:
            attrs["error_code"] = u.bounded(err)
        for name in ("network-code", "api-key"):
            if u.text(p, name):
                attrs[name.replace("-", "_")] = u.bounded(p[name])
        dedupe = (message_id, "send") if kind is UsageKind.SEND else (message_id, status)
        return u.status_report(
            tk.Emitter(self, received).at(dedupe, addr, occurred),
            kind,
            opt_out=(message_id, "err_code_9") if err == "9" else None,
            scope=u.sender_scope(sender),
            channel=Channel.SMS,
            controller=controller,
            campaign_id=campaign,
            sender=sender,
            declared_purpose=purpose,
            source_event_type=f"dlr.{status}",
            attributes=attrs,
        )

    def _sms_inbound(self, request: tk.Request, p: dict[str, str]) -> tk.Output:
        message_id = u.text(p, "messageId", required=True)
        msisdn = u.text(p, "msisdn", required=True)
        assert msisdn is not None and message_id is not None
        addr = self.edge.address(msisdn, "sms", self.instance.default_region)
        received = tk.received_ms(request)
        stamp = u.text(p, "message-timestamp")
        occurred = tt.iso_ms(stamp, "message-timestamp") if stamp else received
        keyword = u.classify_keyword(p.get("text"))
        if keyword is None and (u.text(p, "keyword") or "").upper() in u.STOP_WORDS:
            keyword = "stop"  # Vonage's keyword is the first word: "STOP please" opts out
        at = tk.Emitter(self, received).at((message_id, "inbound"), addr, occurred)
        own = u.text(p, "to")
        return self._reply(at, message_id, own, keyword, channel=Channel.SMS, event_type="inbound")

    def _reply(
        self, at: tk.Occurrence, message_id: str, own: str | None, keyword: str | None, **kw: Any
    ) -> tk.Output:
        """An inbound message to ``own`` (``kw``: ``channel`` and ``event_type``)."""
        return u.reply_to(at, (message_id, keyword), message_id, own=own, keyword=keyword, **kw)

    # -- Messages API --------------------------------------------------------------------

    def _messages(self, request: tk.Request, d: dict[str, Any]) -> tk.Output:
        message_uuid = u.text(d, "message_uuid", required=True)
        assert message_uuid is not None
        channel = u.sms_channel(u.text(d, "channel"))
        received = tk.received_ms(request)
        stamp = u.text(d, "timestamp")
        occurred = tt.iso_ms(stamp, "timestamp") if stamp else received
        status = u.text(d, "status")
        if status is None:
            number = _number(d.get("from"), "from")
            addr = self.edge.address(number, channel.value, self.instance.default_region)
            own = _number(d["to"], "to") if d.get("to") else None
            at = tk.Emitter(self, received).at((message_uuid, "inbound"), addr, occurred)
            keyword = u.classify_keyword(d.get("text"))
            event = "messages.inbound"
            return self._reply(at, message_uuid, own, keyword, channel=channel, event_type=event)
        status = status.lower()
        if status not in _MESSAGES_KINDS:
            raise InvalidInput("unknown_event", "status is not a known Messages API status")
        kind = _MESSAGES_KINDS[status]
        addr = self.edge.address(
            _number(d.get("to"), "to"), channel.value, self.instance.default_region
        )
        sender = _number(d["from"], "from") if d.get("from") else None
        campaign, purpose, attrs = self._client_ref(u.text(d, "client_ref"))
        attrs.update({"status": status, "sender_type": u.sender_type(sender)})
        error = d.get("error")
        if isinstance(error, dict):
            code = u.text(error, "title") or u.text(error, "code")
            if code:
                attrs["error_code"] = u.bounded(code)
        dedupe = (message_uuid, "send") if kind is UsageKind.SEND else (message_uuid, status)
        return u.status_report(
            tk.Emitter(self, received).at(dedupe, addr, occurred),
            kind,
            channel=channel,
            controller=u.controller_for(self, sender),
            campaign_id=campaign,
            sender=sender,
            declared_purpose=purpose,
            source_event_type=f"messages.{status}",
            attributes=attrs,
        )


def sign(request: tk.Request, instance: tk.Instance) -> tk.Request:
    """``request`` signed as Vonage would sign it for ``instance``.

    A Messages API request (a Bearer header, or a JSON body with ``message_uuid``) gets a fresh
    HS256 JWT with ``payload_hash``; an SMS API request gets a fresh ``timestamp`` and ``sig``
    (by ``options['signature_method']``) in the same place as its other parameters.
    """
    secret = instance.secret("signature_secret")
    messages = _bearer(request)
    if not messages and u.is_json(request):
        try:
            messages = "message_uuid" in tk.json_object(request.body)
        except InvalidInput:
            messages = False
    if messages:
        claims = {
            "iat": int(time.time()),
            "jti": str(uuid.uuid4()),
            "api_key": tk.option_text(instance, "api_key"),
            "payload_hash": hashlib.sha256(request.body).hexdigest(),
        }
        return request.with_headers({"authorization": "Bearer " + sign_vonage_jwt(secret, claims)})
    method = tk.option_text(instance, "signature_method", "md5hash")
    stamp = str(int(time.time()))
    if u.is_json(request):
        try:
            data = tk.json_object(request.body)
        except InvalidInput:
            return request  # undecodable JSON carries no signature: verify refuses it
        data = {k: v for k, v in data.items() if k != "sig"} | {"timestamp": stamp}
        as_text = {
            k: (v if isinstance(v, str) else codec.dumps(v).decode())
            for k, v in data.items()
            if v is not None
        }
        data["sig"] = vonage_sms_signature(secret, as_text, method)  # type: ignore[arg-type]
        return request.with_body(codec.dumps(data))
    if request.body.strip():
        pairs = [(k, v) for k, v in u.parse_form_pairs(request.body) if k not in ("sig",)]
        pairs = [(k, v) for k, v in pairs if k != "timestamp"] + [("timestamp", stamp)]
        sig = vonage_sms_signature(secret, pairs, method)  # type: ignore[arg-type]
        return request.with_body(urlencode([*pairs, ("sig", sig)]).encode("utf-8"))
    query = {k: v[0] for k, v in request.query.items() if v and k not in ("sig", "timestamp")}
    query["timestamp"] = stamp
    query["sig"] = vonage_sms_signature(secret, query, method)  # type: ignore[arg-type]
    return request.with_query(query)
