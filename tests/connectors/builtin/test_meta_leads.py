"""Meta Lead Ads: §8 vector, handshake, notification vs retrieved lead, conformance."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from consentinel.connectors.builtin.meta_leads import MetaLeadAdsConnector, sign
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

SAMPLES = Path(__file__).parent / "samples" / "meta_leads"
RECEIVED = 1767225700000
SECRET = "app_secret_synthetic"
VECTOR = "sha256=face5fe40700c12c756056d68fd085f88f9d74820b905a420adc8ee25dcaca70"

INSTANCE = instance(
    "meta_lead_ads",
    controller="acme-shop",
    secrets={"app_secret": SECRET, "verify_token": "verify-token-synthetic"},
    purpose_map={
        "newsletter_optin": "editorial.newsletter",
        "partner_share": "marketing.partner_transfer",
    },
    options={
        "consent_channels": {"sms_offers": ["sms"]},
        "form_notices": {"300000000000001": "v2"},
    },
)


def body(name: str) -> bytes:
    return (SAMPLES / name).read_bytes().rstrip(b"\n")


def request(raw: bytes, url: str = "https://hooks.example.test/meta/leads") -> Request:
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


def connector() -> MetaLeadAdsConnector:
    return MetaLeadAdsConnector(INSTANCE, make_edge())


def key(raw: str, channel: str) -> str:
    return make_edge().address(raw, channel).key


def test_section8_vector_verifies_and_one_byte_breaks_it() -> None:
    req = signed(body("notification.json"))
    assert req.header("x-hub-signature-256") == VECTOR
    connector().verify(req)
    raw = bytearray(req.body)
    raw[40] ^= 0x01
    with pytest.raises(AuthenticationFailed):
        connector().verify(dataclasses.replace(req, body=bytes(raw)))
    bad = {**req.headers, "x-hub-signature-256": VECTOR[:-1] + "1"}
    with pytest.raises(AuthenticationFailed):
        connector().verify(dataclasses.replace(req, headers=bad))


def test_subscription_handshake_echoes_the_challenge() -> None:
    url = (
        "https://hooks.example.test/meta/leads?hub.mode=subscribe"
        "&hub.verify_token=verify-token-synthetic&hub.challenge=1158201444"
    )
    get = dataclasses.replace(request(b"", url), method="GET")
    answer = connector().handshake(get)
    assert answer is not None
    assert (answer.status, answer.body, answer.content_type) == (200, b"1158201444", "text/plain")
    wrong = dataclasses.replace(get, query={**get.query, "hub.verify_token": ["not-the-token"]})
    with pytest.raises(AuthenticationFailed):
        connector().handshake(wrong)
    assert connector().handshake(signed(body("lead.json"))) is None


def test_notification_alone_maps_to_no_event() -> None:
    out = connector().map_request(signed(body("notification.json")))
    assert (out.usage, out.consent) == ([], [])


def test_lead_maps_to_delivery_and_one_consent_per_checkbox_and_address() -> None:
    out = connector().map_request(signed(body("lead.json")))
    email, phone = key("ana.lima@example.org", "email"), key("+351910000001", "sms")
    assert [(u.subject_key, u.channel, u.kind) for u in out.usage] == [
        (email, Channel.EMAIL, UsageKind.LEAD_DELIVERED),
        (phone, Channel.SMS, UsageKind.LEAD_DELIVERED),
    ]
    usage = out.usage[0]
    assert (usage.controller, usage.form_id, usage.campaign_id) == (
        "acme-shop",
        "300000000000001",
        "500000000000001",
    )
    assert usage.occurred_at_ms == 1767225600000
    assert usage.received_at_ms == RECEIVED
    assert (usage.source, usage.processor) == ("meta_lead_ads-test", "meta_lead_ads")
    got = [(c.subject_key, c.action, c.purposes, c.channels, c.scope) for c in out.consent]
    assert got == [
        (email, ConsentAction.GRANT, ["editorial.newsletter"], [Channel.EMAIL], "newsletter_optin"),
        (
            email,
            ConsentAction.REFUSE,
            ["marketing.partner_transfer"],
            [Channel.EMAIL],
            "partner_share",
        ),
        (phone, ConsentAction.GRANT, ["editorial.newsletter"], [Channel.SMS], "newsletter_optin"),
        (
            phone,
            ConsentAction.REFUSE,
            ["marketing.partner_transfer"],
            [Channel.SMS],
            "partner_share",
        ),
    ]
    consent = out.consent[0]
    assert consent.controller == "acme-shop"
    assert consent.unmapped_purposes == []
    assert consent.proof is not None
    assert (consent.proof.method, consent.proof.collected_at_ms) == ("checkbox", 1767225600000)
    assert consent.proof.collection_point == "meta-lead-form:300000000000001"
    assert consent.proof.notice_version == "v2"
    assert consent.proof.vendor_receipt == "200000000000001"
    assert consent.attributes == {
        "lead_id": "200000000000001",
        "ad_id": "400000000000001",
        "platform": "fb",
        "is_organic": False,
    }
    assert "Ana" not in repr(out) and "Lima" not in repr(out)


def test_boolean_encoding_unmapped_checkbox_and_channel_scoped_checkbox() -> None:
    out = connector().map_request(signed(body("lead_boolean.json")))
    email = key("bo.martin@example.org", "email")
    assert [u.subject_key for u in out.usage] == [email]
    assert out.usage[0].occurred_at_ms == 1767342600000
    got = [(c.action, c.purposes, c.unmapped_purposes, c.scope) for c in out.consent]
    # sms_offers is configured for SMS only: it says nothing about the e-mail address.
    assert got == [
        (ConsentAction.REFUSE, ["editorial.newsletter"], [], "newsletter_optin"),
        (ConsentAction.GRANT, [], ["contest_rules"], "contest_rules"),
    ]


def test_graph_page_and_file_rows_map_like_single_leads() -> None:
    one, two = json.loads(body("lead.json")), json.loads(body("lead_boolean.json"))
    page = connector().map_request(signed(json.dumps({"data": [one, two]}).encode()))
    single = connector().map_request(signed(body("lead.json")))
    assert [e.event_id for e in page.usage][:2] == [e.event_id for e in single.usage]
    assert (len(page.usage), len(page.consent)) == (3, 6)
    row = connector().map_row(one)
    assert [e.event_id for e in row.consent] == [e.event_id for e in single.consent]


def test_redelivery_gives_the_same_ids() -> None:
    first = connector().map_request(signed(body("lead.json")))
    again = connector().map_request(
        dataclasses.replace(signed(body("lead.json")), received_at_ms=RECEIVED + 3_600_000)
    )
    ids = [e.event_id for e in [*first.usage, *first.consent]]
    assert ids == [e.event_id for e in [*again.usage, *again.consent]]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda d: d.pop("created_time"), "missing_field"),
        (lambda d: d.update(created_time="2026-01-01T00:00:00"), "bad_timestamp"),
        (
            lambda d: d.update(field_data=[{"name": "full_name", "values": ["Ana"]}]),
            "missing_field",
        ),
        (lambda d: d["field_data"][0].update(values=["not-an-address"]), "bad_email"),
        (lambda d: d["custom_disclaimer_responses"][0].update(is_checked="maybe"), "bad_value"),
        (lambda d: d.clear(), "unknown_event"),
    ],
)
def test_malformed_leads_are_refused_with_a_reason(change, code: str) -> None:
    lead = json.loads(body("lead.json"))
    change(lead)
    with pytest.raises(InvalidInput) as info:
        connector().map_request(signed(json.dumps(lead).encode()))
    assert info.value.code == code
    assert "ana.lima" not in info.value.message


def meta_case() -> ConnectorCase:
    return ConnectorCase(
        connector="meta_lead_ads",
        instance=INSTANCE,
        samples=(
            Sample("notification", signed(body("notification.json"))),
            Sample("lead", signed(body("lead.json")), usage=2, consent=4),
            Sample("lead_boolean", signed(body("lead_boolean.json")), usage=1, consent=2),
        ),
        sign=sign,
        signed_parts=("body",),
        rows=(json.loads(body("lead.json")), json.loads(body("lead_boolean.json"))),
    )


TestMetaLeadsConformance = conformance_suite(meta_case())
