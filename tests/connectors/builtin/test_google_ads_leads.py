"""Google Ads lead form webhook: google_key, implicit form consent, is_test, conformance."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from consentinel.connectors.builtin.google_ads_leads import GoogleAdsLeadsConnector, sign
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

SAMPLES = Path(__file__).parent / "samples" / "google_ads_leads"
RECEIVED = 1767225700000

INSTANCE = instance(
    "google_ads_leads",
    controller="acme-shop",
    secrets={"google_key": "per-tenant-secret"},
    purpose_map={"40000000001": "marketing.direct"},
)


def body(name: str) -> bytes:
    return (SAMPLES / name).read_bytes().rstrip(b"\n")


def request(raw: bytes) -> Request:
    return Request(
        method="POST",
        url="https://hooks.example.test/google/leads",
        path="/google/leads",
        query={},
        headers={"content-type": "application/json"},
        body=raw,
        received_at_ms=RECEIVED,
    )


def connector(inst=INSTANCE) -> GoogleAdsLeadsConnector:
    return GoogleAdsLeadsConnector(inst, make_edge())


def key(raw: str, channel: str) -> str:
    return make_edge().address(raw, channel).key


def test_google_key_is_checked_and_any_change_fails() -> None:
    req = request(body("lead.json"))
    connector().verify(req)
    for forged in (
        body("lead.json").replace(b"per-tenant-secret", b"per-tenant-secreT"),
        body("lead.json").replace(b'"google_key": "per-tenant-secret", ', b""),
        b"not json",
    ):
        with pytest.raises(AuthenticationFailed):
            connector().verify(request(forged))


def test_sign_writes_the_instance_key_and_the_previous_key_is_accepted() -> None:
    other = instance("google_ads_leads", secrets={"google_key": "rotated-key-0001"})
    with pytest.raises(AuthenticationFailed):
        connector(other).verify(request(body("lead.json")))
    connector(other).verify(sign(request(body("lead.json")), other))
    rotating = instance(
        "google_ads_leads",
        secrets={"google_key": "rotated-key-0001", "google_key_previous": "per-tenant-secret"},
    )
    connector(rotating).verify(request(body("lead.json")))


def test_lead_maps_to_delivery_and_an_implicit_form_grant_per_address() -> None:
    out = connector().map_request(request(body("lead.json")))
    email, phone = key("ana.lima@example.org", "email"), key("+351910000001", "sms")
    assert [(u.subject_key, u.channel, u.kind) for u in out.usage] == [
        (email, Channel.EMAIL, UsageKind.LEAD_DELIVERED),
        (phone, Channel.SMS, UsageKind.LEAD_DELIVERED),
    ]
    usage = out.usage[0]
    assert (usage.controller, usage.form_id, usage.campaign_id, usage.is_test) == (
        "acme-shop",
        "40000000001",
        "12000000001",
        False,
    )
    assert usage.occurred_at_ms == usage.received_at_ms == RECEIVED
    got = [(c.subject_key, c.action, c.purposes, c.channels, c.scope) for c in out.consent]
    assert got == [
        (email, ConsentAction.GRANT, ["marketing.direct"], [Channel.EMAIL], "40000000001"),
        (phone, ConsentAction.GRANT, ["marketing.direct"], [Channel.SMS], "40000000001"),
    ]
    proof = out.consent[0].proof
    assert proof is not None
    assert (proof.method, proof.collection_point, proof.vendor_receipt) == (
        "implicit_form",
        "google-lead-form:40000000001",
        "TeSter-123-ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    )
    attrs = out.consent[0].attributes
    assert attrs["weak_proof"] is True
    assert (attrs["gcl_id"], attrs["adgroup_id"]) == ("EAIaIQobChMI-synthetic", "130000000001")
    text = repr(out)
    assert "Ana Lima" not in text and "per-tenant-secret" not in text


def test_unmapped_form_and_work_email() -> None:
    out = connector().map_request(request(body("lead_email_only.json")))
    assert [u.subject_key for u in out.usage] == [key("dan@example.org", "email")]
    assert [(c.purposes, c.unmapped_purposes) for c in out.consent] == [([], ["40000000002"])]
    assert "Example Ltd" not in repr(out)


def test_test_leads_are_dropped_unless_asked_for() -> None:
    assert len(connector().map_request(request(body("test_lead.json")))) == 0
    keep = dataclasses.replace(INSTANCE, options={"ingest_test_leads": True})
    out = connector(keep).map_request(request(body("test_lead.json")))
    assert [u.is_test for u in out.usage] == [True]
    assert out.consent[0].attributes["is_test"] is True


def test_redelivery_gives_the_same_ids() -> None:
    one = connector().map_request(request(body("lead.json")))
    later = dataclasses.replace(request(body("lead.json")), received_at_ms=RECEIVED + 120_000)
    two = connector().map_request(later)
    assert [e.event_id for e in [*one.usage, *one.consent]] == [
        e.event_id for e in [*two.usage, *two.consent]
    ]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda d: d.pop("lead_id"), "missing_field"),
        (lambda d: d.pop("form_id"), "missing_field"),
        (lambda d: d.update(user_column_data=d["user_column_data"][:1]), "missing_field"),
        (lambda d: d["user_column_data"][2].update(string_value="12"), "bad_phone"),
        (lambda d: d.update(is_test="sometimes"), "bad_value"),
    ],
)
def test_malformed_leads_are_refused_with_a_reason(change, code: str) -> None:
    raw = json.loads(body("lead.json"))
    change(raw)
    with pytest.raises(InvalidInput) as info:
        connector().map_request(request(json.dumps(raw).encode()))
    assert info.value.code == code


def google_case() -> ConnectorCase:
    return ConnectorCase(
        connector="google_ads_leads",
        instance=INSTANCE,
        samples=(
            Sample("lead", request(body("lead.json")), usage=2, consent=2),
            Sample("lead_email_only", request(body("lead_email_only.json")), usage=1, consent=1),
            Sample("test_lead", request(body("test_lead.json"))),
        ),
        sign=sign,
        # google_key is a shared secret, not a MAC: only the key itself is "signed".
        signed_parts=(),
        signature="json:google_key",
        rows=(json.loads(body("lead.json")),),
    )


TestGoogleAdsLeadsConformance = conformance_suite(google_case())
