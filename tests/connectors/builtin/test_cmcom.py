"""CM.com connector: URL token, JSON and form/GET status reports, MO STOP, conformance kit."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from consentinel.connectors.auth import AuthenticationFailed
from consentinel.connectors.builtin import cmcom
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

SAMPLES = Path(__file__).parent / "samples" / "cmcom"
TOKEN = "cm-url-secret-0123456789abcdef"
URL = "https://hooks.example.test/cm/status"
RECEIVED = 1_767_225_700_000
INST = instance(
    "cmcom",
    name="cm-acme",
    controller="acme-sa",
    secrets={"token": TOKEN},
    options={"sender": "AcmeShop"},
)


def raw(name: str) -> bytes:
    return (SAMPLES / f"{name}.json").read_bytes()


def request(body: bytes, ctype: str = "application/json", url: str = URL) -> Request:
    base = Request(
        "POST" if body else "GET",
        url,
        urlsplit(url).path,
        parse_qs(urlsplit(url).query),
        {"content-type": ctype} if ctype else {},
        body,
        received_at_ms=RECEIVED,
    )
    return cmcom.sign(base, INST)


def connector() -> cmcom.CMComConnector:
    return cmcom.CMComConnector(INST, make_edge())


def key_of(number: str) -> str:
    return make_edge().address(number, "sms").key


def test_url_token_verifies_and_wrong_or_missing_token_fails() -> None:
    good = request(raw("status_delivered"))
    assert parse_qs(urlsplit(good.url).query)["token"] == [TOKEN]
    connector().verify(good)
    for url in (URL, URL + "?token=cm-url-secret-0123456789abcdeF"):
        bad = dataclasses.replace(good, url=url)
        with pytest.raises(AuthenticationFailed):
            connector().verify(bad)


def test_json_status_delivered() -> None:
    (usage,) = connector().map_request(request(raw("status_delivered"))).usage
    assert usage.kind is UsageKind.DELIVER and usage.channel is Channel.SMS
    assert usage.occurred_at_ms == 1_767_269_109_000  # "received" without zone: UTC
    assert usage.subject_key == key_of("+31612345678")  # 00 prefix normalized
    assert usage.campaign_id == "camp-2026-01-0001"
    assert usage.sender == "AcmeShop"
    assert usage.event_id == event_id("cm-acme", "camp-2026-01-0001", key_of("+31612345678"), "2")
    assert usage.attributes["operator"] == "20416"


def test_json_status_list() -> None:
    out = connector().map_request(request(raw("status_list")))
    assert [e.kind for e in out.usage] == [UsageKind.SEND, UsageKind.FAIL]
    assert out.usage[0].list_id == "newsletter" and out.usage[0].tags == ["newsletter"]
    assert out.usage[1].attributes["error_code"] == "5"


def test_form_and_get_status_reports() -> None:
    fields = json.loads(raw("status_form"))
    form = request(urlencode(fields).encode(), "application/x-www-form-urlencoded")
    get = request(b"", "", url=URL + "?" + urlencode(fields))
    for req in (form, get):
        connector().verify(req)
        (usage,) = connector().map_request(req).usage
        assert usage.kind is UsageKind.FAIL
        assert usage.source_event_type == "status.rejected"
        assert usage.occurred_at_ms == 1_767_269_109_000


@pytest.mark.parametrize(
    ("code", "kind"),
    [("Accepted", UsageKind.SEND), ("Delivered", UsageKind.DELIVER), ("Failed", UsageKind.FAIL)],
)
def test_status_names(code: str, kind: UsageKind) -> None:
    data = json.loads(raw("status_delivered"))
    data["messages"]["msg"]["status"]["code"] = code
    (usage,) = connector().map_request(request(json.dumps(data).encode())).usage
    assert usage.kind is kind


def test_unknown_status_is_invalid() -> None:
    data = json.loads(raw("status_delivered"))
    data["messages"]["msg"]["status"]["code"] = "42"
    with pytest.raises(InvalidInput) as err:
        connector().map_request(request(json.dumps(data).encode()))
    assert err.value.code == "unknown_event"


def test_mo_stop() -> None:
    out = connector().map_request(request(raw("mo_stop")))
    (usage,) = out.usage
    (consent,) = out.consent
    assert usage.kind is UsageKind.REPLY
    assert usage.occurred_at_ms == 1_767_270_000_000
    assert usage.tags == ["newsletter", "marketing", "eu-store"]
    assert usage.sender == "3010"
    assert consent.action is ConsentAction.WITHDRAW
    assert consent.subject_key == key_of("+31612345678")
    assert consent.scope == "3010"
    assert consent.channels == [Channel.SMS]
    assert consent.proof is not None and consent.proof.method == "keyword_stop"
    assert consent.proof.vendor_receipt == "camp-2026-01-0001"


def test_mo_plain_strings_accepted() -> None:
    data = {
        "from": "0031612345678",
        "to": "3010",
        "message": "stop",
        "timeUtc": "2026-01-01T12:20:00",
    }
    out = connector().map_request(request(json.dumps(data).encode()))
    assert [e.action for e in out.consent] == [ConsentAction.WITHDRAW]


def test_mo_other_text_is_reply_only() -> None:
    data = json.loads(raw("mo_stop"))
    data["message"]["text"] = "Where is my order?"
    out = connector().map_request(request(json.dumps(data).encode()))
    assert len(out.usage) == 1 and out.consent == []


def cmcom_case() -> ConnectorCase:
    return ConnectorCase(
        connector="cmcom",
        instance=INST,
        samples=(
            Sample("status_delivered", request(raw("status_delivered")), usage=1),
            Sample("status_list", request(raw("status_list")), usage=2),
            Sample("mo_stop", request(raw("mo_stop")), usage=1, consent=1),
        ),
        sign=cmcom.sign,
        signed_parts=(),
        signature="query:token",
    )


TestCMComConformance = conformance_suite(cmcom_case())
