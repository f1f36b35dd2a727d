"""Twilio Voice connector: one CALL use per attempt, refusals in <Gather>, conformance kit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from consentinel.connectors import testkit as kit
from consentinel.connectors.auth import AuthenticationFailed
from consentinel.connectors.builtin import twilio_voice
from consentinel.connectors.contract import Instance, Request
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.ids import event_id
from consentinel.streams.events.records import Channel, ConsentAction, UsageKind

SAMPLES = Path(__file__).parent / "samples" / "twilio_voice"
TOKEN = "test_auth_token_0000000000000000"
URL = "https://hooks.example.test/hooks/voice-acme?campaign=spring-2026&attempt=2"
RECEIVED = 1_767_607_500_000
ENDED_MS = 1_767_607_395_000  # Mon, 05 Jan 2026 10:03:15 +0000


def inst(**options: Any) -> Instance:
    options = {"refusal_digits": ["9"], **options}
    return kit.instance(
        "twilio_voice", name="voice-acme", secrets={"auth_token": TOKEN}, options=options
    )


INST = inst()


def params(name: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((SAMPLES / f"{name}.json").read_text("utf-8"))
    return data


def form(fields: dict[str, str], url: str = URL, instance_: Instance = INST) -> Request:
    request = Request(
        method="POST",
        url=url,
        path="/",
        query=parse_qs(urlsplit(url).query),
        headers={"content-type": "application/x-www-form-urlencoded"},
        body=urlencode(fields).encode("utf-8"),
        received_at_ms=RECEIVED,
    )
    return twilio_voice.sign(request, instance_)


def mapped(name: str, url: str = URL, instance_: Instance = INST, **changes: str) -> Any:
    connector = twilio_voice.TwilioVoiceConnector(instance_, kit.make_edge())
    request = form({**params(name), **changes}, url, instance_)
    connector.verify(request)
    return connector.map_request(request)


def test_completed_call_is_one_call_use_with_its_outcome() -> None:
    out = mapped("completed")
    assert out.consent == []
    (use,) = out.usage
    assert use.kind is UsageKind.CALL and use.channel is Channel.PHONE
    assert use.subject_key == kit.make_edge().address("+33612345678", "phone").key
    assert use.event_id == event_id("voice-acme", "CA0123456789abcdef0123456789abcd01", "call")
    assert use.occurred_at_ms == ENDED_MS - 95_000  # the start: Timestamp - CallDuration
    assert use.campaign_id == "spring-2026"
    assert use.attributes["answered"] is True
    assert use.attributes["duration_s"] == 95
    assert use.attributes["attempt"] == 2
    assert use.attributes["tz"] == "Europe/Paris"  # the number's only zone
    assert use.attributes["answered_by"] == "human"
    assert use.sender is not None and "87654321" not in use.sender  # caller id masked


def test_unanswered_call_is_an_attempt_not_answered() -> None:
    (use,) = mapped("no_answer").usage
    assert use.attributes["answered"] is False and use.attributes["duration_s"] == 0
    assert use.attributes["call_status"] == "no-answer"
    assert use.occurred_at_ms == 1_767_607_540_000


def test_progress_callbacks_and_inbound_calls_add_nothing() -> None:
    assert len(mapped("ringing")) == 0
    assert len(mapped("completed", CallStatus="in-progress")) == 0
    assert len(mapped("completed", Direction="inbound")) == 0


def test_every_terminal_report_of_one_call_has_the_same_id() -> None:
    first = mapped("completed").usage[0]
    again = mapped("completed", CallStatus="canceled").usage[0]
    assert first.event_id == again.event_id  # one attempt counted once


def test_url_time_zone_wins_and_a_bad_attempt_is_refused() -> None:
    url = URL + "&tz=America/Martinique"
    assert mapped("completed", url).usage[0].attributes["tz"] == "America/Martinique"
    with pytest.raises(InvalidInput) as err:
        mapped("completed", URL.replace("attempt=2", "attempt=0"))
    assert err.value.code == "bad_value"


def test_unknown_status_is_refused() -> None:
    with pytest.raises(InvalidInput) as err:
        mapped("completed", CallStatus="teleported")
    assert err.value.code == "unknown_event"


def test_spoken_refusal_is_a_phone_objection() -> None:
    out = mapped("gather_speech")
    assert out.usage == []
    (refusal,) = out.consent
    assert refusal.action is ConsentAction.REFUSE
    assert refusal.channels == [Channel.PHONE] and refusal.purposes == []
    assert refusal.attributes == {
        "refusal": "during_call",
        "via": "speech",
        "campaign": "spring-2026",
    }
    assert refusal.event_id == event_id(
        "voice-acme", "CA0123456789abcdef0123456789abcd01", "refusal"
    )
    assert refusal.subject_key == kit.make_edge().address("+33612345678", "phone").key
    assert refusal.occurred_at_ms == RECEIVED


def test_refusal_digit_only_when_configured() -> None:
    assert mapped("gather_digits").consent[0].attributes["via"] == "dtmf"
    assert len(mapped("gather_digits", instance_=inst(refusal_digits=[]))) == 0
    assert len(mapped("gather_speech", SpeechResult="oui, je suis intéressé")) == 0


def test_wrong_token_fails() -> None:
    request = form(params("completed"))
    other = twilio_voice.TwilioVoiceConnector(
        kit.instance("twilio_voice", secrets={"auth_token": "another_token_0000000000000000"}),
        kit.make_edge(),
    )
    with pytest.raises(AuthenticationFailed):
        other.verify(request)


# -- conformance --------------------------------------------------------------------------

#: sample -> (usage, consent) events expected
EXPECTED = {"completed": (1, 0), "no_answer": (1, 0), "ringing": (0, 0), "gather_speech": (0, 1)}
EXPECTED["gather_digits"] = (0, 1)
REFUSED = tuple(
    urlencode(fields).encode()
    for fields in (
        {"CallStatus": "completed", "To": "+33612345678"},  # no CallSid
        {"CallSid": "CA1", "CallStatus": "completed"},  # no callee
        {"CallSid": "CA1", "CallStatus": "teleported", "To": "+33612345678"},
    )
)
CASES = tuple(kit.Sample(n, form(params(n)), *counts) for n, counts in EXPECTED.items())
CASE = kit.ConnectorCase("twilio_voice", INST, CASES, twilio_voice.sign, REFUSED, ("body", "url"))

TestTwilioVoiceConformance = kit.conformance_suite(CASE)
