"""Twilio Programmable Voice: call status callbacks and <Gather> results (Twilio's Voice
webhooks documentation: "Call status callbacks"; "TwiML <Gather>").

Authentication: ``X-Twilio-Signature`` exactly as for Twilio Messaging (HMAC-SHA1 with the
Auth Token over the full URL, query included, plus the sorted form parameters), checked by
:func:`consentinel.connectors.auth.verify_twilio`; ``auth_token_previous`` while rotating.
``sign`` is the Messaging connector's.

Status callbacks (form POST; ``CallSid``, ``CallStatus``, ``To``, ``From``, ``Direction``,
``Timestamp`` (RFC 2822), ``CallDuration``, ``AnsweredBy``, ``SipResponseCode``...):

* a terminal ``CallStatus`` (``completed``, ``busy``, ``no-answer``, ``failed``,
  ``canceled``) -> ONE ``call`` UsageEvent for the attempt (see ``_voice``), id
  ``(CallSid, "call")``; ``answered`` is ``completed``; ``duration_s`` is ``CallDuration``;
  the time is the call's start: ``Timestamp`` (when it ended) minus ``CallDuration``
  (Twilio sends no start time) [P], receive time when ``Timestamp`` is absent;
* ``queued``, ``initiated``, ``ringing``, ``in-progress`` (the ``initiated``/``ringing``/
  ``answered`` events of ``StatusCallbackEvent``) -> nothing: the end reports the attempt;
* ``Direction`` ``inbound`` (the consumer called us) -> nothing: not a call we made;
* other statuses -> ``unknown_event``.

The callee is ``To`` (channel ``phone``); the caller id ``From`` is the sender (masked) and
may select a controller (``options['controllers']``). The dialer may add ``campaign``,
``attempt`` and ``tz`` to the StatusCallback URL (they are signed with it).

<Gather> action requests (``Digits`` or ``SpeechResult`` with the ``CallSid``): a refusal
(``refusal_digits`` pressed, or a refusal phrase said) -> a ConsentEvent ``refuse`` on the
phone channel, id ``(CallSid, "refusal")``, at receive time; any other answer -> nothing.
The consumer is ``To`` for our calls, ``From`` for inbound ones. What was said is not kept.
"""

from __future__ import annotations

from typing import Any, ClassVar

from consentinel.connectors import toolkit as tk
from consentinel.connectors.auth import verify_twilio
from consentinel.connectors.builtin import _msgutil as u
from consentinel.connectors.builtin import _voice as v
from consentinel.connectors.builtin import twilio
from consentinel.connectors.toolkit import times as tt
from consentinel.streams.events.errors import InvalidInput

_TERMINAL = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
_PROGRESS = frozenset({"queued", "initiated", "ringing", "in-progress"})

sign = twilio.sign  # the same X-Twilio-Signature as Messaging


class TwilioVoiceConnector(tk.Connector):
    name = "twilio_voice"
    title = "Twilio Voice: call status callbacks (one CALL use per attempt), refusals in <Gather>"
    produces = "usage+consent"
    auth = "X-Twilio-Signature: HMAC-SHA1 (Auth Token) of the full URL + sorted form params"
    events: ClassVar[tuple[str, ...]] = (*sorted(_TERMINAL), "gather")
    event_time: ClassVar[str] = (
        "the call's start: Timestamp minus CallDuration (else receive time); "
        "<Gather> refusals: receive time"
    )
    config_schema = (
        tk.ConfigField("auth_token", "account Auth Token", required=True, secret=True),
        tk.ConfigField("auth_token_previous", "previous Auth Token while rotating", secret=True),
        *v.VOICE_OPTIONS,
    )

    def __init__(self, instance: tk.Instance, edge: tk.Edge) -> None:
        super().__init__(instance, edge)
        self.refusals = v.Refusals(instance)

    def verify(self, request: tk.Request) -> None:
        params: list[tuple[str, str]] | None = None if request.body.strip() else []  # GET
        secrets = tk.secrets(self.instance, "auth_token")
        verify_twilio(secrets, request.url, request.headers, request.body, params=params)

    def map_request(self, request: tk.Request) -> tk.Output:
        params = u.flat_params(request)
        sid = u.text(params, "CallSid", required=True)
        assert sid is not None
        inbound = (u.text(params, "Direction") or "").lower().startswith("inbound")
        if "Digits" in params or "SpeechResult" in params:
            return self._gathered(request, params, sid, inbound)
        status = (u.text(params, "CallStatus") or "").lower()
        if status in _PROGRESS or (inbound and status in _TERMINAL):
            return tk.Output()
        if status not in _TERMINAL:
            raise InvalidInput("unknown_event", "CallStatus is not a known Twilio call status")
        return self._ended(request, params, sid, status)

    def _consumer(self, params: dict[str, str], inbound: bool) -> tuple[tk.Address, str]:
        number = u.text(params, "From" if inbound else "To", required=True)
        assert number is not None
        region = self.instance.default_region
        return self.edge.address(number, "phone", region), number

    def _ended(self, request: tk.Request, p: dict[str, str], sid: str, status: str) -> tk.Output:
        addr, number = self._consumer(p, inbound=False)
        received = tk.received_ms(request)
        stamp = u.text(p, "Timestamp")
        ended = tt.any_time_ms(stamp, "Timestamp") if stamp else received
        talked = v.duration_s(u.text(p, "CallDuration"), "CallDuration")
        caller = u.text(p, "From")
        attributes: dict[str, Any] = {"direction": u.text(p, "Direction")}
        for name, key in (("AnsweredBy", "answered_by"), ("SipResponseCode", "sip_response")):
            if u.text(p, name):
                attributes[key] = u.bounded(p[name])
        if u.text(p, "AccountSid"):
            attributes["account"] = u.bounded(p["AccountSid"])
        use = v.call_use(
            tk.Emitter(self, received),
            sid,
            addr,
            tt.bounded_ms(ended - talked * 1000, "Timestamp - CallDuration"),
            status=status,
            answered=status == "completed",
            talked_s=talked,
            context=v.context_of(request),
            tz=v.number_zone(number, self.instance.default_region),
            sender=caller,
            controller=u.controller_for(self, caller),
            source_event_type=f"call.{status}",
            attributes=attributes,
        )
        return tk.Output(usage=[use])

    def _gathered(
        self, request: tk.Request, p: dict[str, str], sid: str, inbound: bool
    ) -> tk.Output:
        addr, _ = self._consumer(p, inbound)
        if self.refusals.of_digits(p.get("Digits")):
            via = "dtmf"
        elif self.refusals.of_speech([p.get("SpeechResult")]):
            via = "speech"
        else:
            return tk.Output()
        caller = u.text(p, "To" if inbound else "From")
        received = tk.received_ms(request)
        objection = v.refusal(
            tk.Emitter(self, received),
            sid,
            addr,
            received,
            via=via,
            controller=u.controller_for(self, caller),
            campaign=v.context_of(request).campaign,
        )
        return tk.Output(consent=[objection])
