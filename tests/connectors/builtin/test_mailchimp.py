"""Mailchimp Marketing audience webhooks and audience exports (connectors.md §1.1)."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from consentinel.connectors.auth import AuthenticationFailed
from consentinel.connectors.builtin.mailchimp import (
    MailchimpConnector,
    list_subject_key,
    nested_form,
    sign,
)
from consentinel.connectors.contract import Request
from consentinel.connectors.testkit import (
    ConnectorCase,
    Sample,
    conformance_suite,
    instance,
    make_edge,
)
from consentinel.streams.events import ids
from consentinel.streams.events.errors import FatalConfigError, InvalidInput
from consentinel.streams.events.records import Channel, ConsentAction, UsageKind

SAMPLES = Path(__file__).parent / "samples" / "mailchimp"
TOKEN = "mc_url_secret_0123456789"
URL = "https://hooks.example.test/hooks/mailchimp"
RECEIVED = 1_767_700_000_000
LIST = "b7c1d2e3f4"

INSTANCE = instance(
    "mailchimp",
    secrets={"token": TOKEN},
    purpose_map={LIST: "editorial.newsletter"},
    options={"list_id": LIST},
)


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def key(address: str) -> str:
    return make_edge().address(address, "email").key


def request(body: bytes, *, url: str = URL, method: str = "POST") -> Request:
    parts = urlsplit(url)
    return Request(
        method=method,
        url=url,
        path=parts.path,
        query=parse_qs(parts.query, keep_blank_values=True),
        headers={"content-type": "application/x-www-form-urlencoded"},
        body=body,
        remote="205.201.131.98",
        received_at_ms=RECEIVED,
    )


def sample(name: str) -> Request:
    return sign(request((SAMPLES / f"{name}.form").read_bytes()), INSTANCE)


def mapped(name: str, inst=INSTANCE):
    connector = MailchimpConnector(inst, make_edge())
    req = sign(request((SAMPLES / f"{name}.form").read_bytes()), inst)
    assert connector.handshake(req) is None
    connector.verify(req)
    return connector.map_request(req)


def rows(name: str) -> list[dict[str, str]]:
    with (SAMPLES / name).open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


# -- transport and authentication -------------------------------------------------------


def test_get_validation_is_answered_without_the_secret() -> None:
    connector = MailchimpConnector(INSTANCE, make_edge())
    answer = connector.handshake(request(b"", method="GET"))
    assert answer is not None and answer.status == 200 and answer.body == b""


def test_token_in_query_or_path_is_accepted_and_a_wrong_one_refused() -> None:
    connector = MailchimpConnector(INSTANCE, make_edge())
    body = (SAMPLES / "subscribe.form").read_bytes()
    connector.verify(request(body, url=f"{URL}?token={TOKEN}"))
    connector.verify(request(body, url=f"{URL}/{TOKEN}"))
    for url in (URL, f"{URL}?token=nope", f"{URL}/nope"):
        with pytest.raises(AuthenticationFailed):
            connector.verify(request(body, url=url))


def test_previous_token_is_accepted_while_rotating() -> None:
    inst = instance("mailchimp", secrets={"token": "new-token-xyz", "token_previous": TOKEN})
    MailchimpConnector(inst, make_edge()).verify(request(b"", url=f"{URL}?token={TOKEN}"))


def test_bracket_keys_become_nested_objects() -> None:
    form = nested_form({"type": ["x"], "data[merges][FNAME]": ["Ana"], "data[id]": ["1"]})
    assert form == {"type": "x", "data": {"merges": {"FNAME": "Ana"}, "id": "1"}}
    with pytest.raises(InvalidInput) as err:
        nested_form({"data": ["x"], "data[id]": ["1"]})
    assert err.value.code == "malformed_form"


# -- mapping ----------------------------------------------------------------------------


def test_subscribe_is_a_grant_with_double_opt_in_proof() -> None:
    out = mapped("subscribe")
    assert out.usage == [] and len(out.consent) == 1
    grant = out.consent[0]
    assert grant.action is ConsentAction.GRANT
    assert grant.subject_key == key("ana.lima@example.org")
    assert grant.hint == "a***@e***.org"
    assert grant.controller == "acme-test" and grant.source == "mailchimp-test"
    assert grant.processor == "mailchimp"
    assert grant.occurred_at_ms == ms("2026-01-02 08:00:11")
    assert grant.received_at_ms == RECEIVED
    assert grant.purposes == ["editorial.newsletter"] and grant.unmapped_purposes == []
    assert grant.channels == [Channel.EMAIL] and grant.scope == LIST
    assert grant.proof is not None
    assert grant.proof.method == "double_opt_in"
    assert grant.proof.collected_at_ms == ms("2026-01-02 08:00:11")
    assert grant.proof.ip_hash == hashlib.sha256(b"198.51.100.23").hexdigest()
    assert grant.proof.collection_point == f"mailchimp:list:{LIST}"
    assert grant.proof.vendor_receipt == "5d1e0a9c77"
    assert grant.attributes["interests"] == "Weekly digest"
    assert grant.event_id == ids.event_id(
        "mailchimp-test", "subscribe", "2026-01-02 08:00:11", LIST, grant.subject_key, "consent"
    )


def test_unmapped_list_fails_closed() -> None:
    inst = instance("mailchimp", secrets={"token": TOKEN})
    grant = mapped("subscribe", inst).consent[0]
    assert grant.purposes == [] and grant.unmapped_purposes == [LIST]


def test_list_notices_give_the_notice_version_of_the_sign_up_form() -> None:
    inst = instance(
        "mailchimp",
        secrets={"token": TOKEN},
        purpose_map={LIST: "editorial.newsletter"},
        options={"list_notices": {LIST: "newsletter-notice-v4"}},
    )
    grant = mapped("subscribe", inst).consent[0]
    assert grant.proof is not None and grant.proof.notice_version == "newsletter-notice-v4"
    assert mapped("subscribe").consent[0].proof.notice_version is None  # not configured
    with pytest.raises(FatalConfigError):
        MailchimpConnector(
            instance("mailchimp", secrets={"token": TOKEN}, options={"list_notices": ["v4"]}),
            make_edge(),
        )


def test_a_subscribe_with_no_ip_is_membership_only_when_the_audience_takes_imports() -> None:
    joining = dataclasses.replace(
        INSTANCE, options={**INSTANCE.options, "subscribe_without_ip": "join"}
    )
    (join,) = mapped("subscribe_by_admin", joining).consent
    assert join.action is ConsentAction.JOIN and join.scope == LIST
    assert join.purposes == [] and join.proof is None
    assert join.subject_key == key("bruno.petit@example.net")
    assert join.attributes["evidence"] == "admin_subscribe"
    (grant,) = mapped("subscribe_by_admin").consent  # the default: consent, as before
    assert grant.action is ConsentAction.GRANT and grant.proof is not None
    assert grant.proof.method == "opt_in"
    (signed_up,) = mapped("subscribe", joining).consent  # an IP: the person signed up
    assert signed_up.action is ConsentAction.GRANT
    with pytest.raises(FatalConfigError):
        MailchimpConnector(
            dataclasses.replace(INSTANCE, options={"subscribe_without_ip": "maybe"}), make_edge()
        )


def test_unsubscribe_is_an_audit_usage_and_a_withdraw() -> None:
    out = mapped("unsubscribe")
    (usage,) = out.usage
    (withdraw,) = out.consent
    when = ms("2026-01-05 10:15:02")
    assert usage.kind is UsageKind.UNSUBSCRIBE_LINK and usage.channel is Channel.EMAIL
    assert usage.occurred_at_ms == when and usage.campaign_id == "c0ffee1234"
    assert usage.list_id == LIST and usage.subject_key == key("ana.lima@example.org")
    assert withdraw.action is ConsentAction.WITHDRAW
    assert withdraw.purposes == ["editorial.newsletter"] and withdraw.scope == LIST
    assert withdraw.occurred_at_ms == when
    assert withdraw.proof is not None and withdraw.proof.method == "unsubscribe_link"
    assert usage.event_id != withdraw.event_id


def test_unsubscribe_for_abuse_is_a_complaint_and_delete_has_no_usage() -> None:
    body = (SAMPLES / "unsubscribe.form").read_bytes()
    connector = MailchimpConnector(INSTANCE, make_edge())
    abuse = connector.map_request(request(body.replace(b"reason]=manual", b"reason]=abuse")))
    assert [u.kind for u in abuse.usage] == [UsageKind.COMPLAINT]
    assert abuse.consent[0].proof is not None
    assert abuse.consent[0].proof.method == "spam_complaint"
    deleted = connector.map_request(request(body.replace(b"action]=unsub", b"action]=delete")))
    assert deleted.usage == [] and [c.action for c in deleted.consent] == [ConsentAction.WITHDRAW]


def test_cleaned_hard_is_a_bounce_and_abuse_a_complaint_with_withdraw() -> None:
    hard = mapped("cleaned")
    assert [u.kind for u in hard.usage] == [UsageKind.BOUNCE] and hard.consent == []
    assert hard.usage[0].subject_key == key("old.box@example.net")
    abuse = mapped("cleaned_abuse")
    assert [u.kind for u in abuse.usage] == [UsageKind.COMPLAINT]
    assert [c.action for c in abuse.consent] == [ConsentAction.WITHDRAW]
    assert abuse.consent[0].purposes == ["editorial.newsletter"]


def test_upemail_moves_consent_to_the_new_address() -> None:
    out = mapped("upemail")
    assert out.usage == []
    new, old = out.consent
    assert new.action is ConsentAction.GRANT and new.subject_key == key("ana@example.com")
    assert old.action is ConsentAction.EXPIRE and old.subject_key == key("ana.lima@example.org")
    assert new.attributes["replaces_subject_key"] == old.subject_key
    assert old.attributes["replaced_by_subject_key"] == new.subject_key
    assert new.proof is not None and new.proof.method == "address_change"
    assert new.proof.vendor_receipt == "77aa10bb20"
    assert new.purposes == old.purposes == ["editorial.newsletter"]


def test_campaign_sent_is_one_list_level_send() -> None:
    (send,) = mapped("campaign").usage
    assert send.kind is UsageKind.SEND and send.campaign_id == "c0ffee1234"
    assert send.list_id == LIST and send.attributes["fan_out"] == "list"
    assert send.subject_key == list_subject_key("mailchimp-test", LIST)
    assert send.hint == f"* (list {LIST})"
    assert send.occurred_at_ms == ms("2026-01-08 07:00:00")
    body = (SAMPLES / "campaign.form").read_bytes().replace(b"status]=sent", b"status]=canceled")
    assert len(MailchimpConnector(INSTANCE, make_edge()).map_request(request(body))) == 0


def test_profile_changes_nothing() -> None:
    assert len(mapped("profile")) == 0


def test_fired_at_zone_option_shifts_event_time() -> None:
    inst = instance("mailchimp", secrets={"token": TOKEN}, options={"timezone": "Europe/Paris"})
    grant = mapped("subscribe", inst).consent[0]
    assert grant.occurred_at_ms == ms("2026-01-02 07:00:11")
    with pytest.raises(FatalConfigError):
        MailchimpConnector(
            instance("mailchimp", secrets={"token": TOKEN}, options={"timezone": "Mars/Base"}),
            make_edge(),
        )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"type=resubscribe&fired_at=2026-01-02+08%3A00%3A11&data[email]=x", "unknown_event"),
        (b"fired_at=2026-01-02+08%3A00%3A11", "missing_field"),
        (b"type=subscribe&fired_at=yesterday&data[list_id]=a&data[email]=x", "bad_timestamp"),
        (b"type=subscribe&fired_at=2026-01-02+08%3A00%3A11&data[list_id]=a", "missing_field"),
        (
            b"type=subscribe&fired_at=2026-01-02+08%3A00%3A11&data[list_id]=a&data[email]=no",
            "bad_email",
        ),
    ],
)
def test_malformed_requests_say_why(body: bytes, code: str) -> None:
    with pytest.raises(InvalidInput) as err:
        MailchimpConnector(INSTANCE, make_edge()).map_request(request(body))
    assert err.value.code == code


# -- audience export --------------------------------------------------------------------


def test_audience_export_rows_are_grants_with_opt_in_proof() -> None:
    connector = MailchimpConnector(INSTANCE, make_edge())
    confirmed, single = (connector.map_row(r) for r in rows("audience_export.csv"))
    (grant,) = confirmed.consent
    assert grant.action is ConsentAction.GRANT and grant.subject_key == key("ana.lima@example.org")
    assert grant.occurred_at_ms == ms("2026-01-02 08:00:11")
    assert grant.proof is not None and grant.proof.method == "double_opt_in"
    assert grant.proof.collected_at_ms == ms("2026-01-02 08:00:11")
    assert grant.proof.ip_hash == hashlib.sha256(b"198.51.100.23").hexdigest()
    assert grant.proof.vendor_receipt == "118045210"
    assert grant.attributes["optin_at_ms"] == ms("2026-01-02 07:58:40")
    assert grant.purposes == ["editorial.newsletter"] and grant.scope == LIST
    (grant2,) = single.consent
    assert grant2.proof is not None and grant2.proof.method == "single_opt_in"
    assert grant2.proof.ip_hash == hashlib.sha256(b"203.0.113.77").hexdigest()


def test_unsubscribed_export_row_gives_grant_then_withdraw() -> None:
    (row,) = rows("unsubscribed_export.csv")
    grant, withdraw = MailchimpConnector(INSTANCE, make_edge()).map_row(row).consent
    assert grant.action is ConsentAction.GRANT
    assert withdraw.action is ConsentAction.WITHDRAW
    assert withdraw.occurred_at_ms == ms("2026-01-04 18:20:00") > grant.occurred_at_ms


def test_export_row_without_a_list_is_refused() -> None:
    inst = instance("mailchimp", secrets={"token": TOKEN})
    with pytest.raises(InvalidInput) as err:
        MailchimpConnector(inst, make_edge()).map_row(rows("audience_export.csv")[0])
    assert err.value.code == "missing_field"


# -- conformance ------------------------------------------------------------------------


def mailchimp_case() -> ConnectorCase:
    counts = {
        "subscribe": (0, 1),
        "subscribe_by_admin": (0, 1),
        "unsubscribe": (1, 1),
        "cleaned": (1, 0),
        "cleaned_abuse": (1, 1),
        "upemail": (0, 2),
        "campaign": (1, 0),
        "profile": (0, 0),
    }
    return ConnectorCase(
        connector="mailchimp",
        instance=INSTANCE,
        samples=tuple(
            Sample(name, sample(name), usage=u, consent=c) for name, (u, c) in counts.items()
        ),
        sign=sign,
        signed_parts=(),
        signature="query:token",
        malformed=(b"type=unknown&fired_at=2026-01-02+08%3A00%3A11",),
        rows=(*rows("audience_export.csv"), *rows("unsubscribed_export.csv")),
    )


TestMailchimpConformance = conformance_suite(mailchimp_case())


@pytest.mark.parametrize("escaped", [b"%FF", b"%C3", b"%ED%A0%80"])
def test_invalid_utf8_in_a_form_is_refused_not_replaced(escaped: bytes) -> None:
    # percent-escaped bytes that are not UTF-8 used to become U+FFFD and reach a hint
    body = (
        b"type=subscribe&fired_at=2026-01-02+08%3A00%3A11&data[list_id]=a"
        b"&data[email]=j" + escaped + b"ean%40example.org"
    )
    with pytest.raises(InvalidInput) as err:
        MailchimpConnector(INSTANCE, make_edge()).map_request(request(body))
    assert err.value.code == "bad_encoding"
