"""OneTrust connector: token / Basic authentication, consent receipts (TransactionType rules,
topics, notices, expiry), TCF strings, profiles, export rows, conformance kit."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from consentinel.connectors.auth import AuthenticationFailed
from consentinel.connectors.builtin import onetrust
from consentinel.connectors.contract import Instance, Request
from consentinel.connectors.testkit import (
    ConnectorCase,
    Sample,
    conformance_suite,
    instance,
    make_edge,
)
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import Channel, ConsentAction

SAMPLES = Path(__file__).parent / "samples" / "onetrust"
URL = "https://hooks.example.test/onetrust"
RECEIVED = 1_767_225_700_000
P1 = "11111111-aaaa-4bbb-8ccc-5d6e7f8a9b01"
P2 = "11111111-aaaa-4bbb-8ccc-5d6e7f8a9b02"
P3 = "11111111-aaaa-4bbb-8ccc-5d6e7f8a9b03"
PURPOSES = {
    P1: "marketing.direct",
    P2: "editorial.newsletter",
    P3: "marketing.partner_transfer",
    "tcf:1": "advertising.limited",
}


def inst(**options: Any) -> Instance:
    return instance(
        "onetrust",
        name="onetrust-acme",
        controller="acme-sa",
        secrets={"token": "ot-token-0123456789abcdef", "password": "ot-pw-0123456789"},
        options=options,
        purpose_map=PURPOSES,
    )


INST = inst()


def raw(name: str) -> bytes:
    return (SAMPLES / f"{name}.json").read_bytes()


def request(body: bytes, instance_: Instance = INST) -> Request:
    base = Request(
        "POST", URL, "/onetrust", {}, {"content-type": "application/json"}, body, "", RECEIVED
    )
    return onetrust.sign(base, instance_)


def connector(instance_: Instance = INST) -> onetrust.OneTrustConnector:
    return onetrust.OneTrustConnector(instance_, make_edge())


def key_of(raw_address: str, channel: str = "email") -> str:
    return make_edge().address(raw_address, channel).key


def test_bearer_token_by_default_and_basic() -> None:
    good = request(raw("receipt"))
    assert good.headers["authorization"] == "Bearer ot-token-0123456789abcdef"
    connector().verify(good)
    bad = dataclasses.replace(good, headers={**good.headers, "authorization": "Bearer nope"})
    with pytest.raises(AuthenticationFailed):
        connector().verify(bad)
    basic = inst(auth="basic", username="onetrust")
    connector(basic).verify(request(raw("receipt"), basic))
    with pytest.raises(AuthenticationFailed):
        connector(basic).verify(good)


def test_receipt_transaction_types() -> None:
    grant, withdraw, refuse = connector().map_request(request(raw("receipt"))).consent
    assert grant.action is ConsentAction.GRANT
    assert grant.purposes == ["marketing.direct"] and grant.channels == []
    assert grant.expires_at_ms == 1_830_680_102_000
    assert grant.unmapped_purposes == ["topic-weekly"]
    assert withdraw.action is ConsentAction.WITHDRAW
    assert withdraw.purposes == ["editorial.newsletter"]
    assert withdraw.unmapped_purposes == ["topic-offers"]
    assert refuse.action is ConsentAction.REFUSE
    assert refuse.purposes == ["marketing.partner_transfer"]
    for event in (grant, withdraw, refuse):
        assert event.subject_key == key_of("ana.lima@example.org")
        assert event.occurred_at_ms == 1_767_608_102_000
        assert event.controller == "acme-sa"
        assert event.proof is not None
        assert event.proof.method == "cmp_receipt"
        assert event.proof.vendor_receipt == "rcpt-7f3e9a1b2c"
        assert event.proof.collection_point == "https://shop.example.org/newsletter"
        assert event.proof.notice_version == "pn-main:3.1"
        assert event.attributes["source_type"] == "WEB"


def test_receipt_purpose_channels_split_the_events() -> None:
    by_channel = inst(purpose_channels={P1: "email"})
    out = connector(by_channel).map_request(request(raw("receipt"), by_channel))
    grants = [e for e in out.consent if e.action is ConsentAction.GRANT]
    assert [(g.channels, g.purposes, g.unmapped_purposes) for g in grants] == [
        ([], [], ["topic-weekly"]),  # none mapped (not "all purposes")
        ([Channel.EMAIL], ["marketing.direct"], []),
    ]


def test_receipt_with_tcf_and_expired() -> None:
    out = connector().map_request(request(raw("receipt_tcf")))
    expire, tcf_grant, tcf_refuse = out.consent
    phone = key_of("+33611223344", "sms")
    assert {e.subject_key for e in out.consent} == {phone}
    assert expire.action is ConsentAction.EXPIRE
    assert expire.purposes == ["marketing.direct"]
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeW50aGV0aWMifQ.c2ln"
    assert expire.proof is not None
    assert expire.proof.vendor_receipt == "sha256:" + hashlib.sha256(jwt.encode()).hexdigest()
    assert tcf_grant.action is ConsentAction.GRANT and tcf_grant.channels == [Channel.WEB]
    assert tcf_grant.purposes == ["advertising.limited"]
    assert tcf_refuse.action is ConsentAction.REFUSE
    assert tcf_refuse.proof is not None and tcf_refuse.proof.method == "tcf"


def test_profiles() -> None:
    grant, withdraw = connector().map_request(request(raw("profiles"))).consent
    assert grant.action is ConsentAction.GRANT and grant.purposes == ["marketing.direct"]
    assert grant.occurred_at_ms == 1_767_427_200_000
    assert grant.proof is not None and grant.proof.collection_point == "cp-footer"
    assert withdraw.action is ConsentAction.WITHDRAW
    assert withdraw.occurred_at_ms == 1_767_513_600_000
    assert grant.subject_key == key_of("bo@example.net")


def test_test_receipts_and_pending_give_nothing() -> None:
    data = {**json.loads(raw("receipt")), "test": True}
    assert len(connector().map_request(request(json.dumps(data).encode()))) == 0
    pending = json.loads(raw("receipt_tcf"))
    pending["purposes"][0]["TransactionType"] = "PENDING"
    del pending["customPayload"]
    assert len(connector().map_request(request(json.dumps(pending).encode()))) == 0


def test_unknown_transaction_type_and_crm_identifier() -> None:
    data = json.loads(raw("receipt_tcf"))
    data["purposes"][0]["TransactionType"] = "MAYBE"
    with pytest.raises(InvalidInput) as err:
        connector().map_request(request(json.dumps(data).encode()))
    assert err.value.code == "unknown_event"
    crm = {**json.loads(raw("receipt_tcf")), "identifier": "cust-881", "identifierType": "CRM"}
    with pytest.raises(InvalidInput) as err:
        connector().map_request(request(json.dumps(crm).encode()))
    assert err.value.code == "no_address"
    crm["additionalIdentifiers"] = {"Email": "bo@example.net"}
    out = connector().map_request(request(json.dumps(crm).encode()))
    assert {e.subject_key for e in out.consent} == {key_of("bo@example.net")}


def rows() -> list[dict[str, Any]]:
    with (SAMPLES / "consent_export.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_export_rows() -> None:
    first, second = rows()
    (grant,) = connector().map_row(first).consent
    assert grant.action is ConsentAction.GRANT and grant.purposes == ["marketing.direct"]
    assert grant.proof is not None and grant.proof.vendor_receipt == "rcpt-0001"
    (withdraw,) = connector().map_row(second).consent
    assert withdraw.action is ConsentAction.WITHDRAW
    assert withdraw.subject_key == key_of("+447700900126", "sms")


def onetrust_case() -> ConnectorCase:
    return ConnectorCase(
        connector="onetrust",
        instance=INST,
        samples=(
            Sample("receipt", request(raw("receipt")), consent=3),
            Sample("receipt_tcf", request(raw("receipt_tcf")), consent=3),
            Sample("profiles", request(raw("profiles")), consent=2),
        ),
        sign=onetrust.sign,
        signed_parts=(),
        signature="header:authorization",
        rows=tuple(rows()),
    )


TestOneTrustConformance = conformance_suite(onetrust_case())
