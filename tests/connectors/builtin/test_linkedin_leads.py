"""LinkedIn Lead Gen: §8 vectors (signature, challenge), notifications, responses, deletions."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from consentinel.connectors.builtin.linkedin_leads import LinkedInLeadGenConnector, sign
from consentinel.connectors.contract import AuthenticationFailed, Request
from consentinel.connectors.testkit import (
    ConnectorCase,
    Sample,
    conformance_suite,
    instance,
    make_edge,
)
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import Channel, ConsentAction, UsageKind

SAMPLES = Path(__file__).parent / "samples" / "linkedin_leads"
RECEIVED = 1767225700000
VECTOR = "069c344220375a906ee65a65ce5d03f4cfd48772ca9a69583c1fa8541ac0624a"
CHALLENGE = "f2b8c7a0-0000-4000-8000-000000000001"
CHALLENGE_RESPONSE = "cf00c41693b3f9f941b09d7874786106ac1a36e04d976d1029503f24c3b80f8a"
FORM = "urn:li:versionedLeadGenForm:(urn:li:leadGenForm:7001,3)"

INSTANCE = instance(
    "linkedin_lead_gen",
    controller="northwind-b2b",
    secrets={"client_secret": "client_secret_synthetic"},
    purpose_map={"101": "marketing.direct", "102": "marketing.partner_transfer"},
    options={"question_fields": {"3": "phone"}},
)


def body(name: str) -> bytes:
    return (SAMPLES / name).read_bytes().rstrip(b"\n")


def request(raw: bytes, url: str = "https://hooks.example.test/linkedin/leads") -> Request:
    return Request(
        method="POST",
        url=url,
        path=urlsplit(url).path,
        query=parse_qs(urlsplit(url).query),
        headers={"content-type": "application/json"},
        body=raw,
        received_at_ms=RECEIVED,
    )


def signed(raw: bytes) -> Request:
    return sign(request(raw), INSTANCE)


def connector() -> LinkedInLeadGenConnector:
    return LinkedInLeadGenConnector(INSTANCE, make_edge())


def key(raw: str, channel: str) -> str:
    return make_edge().address(raw, channel).key


def test_section8_signature_vector_verifies_and_one_byte_breaks_it() -> None:
    req = signed(body("notification.json"))
    assert req.header("x-li-signature") == VECTOR
    connector().verify(req)
    raw = bytearray(req.body)
    raw[30] ^= 0x01
    with pytest.raises(AuthenticationFailed):
        connector().verify(dataclasses.replace(req, body=bytes(raw)))
    with pytest.raises(AuthenticationFailed):
        connector().verify(
            dataclasses.replace(req, headers={**req.headers, "x-li-signature": VECTOR[:-1] + "b"})
        )


def test_section8_challenge_vector_is_answered() -> None:
    url = f"https://hooks.example.test/linkedin/leads?challengeCode={CHALLENGE}"
    answer = connector().handshake(dataclasses.replace(request(b"", url), method="GET"))
    assert answer is not None
    assert (answer.status, answer.content_type) == (200, "application/json")
    assert json.loads(answer.body) == {
        "challengeCode": CHALLENGE,
        "challengeResponse": CHALLENGE_RESPONSE,
    }
    assert connector().handshake(signed(body("notification.json"))) is None


@pytest.mark.parametrize("name", ["notification.json", "notification_full.json"])
def test_bare_notifications_map_to_no_event(name: str) -> None:
    out = connector().map_request(signed(body(name)))
    assert (out.usage, out.consent) == ([], [])


def test_deleted_bare_notification_maps_to_no_event() -> None:
    raw = json.loads(body("notification_full.json"))
    raw["leadAction"] = "DELETED"
    out = connector().map_request(signed(json.dumps(raw).encode()))
    assert len(out) == 0


def test_response_maps_to_delivery_and_grant_or_refuse_per_consent() -> None:
    out = connector().map_request(signed(body("response.json")))
    email, phone = key("chloe.dupont@example.org", "email"), key("+33612345678", "sms")
    assert [(u.subject_key, u.channel, u.kind) for u in out.usage] == [
        (email, Channel.EMAIL, UsageKind.LEAD_DELIVERED),
        (phone, Channel.SMS, UsageKind.LEAD_DELIVERED),
    ]
    usage = out.usage[0]
    assert (usage.controller, usage.form_id, usage.campaign_id) == (
        "northwind-b2b",
        FORM,
        "urn:li:sponsoredCampaign:8800",
    )
    assert (usage.occurred_at_ms, usage.received_at_ms, usage.is_test) == (
        1767225599000,
        RECEIVED,
        False,
    )
    got = [(c.subject_key, c.action, c.purposes, c.channels, c.scope) for c in out.consent]
    assert got == [
        (email, ConsentAction.GRANT, ["marketing.direct"], [Channel.EMAIL], "101"),
        (email, ConsentAction.REFUSE, ["marketing.partner_transfer"], [Channel.EMAIL], "102"),
        (phone, ConsentAction.GRANT, ["marketing.direct"], [Channel.SMS], "101"),
        (phone, ConsentAction.REFUSE, ["marketing.partner_transfer"], [Channel.SMS], "102"),
    ]
    proof = out.consent[0].proof
    assert proof is not None
    assert (proof.method, proof.collected_at_ms, proof.collection_point, proof.notice_version) == (
        "checkbox",
        1767225599000,
        FORM,
        FORM,
    )
    assert proof.vendor_receipt == "synthetic-1"
    assert out.consent[0].attributes == {
        "lead_id": "synthetic-1",
        "owner": "urn:li:sponsoredAccount:5080",
        "lead_type": "SPONSORED",
    }
    text = repr(out)
    assert "Chloe" not in text and "urn:li:person" not in text


def test_deleted_with_the_response_erases_each_address() -> None:
    out = connector().map_request(signed(body("deleted.json")))
    assert out.usage == []
    erased = [(c.subject_key, c.action, c.purposes, c.channels) for c in out.consent]
    assert erased == [
        (key("chloe.dupont@example.org", "email"), ConsentAction.ERASE, [], []),
        (key("+33612345678", "sms"), ConsentAction.ERASE, [], []),
    ]
    assert {c.occurred_at_ms for c in out.consent} == {1767312000000}
    assert {c.controller for c in out.consent} == {"northwind-b2b"}


def test_embedded_created_and_bare_response_give_the_same_events() -> None:
    raw = json.loads(body("notification_full.json"))
    raw["leadGenFormResponse"] = json.loads(body("response.json"))
    embedded = connector().map_request(signed(json.dumps(raw).encode()))
    bare = connector().map_request(signed(body("response.json")))
    assert [e.event_id for e in [*embedded.usage, *embedded.consent]] == [
        e.event_id for e in [*bare.usage, *bare.consent]
    ]


def test_unmapped_consent_and_test_leads() -> None:
    raw = json.loads(body("response.json"))
    raw["formResponse"]["consentResponses"] = [{"consentId": 555, "accepted": True}]
    out = connector().map_request(signed(json.dumps(raw).encode()))
    assert [(c.purposes, c.unmapped_purposes) for c in out.consent] == [([], ["555"])] * 2
    raw["testLead"] = True
    assert len(connector().map_request(signed(json.dumps(raw).encode()))) == 0
    flagged = LinkedInLeadGenConnector(
        dataclasses.replace(INSTANCE, options={**INSTANCE.options, "ingest_test_leads": True}),
        make_edge(),
    ).map_request(signed(json.dumps(raw).encode()))
    assert [u.is_test for u in flagged.usage] == [True, True]
    assert all(c.attributes["is_test"] is True for c in flagged.consent)


def test_redelivery_gives_the_same_ids() -> None:
    one = connector().map_request(signed(body("response.json")))
    two = connector().map_request(
        dataclasses.replace(signed(body("response.json")), received_at_ms=RECEIVED + 60_000)
    )
    assert [e.event_id for e in [*one.usage, *one.consent]] == [
        e.event_id for e in [*two.usage, *two.consent]
    ]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda d: d.pop("submittedAt"), "missing_field"),
        (lambda d: d["formResponse"].update(answers=[]), "missing_field"),
        (lambda d: d["formResponse"]["consentResponses"][0].update(accepted="?"), "bad_value"),
        (lambda d: d.update(leadAction="UPDATED"), "unknown_event"),
        (lambda d: d.update(type="SOMETHING_ELSE"), "unknown_event"),
    ],
)
def test_malformed_responses_are_refused_with_a_reason(change, code: str) -> None:
    raw = json.loads(body("response.json"))
    change(raw)
    with pytest.raises(InvalidInput) as info:
        connector().map_request(signed(json.dumps(raw).encode()))
    assert info.value.code == code


def test_deleted_without_occurred_at_is_refused() -> None:
    raw = json.loads(body("deleted.json"))
    raw.pop("occurredAt")
    with pytest.raises(InvalidInput) as info:
        connector().map_request(signed(json.dumps(raw).encode()))
    assert info.value.code == "missing_field"


def linkedin_case() -> ConnectorCase:
    return ConnectorCase(
        connector="linkedin_lead_gen",
        instance=INSTANCE,
        samples=(
            Sample("notification", signed(body("notification.json"))),
            Sample("notification_full", signed(body("notification_full.json"))),
            Sample("response", signed(body("response.json")), usage=2, consent=4),
            Sample("deleted", signed(body("deleted.json")), consent=2),
        ),
        sign=sign,
        signed_parts=("body",),
        rows=(json.loads(body("response.json")),),
    )


TestLinkedInLeadsConformance = conformance_suite(linkedin_case())
