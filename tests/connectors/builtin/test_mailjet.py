"""Mailjet event callbacks and unsubscribe exports (connectors.md §1.5)."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from consentinel.connectors.auth import AuthenticationFailed, basic_auth_header
from consentinel.connectors.builtin.mailjet import MailjetConnector, sign
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

SAMPLES = Path(__file__).parent / "samples" / "mailjet"
TOKEN = "mailjet_basic_password_0123"
URL = "https://hooks.example.test/hooks/mailjet"
RECEIVED = 1_767_240_000_000

INSTANCE = instance(
    "mailjet",
    secrets={"token": TOKEN},
    purpose_map={"1502": "editorial.newsletter", "newsletter": "editorial.newsletter"},
    options={"basic_user": "mj-hook", "account": "acme-mj"},
)


def key(address: str) -> str:
    return make_edge().address(address, "email").key


def request(body: bytes, *, url: str = URL, headers: dict[str, str] | None = None) -> Request:
    parts = urlsplit(url)
    return Request(
        method="POST",
        url=url,
        path=parts.path,
        query=parse_qs(parts.query, keep_blank_values=True),
        headers={"content-type": "application/json", **(headers or {})},
        body=body,
        remote="87.253.232.1",
        received_at_ms=RECEIVED,
    )


def body_of(name: str) -> bytes:
    return (SAMPLES / f"{name}.json").read_bytes()


def sample(name: str) -> Request:
    return sign(request(body_of(name)), INSTANCE)


def mapped(name: str):
    connector = MailjetConnector(INSTANCE, make_edge())
    req = sample(name)
    connector.verify(req)
    return connector.map_request(req)


def rows() -> list[dict[str, str]]:
    with (SAMPLES / "unsubscribed.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_basic_credentials_from_the_callback_url() -> None:
    connector = MailjetConnector(INSTANCE, make_edge())
    signed = sample("sent")
    assert signed.headers["authorization"] == basic_auth_header("mj-hook", TOKEN)
    connector.verify(signed)
    connector.verify(request(body_of("sent"), url=f"{URL}?token={TOKEN}"))
    for headers in (
        {},
        {"authorization": basic_auth_header("mj-hook", "wrong")},
        {"authorization": basic_auth_header("consentinel", TOKEN)},
        {"authorization": "Digest abc"},
    ):
        with pytest.raises(AuthenticationFailed):
            connector.verify(request(body_of("sent"), headers=headers))


def test_unsub_via_the_list_unsubscribe_header() -> None:
    out = mapped("unsub")
    (usage,) = out.usage
    (withdraw,) = out.consent
    ana = key("ana.lima@example.org")
    assert usage.kind is UsageKind.UNSUBSCRIBE_LINK and usage.channel is Channel.EMAIL
    assert usage.occurred_at_ms == 1_767_229_200_000 and usage.subject_key == ana
    assert usage.campaign_id == "jan-digest" and usage.list_id == "1502"
    assert usage.attributes["message_id"] == "19421777835146490"
    assert usage.attributes["mj_campaign_id"] == "7331"
    assert usage.sender == "acme-mj" and usage.received_at_ms == RECEIVED
    assert usage.event_id == ids.event_id(
        "mailjet-test", "19421777835146490", "unsub", 1767229200, ana, "usage"
    )
    assert withdraw.action is ConsentAction.WITHDRAW
    assert withdraw.purposes == ["editorial.newsletter"] and withdraw.scope == "1502"
    assert withdraw.proof is not None and withdraw.proof.method == "list_unsubscribe_header"
    assert withdraw.proof.ip_hash == hashlib.sha256(b"198.51.100.23").hexdigest()
    assert withdraw.attributes["geo"] == "PT"


def test_sent_gives_the_send_the_checker_judges_and_a_deliver() -> None:
    send, deliver = mapped("sent").usage
    assert (send.kind, deliver.kind) == (UsageKind.SEND, UsageKind.DELIVER)
    assert send.attributes["derived_from"] == "sent"
    assert send.declared_purpose == "editorial.newsletter"
    assert send.attributes["custom_id"] == "order-0001"
    assert send.subject_key == key("bo@example.net")
    assert send.occurred_at_ms == deliver.occurred_at_ms == 1_767_225_600_000
    assert send.event_id != deliver.event_id


def test_grouped_events() -> None:
    out = mapped("grouped")
    assert [u.kind for u in out.usage] == [
        UsageKind.OPEN,
        UsageKind.CLICK,
        UsageKind.BOUNCE,
        UsageKind.DROP,
        UsageKind.COMPLAINT,
    ]
    _, click, bounce, _, _ = out.usage
    assert click.attributes["url_host"] == "shop.example.com"
    assert bounce.attributes["hard_bounce"] is True and bounce.campaign_id is None
    (withdraw,) = out.consent
    assert withdraw.purposes == [] and withdraw.scope is None
    assert withdraw.proof is not None and withdraw.proof.method == "spam_complaint"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "malformed_json"),
        (b'"x"', "malformed_json"),
        (b'{"event": "warp", "email": "a@example.org", "time": 1767225600}', "unknown_event"),
        (b'{"event": "open", "time": 1767225600}', "missing_field"),
        (b'{"event": "open", "email": "a@example.org", "time": [1]}', "bad_timestamp"),
    ],
)
def test_malformed_events_say_why(body: bytes, code: str) -> None:
    with pytest.raises(InvalidInput) as err:
        MailjetConnector(INSTANCE, make_edge()).map_request(request(body))
    assert err.value.code == code and "a@example.org" not in err.value.message


def test_unsubscribed_export_rows() -> None:
    listed, unlisted = (MailjetConnector(INSTANCE, make_edge()).map_row(r) for r in rows())
    (w1,) = listed.consent
    assert w1.action is ConsentAction.WITHDRAW and w1.scope == "1502"
    assert w1.purposes == ["editorial.newsletter"] and w1.occurred_at_ms == 1_767_229_200_000
    (w2,) = unlisted.consent
    assert w2.purposes == [] and w2.scope is None and w2.occurred_at_ms == 1_767_226_900_000


def mailjet_case() -> ConnectorCase:
    return ConnectorCase(
        connector="mailjet",
        instance=INSTANCE,
        samples=(
            Sample("unsub", sample("unsub"), usage=1, consent=1),
            Sample("sent", sample("sent"), usage=2, consent=0),
            Sample("grouped", sample("grouped"), usage=5, consent=1),
        ),
        sign=sign,
        signed_parts=(),
        signature="header:authorization",
        malformed=(b'{"event": "nope", "email": "a@example.org", "time": 1767225600}',),
        rows=tuple(rows()),
    )


TestMailjetConformance = conformance_suite(mailjet_case())
