"""Didomi connector: URL token / Basic / bearer, event and user webhooks, flatten mode, TCF
string, export rows, conformance kit."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from consentinel.connectors.auth import AuthenticationFailed, basic_auth_header
from consentinel.connectors.builtin import didomi
from consentinel.connectors.contract import Instance, Request
from consentinel.connectors.testkit import (
    ConnectorCase,
    Sample,
    conformance_suite,
    instance,
    make_edge,
)
from consentinel.streams.events.errors import FatalConfigError, InvalidInput
from consentinel.streams.events.ids import event_id
from consentinel.streams.events.records import (
    Channel,
    ConsentAction,
    Decision,
    UsageEvent,
    UsageKind,
)
from consentinel.streams.policy.engine import PolicySettings, evaluate
from consentinel.streams.policy.history import ConsentHistory

SAMPLES = Path(__file__).parent / "samples" / "didomi"
URL = "https://hooks.example.test/didomi"
RECEIVED = 1_767_225_700_000
TC_STRING = "CQeFwPwQeFwPwEsACBFRB4EAAPAAAALAAAqIF5wAwAGAAqAXmAFUAEAFQAAA"
PURPOSES = {
    "email_marketing": "marketing.direct",
    "sms_marketing": "marketing.direct",
    "newsletter": "editorial.newsletter",
    "newsletter/topics/weekly": "editorial.newsletter",
    "tcf:2": "advertising.limited",
    "tcf:3": "advertising.personalised",
    "tcf:4": "advertising.personalised",
    "tcf:7": "measurement",
    "tcf:8": "measurement",
}
OPTIONS: dict[str, Any] = {
    "purpose_channels": {"email_marketing": "email", "sms_marketing": ["sms"]},
    "controllers": {"acme-eu": "acme-europe"},
}


def inst(**options: Any) -> Instance:
    return instance(
        "didomi",
        name="didomi-acme",
        controller="acme-sa",
        secrets={"token": "didomi-url-secret-0123456789", "password": "pw-0123456789abcdef"},
        options={**OPTIONS, **options},
        purpose_map=PURPOSES,
    )


INST = inst()


def raw(name: str) -> bytes:
    return (SAMPLES / f"{name}.json").read_bytes()


def request(body: bytes, instance_: Instance = INST) -> Request:
    base = Request(
        "POST",
        URL,
        "/didomi",
        parse_qs(urlsplit(URL).query),
        {"content-type": "application/json"},
        body,
        received_at_ms=RECEIVED,
    )
    return didomi.sign(base, instance_)


def connector(instance_: Instance = INST) -> didomi.DidomiConnector:
    return didomi.DidomiConnector(instance_, make_edge())


def key_of(raw_address: str, channel: str = "email") -> str:
    return make_edge().address(raw_address, channel).key


# -- authentication -----------------------------------------------------------------------


def test_url_token() -> None:
    good = request(raw("event_created"))
    connector().verify(good)
    with pytest.raises(AuthenticationFailed):
        connector().verify(dataclasses.replace(good, url=URL + "?token=wrong"))


def test_basic_and_bearer() -> None:
    for mode in ("basic", "bearer"):
        mode_inst = inst(auth=mode, username="didomi")
        good = request(raw("event_created"), mode_inst)
        assert "authorization" in good.headers
        connector(mode_inst).verify(good)
        bad = dataclasses.replace(good, headers={**good.headers, "authorization": "Basic eA=="})
        with pytest.raises(AuthenticationFailed):
            connector(mode_inst).verify(bad)


CLIENT_SECRET = "didomi-client-secret-0123456789"


def oauth_inst(**options: Any) -> Instance:
    return instance(
        "didomi",
        name="didomi-acme",
        controller="acme-sa",
        secrets={"client_secret": CLIENT_SECRET},
        options={**OPTIONS, "auth": "oauth", "client_id": "didomi-webhooks", "token_ttl": 600},
        purpose_map=PURPOSES,
    )


OAUTH = oauth_inst()


def token_request(body: bytes, headers: dict[str, str], method: str = "POST") -> Request:
    return Request(
        method,
        "https://hooks.example.test/hooks/didomi-acme/token",
        "/hooks/didomi-acme/token",
        {},
        {"content-type": "application/x-www-form-urlencoded", **headers},
        body,
        received_at_ms=RECEIVED,
    )


def test_oauth_token_endpoint_then_bearer_on_the_webhook() -> None:
    basic = {"authorization": basic_auth_header("didomi-webhooks", CLIENT_SECRET)}
    answer = connector(OAUTH).handshake(token_request(b"grant_type=client_credentials", basic))
    assert answer is not None and answer.status == 200
    assert answer.content_type == "application/json"
    assert answer.headers["cache-control"] == "no-store"
    token = json.loads(answer.body)["access_token"]
    hook = dataclasses.replace(
        request(raw("event_created"), INST),
        query={},
        headers={"content-type": "application/json", "authorization": f"Bearer {token}"},
    )
    assert connector(OAUTH).handshake(hook) is None, "the webhook itself is no handshake"
    connector(OAUTH).verify(hook)
    later = dataclasses.replace(hook, received_at_ms=RECEIVED + 601_000)
    with pytest.raises(AuthenticationFailed):
        connector(OAUTH).verify(later)
    with pytest.raises(AuthenticationFailed):
        connector(OAUTH).verify(request(raw("event_created"), INST))  # a URL token: no


def test_oauth_token_endpoint_refuses_bad_requests() -> None:
    with pytest.raises(InvalidInput) as err:
        connector(OAUTH).handshake(token_request(b"", {}, method="GET"))
    assert err.value.code == "invalid_request"
    wrong = {"authorization": basic_auth_header("didomi-webhooks", "not-it")}
    with pytest.raises(AuthenticationFailed):
        connector(OAUTH).handshake(token_request(b"grant_type=client_credentials", wrong))
    assert connector(INST).handshake(token_request(b"", {})) is None, "no oauth: no endpoint"


def test_oauth_needs_its_options_at_start() -> None:
    with pytest.raises(FatalConfigError) as err:
        connector(inst(auth="oauth", token_ttl=5))
    text = str(err.value)
    assert "client_id" in text and "client_secret" in text and "token_ttl" in text


# -- mapping ------------------------------------------------------------------------------


def test_event_created_grants_and_withdraws_per_purpose() -> None:
    out = connector().map_request(request(raw("event_created")))
    assert out.usage == []
    grant, withdraw = out.consent
    entity = "6f0d3c2a-7e1b-4c2d-9a3f-5b6c7d8e9f10"
    stamp = "2026-01-05T10:15:02.000Z"
    assert grant.action is ConsentAction.GRANT
    assert grant.purposes == ["marketing.direct"] and grant.channels == [Channel.SMS]
    assert grant.event_id == event_id("didomi-acme", entity, "event.created", stamp, "grant", "sms")
    assert withdraw.action is ConsentAction.WITHDRAW
    assert withdraw.purposes == ["marketing.direct"] and withdraw.channels == [Channel.EMAIL]
    for event in out.consent:
        assert event.subject_key == key_of("ana.lima@example.org")
        assert event.hint == "a***@e***.org"
        assert event.controller == "acme-europe"
        assert event.occurred_at_ms == 1_767_608_102_000
        assert event.received_at_ms == RECEIVED
        assert event.unmapped_purposes == []
        assert event.proof is not None
        assert event.proof.method == "cmp_event"
        assert event.proof.collection_point == "footer-newsletter"
        assert event.proof.vendor_receipt == entity
        assert event.attributes["vendors_enabled"] == "c:acme-crm"
        assert event.attributes["vendors_disabled"] == "c:partner-x"
        assert event.attributes["regulation"] == "gdpr"


def test_event_updated_with_tcf_string() -> None:
    out = connector().map_request(request(raw("event_updated_tcf")))
    main, tcf_grant, tcf_refuse = out.consent
    phone = key_of("+33612345678", "sms")
    assert {e.subject_key for e in out.consent} == {phone}  # national form, user.country FR
    assert main.action is ConsentAction.GRANT
    assert main.purposes == ["editorial.newsletter"]
    assert main.unmapped_purposes == ["partner_share"]
    assert main.channels == []
    assert main.occurred_at_ms == 1_768_469_400_000  # updated_at
    assert main.attributes["tcf"] == "decoded"
    assert tcf_grant.action is ConsentAction.GRANT
    assert tcf_grant.channels == [Channel.WEB]
    assert tcf_grant.purposes == ["advertising.limited", "advertising.personalised"]
    assert tcf_grant.unmapped_purposes == ["tcf:1"]
    assert tcf_refuse.action is ConsentAction.REFUSE
    assert tcf_refuse.purposes == ["measurement"]
    assert tcf_refuse.unmapped_purposes == [f"tcf:{n}" for n in (10, 11, 5, 6, 9)]
    for event in (tcf_grant, tcf_refuse):
        assert event.proof is not None
        assert event.proof.method == "tcf"
        assert event.proof.vendor_receipt == TC_STRING
        assert event.proof.collected_at_ms == 1_768_469_400_000
        assert event.attributes["tcf_cmp_id"] == 300
        assert event.attributes["tcf_vendor_consents"] == "12,42,755"


def test_refusal_wins_over_grant_of_the_same_canonical_purpose() -> None:
    data = json.loads(raw("event_updated_tcf"))
    consents = data["parameters"]["new_entity"]["consents"]
    consents["purposes"] = [
        {"id": "email_marketing", "enabled": True},
        {"id": "sms_marketing", "enabled": False},
    ]
    del consents["tcfcs"]
    plain = inst(purpose_channels={})
    out = connector(plain).map_request(request(json.dumps(data).encode(), plain))
    assert [(e.action, e.purposes) for e in out.consent] == [
        (ConsentAction.WITHDRAW, ["marketing.direct"])
    ]


def test_undecodable_tc_string_keeps_the_purposes() -> None:
    data = json.loads(raw("event_updated_tcf"))
    data["parameters"]["new_entity"]["consents"]["tcfcs"] = "not-a-tc-string!"
    out = connector().map_request(request(json.dumps(data).encode()))
    (main,) = out.consent
    assert main.attributes["tcf"] == "undecodable"


def test_preference_values_are_granted_each_and_unmapped_ones_fail_closed() -> None:
    out = connector().map_request(request(raw("event_updated_preferences")))
    by_channels = {tuple(c.channels): c for c in out.consent}
    assert set(by_channels) == {(), (Channel.EMAIL,)}
    topics = by_channels[()]  # newsletter: only values, no enabled flag
    assert topics.action is ConsentAction.GRANT
    assert topics.purposes == ["editorial.newsletter"]  # the weekly topic, mapped
    assert topics.unmapped_purposes == ["newsletter/topics/deals"]
    email = by_channels[(Channel.EMAIL,)]
    assert email.purposes == ["marketing.direct"]
    assert email.unmapped_purposes == ["email_marketing/frequency/monthly"]
    assert topics.attributes["purposes_with_values_only"] == 1


def test_unmapped_preference_values_alone_are_never_all_purposes() -> None:
    unmapped = dataclasses.replace(
        INST, purpose_map={k: v for k, v in PURPOSES.items() if "/" not in k}
    )
    out = connector(unmapped).map_request(request(raw("event_updated_preferences"), unmapped))
    (topics,) = [c for c in out.consent if not c.channels]
    assert topics.action is ConsentAction.GRANT and topics.purposes == []
    assert topics.unmapped_purposes == ["newsletter/topics/deals", "newsletter/topics/weekly"]
    history = ConsentHistory(topics.subject_key)
    for event in out.consent:
        history.apply(event)
    send = UsageEvent(
        event_id="u1",
        occurred_at_ms=topics.occurred_at_ms + 60_000,
        received_at_ms=topics.occurred_at_ms + 60_000,
        source="esp",
        processor="esp",
        channel=Channel.SMS,
        kind=UsageKind.SEND,
        subject_key=topics.subject_key,
        hint=topics.hint,
        controller=topics.controller,
        declared_purpose="editorial.newsletter",
    )
    verdict = evaluate(send, history, None, PolicySettings(), final=True)
    assert verdict.decision is Decision.VIOLATION
    assert "CFG-UNMAPPED" in verdict.rule_ids and "R1" in verdict.rule_ids


def test_preference_value_shapes() -> None:
    values = didomi.preference_values
    assert values("p", {"t": {"value": "a, b,,a"}}) == ["p/t/a", "p/t/b"]
    assert values("p", {"t": {"value": ["a", 2]}}) == ["p/t/a", "p/t/2"]
    assert values("p", {"t": {"enabled": True}, "u": {"enabled": False}}) == ["p/t"]
    assert values("p", [{"id": "t", "value": "a"}, {"value": "x"}, "junk"]) == ["p/t/a"]
    assert values("p", {"t": {"value": None}, "u": {"value": True}, "v": 3}) == ["p/v/3"]
    assert values("p", "a,b") == [] and values("p", None) == []
    many = {f"t{i}": {"value": ",".join(f"v{j}" for j in range(100))} for i in range(100)}
    assert len(values("p", many)) == 32 * 32, "bounded"


def test_pending_status_grants_no_preference_value() -> None:
    body = raw("event_updated_preferences").replace(b'"confirmed"', b'"pending_approval"')
    assert connector().map_request(request(body)).consent == []


def test_user_deleted_is_erasure() -> None:
    (event,) = connector().map_request(request(raw("user_deleted"))).consent
    assert event.action is ConsentAction.ERASE
    assert event.subject_key == key_of("bo@example.net")
    assert event.occurred_at_ms == 1_768_903_200_000


def test_flatten_mode() -> None:
    (event,) = connector().map_request(request(raw("user_updated_flat"))).consent
    assert event.action is ConsentAction.GRANT
    assert event.purposes == ["marketing.direct"] and event.channels == [Channel.EMAIL]
    assert event.subject_key == key_of("+33698765432", "sms")


def test_pending_status_drops_grants() -> None:
    data = json.loads(raw("event_created"))
    data["parameters"]["entity"]["status"] = "pending_approval"
    out = connector().map_request(request(json.dumps(data).encode()))
    assert [e.action for e in out.consent] == [ConsentAction.WITHDRAW]


def test_crm_id_is_no_address() -> None:
    data = json.loads(raw("event_created"))
    data["parameters"]["entity"]["user"]["organization_user_id"] = "crm-000123"
    with pytest.raises(InvalidInput) as err:
        connector().map_request(request(json.dumps(data).encode()))
    assert err.value.code == "no_address"


def test_regulation_filter_and_unknown_type() -> None:
    only_cpra = inst(regulations=["cpra"])
    assert len(connector(only_cpra).map_request(request(raw("event_created"), only_cpra))) == 0
    data = {**json.loads(raw("event_created")), "type": "widget.published"}
    with pytest.raises(InvalidInput) as err:
        connector().map_request(request(json.dumps(data).encode()))
    assert err.value.code == "unknown_event"


def test_redelivery_same_ids() -> None:
    one = connector().map_request(request(raw("event_updated_tcf")))
    two = connector().map_request(request(raw("event_updated_tcf")))
    assert [e.event_id for e in one.consent] == [e.event_id for e in two.consent]
    assert len({e.event_id for e in one.consent}) == 3


# -- rows ---------------------------------------------------------------------------------


def rows() -> list[dict[str, Any]]:
    with (SAMPLES / "consent_export.csv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_export_rows() -> None:
    first, second = rows()
    (grant,) = connector().map_row(first).consent
    assert grant.action is ConsentAction.GRANT and grant.channels == [Channel.EMAIL]
    assert grant.occurred_at_ms == 1_767_340_800_000
    (withdraw,) = connector().map_row(second).consent
    assert withdraw.action is ConsentAction.WITHDRAW
    assert withdraw.subject_key == key_of("+447700900125", "sms")


def didomi_case() -> ConnectorCase:
    return ConnectorCase(
        connector="didomi",
        instance=INST,
        samples=(
            Sample("event_created", request(raw("event_created")), consent=2),
            Sample("event_updated_tcf", request(raw("event_updated_tcf")), consent=3),
            Sample("user_deleted", request(raw("user_deleted")), consent=1),
            Sample("user_updated_flat", request(raw("user_updated_flat")), consent=1),
        ),
        sign=didomi.sign,
        signed_parts=(),
        signature="query:token",
        rows=tuple(rows()),
    )


TestDidomiConformance = conformance_suite(didomi_case())


def didomi_oauth_case() -> ConnectorCase:
    def sample(name: str) -> Request:
        plain = dataclasses.replace(request(raw(name), INST), query={})
        return didomi.sign(plain, OAUTH)

    return ConnectorCase(
        connector="didomi",
        instance=OAUTH,
        samples=(
            Sample("event_created", sample("event_created"), consent=2),
            Sample("event_updated_preferences", sample("event_updated_preferences"), consent=2),
        ),
        sign=didomi.sign,
        signed_parts=(),
        signature="header:authorization",
    )


TestDidomiOAuthConformance = conformance_suite(didomi_oauth_case())
