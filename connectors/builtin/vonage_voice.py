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


class VonageVoiceConnector(v.VoiceConnector):
    name = "vonage_voice"
    title = "Vonage Voice API: call events (one CALL use per attempt), refusals in input events"
    auth = "Authorization: Bearer JWT HS256 (signature secret) with payload_hash of the body"
    events: ClassVar[tuple[str, ...]] = (*sorted(_TERMINAL), "input")
    event_time = 'the call\'s "start_time", else "timestamp", else receive time'
    config_schema = (
        *v.borrowed(vonage.VonageConnector, "signature_secret", "signature_secret_previous"),
        *v.borrowed(vonage.VonageConnector, "max_age_s", "api_key"),
        *v.VOICE_OPTIONS,
    )

    def verify(self, request: tk.Request) -> None:
        secrets = tk.secrets(self.instance, "signature_secret")
        max_age = vonage._max_age(self.instance)
        verify_vonage_jwt(secrets, request.headers, request.body, tolerance=max_age)

    def map_request(self, request: tk.Request) -> tk.Output:
        d = tk.json_object(request.body, "the Vonage event")
        uuid = str(u.text(d, "uuid", required=True))
        inbound = (u.text(d, "direction") or "").lower() == "inbound"
        heard = "dtmf" in d or "speech" in d
        status = (u.text(d, "status") or "").lower()
        if not heard and (not status or status in _PROGRESS or (inbound and status in _TERMINAL)):
            return tk.Output()
        if not heard and status not in _TERMINAL:
            raise InvalidInput("unknown_event", "status is not a known Vonage call status")
        ours, theirs = ("to", "from") if inbound else ("from", "to")
        call = v.Call(uuid, vonage._number(d.get(theirs), theirs), _optional_number(d.get(ours)))
        received = tk.received_ms(request)
        if heard:
            via = self.refusal_in(*_input(d))
            at = _time(d, "timestamp", received)
            return self.refused(request, call, at, via) if via else tk.Output()
        started = _time(d, "start_time", _time(d, "timestamp", received))
        talked = v.duration_s(d.get("duration"), "duration")
        answered = status == "completed" and (talked > 0 or u.text(d, "start_time") is not None)
        extra: v.Attrs = {
            "direction": u.text(d, "direction"),
            "conversation": u.text(d, "conversation_uuid"),
            "disconnected_by": u.text(d, "disconnected_by"),
        }
        return self.ended(request, call, started, v.Outcome(status, answered, talked), extra)


def _optional_number(value: Any) -> str | None:
    return vonage._number(value, "from") if value else None


def _time(d: dict[str, Any], key: str, default: int) -> int:
    stamp = u.text(d, key)
    return tt.iso_ms(stamp, key) if stamp else default


def _input(d: dict[str, Any]) -> tuple[object, list[object]]:
    """The typed digits and the texts heard of an input event."""
    dtmf: dict[str, Any] = d["dtmf"] if isinstance(d.get("dtmf"), dict) else {}
    speech: dict[str, Any] = d["speech"] if isinstance(d.get("speech"), dict) else {}
    results: list[Any] = speech["results"] if isinstance(speech.get("results"), list) else []
    return dtmf.get("digits"), [r.get("text") for r in results if isinstance(r, dict)]
