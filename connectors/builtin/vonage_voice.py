"""Vonage Voice API: event webhooks and input (DTMF / speech) results (Vonage's "Voice API
Webhooks Reference").

Authentication: signed callbacks, ``Authorization: Bearer <JWT>`` HS256 with the account's
signature secret and a ``payload_hash`` claim over the raw body, as for the Messages API
(:func:`consentinel.connectors.auth.verify_vonage_jwt`; ``signature_secret_previous`` while
rotating; ``max_age_s`` bounds ``iat``, default 300, None turns it off). ``sign`` is the
Vonage connector's JWT signing. JSON bodies only (``event_method`` POST, the default).

Call events (``uuid``, ``conversation_uuid``, ``status``, ``direction``, ``from``, ``to``,
``timestamp``; the end adds ``start_time``, ``end_time``, ``duration``):

* a terminal ``status`` (``completed``, ``busy``, ``cancelled``, ``failed``, ``rejected``,
  ``timeout``, ``unanswered``) -> ONE ``call`` UsageEvent per leg (see ``_voice``), id
  ``(uuid, "call")``: ``answered`` is ``completed`` with a ``start_time`` or a duration;
  ``duration_s`` is ``duration``; the time is ``start_time``, else ``timestamp``, else
  receive time;
* ``started``, ``ringing``, ``answered``, ``machine``, ``human`` -> nothing (the end reports
  the attempt); ``direction`` ``inbound`` -> nothing (the consumer called us);
* events without a ``status`` (transfer, record, notify...) -> nothing.

Input events (``dtmf`` and/or ``speech`` with the ``uuid``): a refusal (``refusal_digits``
typed, or a refusal phrase among ``speech.results[].text``) -> a ConsentEvent ``refuse`` on
the phone channel, id ``(uuid, "refusal")``, at ``timestamp`` (else receive time); any other
input -> nothing. Nothing said is kept.

The callee is ``to`` (``from`` on inbound calls); ``to``/``from`` may be a number or an
object with ``number`` [U: both accepted]. Numbers come without ``+``. The dialer may add
``campaign``, ``attempt`` and ``tz`` to the event URL [U: Vonage's JWT does not cover the
URL, only the body].
"""

from __future__ import annotations

from typing import Any, ClassVar

from consentinel.connectors import toolkit as tk
from consentinel.connectors.auth import verify_vonage_jwt
from consentinel.connectors.builtin import _msgutil as u
from consentinel.connectors.builtin import _voice as v
from consentinel.connectors.builtin import vonage
from consentinel.connectors.toolkit import times as tt
from consentinel.streams.events.errors import InvalidInput

_TERMINAL = frozenset(
    {"completed", "busy", "cancelled", "failed", "rejected", "timeout", "unanswered"}
)
_PROGRESS = frozenset({"started", "ringing", "answered", "machine", "human"})


def sign(request: tk.Request, instance: tk.Instance) -> tk.Request:
    """``request`` with the Bearer JWT Vonage would send (the Vonage connector's signing)."""
    return vonage.sign(request.with_headers({"authorization": "Bearer -"}), instance)


class VonageVoiceConnector(tk.Connector):
    name = "vonage_voice"
    title = "Vonage Voice API: call events (one CALL use per attempt), refusals in input events"
    produces = "usage+consent"
    auth = "Authorization: Bearer JWT HS256 (signature secret) with payload_hash of the body"
    events: ClassVar[tuple[str, ...]] = (*sorted(_TERMINAL), "input")
    event_time: ClassVar[str] = (
        'the call\'s "start_time", else "timestamp", else receive time; input: "timestamp"'
    )
    config_schema = (
        tk.ConfigField("signature_secret", "account signature secret", required=True, secret=True),
        tk.ConfigField("signature_secret_previous", "previous signature secret", secret=True),
        tk.ConfigField(
            "max_age_s", "freshness window of the JWT's iat (s)", default=300, kind="number"
        ),
        tk.ConfigField("api_key", "account API key (put in JWTs made by `sign`)", kind="text"),
        *v.VOICE_OPTIONS,
    )

    def __init__(self, instance: tk.Instance, edge: tk.Edge) -> None:
        super().__init__(instance, edge)
        self.refusals = v.Refusals(instance)

    def verify(self, request: tk.Request) -> None:
        max_age = self.instance.options.get("max_age_s", 300)
        verify_vonage_jwt(
            tk.secrets(self.instance, "signature_secret"),
            request.headers,
            request.body,
            tolerance=float(max_age) if max_age else None,
        )

    def map_request(self, request: tk.Request) -> tk.Output:
        data = tk.json_object(request.body, "the Vonage event")
        uuid = u.text(data, "uuid", required=True)
        assert uuid is not None
        inbound = (u.text(data, "direction") or "").lower() == "inbound"
        if "dtmf" in data or "speech" in data:
            return self._input(request, data, uuid, inbound)
        status = (u.text(data, "status") or "").lower()
        if not status or status in _PROGRESS or (inbound and status in _TERMINAL):
            return tk.Output()
        if status not in _TERMINAL:
            raise InvalidInput("unknown_event", "status is not a known Vonage call status")
        return self._ended(request, data, uuid, status)

    def _consumer(self, data: dict[str, Any], inbound: bool) -> tuple[tk.Address, str]:
        number = vonage._number(data.get("from" if inbound else "to"), "from" if inbound else "to")
        region = self.instance.default_region
        return self.edge.address(number, "phone", region), number

    def _time(self, data: dict[str, Any], key: str, default: int) -> int:
        stamp = u.text(data, key)
        return tt.iso_ms(stamp, key) if stamp else default

    def _ended(self, request: tk.Request, d: dict[str, Any], uuid: str, status: str) -> tk.Output:
        addr, number = self._consumer(d, inbound=False)
        received = tk.received_ms(request)
        started = self._time(d, "start_time", self._time(d, "timestamp", received))
        talked = v.duration_s(d.get("duration"), "duration")
        answered = status == "completed" and (talked > 0 or u.text(d, "start_time") is not None)
        caller = vonage._number(d["from"], "from") if d.get("from") else None
        attributes: dict[str, Any] = {
            "direction": u.text(d, "direction"),
            "conversation": u.text(d, "conversation_uuid"),
            "disconnected_by": u.text(d, "disconnected_by"),
        }
        use = v.call_use(
            tk.Emitter(self, received),
            uuid,
            addr,
            started,
            status=status,
            answered=answered,
            talked_s=talked,
            context=v.context_of(request),
            tz=v.number_zone(number, self.instance.default_region),
            sender=caller,
            controller=u.controller_for(self, caller),
            source_event_type=f"call.{status}",
            attributes=attributes,
        )
        return tk.Output(usage=[use])

    def _input(self, request: tk.Request, d: dict[str, Any], uuid: str, inbound: bool) -> tk.Output:
        addr, _ = self._consumer(d, inbound)
        dtmf: dict[str, Any] = d["dtmf"] if isinstance(d.get("dtmf"), dict) else {}
        speech: dict[str, Any] = d["speech"] if isinstance(d.get("speech"), dict) else {}
        results: list[Any] = speech["results"] if isinstance(speech.get("results"), list) else []
        if self.refusals.of_digits(dtmf.get("digits")):
            via = "dtmf"
        elif self.refusals.of_speech(r.get("text") for r in results if isinstance(r, dict)):
            via = "speech"
        else:
            return tk.Output()
        own = d.get("from" if not inbound else "to")
        caller = vonage._number(own, "from") if own else None
        received = tk.received_ms(request)
        objection = v.refusal(
            tk.Emitter(self, received),
            uuid,
            addr,
            self._time(d, "timestamp", received),
            via=via,
            controller=u.controller_for(self, caller),
            campaign=v.context_of(request).campaign,
        )
        return tk.Output(consent=[objection])
