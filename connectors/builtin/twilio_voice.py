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

from typing import ClassVar

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


class TwilioVoiceConnector(v.VoiceConnector):
    name = "twilio_voice"
    title = "Twilio Voice: call status callbacks (one CALL use per attempt), refusals in <Gather>"
    auth = twilio.TwilioConnector.auth
    events: ClassVar[tuple[str, ...]] = (*sorted(_TERMINAL), "gather")
    event_time = "the call's start (Timestamp - CallDuration); <Gather> refusals: receive time"
    config_schema = (
        *v.borrowed(twilio.TwilioConnector, "auth_token", "auth_token_previous"),
        *v.VOICE_OPTIONS,
    )

    def verify(self, request: tk.Request) -> None:
        secrets = tk.secrets(self.instance, "auth_token")
        params: list[tuple[str, str]] | None = None if request.body.strip() else []  # GET
        verify_twilio(secrets, request.url, request.headers, request.body, params=params)

    def map_request(self, request: tk.Request) -> tk.Output:
        p = u.flat_params(request)
        sid = u.text(p, "CallSid", required=True)
        inbound = (u.text(p, "Direction") or "").lower().startswith("inbound")
        ours, theirs = ("To", "From") if inbound else ("From", "To")
        call = v.Call(str(sid), str(u.text(p, theirs, required=True)), u.text(p, ours))
        if "Digits" in p or "SpeechResult" in p:
            via = self.refusal_in(p.get("Digits"), [p.get("SpeechResult")])
            at = tk.received_ms(request)
            return self.refused(request, call, at, via) if via else tk.Output()
        status = (u.text(p, "CallStatus") or "").lower()
        if status in _PROGRESS or (inbound and status in _TERMINAL):
            return tk.Output()
        if status not in _TERMINAL:
            raise InvalidInput("unknown_event", "CallStatus is not a known Twilio call status")
        stamp = u.text(p, "Timestamp")
        ended = tt.any_time_ms(stamp, "Timestamp") if stamp else tk.received_ms(request)
        talked = v.duration_s(u.text(p, "CallDuration"), "CallDuration")
        started = tt.bounded_ms(ended - talked * 1000, "Timestamp - CallDuration")
        extra: v.Attrs = {"direction": u.text(p, "Direction"), "account": u.text(p, "AccountSid")}
        for name, key in (("AnsweredBy", "answered_by"), ("SipResponseCode", "sip_response")):
            extra[key] = u.text(p, name)
        outcome = v.Outcome(status, status == "completed", talked)
        return self.ended(request, call, started, outcome, extra)
