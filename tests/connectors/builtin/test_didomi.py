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
from consentinel.connectors.auth import AuthenticationFailed
from consentinel.connectors.builtin import didomi
from consentinel.connectors.contract import Instance, Request
from consentinel.connectors.testkit import (
    ConnectorCase,
    Sample,
    conformance_suite,
    instance,
    make_edge,
)
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.ids import event_id
from consentinel.streams.events.records import Channel, ConsentAction

SAMPLES = Path(__file__).parent / "samples" / "didomi"
URL = "https://hooks.example.test/didomi"
RECEIVED = 1_767_225_700_000
TC_STRING = "CQeFwPwQeFwPwEsACBFRB4EAAPAAAALAAAqIF5wAwAGAAqAXmAFUAEAFQAAA"
PURPOSES = {
    "email_marketing": "marketing.direct",
    "sms_marketing": "marketing.direct",
    "newsletter": "editorial.newsletter",
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
