"""What the voice connectors share (twilio_voice, vonage_voice): the CALL use of one call
attempt, the refusal heard during a call, and the call's context (campaign, attempt, the
consumer's time zone).

One CALL use per call attempt, emitted when the platform reports the call's END (its only
report with the outcome and the duration), with the id ``(call id, "call")``: a redelivery,
or a second terminal report of the same call, keeps that id, so one attempt is counted once.
Its attributes (read by R10-R12):

* ``answered`` (bool), ``duration_s`` (int, seconds talked), ``call_status`` (the platform's);
* ``attempt`` (int, 1 = first) and ``campaign_id`` when the dialer put them in the callback
  URL (``?campaign=...&attempt=...``): the platforms do not know them;
* ``tz``: the consumer's IANA time zone: the URL's ``tz`` when it names one, else the zone
  of the number when it has exactly one (``+33 6...`` -> Europe/Paris; ``+1 ...`` has
  several: none), else absent (R10 then assumes Europe/Paris).

A refusal during a call ("stop calling me" said, a refusal digit pressed, a dialer
disposition) is an objection: a ConsentEvent ``refuse`` on the ``phone`` channel for every
purpose of the controller, attribute ``refusal`` = ``during_call`` and ``via`` (``dtmf`` or
``speech``), id ``(call id, "refusal")``. (The dialer CDR mapping, declarative/examples/
dialer_cdr.yaml, emits the same ``refuse`` for its refusal dispositions.)

Nothing here keeps a number: numbers go to ``Edge.address`` and, for the time zone, to a
parser whose result is a zone name.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from consentinel.connectors import toolkit as tk
from consentinel.connectors.builtin import _msgutil as u
from consentinel.streams.events.errors import FatalConfigError
from consentinel.streams.events.identity import AddressError, normalize_phone
from consentinel.streams.events.records import Channel, ConsentAction, Proof, Scalar, UsageKind
from phonenumbers import timezone as number_zones

Attrs = dict[str, Scalar | None]
MAX_ATTEMPT: Final = 1000
MAX_DURATION_S: Final = 7 * 86_400  # a week on the line is a wrong unit, not a call
#: What a consumer says to refuse (compared without case, accents or punctuation, as whole
#: words). ``refusal_phrases`` adds more.
REFUSAL_PHRASES: Final = (
    "stop",
    "ne m appelez plus",
    "ne plus m appeler",
    "arretez de m appeler",
    "pas interesse",
    "pas interessee",
    "retirez moi",
    "liste rouge",
    "bloctel",
    "stop calling",
    "do not call",
    "dont call",
    "don t call",
    "not interested",
    "remove me",
)
VOICE_OPTIONS: Final = (
    tk.ConfigField(
        "refusal_digits",
        "DTMF inputs that mean 'stop calling me' in your IVR (none by default)",
        default=[],
        kind="list",
    ),
    tk.ConfigField(
        "refusal_phrases", "more spoken phrases that mean a refusal", default=[], kind="list"
    ),
    tk.ConfigField("controllers", "map caller id / number -> controller", kind="mapping"),
)


@dataclass(frozen=True, slots=True)
class CallContext:
    """What the dialer put in the callback URL: campaign, attempt number, time zone."""

    campaign: str | None = None
    attempt: int | None = None
    tz: str | None = None


def context_of(request: tk.Request) -> CallContext:
    """``campaign``, ``attempt`` and ``tz`` from the callback URL's query (all optional)."""
    campaign = tk.short_text(request.param("campaign"), 200)
    raw_attempt = request.param("attempt")
    attempt = None
    if raw_attempt not in (None, ""):
        attempt = tk.bounded_int(raw_attempt, "the URL's attempt", low=1, high=MAX_ATTEMPT)
    return CallContext(campaign, attempt, zone_name(request.param("tz")))


def zone_name(value: str | None) -> str | None:
    """``value`` when it is an IANA time zone, else None."""
    if not value or len(value) > 64:
        return None
    try:
        return ZoneInfo(value.strip()).key
    except (ZoneInfoNotFoundError, ValueError):
        return None


def number_zone(raw: str, region: str) -> str | None:
    """The time zone of a phone number when it has exactly one, else None."""
    try:
        parsed = phonenumbers.parse(normalize_phone(raw, region))
    except (AddressError, phonenumbers.NumberParseException):
        return None
    zones = [str(z) for z in number_zones.time_zones_for_number(parsed) if z != "Etc/Unknown"]
    return zones[0] if len(zones) == 1 else None


def duration_s(value: object, field: str) -> int:
    """Seconds on the line (absent: 0)."""
    if value is None or value == "":
        return 0
    return tk.bounded_int(value, field, high=MAX_DURATION_S)


def _fold(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch)).lower()
    return " ".join(re.sub(r"[^a-z0-9]+", " ", plain).split())


class Refusals:
    """The instance's refusal digits and phrases."""

    def __init__(self, instance: tk.Instance) -> None:
        digits = instance.options.get("refusal_digits") or []
        phrases = instance.options.get("refusal_phrases") or []
        if not isinstance(digits, list) or not isinstance(phrases, list):
            raise FatalConfigError(
                ["refusal_digits and refusal_phrases must be lists"],
                f"connector instance {instance.name!r}",
            )
        self.digits = frozenset(str(d).strip() for d in digits if str(d).strip())
        folded = {_fold(p) for p in (*REFUSAL_PHRASES, *map(str, phrases))}
        words = sorted((p for p in folded if p), key=len, reverse=True)
        self._said = re.compile(r"\b(?:" + "|".join(map(re.escape, words)) + r")\b")

    def of_digits(self, digits: object) -> bool:
        return isinstance(digits, str) and digits.strip() in self.digits

    def of_speech(self, texts: Iterable[object]) -> bool:
        return any(isinstance(t, str) and self._said.search(_fold(t)) for t in texts)


@dataclass(frozen=True, slots=True)
class Call:
    """One call as its platform names it: its id, the consumer's number, our caller id."""

    call_id: str
    number: str
    caller: str | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a call attempt ended: the platform's status, answered, seconds talked."""

    status: str
    answered: bool
    talked_s: int


def borrowed(cls: type[tk.Connector], *names: str) -> tuple[tk.ConfigField, ...]:
    """The options ``names`` as the connector ``cls`` declares them (the same secrets)."""
    return tuple(f for f in cls.config_schema if f.name in names)


class VoiceConnector(tk.Connector):
    """What a voice connector does once it has read its platform's report."""

    produces = "usage+consent"

    def __init__(self, instance: tk.Instance, edge: tk.Edge) -> None:
        super().__init__(instance, edge)
        self.refusals = Refusals(instance)

    def ended(
        self, request: tk.Request, call: Call, started_ms: int, outcome: Outcome, extra: Attrs
    ) -> tk.Output:
        """The CALL use of one call attempt (see the module text)."""
        region = self.instance.default_region
        context = context_of(request)
        attrs: Attrs = {
            **extra,
            "call_status": outcome.status,
            "answered": outcome.answered,
            "duration_s": outcome.talked_s,
            "attempt": context.attempt,
            "tz": context.tz or number_zone(call.number, region),
        }
        emit = tk.Emitter(self, tk.received_ms(request))
        address = self.edge.address(call.number, "phone", region)
        controller = u.controller_for(self, call.caller)
        use = emit.usage((call.call_id, "call"), UsageKind.CALL, address, started_ms, role=None,
                         channel=Channel.PHONE, controller=controller, campaign_id=context.campaign,
                         sender=call.caller, source_event_type=f"call.{outcome.status}",
                         attributes=attrs)  # fmt: skip
        return tk.Output(usage=[use])

    def refused(self, request: tk.Request, call: Call, at_ms: int, via: str) -> tk.Output:
        """The objection a consumer made during a call (see the module text)."""
        address = self.edge.address(call.number, "phone", self.instance.default_region)
        emit = tk.Emitter(self, tk.received_ms(request))
        attrs = {"refusal": "during_call", "via": via, "campaign": context_of(request).campaign}
        proof = Proof(method=f"call_{via}", collected_at_ms=at_ms, vendor_receipt=call.call_id)
        controller = u.controller_for(self, call.caller)
        objection = emit.consent((call.call_id, "refusal"), ConsentAction.REFUSE, address, at_ms,
                                 role=None, channels=[Channel.PHONE], proof=proof,
                                 attributes=attrs, controller=controller)  # fmt: skip
        return tk.Output(consent=[objection])

    def refusal_in(self, digits: object, said: Iterable[object]) -> str | None:
        """``dtmf`` or ``speech`` when the input is a refusal, else None."""
        if self.refusals.of_digits(digits):
            return "dtmf"
        return "speech" if self.refusals.of_speech(said) else None
