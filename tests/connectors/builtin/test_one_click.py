"""The RFC 8058 one-click unsubscribe endpoint (connectors.md §1.6)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from urllib.parse import parse_qs, urlsplit

import pytest
from consentinel.connectors.auth import AuthenticationFailed
from consentinel.connectors.builtin.one_click import (
    OneClickUnsubscribeConnector,
    issue_token,
    list_unsubscribe_headers,
    sign,
    unsubscribe_url,
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
from consentinel.streams.events.errors import ConsentinelError, InvalidInput
from consentinel.streams.events.records import Channel, ConsentAction, UsageKind

PUBLIC = "https://unsub.example.com/u/1c"
LIST = "b7c1d2e3f4"
ISSUED = 1_767_225_600
RECEIVED = 1_767_300_000_000
BODY = b"List-Unsubscribe=One-Click"

INSTANCE = instance(
    "one_click_unsubscribe",
    controller="news-daily",
    secrets={"token_key": "one-click-token-key-0123456789"},
    purpose_map={LIST: "editorial.newsletter"},
    public_url=PUBLIC,
)


def key(address: str) -> str:
    return make_edge().address(address, "email").key


def token_for(address: str, list_id: str = LIST, inst=INSTANCE, issued: int = ISSUED) -> str:
    return issue_token(inst, address, list_id, edge=make_edge(), issued_at=issued)


def request(
    url: str,
    body: bytes = BODY,
    *,
    method: str = "POST",
    content_type: str = "application/x-www-form-urlencoded",
    received: int = RECEIVED,
) -> Request:
    parts = urlsplit(url)
    return Request(
        method=method,
        url=url,
        path=parts.path,
        query=parse_qs(parts.query, keep_blank_values=True),
        headers={"content-type": content_type, "user-agent": "Mail-Provider-Unsubscribe/1.0"},
        body=body,
        remote="209.85.220.41",
        received_at_ms=received,
    )


def post(address: str, **kw) -> Request:
    return request(unsubscribe_url(INSTANCE, token_for(address)), **kw)


def mapped(req: Request, inst=INSTANCE):
    connector = OneClickUnsubscribeConnector(inst, make_edge())
    assert connector.handshake(req) is None
    connector.verify(req)
    return connector.map_request(req)


# -- tokens -----------------------------------------------------------------------------


def test_token_is_url_safe_and_holds_no_address() -> None:
    token = token_for("Ana.Lima@example.org")
    payload_b64 = token.partition(".")[0]
    assert all(c.isalnum() or c in "-_." for c in token)
    payload = json.loads(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
    assert payload["k"] == key("ana.lima@example.org") and payload["h"] == "a***@e***.org"
    assert payload["l"] == LIST and payload["c"] == "news-daily" and payload["i"] == ISSUED
    assert payload["x"] == ISSUED + 400 * 86_400
    assert "ana.lima" not in json.dumps(payload).lower()


def test_headers_for_the_message() -> None:
    token = token_for("ana.lima@example.org")
    headers = list_unsubscribe_headers(INSTANCE, token)
    assert headers["List-Unsubscribe"] == f"<{PUBLIC}/{token}>"
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    with pytest.raises(ConsentinelError):
        issue_token(INSTANCE, "ana.lima@example.org", LIST)  # a raw address needs the edge


# -- requests ---------------------------------------------------------------------------


def test_one_click_post_is_a_withdraw_and_an_audit_usage() -> None:
    token = token_for("ana.lima@example.org")
    out = mapped(request(unsubscribe_url(INSTANCE, token)))
    (usage,) = out.usage
    (withdraw,) = out.consent
    ana = key("ana.lima@example.org")
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert usage.kind is UsageKind.UNSUBSCRIBE_LINK and usage.channel is Channel.EMAIL
    assert usage.subject_key == ana and usage.hint == "a***@e***.org"
    assert usage.controller == "news-daily" and usage.list_id == LIST
    assert usage.occurred_at_ms == RECEIVED
    assert withdraw.action is ConsentAction.WITHDRAW and withdraw.subject_key == ana
    assert withdraw.controller == "news-daily" and withdraw.scope == LIST
    assert withdraw.purposes == ["editorial.newsletter"] and withdraw.channels == [Channel.EMAIL]
    assert withdraw.occurred_at_ms == RECEIVED
    proof = withdraw.proof
    assert proof is not None and proof.method == "one_click_unsubscribe"
    assert proof.collected_at_ms == RECEIVED
    assert proof.ip_hash == hashlib.sha256(b"209.85.220.41").hexdigest()
    assert proof.vendor_receipt == f"sha256:{digest}"
    assert withdraw.event_id == ids.event_id(
        "one_click_unsubscribe-test", "one_click", digest, "consent"
    )
    assert token not in json.dumps(dataclasses.asdict(withdraw))


def test_retry_of_the_same_post_gives_the_same_ids() -> None:
    req = post("ana.lima@example.org")
    first = mapped(req)
    again = mapped(dataclasses.replace(req, received_at_ms=RECEIVED + 5_000))
    assert first.consent[0].event_id == again.consent[0].event_id


def test_token_in_the_query_and_multipart_body_are_accepted() -> None:
    token = token_for("bo@example.net")
    boundary = "xYzZY"
    multipart = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        f"One-Click\r\n--{boundary}--\r\n"
    ).encode()
    req = request(
        f"https://unsub.example.com/u?token={token}",
        multipart,
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    (withdraw,) = mapped(req).consent
    assert withdraw.subject_key == key("bo@example.net")


def test_get_shows_a_neutral_page_and_changes_nothing() -> None:
    connector = OneClickUnsubscribeConnector(INSTANCE, make_edge())
    answer = connector.handshake(post("ana.lima@example.org", method="GET", body=b""))
    assert answer is not None and answer.status == 200
    assert b"List-Unsubscribe" in answer.body and b"One-Click" in answer.body
    assert LIST.encode() not in answer.body and b"@" not in answer.body


def test_forged_missing_or_foreign_tokens_are_refused() -> None:
    connector = OneClickUnsubscribeConnector(INSTANCE, make_edge())
    token = token_for("ana.lima@example.org")
    payload, _, mac = token.partition(".")
    foreign = instance("one_click_unsubscribe", secrets={"token_key": "another-key-0000000000"})
    for url in (
        f"{PUBLIC}/{payload}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}",
        f"{PUBLIC}/{payload}",
        f"{PUBLIC}/{token_for('ana.lima@example.org', inst=foreign)}",
        "https://unsub.example.com/",
    ):
        with pytest.raises(AuthenticationFailed):
            connector.verify(request(url))
    connector.verify(request(f"{PUBLIC}/{token}"))


def test_previous_key_is_accepted_while_rotating() -> None:
    token = token_for("ana.lima@example.org")
    rotated = instance(
        "one_click_unsubscribe",
        secrets={
            "token_key": "new-key-000000000000",
            "token_key_previous": "one-click-token-key-0123456789",
        },
    )
    OneClickUnsubscribeConnector(rotated, make_edge()).verify(request(f"{PUBLIC}/{token}"))


def test_expired_token_is_invalid_input_kept_for_a_person() -> None:
    old = token_for("ana.lima@example.org", issued=ISSUED - 401 * 86_400)
    req = request(f"{PUBLIC}/{old}")
    connector = OneClickUnsubscribeConnector(INSTANCE, make_edge())
    connector.verify(req)  # authentic
    with pytest.raises(InvalidInput) as err:
        connector.map_request(req)
    assert err.value.code == "expired_token"


def test_a_body_other_than_one_click_is_refused() -> None:
    with pytest.raises(InvalidInput) as err:
        mapped(post("ana.lima@example.org", body=b"List-Unsubscribe=Maybe"))
    assert err.value.code == "missing_field"


# -- conformance ------------------------------------------------------------------------


def one_click_case() -> ConnectorCase:
    return ConnectorCase(
        connector="one_click_unsubscribe",
        instance=INSTANCE,
        samples=(
            Sample("ana", post("ana.lima@example.org"), usage=1, consent=1),
            Sample("bo", post("bo@example.net"), usage=1, consent=1),
        ),
        sign=sign,
        signed_parts=(),
        signature="url",
        malformed=(b"List-Unsubscribe=Two-Clicks",),
    )


TestOneClickConformance = conformance_suite(one_click_case())
