"""The declarative Postmark example passes the conformance suite like any connector."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from consentinel.connectors.auth import basic_auth_header
from consentinel.connectors.contract import Instance, Request
from consentinel.connectors.declarative import EXAMPLES
from consentinel.connectors.testkit import ConnectorCase, Sample, conformance_suite, instance

SAMPLES = Path(__file__).parent / "samples"

INST = instance(
    "declarative",
    name="postmark-test",
    secrets={"username": "postmark", "password": "pm-secret-0123456789"},
    options={"mapping": str(EXAMPLES / "postmark.yaml")},
    purpose_map={"newsletter": "marketing", "onboarding": "service"},
)


def sign(request: Request, inst: Instance) -> Request:
    user = inst.secret("username").decode()
    password = inst.secret("password").decode()
    headers = {**request.headers, "authorization": basic_auth_header(user, password)}
    return dataclasses.replace(request, headers=headers)


def request(body: bytes) -> Request:
    base = Request(
        method="POST",
        url="https://hooks.example.test/hooks/postmark-test",
        path="/",
        query={},
        headers={"content-type": "application/json", "content-length": str(len(body))},
        body=body,
        received_at_ms=1_767_225_600_000,
    )
    return sign(base, INST)


def sample(name: str, usage: int = 0, consent: int = 0) -> Sample:
    return Sample(name, request((SAMPLES / f"postmark_{name}.json").read_bytes()), usage, consent)


CASE = ConnectorCase(
    connector="postmark",
    instance=INST,
    samples=(
        sample("delivery", usage=1),
        sample("bounce", usage=1),
        sample("spam", usage=1, consent=1),
        sample("open", usage=1),
        sample("click", usage=1),
        sample("unsubscribe", consent=1),
        sample("reactivated"),
    ),
    sign=sign,
    malformed=(
        b'{"RecordType":"Delivery","MessageID":"x","DeliveredAt":"2026-01-05T16:33:54Z"}',
        b'{"RecordType":"Delivery","MessageID":"x","Recipient":"a@example.org"}',
        b'{"RecordType":"Teleport","MessageID":"x","Recipient":"a@example.org"}',
        b'{"RecordType":"Open","MessageID":"x","Recipient":"a@example.org","ReceivedAt":"yesterday"}',
    ),
    signed_parts=(),
    rows=(
        {
            "RecordType": "Delivery",
            "MessageID": "row-1",
            "Recipient": "Row.One@example.org",
            "DeliveredAt": "2026-01-05T16:33:54Z",
            "Tag": "import",
        },
        {
            "RecordType": "SpamComplaint",
            "MessageID": "row-2",
            "Email": "row.two@example.org",
            "BouncedAt": "2026-01-05T16:40:00Z",
        },
    ),
)

TestPostmarkConformance = conformance_suite(CASE)
