"""Twilio SendGrid signed Event Webhook and suppression exports (connectors.md §1.4, §8)."""

from __future__ import annotations

import base64
import csv
import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
from consentinel.connectors.auth import AuthConfigError, AuthenticationFailed
from consentinel.connectors.builtin.sendgrid import SendGridConnector, sign
from consentinel.connectors.contract import Request
from consentinel.connectors.testkit import (
    ConnectorCase,
    Sample,
    conformance_suite,
    instance,
    make_edge,
)
from consentinel.streams.events import ids
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import Channel, ConsentAction, UsageKind
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

SAMPLES = Path(__file__).parent / "samples" / "sendgrid"
URL = "https://hooks.example.test/sendgrid"
RECEIVED = 1_767_230_000_000

_PRIVATE = ec.generate_private_key(ec.SECP256R1())
PUBLIC_B64 = base64.b64encode(
    _PRIVATE.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode("ascii")
PRIVATE_PEM = _PRIVATE.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)

INSTANCE = instance(
    "sendgrid",
    secrets={"verification_key": PUBLIC_B64, "signing_key": PRIVATE_PEM},
    purpose_map={
        "3301": "editorial.newsletter",
        "4410": "marketing.direct",
        "marketing": "marketing.direct",
    },
    options={"account": "acme-subuser"},
)

VECTOR_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEsHuGGiympyRMrWvmJISN+fAeHMEGxB7aOostM7jMHjhApbhvZ53A3"
    "CinW67+eqLRbwehwyCh8OU5Oarwp62MtA=="
)
VECTOR_TIMESTAMP = "1767225601"
VECTOR_SIGNATURE = (
    "MEUCIBPuNzyXu3t+BsfRXUyd1H8bMTn8pfl02M4/lMjy+LFEAiEA"
    "7hmBI7TjwpKcB2fN7C5rHCyAo1XirfUbqtE908AGHrk="
)


def key(address: str) -> str:
    return make_edge().address(address, "email").key


def request(
    body: bytes, headers: dict[str, str] | None = None, received: int = RECEIVED
) -> Request:
    return Request(
        method="POST",
        url=URL,
        path="/sendgrid",
        query={},
        headers={"content-type": "application/json", **(headers or {})},
        body=body,
        remote="167.89.118.1",
        received_at_ms=received,
    )


def body_of(name: str) -> bytes:
    """The sample as SendGrid posts it: compact JSON and a trailing CRLF."""
    data = json.loads((SAMPLES / f"{name}.json").read_text(encoding="utf-8"))
    return json.dumps(data, separators=(",", ":")).encode("utf-8") + b"\r\n"


def sample(name: str) -> Request:
    return sign(request(body_of(name)), INSTANCE)


def mapped(name: str, inst=INSTANCE):
    connector = SendGridConnector(inst, make_edge())
    req = sign(request(body_of(name)), inst)
    connector.verify(req)
    return connector.map_request(req)


def rows(name: str) -> list[dict[str, str]]:
    with (SAMPLES / name).open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# -- §8 vector --------------------------------------------------------------------------


def vector_request(body: bytes | None = None, stamp: str = VECTOR_TIMESTAMP) -> Request:
    raw = (SAMPLES / "vector_body.json").read_bytes() if body is None else body
    headers = {
        "x-twilio-email-event-webhook-signature": VECTOR_SIGNATURE,
        "x-twilio-email-event-webhook-timestamp": stamp,
    }
    return request(raw, headers, received=1_767_225_630_000)


VECTOR_INSTANCE = instance("sendgrid", secrets={"verification_key": VECTOR_KEY})


def test_section8_vector_verifies_through_the_connector() -> None:
    connector = SendGridConnector(VECTOR_INSTANCE, make_edge())
    req = vector_request()
    assert req.body.endswith(b"}]\r\n")
    connector.verify(req)
    (usage,) = connector.map_request(req).usage
    assert usage.kind is UsageKind.DELIVER and usage.occurred_at_ms == 1_767_225_600_000
    assert usage.event_id == ids.event_id("sendgrid-test", "c3ludGhldGljLWV2ZW50LTAwMDE", "usage")


@pytest.mark.parametrize("change", ["body", "crlf", "timestamp"])
def test_section8_vector_fails_when_one_byte_changes(change: str) -> None:
    raw = (SAMPLES / "vector_body.json").read_bytes()
    if change == "body":
        req = vector_request(raw.replace(b"delivered", b"delivereD"))
    elif change == "crlf":
        req = vector_request(raw[:-2])
    else:
        req = vector_request(stamp="1767225602")
    with pytest.raises(AuthenticationFailed):
        SendGridConnector(VECTOR_INSTANCE, make_edge()).verify(req)


def test_stale_timestamp_is_refused_unless_the_check_is_off() -> None:
    late = dataclasses.replace(vector_request(), received_at_ms=1_767_226_000_000)
    with pytest.raises(AuthenticationFailed) as err:
        SendGridConnector(VECTOR_INSTANCE, make_edge()).verify(late)
    assert err.value.reason == "stale_timestamp"
    relaxed = instance(
        "sendgrid", secrets={"verification_key": VECTOR_KEY}, options={"max_age_s": None}
    )
    SendGridConnector(relaxed, make_edge()).verify(late)


def test_a_wrong_verification_key_stops_the_instance() -> None:
    with pytest.raises(AuthConfigError):
        SendGridConnector(instance("sendgrid", secrets={"verification_key": "nope"}), make_edge())


def test_previous_key_is_accepted_while_rotating() -> None:
    inst = instance(
        "sendgrid",
        secrets={"verification_key": PUBLIC_B64, "verification_key_previous": VECTOR_KEY},
    )
    SendGridConnector(inst, make_edge()).verify(vector_request())


# -- mapping ----------------------------------------------------------------------------


def test_documented_batch() -> None:
    out = mapped("batch")
    delivered, group_unsub, spam = out.usage
    ana, bo = key("ana.lima@example.org"), key("bo@example.net")
    assert delivered.kind is UsageKind.DELIVER and delivered.channel is Channel.EMAIL
    assert delivered.subject_key == ana and delivered.occurred_at_ms == 1_767_225_600_000
    assert delivered.list_id == "3301" and delivered.tags == ["newsletter"]
    assert delivered.declared_purpose == "marketing.direct"
    assert delivered.sender == "acme-subuser" and delivered.received_at_ms == RECEIVED
    assert delivered.event_id == ids.event_id("sendgrid-test", "ZGVsaXZlcmVkLTAwMDE", "usage")
    assert group_unsub.kind is UsageKind.UNSUBSCRIBE_LINK
    assert spam.kind is UsageKind.COMPLAINT and spam.subject_key == bo
    group_withdraw, spam_withdraw = out.consent
    assert group_withdraw.action is ConsentAction.WITHDRAW and group_withdraw.subject_key == ana
    assert group_withdraw.purposes == ["editorial.newsletter"] and group_withdraw.scope == "3301"
    assert group_withdraw.occurred_at_ms == 1_767_229_200_000
    assert group_withdraw.proof is not None
    assert group_withdraw.proof.ip_hash == hashlib.sha256(b"198.51.100.23").hexdigest()
    assert group_withdraw.proof.vendor_receipt == "Z3JvdXAtdW5zdWItMDAwMg"
    assert spam_withdraw.purposes == [] and spam_withdraw.scope is None
    assert spam_withdraw.proof is not None and spam_withdraw.proof.method == "spam_complaint"


def test_delivery_engagement_and_group_resubscribe() -> None:
    out = mapped("more")
    assert [u.kind for u in out.usage] == [
        UsageKind.SEND,
        UsageKind.OPEN,
        UsageKind.CLICK,
        UsageKind.BOUNCE,
        UsageKind.DROP,
        UsageKind.UNSUBSCRIBE_LINK,
        UsageKind.DEFER,
    ]
    send, opened, click, bounce, _, _, _ = out.usage
    assert send.campaign_id == "88001" and send.tags == ["promo"] and send.list_id == "4410"
    assert send.declared_purpose is None and send.attributes["vendor_purpose"] == "partner"
    assert opened.attributes["machine_open"] is True
    assert click.attributes["url_host"] == "shop.example.com"
    assert bounce.attributes["bounce_type"] == "blocked"
    assert "reason" not in bounce.attributes
    unsub, resub = out.consent
    assert unsub.action is ConsentAction.WITHDRAW and unsub.purposes == []
    assert resub.action is ConsentAction.GRANT and resub.purposes == ["marketing.direct"]
    assert resub.scope == "4410" and resub.subject_key == key("eve@example.org")
    assert resub.proof is not None and resub.proof.method == "preference_center"


def test_unmapped_group_fails_closed() -> None:
    inst = dataclasses.replace(INSTANCE, purpose_map={})
    group_withdraw = mapped("batch", inst).consent[0]
    assert group_withdraw.purposes == [] and group_withdraw.unmapped_purposes == ["3301"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "malformed_json"),
        (b'{"event": "open"}', "malformed_json"),
        (b'[{"event": "open", "timestamp": 1767225600}]', "missing_field"),
        (
            b'[{"event": "warp", "email": "a@example.org", "timestamp": 1767225600}]',
            "unknown_event",
        ),
        (b'[{"event": "open", "email": "a@example.org", "timestamp": "x"}]', "bad_timestamp"),
        (
            b'[{"event": "group_unsubscribe", "email": "a@example.org", "timestamp": 1767225600}]',
            "missing_field",
        ),
    ],
)
def test_malformed_batches_say_why(body: bytes, code: str) -> None:
    with pytest.raises(InvalidInput) as err:
        SendGridConnector(INSTANCE, make_edge()).map_request(request(body))
    assert err.value.code == code and "a@example.org" not in err.value.message


# -- suppression exports ----------------------------------------------------------------


def test_suppression_exports_become_withdrawals() -> None:
    (spam,) = rows("spam_reports.csv")
    (group,) = rows("group_unsubscribes.csv")
    (unsub,) = rows("unsubscribes.csv")
    connector = SendGridConnector(INSTANCE, make_edge())
    (w1,) = connector.map_row({**spam, "suppression": "spam_reports"}).consent
    assert w1.action is ConsentAction.WITHDRAW and w1.occurred_at_ms == 1_767_229_300_000
    assert w1.proof is not None and w1.proof.method == "spam_complaint" and w1.purposes == []
    (w2,) = connector.map_row(group).consent
    assert w2.purposes == ["editorial.newsletter"] and w2.scope == "3301"
    assert w2.occurred_at_ms == 1_767_229_200_000
    (w3,) = connector.map_row(unsub).consent
    assert w3.subject_key == key("eve@example.org") and w3.purposes == []
    assert len(connector.map_row({**unsub, "suppression": "bounces"})) == 0


# -- conformance ------------------------------------------------------------------------


def sendgrid_case() -> ConnectorCase:
    return ConnectorCase(
        connector="sendgrid",
        instance=INSTANCE,
        samples=(
            Sample("batch", sample("batch"), usage=3, consent=2),
            Sample("more", sample("more"), usage=7, consent=2),
        ),
        sign=sign,
        signed_parts=("body", "timestamp"),
        signature="header:x-twilio-email-event-webhook-signature",
        malformed=(b'[{"event": "nope", "email": "a@example.org", "timestamp": 1767225600}]',),
        rows=(
            *rows("unsubscribes.csv"),
            *rows("group_unsubscribes.csv"),
            *({**r, "suppression": "spam_reports"} for r in rows("spam_reports.csv")),
        ),
    )


TestSendGridConformance = conformance_suite(sendgrid_case())
