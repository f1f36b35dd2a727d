"""Twilio connector: §8 vector, sample mapping, keywords, export rows, conformance kit."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from consentinel.connectors.auth import AuthenticationFailed
from consentinel.connectors.builtin import twilio
from consentinel.connectors.contract import Request
from consentinel.connectors.testkit import (
    ConnectorCase,
    Sample,
    conformance_suite,
    instance,
    make_edge,
)
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.ids import event_id
from consentinel.streams.events.records import Channel, ConsentAction, UsageKind

SAMPLES = Path(__file__).parent / "samples" / "twilio"
TOKEN = "test_auth_token_0000000000000000"
VECTOR_URL = "https://hooks.example.test/sms/status?tenant=acme"
VECTOR_SIG = "Eod2WWDrN5RsKRdCmFBBOAE5ay8="
RECEIVED = 1_767_225_700_000
INST = instance(
    "twilio",
    name="twilio-acme",
    controller="acme-sa",
    secrets={"auth_token": TOKEN},
    purpose_map={"MG33333333333333333333333333333333": "marketing.direct"},
)


def params(name: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((SAMPLES / f"{name}.json").read_text("utf-8"))
    return data


def form_request(fields: dict[str, str], url: str = VECTOR_URL, signature: str = "") -> Request:
    request = Request(
        method="POST",
        url=url,
        path=urlsplit(url).path,
        query=parse_qs(urlsplit(url).query),
        headers={"content-type": "application/x-www-form-urlencoded"},
        body=urlencode(fields).encode("utf-8"),
        received_at_ms=RECEIVED,
    )
    if signature:
        return dataclasses.replace(
            request, headers={**request.headers, "x-twilio-signature": signature}
        )
    return twilio.sign(request, INST)


def connector() -> twilio.TwilioConnector:
    return twilio.TwilioConnector(INST, make_edge())


def key_of(raw: str) -> str:
    return make_edge().address(raw, "sms").key


# -- §8 vector ----------------------------------------------------------------------------


def test_vector_verifies_through_the_connector() -> None:
    request = form_request(params("status_vector"), signature=VECTOR_SIG)
    connector().verify(request)
    assert twilio.sign(request, INST).headers["x-twilio-signature"] == VECTOR_SIG


def test_vector_with_default_port_verifies() -> None:
    url = VECTOR_URL.replace("example.test/", "example.test:443/")
    connector().verify(form_request(params("status_vector"), url=url, signature=VECTOR_SIG))


@pytest.mark.parametrize(
    "change",
    ["body", "url", "signature"],
)
def test_vector_fails_when_one_byte_changes(change: str) -> None:
    request = form_request(params("status_vector"), signature=VECTOR_SIG)
    if change == "body":
        request = dataclasses.replace(request, body=request.body.replace(b"0000", b"0001", 1))
    elif change == "url":
        request = dataclasses.replace(request, url=VECTOR_URL.replace("acme", "acmf"))
    else:
        headers = {**request.headers, "x-twilio-signature": "Fod2WWDrN5RsKRdCmFBBOAE5ay8="}
        request = dataclasses.replace(request, headers=headers)
    with pytest.raises(AuthenticationFailed):
        connector().verify(request)


def test_unsigned_request_is_refused() -> None:
    request = form_request(params("status_vector"), signature=VECTOR_SIG)
    request = dataclasses.replace(request, headers={"content-type": "x"})
    with pytest.raises(AuthenticationFailed):
        connector().verify(request)


def test_get_inbound_signs_the_url_only() -> None:
    url = "https://hooks.example.test/sms/inbound?" + urlencode(params("inbound_stop"))
    request = Request("GET", url, "/sms/inbound", parse_qs(urlsplit(url).query), {}, b"")
    signed = twilio.sign(request, INST)
    connector().verify(signed)
    out = connector().map_request(signed)
    assert [e.action for e in out.consent] == [ConsentAction.WITHDRAW]


# -- mapping ------------------------------------------------------------------------------


def test_status_delivered_maps_to_deliver() -> None:
    out = connector().map_request(form_request(params("status_delivered")))
    assert out.consent == []
    (event,) = out.usage
    assert event.kind is UsageKind.DELIVER
    assert event.channel is Channel.SMS
    assert event.occurred_at_ms == 1_767_268_800_000  # RawDlrDoneDate 2601011200 UTC
    assert event.received_at_ms == RECEIVED
    assert event.event_id == event_id(
        "twilio-acme", "SM44444444444444444444444444444444", "delivered"
    )
    assert event.subject_key == key_of("+15551230000")
    assert event.hint == "+1 5** * ** ** 00"
    assert (event.source, event.processor, event.controller) == (
        "twilio-acme",
        "twilio",
        "acme-sa",
    )
    assert event.sender == "MG33333333333333333333333333333333"
    assert event.list_id == "MG33333333333333333333333333333333"


def test_queued_and_sent_are_one_send() -> None:
    base = {**params("status_delivered")}
    del base["RawDlrDoneDate"]
    ids = set()
    for status in ("queued", "sent"):
        out = connector().map_request(form_request({**base, "MessageStatus": status}))
        (event,) = out.usage
        assert event.kind is UsageKind.SEND
        assert event.occurred_at_ms == RECEIVED
        ids.add(event.event_id)
    assert ids == {event_id("twilio-acme", "SM44444444444444444444444444444444", "send")}


@pytest.mark.parametrize(
    ("status", "kind"),
    [("undelivered", UsageKind.FAIL), ("failed", UsageKind.FAIL), ("read", UsageKind.OPEN)],
)
def test_other_statuses(status: str, kind: UsageKind) -> None:
    fields = {**params("status_delivered"), "MessageStatus": status}
    (event,) = connector().map_request(form_request(fields)).usage
    assert event.kind is kind


def test_scheduled_gives_nothing_and_unknown_status_is_invalid() -> None:
    base = params("status_delivered")
    assert len(connector().map_request(form_request({**base, "MessageStatus": "scheduled"}))) == 0
    with pytest.raises(InvalidInput) as err:
        connector().map_request(form_request({**base, "MessageStatus": "teleported"}))
    assert err.value.code == "unknown_event"


def test_inbound_stop_is_reply_and_withdrawal() -> None:
    out = connector().map_request(form_request(params("inbound_stop")))
    (usage,) = out.usage
    (consent,) = out.consent
    sid = "SM11111111111111111111111111111111"
    assert usage.kind is UsageKind.REPLY
    assert usage.event_id == event_id("twilio-acme", sid, "received")
    assert usage.attributes["keyword"] == "stop"
    assert consent.action is ConsentAction.WITHDRAW
    assert consent.event_id == event_id("twilio-acme", sid, "stop")
    assert consent.subject_key == key_of("+15551230000") == usage.subject_key
    assert consent.channels == [Channel.SMS]
    assert consent.purposes == [] and consent.unmapped_purposes == []
    assert consent.scope == "MG33333333333333333333333333333333"
    assert consent.controller == "acme-sa"
    assert consent.occurred_at_ms == RECEIVED
    assert consent.proof is not None
    assert consent.proof.method == "keyword_stop"
    assert consent.proof.vendor_receipt == sid
    assert consent.proof.collected_at_ms == RECEIVED
    assert "Stop" not in json.dumps(dataclasses.asdict(usage))


def test_body_keyword_without_opt_out_type() -> None:
    out = connector().map_request(form_request(params("inbound_arret")))
    (consent,) = out.consent
    assert consent.action is ConsentAction.WITHDRAW
    assert consent.scope == "36111"  # a short code scopes the opt-out
    assert out.usage[0].attributes["keyword_source"] == "body"


@pytest.mark.parametrize(
    "body",
    ["STOP", "stop", "Stopall", "UNSUBSCRIBE!", "cancel", "End", "quit.", "arret", "Stop SMS"],
)
def test_stop_keywords(body: str) -> None:
    fields = {**params("inbound_arret"), "Body": body}
    out = connector().map_request(form_request(fields))
    assert [e.action for e in out.consent] == [ConsentAction.WITHDRAW]


@pytest.mark.parametrize("body", ["Stop by the shop tomorrow", "yes", "HELP", ""])
def test_non_keywords_give_no_consent(body: str) -> None:
    fields = {**params("inbound_arret"), "Body": body}
    out = connector().map_request(form_request(fields))
    assert len(out.usage) == 1 and out.consent == []


def test_long_number_opt_out_is_not_scoped_to_the_raw_number() -> None:
    fields = {**params("inbound_arret"), "To": "+33700000001"}
    (consent,) = connector().map_request(form_request(fields)).consent
    assert consent.scope is None  # all SMS of the controller: fails closed


def test_start_grants_the_mapped_purpose() -> None:
    (consent,) = connector().map_request(form_request(params("inbound_start"))).consent
    assert consent.action is ConsentAction.GRANT
    assert consent.purposes == ["marketing.direct"]
    assert consent.proof is not None and consent.proof.method == "keyword_start"


def test_start_unmapped_goes_to_unmapped_purposes() -> None:
    fields = {
        **params("inbound_start"),
        "MessagingServiceSid": "MG99999999999999999999999999999999",
    }
    (consent,) = connector().map_request(form_request(fields)).consent
    assert consent.purposes == []
    assert consent.unmapped_purposes == ["MG99999999999999999999999999999999"]


def test_failed_opted_out_is_evidence_of_withdrawal() -> None:
    out = connector().map_request(form_request(params("status_failed_optout")))
    assert [e.kind for e in out.usage] == [UsageKind.FAIL]
    (consent,) = out.consent
    assert consent.action is ConsentAction.WITHDRAW
    assert consent.scope == "36111"
    assert consent.proof is not None and consent.proof.method == "gateway_opt_out_list"
    assert consent.subject_key == key_of("+447700900123")


def test_whatsapp_prefix_sets_channel() -> None:
    fields = {**params("status_delivered"), "To": "whatsapp:+15551230000"}
    (event,) = connector().map_request(form_request(fields)).usage
    assert event.channel is Channel.WHATSAPP
    assert event.subject_key == key_of("+15551230000")


def test_missing_recipient_is_invalid() -> None:
    fields = {k: v for k, v in params("status_delivered").items() if k != "To"}
    with pytest.raises(InvalidInput) as err:
        connector().map_request(form_request(fields))
    assert err.value.code == "missing_field"


def test_bad_raw_dlr_date_is_invalid() -> None:
    fields = {**params("status_delivered"), "RawDlrDoneDate": "26-01-01"}
    with pytest.raises(InvalidInput) as err:
        connector().map_request(form_request(fields))
    assert err.value.code == "bad_timestamp"


# -- file rows ----------------------------------------------------------------------------


def rows() -> list[dict[str, Any]]:
    with (SAMPLES / "optout_export.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_export_rows() -> None:
    first, second = rows()
    (stop,) = connector().map_row(first).consent
    assert stop.action is ConsentAction.WITHDRAW
    assert stop.scope == "MG33333333333333333333333333333333"
    assert stop.occurred_at_ms == 1_767_430_800_000
    (start,) = connector().map_row(second).consent
    assert start.action is ConsentAction.GRANT
    assert start.occurred_at_ms == 1_767_608_102_000
    assert start.subject_key == key_of("+447700900124")


# -- conformance --------------------------------------------------------------------------


def twilio_case() -> ConnectorCase:
    return ConnectorCase(
        connector="twilio",
        instance=INST,
        samples=(
            Sample("vector", form_request(params("status_vector"), signature=VECTOR_SIG), usage=1),
            Sample("delivered", form_request(params("status_delivered")), usage=1),
            Sample("inbound_stop", form_request(params("inbound_stop")), usage=1, consent=1),
            Sample("inbound_arret", form_request(params("inbound_arret")), usage=1, consent=1),
            Sample("inbound_start", form_request(params("inbound_start")), usage=1, consent=1),
            Sample("failed_optout", form_request(params("status_failed_optout")), 1, 1),
        ),
        sign=twilio.sign,
        signed_parts=("body", "url"),
        rows=tuple(rows()),
    )


TestTwilioConformance = conformance_suite(twilio_case())


@pytest.mark.parametrize("name", ["NumMedia", "NumSegments"])
@pytest.mark.parametrize("value", [str(2**64), "9" * 40, "-1", "3.5", "lots"])
def test_a_count_out_of_range_is_bad_input_not_a_crash(name: str, value: str) -> None:
    # a count beyond 64 bits used to reach the encoder (500, payload lost): now it is
    # bad input with a reason, dead-lettered by the runtime
    fields = {**params("inbound_stop"), name: value}
    with pytest.raises(InvalidInput) as info:
        connector().map_request(form_request(fields))
    assert info.value.code == "bad_value"
    assert name in info.value.message and value not in info.value.message


def test_a_plain_count_is_kept_as_an_integer() -> None:
    fields = {**params("inbound_stop"), "NumMedia": "2", "NumSegments": "1"}
    (usage,) = connector().map_request(form_request(fields)).usage
    assert usage.attributes["nummedia"] == 2 and usage.attributes["numsegments"] == 1
