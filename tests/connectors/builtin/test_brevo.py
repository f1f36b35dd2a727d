"""Brevo transactional and marketing webhooks (connectors.md §1.3)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from consentinel.connectors.auth import AuthenticationFailed, basic_auth_header
from consentinel.connectors.builtin.brevo import BrevoConnector, event_name, sign
from consentinel.connectors.contract import Request
from consentinel.connectors.testkit import (
    ConnectorCase,
    Sample,
    conformance_suite,
    instance,
    make_edge,
)
from consentinel.streams.checker import fanout, members
from consentinel.streams.events import ids
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import (
    Channel,
    ConsentAction,
    ConsentEvent,
    Decision,
    Declaration,
    Proof,
    UsageEvent,
    UsageKind,
)
from consentinel.streams.policy.engine import PolicySettings, evaluate
from consentinel.streams.policy.history import ConsentHistory

SAMPLES = Path(__file__).parent / "samples" / "brevo"
TOKEN = "brevo_shared_token_0123456789"
URL = "https://hooks.example.test/hooks/brevo"
RECEIVED = 1_767_620_000_000

INSTANCE = instance(
    "brevo",
    secrets={"token": TOKEN},
    purpose_map={
        "12": "editorial.newsletter",
        "marketing": "marketing.direct",
        "receipt": "service.transactional",
    },
    options={"account": "acme-brevo"},
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
        remote="1.179.112.1",
        received_at_ms=RECEIVED,
    )


def body_of(name: str) -> bytes:
    return (SAMPLES / f"{name}.json").read_bytes()


def sample(name: str) -> Request:
    return sign(request(body_of(name)), INSTANCE)


def mapped(name: str):
    connector = BrevoConnector(INSTANCE, make_edge())
    req = sample(name)
    connector.verify(req)
    return connector.map_request(req)


# -- authentication ---------------------------------------------------------------------


def test_token_accepted_as_basic_bearer_query_or_path() -> None:
    connector = BrevoConnector(INSTANCE, make_edge())
    body = body_of("transactional_request")
    connector.verify(request(body, url=f"{URL}?token={TOKEN}"))
    connector.verify(request(body, url=f"{URL}/{TOKEN}"))
    connector.verify(request(body, headers={"authorization": f"Bearer {TOKEN}"}))
    basic = basic_auth_header("consentinel", TOKEN)
    connector.verify(request(body, headers={"authorization": basic}))
    for wrong in (
        request(body),
        request(body, url=f"{URL}?token=wrong"),
        request(body, headers={"authorization": "Bearer wrong"}),
        request(body, headers={"authorization": basic_auth_header("someone", TOKEN)}),
        request(body, url=f"{URL}?token={TOKEN}", headers={"authorization": "Bearer wrong"}),
    ):
        with pytest.raises(AuthenticationFailed):
            connector.verify(wrong)


def test_sign_follows_the_auth_option() -> None:
    basic = instance("brevo", secrets={"token": TOKEN}, options={"auth": "basic"})
    signed = sign(request(b"{}"), basic)
    assert signed.headers["authorization"] == basic_auth_header("consentinel", TOKEN)
    assert sign(request(b"{}"), INSTANCE).query["token"] == [TOKEN]


def test_configuration_names_are_aliases() -> None:
    assert event_name("hardBounce") == "hard_bounce"
    assert event_name("unsubscribed") == "unsubscribe"
    assert event_name("listAddition") == "list_addition"
    assert event_name("unique_opened") == "unique_opened"


# -- transactional ----------------------------------------------------------------------


def test_transactional_unsubscribe_uses_ts_epoch() -> None:
    out = mapped("transactional_unsubscribe")
    (usage,) = out.usage
    (withdraw,) = out.consent
    ana = key("ana.lima@example.org")
    assert usage.kind is UsageKind.UNSUBSCRIBE_LINK and usage.channel is Channel.EMAIL
    assert usage.occurred_at_ms == 1_767_608_102_000 and usage.subject_key == ana
    assert usage.declared_purpose == "marketing.direct" and usage.tags == ["newsletter"]
    assert usage.sender == "acme-brevo" and usage.received_at_ms == RECEIVED
    message_id = "<202601051015.12345678901@smtp-relay.mailin.fr>"
    assert usage.attributes["message_id_sha256"] == hashlib.sha256(message_id.encode()).hexdigest()
    assert usage.event_id == ids.event_id(
        "brevo-test",
        "transactional",
        message_id,
        "unsubscribe",
        "ts_epoch=1767608102000",
        ana,
        "usage",
    )
    assert withdraw.action is ConsentAction.WITHDRAW and withdraw.purposes == []
    assert withdraw.occurred_at_ms == 1_767_608_102_000
    assert withdraw.proof is not None and withdraw.proof.method == "unsubscribe_link"


def test_transactional_request_is_a_send() -> None:
    (send,) = mapped("transactional_request").usage
    assert send.kind is UsageKind.SEND and send.subject_key == key("bo@example.net")
    assert send.occurred_at_ms == 1_767_603_600_123
    assert send.list_id == "17" and send.tags == ["order"]
    assert send.declared_purpose == "service.transactional"


def test_batched_events_are_accepted() -> None:
    out = mapped("batched")
    kinds = [u.kind for u in out.usage]
    assert kinds == [UsageKind.OPEN, UsageKind.CLICK, UsageKind.BOUNCE, UsageKind.COMPLAINT]
    assert out.usage[1].attributes["url_host"] == "shop.example.com"
    (withdraw,) = out.consent
    assert withdraw.subject_key == key("eve@example.org")
    assert withdraw.proof is not None and withdraw.proof.method == "spam_complaint"


# -- marketing --------------------------------------------------------------------------


def test_marketing_unsubscribe_withdraws_each_list() -> None:
    out = mapped("marketing_unsubscribe")
    (usage,) = out.usage
    assert usage.kind is UsageKind.UNSUBSCRIBE_LINK and usage.campaign_id == "214"
    assert usage.occurred_at_ms == 1_767_611_702_000
    assert usage.list_id is None and usage.attributes["list_ids"] == "12,31"
    assert usage.attributes["campaign_name"] == "January digest"
    first, second = out.consent
    assert (first.scope, second.scope) == ("12", "31")
    assert first.purposes == ["editorial.newsletter"] and first.unmapped_purposes == []
    assert second.purposes == [] and second.unmapped_purposes == ["31"]
    assert first.event_id != second.event_id
    assert first.occurred_at_ms == 1_767_611_702_000


def test_marketing_delivered_gives_the_send_the_checker_judges() -> None:
    send, deliver = mapped("marketing_delivered").usage
    assert (send.kind, deliver.kind) == (UsageKind.SEND, UsageKind.DELIVER)
    assert send.attributes["derived_from"] == "delivered"
    assert send.campaign_id == deliver.campaign_id == "214" and send.list_id == "12"
    assert send.event_id != deliver.event_id
    assert send.subject_key == key("carla@example.org")


def test_list_addition_is_membership_not_consent() -> None:
    out = mapped("list_addition")
    assert out.usage == []
    assert [(c.action, c.scope) for c in out.consent] == [
        (ConsentAction.JOIN, "12"),
        (ConsentAction.JOIN, "31"),
    ]
    first = out.consent[0]
    assert first.proof is None and first.purposes == [] and first.unmapped_purposes == []
    assert first.attributes["evidence"] == "list_addition"
    assert first.occurred_at_ms == 1_767_549_600_000
    assert first.event_id != out.consent[1].event_id


def _rented_file_then_campaign() -> tuple[list[ConsentEvent], UsageEvent]:
    """An operator imports a rented file into list 12 (Brevo reports ``list_addition``),
    then campaign 214 to that list is delivered to the address."""
    joined = mapped("list_addition").consent
    delivered = json.loads(body_of("marketing_delivered"))
    delivered["email"] = "dan@example.org"
    connector = BrevoConnector(INSTANCE, make_edge())
    send = connector.map_request(sign(request(json.dumps(delivered).encode()), INSTANCE)).usage[0]
    assert send.kind is UsageKind.SEND and send.list_id == "12"
    return joined, send


def test_a_rented_file_imported_into_a_list_gives_a_violation_on_the_campaign() -> None:
    joined, send = _rented_file_then_campaign()
    history = ConsentHistory(send.subject_key)
    assert not any(history.apply(e) for e in joined), "a join is no consent"
    decl = Declaration(
        "list:12", "list", "12", INSTANCE.controller, "editorial.newsletter", Channel.EMAIL
    )
    verdict = evaluate(send, history, decl, PolicySettings(), final=True)
    assert verdict.decision is Decision.VIOLATION and "R1" in verdict.rule_ids
    # the same person, had the import been taken as a grant scoped to the list: allowed
    granted = ConsentHistory(send.subject_key)
    for e in joined:
        granted.apply(
            dataclasses.replace(
                e,
                action=ConsentAction.GRANT,
                purposes=["editorial.newsletter"],
                proof=Proof(record_ref="brevo"),
            )
        )
    lawful = evaluate(send, granted, decl, PolicySettings(), final=True)
    assert lawful.decision is not Decision.VIOLATION


def test_a_list_addition_puts_the_address_on_the_list() -> None:
    joined, send = _rented_file_then_campaign()
    state = None
    for e in joined:
        _, state = members.apply(state, e)
    assert state is not None
    ref = fanout.list_ref("brevo", INSTANCE.controller, "12")
    assert members.on_at(state.lists[ref], send.occurred_at_ms)
    assert fanout.list_ref("brevo", INSTANCE.controller, "31") in state.lists


def test_unique_coupon_sent_is_a_marketing_use() -> None:
    (send,) = mapped("unique_coupon_sent").usage
    assert send.kind is UsageKind.SEND and send.channel is Channel.EMAIL
    assert send.subject_key == key("ana.lima@example.org")
    assert send.campaign_id == "215" and send.tags == ["welcome"]
    assert send.occurred_at_ms == 1_767_610_800_000
    assert send.source_event_type == "unique_coupon_sent"
    assert send.attributes["coupon_collection_id"] == "5f3e0a4b-9c2d-4e1f-a7b8-c3d2e1f0a9b8"
    assert "WELCOME-7Q2X" not in str(send), "the coupon code is never kept"


# -- transactional SMS ------------------------------------------------------------------


def phone_key(number: str) -> str:
    return make_edge().address(number, "sms", "FR").key


def test_sms_sent_is_a_send_to_the_number_at_paris_time() -> None:
    (send,) = mapped("sms_sent").usage
    assert send.kind is UsageKind.SEND and send.channel is Channel.SMS
    assert send.subject_key == phone_key("+33612345678")
    assert send.occurred_at_ms == 1_767_608_102_000  # 2026-01-05 11:15:02 CET
    assert send.tags == ["order"] and send.source_event_type == "sms.sent"
    assert send.attributes["sms_type"] == "transactional"
    assert send.attributes["sms_count"] == 1 and send.attributes["sender_type"] == "unknown"
    (deliver,) = mapped("sms_delivered").usage
    assert deliver.kind is UsageKind.DELIVER and deliver.subject_key == send.subject_key
    assert deliver.event_id != send.event_id


def test_sms_bounce_reads_summer_time() -> None:
    (bounce,) = mapped("sms_hard_bounce").usage
    assert bounce.kind is UsageKind.BOUNCE
    assert bounce.subject_key == phone_key("+447700900123")
    assert bounce.occurred_at_ms == 1_783_242_909_000  # 2026-07-05 11:15:09 CEST


def test_sms_unsubscription_withdraws_on_sms() -> None:
    out = mapped("sms_unsubscription")
    assert out.usage == []
    (withdraw,) = out.consent
    assert withdraw.action is ConsentAction.WITHDRAW and withdraw.channels == [Channel.SMS]
    assert withdraw.purposes == [] and withdraw.subject_key == phone_key("+33612345678")
    assert withdraw.proof is not None and withdraw.proof.method == "sms_unsubscription"


def test_sms_stop_reply_is_a_reply_and_a_withdrawal() -> None:
    out = mapped("sms_reply")
    (reply,) = out.usage
    (stop,) = out.consent
    assert reply.kind is UsageKind.REPLY and reply.attributes["keyword"] == "stop"
    assert stop.action is ConsentAction.WITHDRAW and stop.channels == [Channel.SMS]
    assert "STOP" not in str(reply.attributes)


def test_sms_accepted_gives_nothing_and_softbounce_is_camel_case() -> None:
    connector = BrevoConnector(INSTANCE, make_edge())
    accepted = (
        b'{"to": "33612345678", "msg_status": "accepted", "messageId": 9,'
        b' "date": "2026-01-05 11:15:02"}'
    )
    assert len(connector.map_request(request(accepted))) == 0
    soft = (
        b'{"to": "33612345678", "msg_status": "softBounce", "messageId": 9, "ts_event": 1767608102}'
    )
    (usage,) = connector.map_request(request(soft)).usage
    assert usage.kind is UsageKind.BOUNCE and usage.occurred_at_ms == 1_767_608_102_000


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (
            b'{"to": "33612345678", "msg_status": "teleport", "messageId": 1,'
            b' "date": "2026-01-05 11:15:02"}',
            "unknown_event",
        ),
        (
            b'{"to": "33612345678", "msg_status": "sent", "date": "2026-01-05 11:15:02"}',
            "missing_field",
        ),
        (b'{"to": "33612345678", "msg_status": "sent", "messageId": 1}', "missing_field"),
        (
            b'{"to": "not a number", "msg_status": "sent", "messageId": 1,'
            b' "date": "2026-01-05 11:15:02"}',
            "bad_phone",
        ),
        (b'{"msg_status": "sent", "messageId": 1, "date": "2026-01-05 11:15:02"}', "missing_field"),
    ],
)
def test_malformed_sms_events_say_why(body: bytes, code: str) -> None:
    with pytest.raises(InvalidInput) as err:
        BrevoConnector(INSTANCE, make_edge()).map_request(request(body))
    assert err.value.code == code and "33612345678" not in err.value.message


def test_contact_updates_give_nothing() -> None:
    body = b'{"event": "contact_updated", "email": "a@example.org", "ts_event": 1767549600}'
    assert len(BrevoConnector(INSTANCE, make_edge()).map_request(request(body))) == 0


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "malformed_json"),
        (b"[1]", "malformed_json"),
        (b'{"email": "a@example.org"}', "missing_field"),
        (
            b'{"event": "teleport", "email": "a@example.org", "ts_epoch": 1767603600000}',
            "unknown_event",
        ),
        (b'{"event": "delivered", "email": "a@example.org"}', "missing_field"),
        (b'{"event": "delivered", "email": "a@", "ts_epoch": 1767603600000}', "bad_email"),
        (
            b'{"event": "unsubscribe", "camp_id": 1, "email": "a@example.org",'
            b' "ts_event": 1767603600, "list_id": {"x": 1}}',
            "bad_value",
        ),
    ],
)
def test_malformed_events_say_why(body: bytes, code: str) -> None:
    with pytest.raises(InvalidInput) as err:
        BrevoConnector(INSTANCE, make_edge()).map_request(request(body))
    assert err.value.code == code and "a@example.org" not in err.value.message


# -- conformance ------------------------------------------------------------------------


def brevo_case() -> ConnectorCase:
    counts = {
        "transactional_unsubscribe": (1, 1),
        "marketing_unsubscribe": (1, 2),
        "transactional_request": (1, 0),
        "marketing_delivered": (2, 0),
        "list_addition": (0, 2),
        "batched": (4, 1),
        "unique_coupon_sent": (1, 0),
        "sms_sent": (1, 0),
        "sms_delivered": (1, 0),
        "sms_hard_bounce": (1, 0),
        "sms_unsubscription": (0, 1),
        "sms_reply": (1, 1),
    }
    return ConnectorCase(
        connector="brevo",
        instance=INSTANCE,
        samples=tuple(Sample(n, sample(n), usage=u, consent=c) for n, (u, c) in counts.items()),
        sign=sign,
        signed_parts=(),
        signature="query:token",
        malformed=(b'{"event": "nope", "email": "a@example.org", "ts_epoch": 1767603600000}',),
    )


TestBrevoConformance = conformance_suite(brevo_case())


def test_busy_status_is_one_brevo_retries() -> None:
    # Brevo drops a webhook answered with a 5xx: when nothing can keep the event the ingest
    # must answer 429, which Brevo retries.
    from consentinel.connectors.builtin.brevo import BrevoConnector
    from consentinel.connectors.contract import Connector

    assert Connector.busy_status == 503
    assert BrevoConnector.busy_status == 429
