"""CM.com Business Messaging: status reports and inbound (MO) messages (connectors.md §2.3).

Authentication: CM.com signs nothing, so the callback URL carries an unguessable token,
``?token=<secret>`` (parameter name ``options['token_param']``), compared in constant time by
:func:`consentinel.connectors.auth.verify_url_token`; ``token_previous`` is accepted while
rotating. Add an IP allowlist in front of it.

Status reports, both forms accepted [U]:

* JSON ``{"messages": {"msg": {...}}}`` (``msg`` an object or a list), fields ``received``,
  ``to``, ``reference``, ``status{code, errorCode, errorDescription}``, ``operator``;
* form body or GET query with flat, case-insensitive names (``received``/``sent``, ``to``,
  ``reference``, ``statuscode``/``status``, ``errorcode``, ``operator``).

``status`` may be numeric or a name [U, both]: 0/Accepted and Sent -> ``send`` (one id per
reference + recipient), 2/Delivered -> ``deliver``, 1/Rejected and 3/Failed -> ``fail``,
Cancelled -> nothing. ``received`` without a zone is taken as UTC [U]. ``reference`` is the
campaign id; ``customGrouping``/2/3 when present become tags and the first the list id [U].
Numbers in ``00`` international form are normalized by ``Edge.address``.

Inbound MO (JSON with ``from`` and ``message``; a flat form variant is accepted too [U]):
``from``/``to``/``message`` as objects (``number``, ``text``) or plain strings [U, both];
``timeUtc`` (UTC); a ``reply`` UsageEvent, and STOP/START keywords (whole message) give a
``withdraw``/``grant`` scoped to our short code or sender id. ``groupings`` become tags.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any, ClassVar

from consentinel.connectors import toolkit as tk
from consentinel.connectors.auth import verify_url_token
from consentinel.connectors.builtin import _msgutil as u
from consentinel.connectors.toolkit import times as tt
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import Channel, UsageKind

_STATUS = {
    "0": "accepted",
    "1": "rejected",
    "2": "delivered",
    "3": "failed",
    "accepted": "accepted",
    "sent": "sent",
    "rejected": "rejected",
    "delivered": "delivered",
    "failed": "failed",
    "cancelled": "cancelled",
    "canceled": "cancelled",
}
_KINDS = {
    "accepted": UsageKind.SEND,
    "sent": UsageKind.SEND,
    "delivered": UsageKind.DELIVER,
    "rejected": UsageKind.FAIL,
    "failed": UsageKind.FAIL,
}


def _token_param(instance: tk.Instance) -> str:
    return tk.option_text(instance, "token_param", "token")


def _scalar(value: Any, key: str) -> str | None:
    """``value`` or ``value[key]`` as text: CM sub-objects may be flattened [U]."""
    if isinstance(value, Mapping):
        value = value.get(key)
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
        return str(value).strip()
    return None


class CMComConnector(tk.Connector):
    name = "cmcom"
    title = "CM.com Business Messaging: status reports and inbound SMS (STOP)"
    produces = "usage+consent"
    auth = "unsigned: secret token in the callback URL (?token=...)"
    events: ClassVar[tuple[str, ...]] = (*_KINDS, "mo")
    event_time: ClassVar[str] = (
        'status "received" (ISO 8601) for reports, "timeUtc" for inbound '
        "messages, else receive time"
    )
    config_schema = (
        *tk.rotating_secret("token", "secret in the callback URL"),
        tk.option("token_param", "text", "query parameter carrying the token", "token"),
        tk.option("sender", "text", "our sender id / short code, for status reports"),
        tk.option("controllers", "mapping", "map sender / short code -> controller"),
    )

    def verify(self, request: tk.Request) -> None:
        verify_url_token(
            tk.secrets(self.instance, "token"), request.url, param=_token_param(self.instance)
        )

    def map_request(self, request: tk.Request) -> tk.Output:
        if u.is_json(request):
            data = tk.json_object(request.body)
            messages = data.get("messages")
            if isinstance(messages, Mapping):
                reports = messages.get("msg")
                items = reports if isinstance(reports, list) else [reports]
                refused = "messages.msg is not an object"
                report = partial(self._status, request)
                return tk.map_all(items, report, refused, code="missing_field")
            if "from" in data and "message" in data:
                return self._inbound(request, data)
            raise InvalidInput("unknown_event", "neither a status report nor an inbound message")
        params = {k.lower(): v for k, v in u.flat_params(request).items()}
        params.pop(_token_param(self.instance).lower(), None)
        if u.ci_get(params, "statuscode", "status") is not None:
            return self._status(request, params)
        if u.ci_get(params, "from") is not None and u.ci_get(params, "message", "text"):
            return self._inbound(request, params)
        raise InvalidInput("unknown_event", "neither a status report nor an inbound message")

    def _status(self, request: tk.Request, m: Mapping[str, Any]) -> tk.Output:
        raw_status = m.get("status")
        code = _scalar(raw_status, "code") if isinstance(raw_status, Mapping) else None
        if code is None:
            code = _scalar(u.ci_get(m, "statuscode", "status"), "code")
        status = _STATUS.get((code or "").lower())
        if code is None:
            raise InvalidInput("missing_field", "the status code is missing")
        if status is None:
            raise InvalidInput("unknown_event", "the status code is not a known CM.com status")
        if status == "cancelled":
            return tk.Output()
        to = _scalar(u.ci_get(m, "to"), "number")
        if to is None:
            raise InvalidInput("missing_field", "the field 'to' is missing")
        addr = self.edge.address(to, "sms", self.instance.default_region)
        reference = _scalar(u.ci_get(m, "reference"), "reference")
        received = tk.received_ms(request)
        stamp = _scalar(u.ci_get(m, "received", "sent"), "")
        occurred = tt.iso_ms(stamp, "received") if stamp else received
        kind = _KINDS[status]
        groupings = [
            g
            for g in (
                _scalar(u.ci_get(m, name), "")
                for name in ("customGrouping", "customGrouping2", "customGrouping3")
            )
            if g
        ]
        sender = _scalar(u.ci_get(m, "from"), "number") or self.instance.options.get("sender")
        sender = str(sender) if sender else None
        attrs: dict[str, Any] = {"status": status, "status_code": u.bounded(code)}
        error = raw_status.get("errorCode") if isinstance(raw_status, Mapping) else None
        error = _scalar(error, "") or _scalar(u.ci_get(m, "errorcode"), "")
        if error:
            attrs["error_code"] = u.bounded(error)
        operator = _scalar(u.ci_get(m, "operator"), "")
        if operator:
            attrs["operator"] = u.bounded(operator)
        channel = u.sms_channel(_scalar(u.ci_get(m, "channel"), "")) if m.get("channel") else None
        dedupe = (
            (reference, addr.key, "send") if kind is UsageKind.SEND else (reference, addr.key, code)
        )
        return u.status_report(
            tk.Emitter(self, received).at(dedupe, addr, occurred),
            kind,
            channel=channel or Channel.SMS,
            controller=u.controller_for(self, sender),
            campaign_id=u.bounded(reference) if reference else None,
            list_id=groupings[0] if groupings else None,
            sender=sender,
            tags=[u.bounded(g) for g in groupings],
            source_event_type=f"status.{status}",
            attributes=attrs,
        )

    def _inbound(self, request: tk.Request, d: Mapping[str, Any]) -> tk.Output:
        number = _scalar(u.ci_get(d, "from"), "number")
        if number is None:
            raise InvalidInput("missing_field", "the field 'from' is missing")
        channel = u.sms_channel(_scalar(u.ci_get(d, "channel"), "") or "sms")
        addr = self.edge.address(number, channel.value, self.instance.default_region)
        own = _scalar(u.ci_get(d, "to"), "number")
        message = u.ci_get(d, "message", "text")
        body = _scalar(message, "text") if isinstance(message, Mapping) else message
        keyword = u.classify_keyword(body if isinstance(body, str) else None)
        received = tk.received_ms(request)
        stamp = _scalar(u.ci_get(d, "timeUtc"), "")
        occurred = tt.iso_ms(stamp, "timeUtc") if stamp else received
        reference = _scalar(u.ci_get(d, "reference"), "")
        raw_groupings = d.get("groupings")
        groupings = [
            u.bounded(g)
            for g in (raw_groupings if isinstance(raw_groupings, list) else [])
            if isinstance(g, str) and g
        ][:3]
        # CM.com gives an MO no id of its own: sender, time and text identify it (hashed)
        dedupe = ("mo", addr.key, own, stamp, reference, body if isinstance(body, str) else "")
        return u.reply_to(
            tk.Emitter(self, received).at(dedupe, addr, occurred),
            (*dedupe, "consent"),
            reference,
            own=own,
            keyword=keyword,
            channel=channel,
            event_type="mo",
            campaign_id=u.bounded(reference) if reference else None,
            tags=groupings,
        )


def sign(request: tk.Request, instance: tk.Instance) -> tk.Request:
    """``request`` with the instance's URL token, where CM.com would call it."""
    token = instance.secret("token").decode("utf-8")
    return request.with_query({_token_param(instance): token})
