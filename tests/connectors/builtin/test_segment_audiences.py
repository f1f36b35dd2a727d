"""Segment Engage audiences through the Webhooks destination: an audience entered is a list
transfer to the destination's owner. Payloads follow Segment's documentation (Engage
"Audience generated events"; Webhooks destination "Authentication")."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest
from consentinel.connectors.builtin.segment_audiences import SegmentAudiencesConnector, sign
from consentinel.connectors.contract import AuthenticationFailed, Request
from consentinel.connectors.testkit import (
    ConnectorCase,
    Sample,
    conformance_suite,
    instance,
    make_edge,
)
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import Channel, UsageKind

SAMPLES = Path(__file__).parent / "samples" / "segment_audiences"
SECRET = "segment-shared-secret-synthetic"

INSTANCE = instance(
    "segment_audiences",
    controller="shop-sas",
    secrets={"shared_secret": SECRET},
    options={"recipient": "ads-partner", "recipients": {"vip": "vip-club"}},
    purpose_map={"first_time_shopper": "advertising.personalised"},
)


def body(name: str) -> bytes:
    return (SAMPLES / name).read_bytes().rstrip(b"\n")


def request(raw: bytes) -> Request:
    unsigned = Request(
        method="POST",
        url="https://hooks.example.test/segment",
        path="/segment",
        query={},
        headers={"content-type": "application/json", "user-agent": "Segment.io/1.0"},
        body=raw,
        received_at_ms=1_803_893_500_000,
    )
    return sign(unsigned, INSTANCE)


CASE = ConnectorCase(
    connector="segment_audiences",
    instance=INSTANCE,
    samples=(
        Sample("entered", request(body("audience_entered.json")), usage=2),
        Sample("identify", request(body("identify_entered.json")), usage=1),
    ),
    sign=sign,
)

TestSegmentAudiencesConformance = conformance_suite(CASE)


def mapped(name: str):  # type: ignore[no-untyped-def]
    c = SegmentAudiencesConnector(INSTANCE, make_edge())
    req = request(body(name))
    c.verify(req)
    return c.map_request(req)


def test_the_signature_is_segments_hmac_sha1_of_the_body() -> None:
    raw = body("audience_entered.json")
    expected = hmac.new(SECRET.encode(), raw, hashlib.sha1).hexdigest()
    assert request(raw).headers["x-signature"] == expected
    forged = request(raw).with_body(raw.replace(b"Entered", b"Exited!"))
    with pytest.raises(AuthenticationFailed):
        SegmentAudiencesConnector(INSTANCE, make_edge()).verify(forged)


def test_an_audience_entered_is_a_transfer_to_the_destinations_owner() -> None:
    out = mapped("audience_entered.json")
    assert [u.kind for u in out.usage] == [UsageKind.LIST_TRANSFER] * 2
    assert [u.channel for u in out.usage] == [Channel.EMAIL, Channel.SMS]
    u = out.usage[0]
    assert u.controller == "ads-partner" and u.list_id == "first_time_shopper"
    assert u.declared_purpose == "advertising.personalised"
    assert u.attributes["transfer_from"] == "shop-sas"
    assert u.attributes["transfer"] == "audience_sync"
    assert u.attributes["audience_id"] == "aud_2RjMTvXoQ2N7"
    assert u.occurred_at_ms == 1_803_893_400_000  # 2027-03-01T09:30:00Z
    assert "shopper.one" not in str(out.usage)


def test_an_identify_setting_the_audience_trait_is_one_too() -> None:
    (u,) = mapped("identify_entered.json").usage
    assert u.kind is UsageKind.LIST_TRANSFER and u.list_id == "first_time_shopper"
    assert u.source_event_type == "identify"


def test_exits_and_ordinary_events_give_nothing() -> None:
    assert len(mapped("audience_exited.json")) == 0
    page = b'{"type": "page", "messageId": "m1", "timestamp": "2027-03-01T09:30:00Z"}'
    c = SegmentAudiencesConnector(INSTANCE, make_edge())
    assert len(c.map_request(request(page))) == 0
    plain = b'{"type": "identify", "traits": {"email": "a@example.org", "plan": "pro"}}'
    assert len(c.map_request(request(plain))) == 0


def test_a_recipient_per_audience_and_none_configured() -> None:
    raw = body("audience_entered.json").replace(b"first_time_shopper", b"vip")
    out = SegmentAudiencesConnector(INSTANCE, make_edge()).map_request(request(raw))
    assert {u.controller for u in out.usage} == {"vip-club"}
    assert {u.declared_purpose for u in out.usage} == {None}  # unmapped: the registry decides
    bare = instance("segment_audiences", controller="shop-sas", secrets={"shared_secret": SECRET})
    with pytest.raises(InvalidInput, match="no recipient"):
        SegmentAudiencesConnector(bare, make_edge()).map_request(request(raw))


def test_batches_are_refused_with_what_to_do() -> None:
    raw = b"[" + body("audience_entered.json") + b"]"
    with pytest.raises(InvalidInput) as err:
        SegmentAudiencesConnector(INSTANCE, make_edge()).map_request(request(raw))
    assert err.value.code == "batch_not_supported"
