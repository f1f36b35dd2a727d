"""Mailchimp Transactional (Mandrill) webhooks (connectors.md §1.2, §8)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from consentinel.connectors.auth import AuthenticationFailed
from consentinel.connectors.builtin.mandrill import MandrillConnector, sign
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

SAMPLES = Path(__file__).parent / "samples" / "mandrill"
URL = "https://hooks.example.test/mandrill"
KEY = "whk_synthetic_key"
RECEIVED = 1_767_300_000_000

INSTANCE = instance(
    "mandrill",
    secrets={"webhook_key": KEY},
    purpose_map={"transactional": "service.transactional", "promo": "marketing.direct"},
)


def key(address: str) -> str:
    return make_edge().address(address, "email").key


def request(events: str, *, method: str = "POST", url: str = URL, signature: str = "") -> Request:
    body = urlencode({"mandrill_events": events}).encode("utf-8") if events else b""
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if signature:
        headers["x-mandrill-signature"] = signature
    return Request(
        method=method,
        url=url,
        path=urlsplit(url).path,
        query={},
        headers=headers,
        body=body,
        remote="198.2.128.1",
        received_at_ms=RECEIVED,
    )


def events_text(name: str) -> str:
    """The sample as Mandrill sends it: compact JSON (PHP ``json_encode``)."""
    text = (SAMPLES / f"{name}.json").read_text(encoding="utf-8")
    return json.dumps(json.loads(text), separators=(",", ":"))


def sample(name: str) -> Request:
    return sign(request(events_text(name)), INSTANCE)


def mapped(name: str):
    connector = MandrillConnector(INSTANCE, make_edge())
    req = sample(name)
    assert connector.handshake(req) is None
    connector.verify(req)
    return connector.map_request(req)


# -- §8 vector --------------------------------------------------------------------------

VECTOR_SIGNATURE = "+h9D3aJQ1vDe5ka4+ZO5B9B7KBE="


def vector_request() -> Request:
    return request(events_text("vector_events"), signature=VECTOR_SIGNATURE)


def test_section8_vector_verifies_through_the_connector() -> None:
    inst = instance("mandrill", secrets={"webhook_key": KEY})
    connector = MandrillConnector(inst, make_edge())
    connector.verify(vector_request())
    assert (
        sign(request(events_text("vector_events")), inst).headers["x-mandrill-signature"]
        == VECTOR_SIGNATURE
    )
    (usage,) = connector.map_request(vector_request()).usage
    assert usage.kind is UsageKind.OPEN and usage.occurred_at_ms == 1_767_225_600_000


@pytest.mark.parametrize("where", ["body", "url", "key"])
def test_section8_vector_fails_when_one_byte_changes(where: str) -> None:
    req = vector_request()
    inst = instance("mandrill", secrets={"webhook_key": KEY})
    if where == "body":
        req = dataclasses.replace(req, body=req.body.replace(b"synthetic0001", b"synthetic0002"))
    elif where == "url":
        req = dataclasses.replace(req, url=URL + "x")
    else:
        inst = instance("mandrill", secrets={"webhook_key": KEY[:-1] + "X"})
    with pytest.raises(AuthenticationFailed):
        MandrillConnector(inst, make_edge()).verify(req)


def test_configured_webhook_url_is_what_is_signed() -> None:
    inst = instance("mandrill", secrets={"webhook_key": KEY}, options={"webhook_url": URL})
    proxied = dataclasses.replace(vector_request(), url="http://10.0.0.5:8585/mandrill")
    MandrillConnector(inst, make_edge()).verify(proxied)


def test_previous_key_is_accepted_while_rotating() -> None:
    inst = instance("mandrill", secrets={"webhook_key": "new-key", "webhook_key_previous": KEY})
    MandrillConnector(inst, make_edge()).verify(vector_request())


def test_head_on_creation_is_answered() -> None:
    answer = MandrillConnector(INSTANCE, make_edge()).handshake(request("", method="HEAD"))
    assert answer is not None and answer.status == 200


# -- mapping ----------------------------------------------------------------------------


def test_send_and_unsub_batch() -> None:
    out = mapped("batch")
    send, unsub = out.usage
    (withdraw,) = out.consent
    ana = key("ana.lima@example.org")
    assert send.kind is UsageKind.SEND and send.channel is Channel.EMAIL
    assert send.subject_key == ana and send.hint == "a***@e***.org"
    assert send.occurred_at_ms == 1_767_225_600_000 and send.received_at_ms == RECEIVED
    assert send.sender == "shop.example.com" and send.tags == ["receipt"]
    assert send.declared_purpose == "service.transactional"
    assert send.attributes["subaccount"] == "eu-store"
    assert send.controller == "acme-test" and send.processor == "mandrill"
    assert send.event_id == ids.event_id(
        "mandrill-test", "b1f0c2d3e4f5061728394a5b6c7d8e9f", "send", 1767225600, ana, "usage"
    )
    assert unsub.kind is UsageKind.UNSUBSCRIBE_LINK and unsub.occurred_at_ms == 1_767_229_200_000
    assert withdraw.action is ConsentAction.WITHDRAW and withdraw.subject_key == ana
    assert withdraw.purposes == [] and withdraw.channels == [Channel.EMAIL]
    assert withdraw.occurred_at_ms == 1_767_229_200_000
    assert withdraw.proof is not None and withdraw.proof.method == "unsubscribe_link"
    assert withdraw.proof.vendor_receipt == "b1f0c2d3e4f5061728394a5b6c7d8e9f"


def test_engagement_bounce_spam_reject_deferral() -> None:
    out = mapped("engagement")
    kinds = [u.kind for u in out.usage]
    assert kinds == [
        UsageKind.OPEN,
        UsageKind.CLICK,
        UsageKind.BOUNCE,
        UsageKind.COMPLAINT,
        UsageKind.DROP,
        UsageKind.DEFER,
    ]
    opened, click, bounce, spam, _, _ = out.usage
    assert opened.campaign_id == "jan-2026" and opened.list_id == "january-promo"
    assert opened.declared_purpose == "marketing.direct"
    assert click.attributes["url_host"] == "shop.example.com"
    assert bounce.attributes["bounce_description"] == "bad_mailbox"
    assert "diag" not in bounce.attributes
    (withdraw,) = out.consent
    assert withdraw.subject_key == key("bo@example.net") == spam.subject_key
    assert withdraw.scope == "eu-store"
    assert withdraw.proof is not None and withdraw.proof.method == "spam_complaint"
    assert withdraw.proof.ip_hash == hashlib.sha256(b"198.51.100.23").hexdigest()


def test_unmapped_declared_purpose_is_kept_raw_not_guessed() -> None:
    inst = instance("mandrill", secrets={"webhook_key": KEY})
    connector = MandrillConnector(inst, make_edge())
    (send, _) = connector.map_request(request(events_text("batch"))).usage
    assert send.declared_purpose is None and send.attributes["vendor_purpose"] == "transactional"


def test_sync_blacklist_unsub_is_a_withdraw_and_the_rest_nothing() -> None:
    out = mapped("sync")
    assert out.usage == []
    (withdraw,) = out.consent
    assert withdraw.subject_key == key("dan@example.org")
    assert withdraw.action is ConsentAction.WITHDRAW and withdraw.scope == "eu-store"
    assert withdraw.occurred_at_ms == 1_767_231_000_000


@pytest.mark.parametrize(
    ("events", "code"),
    [
        ("", "missing_field"),
        ("[not json", "malformed_json"),
        ('{"event": "send"}', "malformed_json"),
        (
            '[{"event": "teleport", "ts": 1767225600, "msg": {"email": "a@example.org"}}]',
            "unknown_event",
        ),
        ('[{"event": "open", "ts": 1767225600, "msg": {}}]', "missing_field"),
        ('[{"event": "open", "ts": "soon", "msg": {"email": "a@example.org"}}]', "bad_timestamp"),
        ('[{"event": "open", "ts": 1767225600, "msg": {"email": "nobody"}}]', "bad_email"),
    ],
)
def test_malformed_batches_say_why(events: str, code: str) -> None:
    with pytest.raises(InvalidInput) as err:
        MandrillConnector(INSTANCE, make_edge()).map_request(request(events))
    assert err.value.code == code
    assert "a@example.org" not in err.value.message


def test_events_serialize_without_a_trace_of_the_recipient() -> None:
    out = mapped("engagement")
    blob = json.dumps([dataclasses.asdict(e) for e in [*out.usage, *out.consent]])
    for raw in ("bo@example.net", "gone@example.net", "carla@example.org"):
        assert raw not in blob


# -- conformance ------------------------------------------------------------------------


def mandrill_case() -> ConnectorCase:
    return ConnectorCase(
        connector="mandrill",
        instance=INSTANCE,
        samples=(
            Sample("batch", sample("batch"), usage=2, consent=1),
            Sample("engagement", sample("engagement"), usage=6, consent=1),
            Sample("sync", sample("sync"), usage=0, consent=1),
        ),
        sign=sign,
        signed_parts=("body", "url"),
        signature="header:x-mandrill-signature",
        malformed=(urlencode({"mandrill_events": '[{"event": "nope"}]'}).encode(),),
    )


TestMandrillConformance = conformance_suite(mandrill_case())
