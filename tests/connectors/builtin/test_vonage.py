"""Vonage connector: §8 vectors (md5hash, sha256 HMAC), SMS API receipts and inbound,
Messages API with JWT, conformance kit (one case per place the signature travels)."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from consentinel.connectors.auth import AuthenticationFailed, sign_vonage_jwt
from consentinel.connectors.builtin import vonage
from consentinel.connectors.contract import Instance, Request
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

SAMPLES = Path(__file__).parent / "samples" / "vonage"
SECRET = "sig_secret_synthetic"
MD5_SIG = "4aa9e007bc04e7accec170d2e8ab585a"
SHA256_SIG = "37e5e131a9cd50899acbabeba7dd1eb73ae846ca3a7b9b948b851b515df556af"
URL = "https://hooks.example.test/vonage/inbound"
RECEIVED = 1_767_225_700_000
PURPOSES = {"marketing": "marketing.direct"}


def inst(**options: Any) -> Instance:
    return instance(
        "vonage",
        name="vonage-acme",
        controller="acme-sa",
        secrets={"signature_secret": SECRET},
        options={"max_age_s": None, **options},
        purpose_map=PURPOSES,
    )


INST = inst()


def params(name: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((SAMPLES / f"{name}.json").read_text("utf-8"))
    return data


def request(body: bytes, ctype: str, url: str = URL, method: str = "POST") -> Request:
    return Request(
        method,
        url,
        urlsplit(url).path,
        parse_qs(urlsplit(url).query),
        {"content-type": ctype} if ctype else {},
        body,
        received_at_ms=RECEIVED,
    )


def form(fields: dict[str, str]) -> Request:
    return request(urlencode(fields).encode(), "application/x-www-form-urlencoded")


def connector(instance_: Instance = INST) -> vonage.VonageConnector:
    return vonage.VonageConnector(instance_, make_edge())


def key_of(raw: str) -> str:
    return make_edge().address(raw, "sms").key


# -- §8 vectors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "sig"), [("md5hash", MD5_SIG), ("sha256", SHA256_SIG), ("md5hash", MD5_SIG.upper())]
)
def test_vectors_verify_through_the_connector(method: str, sig: str) -> None:
    connector(inst(signature_method=method)).verify(form({**params("inbound_vector"), "sig": sig}))


@pytest.mark.parametrize(("method", "sig"), [("md5hash", MD5_SIG), ("sha256", SHA256_SIG)])
def test_vectors_fail_when_one_byte_changes(method: str, sig: str) -> None:
    changed = {**params("inbound_vector"), "text": "STOQ", "sig": sig}
    with pytest.raises(AuthenticationFailed):
        connector(inst(signature_method=method)).verify(form(changed))
    flipped = {**params("inbound_vector"), "sig": sig[:-1] + ("0" if sig[-1] != "0" else "1")}
    with pytest.raises(AuthenticationFailed):
        connector(inst(signature_method=method)).verify(form(flipped))


def test_stale_timestamp_is_refused_by_default() -> None:
    default = instance("vonage", secrets={"signature_secret": SECRET})
    with pytest.raises(AuthenticationFailed) as err:
        connector(default).verify(form({**params("inbound_vector"), "sig": MD5_SIG}))
    assert err.value.reason == "stale_timestamp"


def test_sign_makes_a_fresh_verifiable_request() -> None:
    default = instance("vonage", secrets={"signature_secret": SECRET})
    signed = vonage.sign(form(params("inbound_vector")), default)
    connector(default).verify(signed)
    get = request(b"", "", url=URL + "?" + urlencode(params("dlr_delivered")), method="GET")
    connector(default).verify(vonage.sign(get, default))


# -- SMS API ------------------------------------------------------------------------------


def test_inbound_stop() -> None:
    out = connector().map_request(form({**params("inbound_vector"), "sig": MD5_SIG}))
    (usage,) = out.usage
    (consent,) = out.consent
    assert usage.kind is UsageKind.REPLY and usage.channel is Channel.SMS
    assert usage.occurred_at_ms == 1_767_225_600_000
    assert usage.event_id == event_id("vonage-acme", "0A0000000123ABCD1", "inbound")
    assert usage.subject_key == key_of("+447700900001")
    assert consent.action is ConsentAction.WITHDRAW
    assert consent.channels == [Channel.SMS]
    assert consent.scope is None  # our long number is never written into scope
    assert consent.proof is not None and consent.proof.method == "keyword_stop"
    assert consent.proof.vendor_receipt == "0A0000000123ABCD1"


def test_keyword_first_word_stop() -> None:
    fields = {**params("inbound_vector"), "text": "STOP please", "keyword": "STOP"}
    assert [e.action for e in connector().map_request(form(fields)).consent] == [
        ConsentAction.WITHDRAW
    ]


def test_dlr_err_code_9_is_evidence_of_opt_out() -> None:
    body = (SAMPLES / "dlr_failed_optout.json").read_bytes()
    out = connector().map_request(request(body, "application/json"))
    (usage,) = out.usage
    (consent,) = out.consent
    assert usage.kind is UsageKind.FAIL
    assert usage.occurred_at_ms == 1_767_269_109_000  # message-timestamp
    assert usage.campaign_id == "camp-2026-01"
    assert usage.declared_purpose == "marketing.direct"
    assert usage.sender == "AcmeShop"
    assert usage.event_id == event_id("vonage-acme", "0B0000000456DCBA9", "failed")
    assert consent.action is ConsentAction.WITHDRAW
    assert consent.scope == "AcmeShop"
    assert consent.subject_key == usage.subject_key == key_of("+447700900001")
    assert consent.proof is not None and consent.proof.method == "gateway_opt_out_list"
    assert consent.attributes["evidence"] == "err_code_9"


def test_dlr_delivered_get_uses_scts() -> None:
    url = URL + "?" + urlencode(params("dlr_delivered"))
    out = connector().map_request(request(b"", "", url=url, method="GET"))
    (usage,) = out.usage
    assert out.consent == []
    assert usage.kind is UsageKind.DELIVER
    assert usage.occurred_at_ms == 1_767_269_400_000  # scts 2601011210
    assert usage.declared_purpose is None
    assert usage.attributes["vendor_purpose"] == "newsletter"  # unmapped: never guessed
    assert usage.subject_key == key_of("+33612345678")


def test_accepted_and_buffered_are_one_send() -> None:
    ids = {
        connector().map_request(form({**params("dlr_delivered"), "status": s})).usage[0].event_id
        for s in ("accepted", "buffered")
    }
    assert ids == {event_id("vonage-acme", "0C0000000789AAAA1", "send")}


# -- Messages API -------------------------------------------------------------------------


def jwt_request(name: str, secret: str = SECRET) -> Request:
    import hashlib

    body = (SAMPLES / f"{name}.json").read_bytes()
    claims = {"iat": int(time.time()), "payload_hash": hashlib.sha256(body).hexdigest()}
    token = sign_vonage_jwt(secret, claims)
    base = request(body, "application/json")
    return dataclasses.replace(base, headers={**base.headers, "authorization": f"Bearer {token}"})


def test_messages_status_with_jwt() -> None:
    req = jwt_request("messages_status")
    connector().verify(req)
    (usage,) = connector().map_request(req).usage
    assert usage.kind is UsageKind.DELIVER
    assert usage.occurred_at_ms == 1_767_344_401_000
    assert usage.campaign_id == "camp-2026-02"
    assert usage.event_id == event_id(
        "vonage-acme", "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", "delivered"
    )


def test_messages_jwt_wrong_secret_or_body_fails() -> None:
    with pytest.raises(AuthenticationFailed):
        connector().verify(jwt_request("messages_status", secret="other"))
    req = jwt_request("messages_status")
    with pytest.raises(AuthenticationFailed):
        connector().verify(dataclasses.replace(req, body=req.body.replace(b"09:00", b"09:01")))


def test_messages_inbound_whatsapp_unsubscribe() -> None:
    out = connector().map_request(jwt_request("messages_inbound"))
    (usage,) = out.usage
    (consent,) = out.consent
    assert usage.channel is Channel.WHATSAPP and usage.kind is UsageKind.REPLY
    assert consent.channels == [Channel.WHATSAPP]
    assert consent.action is ConsentAction.WITHDRAW
    assert consent.occurred_at_ms == 1_767_344_700_000


def test_messages_unsupported_channel() -> None:
    body = json.dumps({**params("messages_status"), "channel": "messenger"}).encode()
    with pytest.raises(InvalidInput) as err:
        connector().map_request(request(body, "application/json"))
    assert err.value.code == "unsupported_channel"


def test_messages_object_addresses_accepted() -> None:
    data = {**params("messages_status"), "to": {"type": "sms", "number": "447700900002"}}
    body = json.dumps(data).encode()
    (usage,) = connector().map_request(request(body, "application/json")).usage
    assert usage.subject_key == key_of("+447700900002")


# -- conformance --------------------------------------------------------------------------


def _json_signed(name: str) -> Request:
    return vonage.sign(request((SAMPLES / f"{name}.json").read_bytes(), "application/json"), INST)


def vonage_sms_form_case() -> ConnectorCase:
    return ConnectorCase(
        connector="vonage",
        instance=INST,
        samples=(
            Sample("inbound_vector", form({**params("inbound_vector"), "sig": MD5_SIG}), 1, 1),
            Sample("dlr_form", vonage.sign(form(params("dlr_delivered")), INST), usage=1),
        ),
        sign=vonage.sign,
        signature="form:sig",
    )


def vonage_sms_json_case() -> ConnectorCase:
    return ConnectorCase(
        connector="vonage",
        instance=INST,
        samples=(
            Sample("dlr_optout", _json_signed("dlr_failed_optout"), usage=1, consent=1),
            Sample("dlr_delivered", _json_signed("dlr_delivered"), usage=1),
        ),
        sign=vonage.sign,
        signature="json:sig",
    )


def vonage_messages_case() -> ConnectorCase:
    return ConnectorCase(
        connector="vonage",
        instance=INST,
        samples=(
            Sample("messages_status", _json_signed("messages_status"), usage=1),
            Sample("messages_inbound", _json_signed("messages_inbound"), usage=1, consent=1),
        ),
        sign=vonage.sign,
        signature="header:authorization",
    )


TestVonageSmsFormConformance = conformance_suite(vonage_sms_form_case())
TestVonageSmsJsonConformance = conformance_suite(vonage_sms_json_case())
TestVonageMessagesConformance = conformance_suite(vonage_messages_case())
