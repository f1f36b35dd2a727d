"""The declarative CDP audience example: an audience entered is a list transfer to the
instance's controller, an exit gives nothing; the conformance suite like any connector."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from consentinel.connectors.contract import Instance, Request
from consentinel.connectors.declarative import EXAMPLES
from consentinel.connectors.testkit import (
    ConnectorCase,
    Sample,
    build_connector,
    conformance_suite,
    instance,
)
from consentinel.streams.events.records import UsageKind

SAMPLES = Path(__file__).parent / "samples"
SECRET = "cdp-audience-secret-0123456789"

INST = instance(
    "declarative",
    name="cdp-audiences-test",
    controller="ads-partner",
    secrets={"secret": SECRET},
    options={"mapping": str(EXAMPLES / "cdp_audiences.yaml")},
    purpose_map={"first_time_shopper": "advertising.personalised"},
)


def sign(request: Request, inst: Instance) -> Request:
    mac = hmac.new(inst.secret("secret"), request.body, hashlib.sha256).hexdigest()
    return request.with_headers({"x-signature": mac})


def request(body: bytes) -> Request:
    base = Request(
        method="POST",
        url="https://hooks.example.test/hooks/cdp-audiences-test",
        path="/",
        query={},
        headers={"content-type": "application/json"},
        body=body,
        received_at_ms=1_803_893_500_000,
    )
    return sign(base, INST)


ENTERED = (SAMPLES / "cdp_audience_entered.json").read_bytes().rstrip(b"\n")
CASE = ConnectorCase(
    connector="cdp_audiences",
    instance=INST,
    samples=(Sample("entered", request(ENTERED), usage=1),),
    sign=sign,
)

TestCdpAudiencesConformance = conformance_suite(CASE)


def test_entering_is_a_transfer_and_leaving_is_nothing() -> None:
    connector = build_connector(CASE)
    (u,) = connector.map_request(request(ENTERED)).usage
    assert u.kind is UsageKind.LIST_TRANSFER and u.controller == "ads-partner"
    assert u.list_id == "first_time_shopper"
    assert u.declared_purpose == "advertising.personalised"
    assert u.attributes["audience_id"] == "aud_2RjMTvXoQ2N7"
    exited = ENTERED.replace(b"Audience Entered", b"Audience Exited")
    assert len(connector.map_request(request(exited))) == 0
