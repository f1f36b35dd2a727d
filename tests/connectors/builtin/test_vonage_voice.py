"""Vonage Voice connector: one CALL use per attempt, refusals in input events, signed JWT,
conformance kit."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from consentinel.connectors import testkit as kit
from consentinel.connectors.auth import AuthenticationFailed
from consentinel.connectors.builtin import vonage_voice
from consentinel.connectors.contract import Instance, Request
from consentinel.streams.events import codec
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.ids import event_id
from consentinel.streams.events.records import Channel, ConsentAction, UsageKind

SAMPLES = Path(__file__).parent / "samples" / "vonage_voice"
SECRET = "sig_secret_synthetic"
URL = "https://hooks.example.test/hooks/vonage-voice?campaign=spring-2026&attempt=4"
RECEIVED = 1_767_607_500_000
STARTED_MS = 1_767_607_300_000  # 2026-01-05T10:01:40Z


def inst(**options: Any) -> Instance:
    options = {"refusal_digits": ["9"], **options}
    return kit.instance(
        "vonage_voice",
        name="vonage-voice-acme",
        secrets={"signature_secret": SECRET},
        options=options,
    )


INST = inst()


def body(name: str, **changes: Any) -> bytes:
    data = {**json.loads((SAMPLES / f"{name}.json").read_text("utf-8")), **changes}
    return codec.dumps(data)


def signed(raw: bytes, url: str = URL) -> Request:
    query = parse_qs(urlsplit(url).query)
    request = Request("POST", url, "/", query, {"content-type": "application/json"}, raw)
    return vonage_voice.sign(dataclasses.replace(request, received_at_ms=RECEIVED), INST)


def mapped(name: str, instance_: Instance = INST, **changes: Any) -> Any:
    connector = vonage_voice.VonageVoiceConnector(instance_, kit.make_edge())
    request = signed(body(name, **changes))
    connector.verify(request)
    return connector.map_request(request)


def test_completed_call_is_one_call_use() -> None:
    (use,) = mapped("completed").usage
    assert use.kind is UsageKind.CALL and use.channel is Channel.PHONE
    assert use.subject_key == kit.make_edge().address("+33612345678", "phone").key
    assert use.event_id == event_id(
        "vonage-voice-acme", "aaaaaaaa-bbbb-cccc-dddd-0123456789ab", "call"
    )
    assert use.occurred_at_ms == STARTED_MS  # start_time
    assert use.campaign_id == "spring-2026"
    attrs = use.attributes
    assert (attrs["answered"], attrs["duration_s"], attrs["attempt"]) == (True, 95, 4)
    assert attrs["tz"] == "Europe/Paris"
    assert attrs["disconnected_by"] == "user"


def test_busy_is_an_unanswered_attempt_at_its_timestamp() -> None:
    (use,) = mapped("busy").usage
    assert use.attributes["answered"] is False and use.attributes["call_status"] == "busy"
    assert use.occurred_at_ms == 1_767_607_540_000


def test_progress_inbound_and_statusless_events_add_nothing() -> None:
    assert len(mapped("answered")) == 0
    assert len(mapped("completed", direction="inbound")) == 0
    record = {"uuid": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab", "recording_url": "https://x.test/r"}
    connector = vonage_voice.VonageVoiceConnector(INST, kit.make_edge())
    assert len(connector.map_request(signed(codec.dumps(record)))) == 0


def test_the_end_of_a_call_keeps_one_id_whatever_its_status() -> None:
    assert (
        mapped("completed").usage[0].event_id
        == mapped("completed", status="unanswered").usage[0].event_id
    )


def test_unknown_status_is_refused() -> None:
    with pytest.raises(InvalidInput) as err:
        mapped("busy", status="teleported")
    assert err.value.code == "unknown_event"


def test_spoken_and_typed_refusals_are_phone_objections() -> None:
    (spoken,) = mapped("input_speech").consent
    assert spoken.action is ConsentAction.REFUSE and spoken.channels == [Channel.PHONE]
    assert spoken.attributes["via"] == "speech"
    assert spoken.occurred_at_ms == 1_767_607_350_000
    assert spoken.event_id == event_id(
        "vonage-voice-acme", "aaaaaaaa-bbbb-cccc-dddd-0123456789ab", "refusal"
    )
    (typed,) = mapped("input_dtmf").consent
    assert typed.attributes["via"] == "dtmf"
    assert len(mapped("input_dtmf", instance_=inst(refusal_digits=[]))) == 0
    other = {"results": [{"text": "yes tell me more", "confidence": "0.8"}]}
    assert len(mapped("input_speech", speech=other)) == 0


def test_tampered_body_and_unsigned_request_fail() -> None:
    connector = vonage_voice.VonageVoiceConnector(INST, kit.make_edge())
    request = signed(body("completed"))
    tampered = Request(
        request.method,
        request.url,
        request.path,
        request.query,
        request.headers,
        request.body.replace(b"95", b"05"),
        received_at_ms=RECEIVED,
    )
    with pytest.raises(AuthenticationFailed):
        connector.verify(tampered)
    unsigned = Request("POST", URL, "/", {}, {"content-type": "application/json"}, request.body)
    with pytest.raises(AuthenticationFailed):
        connector.verify(unsigned)


# -- conformance --------------------------------------------------------------------------

#: sample -> (usage, consent) events expected
EXPECTED = {"completed": (1, 0), "busy": (1, 0), "answered": (0, 0), "input_speech": (0, 1)}
EXPECTED["input_dtmf"] = (0, 1)
REFUSED = (
    b'{"status": "completed", "to": "33612345678"}',  # no uuid
    b'{"uuid": "u-1", "status": "completed"}',  # no callee
    b'{"uuid": "u-1", "status": "teleported", "to": "33612345678"}',
    b'["not", "an", "object"]',
)
CASES = tuple(kit.Sample(n, signed(body(n)), *counts) for n, counts in EXPECTED.items())
CASE = kit.ConnectorCase("vonage_voice", INST, CASES, vonage_voice.sign, REFUSED, ("body",))

TestVonageVoiceConformance = kit.conformance_suite(CASE)
