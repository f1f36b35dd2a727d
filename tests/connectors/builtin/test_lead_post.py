"""Generic lead / co-registration posts: signature, one consent per partner, buyers, files."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import hmac
import json
from pathlib import Path
from urllib.parse import urlencode

import pytest
from consentinel.connectors.builtin.lead_post import LeadPostConnector, sign
from consentinel.connectors.contract import AuthenticationFailed, Request
from consentinel.connectors.testkit import (
    ConnectorCase,
    Sample,
    conformance_suite,
    instance,
    make_edge,
)
from consentinel.streams.events.errors import FatalConfigError, InvalidInput
from consentinel.streams.events.records import CertificateStatus, Channel, ConsentAction, UsageKind

SAMPLES = Path(__file__).parent / "samples" / "lead_post"
RECEIVED = 1767261700000
SECRET = "lead-post-secret-synthetic"
TF = "https://cert.trustedform.com/0123456789abcdef0123456789abcdef01234567"
CONSENT_TEXT = "Yes, Acme Shop and the partners listed may e-mail and text me offers."

INSTANCE = instance(
    "lead_post",
    controller="coreg-media",
    secrets={"signing_secret": SECRET},
    purpose_map={"marketing": "marketing.partner_transfer", "energy_offers": "marketing.direct"},
    options={
        "controller_aliases": {
            "Acme Shop": "acme-shop",
            "Bright Energy Ltd": "bright-energy",
            "Northwind Power": "northwind-power",
            "Coreg Media": "coreg-media",
        }
    },
)


def body(name: str) -> bytes:
    return (SAMPLES / name).read_bytes().rstrip(b"\n")


def request(raw: bytes, ctype: str = "application/json", **headers: str) -> Request:
    return Request(
        method="POST",
        url="https://hooks.example.test/leads",
        path="/leads",
        query={},
        headers={"content-type": ctype, **headers},
        body=raw,
        received_at_ms=RECEIVED,
    )


def signed(raw: bytes, ctype: str = "application/json", **headers: str) -> Request:
    return sign(request(raw, ctype, **headers), INSTANCE)


def connector() -> LeadPostConnector:
    return LeadPostConnector(INSTANCE, make_edge())


def key(raw: str, channel: str) -> str:
    return make_edge().address(raw, channel).key


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def rows() -> list[dict[str, str]]:
    with (SAMPLES / "batch.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_signature_follows_the_documented_scheme_and_one_byte_breaks_it() -> None:
    req = signed(body("lead.json"))
    t = RECEIVED // 1000
    mac = hmac.new(SECRET.encode(), f"{t}.".encode() + req.body, hashlib.sha256).hexdigest()
    assert req.header("x-consentinel-signature") == f"t={t},v1={mac}"
    connector().verify(req)
    raw = bytearray(req.body)
    raw[50] ^= 0x01
    with pytest.raises(AuthenticationFailed):
        connector().verify(dataclasses.replace(req, body=bytes(raw)))
    stale = dataclasses.replace(req, received_at_ms=RECEIVED + 600_000)
    with pytest.raises(AuthenticationFailed):
        connector().verify(stale)


def test_co_registration_gives_one_consent_per_partner_and_address() -> None:
    out = connector().map_request(signed(body("lead.json")))
    assert out.usage == []  # nobody is named as buyer
    email, phone = key("ana.lima@example.org", "email"), key("+351910000001", "sms")
    got = [(c.subject_key, c.controller, c.channels) for c in out.consent]
    assert got == [
        (email, "acme-shop", [Channel.EMAIL]),
        (email, "bright-energy", [Channel.EMAIL]),
        (phone, "acme-shop", [Channel.SMS]),
        (phone, "bright-energy", [Channel.SMS]),
    ]
    for consent in out.consent:
        assert consent.action is ConsentAction.GRANT
        assert consent.recipients == ["acme-shop", "bright-energy"]
        assert consent.collected_by == "coreg-media"
        assert consent.purposes == ["marketing.partner_transfer"]
        assert consent.unmapped_purposes == []
        assert consent.occurred_at_ms == 1767261581000
    proof = out.consent[0].proof
    assert proof is not None
    assert proof.method == "web_form"
    assert proof.collected_at_ms == 1767261581000
    assert proof.collection_point == "https://win.example.net/sweepstakes?sub=fb12"
    assert proof.text_hash == sha(CONSENT_TEXT)
    assert proof.ip_hash == sha("198.51.100.23")
    assert proof.certificate_id == TF
    assert proof.vendor_receipt == "cr-2026-000184"
    # R23: the certificate is claimed until `certificates verify` says what it is
    assert {c.certificate_status for c in out.consent} == {CertificateStatus.CLAIMED}
    attrs = out.consent[0].attributes
    assert attrs["leadid_token"] == "3F2504E0-4F89-11D3-9A0C-0305E82C3301"
    assert attrs["vendor_id"] == "coreg-17"
    assert attrs["user_agent"].startswith("Mozilla/5.0")
    text = repr(out)
    assert "Ana" not in text and "198.51.100.23" not in text


def test_sold_lead_gives_deliveries_per_buyer_and_doi_proof() -> None:
    out = connector().map_request(signed(body("lead_sold.json")))
    email, phone = key("eve.moreau@example.org", "email"), key("+447700900123", "sms")
    assert [(u.subject_key, u.controller, u.channel, u.kind) for u in out.usage] == [
        (email, "northwind-power", Channel.EMAIL, UsageKind.LEAD_DELIVERED),
        (phone, "northwind-power", Channel.SMS, UsageKind.LEAD_DELIVERED),
    ]
    assert {u.occurred_at_ms for u in out.usage} == {1767261600000}
    # channels sms + phone: the consent says nothing about the e-mail address.
    assert [(c.subject_key, c.controller, c.channels) for c in out.consent] == [
        (phone, "northwind-power", [Channel.SMS, Channel.PHONE])
    ]
    consent = out.consent[0]
    assert (consent.purposes, consent.recipients) == (["marketing.direct"], ["northwind-power"])
    assert consent.collected_by == "coreg-media"
    proof = consent.proof
    assert proof is not None
    assert (proof.method, proof.notice_version) == ("double_opt_in", "tcpa-v4")
    assert proof.collected_at_ms == 1767258000000
    assert proof.certificate_id == "8D3C9F10-1B2A-4C5D-8E9F-0A1B2C3D4E5F"
    # the landing page carried the address in its query: that parameter is gone
    assert proof.collection_point == "https://win.example.net/quiz?sub=7"
    assert consent.attributes["doi_confirmed_at_ms"] == 1767258720000
    assert consent.attributes["doi_ip_hash"] == sha("203.0.113.7")


def test_no_partner_list_means_consent_to_the_vendor_itself() -> None:
    lead = json.loads(body("lead.json"))
    del lead["partners"], lead["phone"]
    out = connector().map_request(signed(json.dumps(lead).encode()))
    assert [(c.controller, c.recipients, c.collected_by) for c in out.consent] == [
        ("coreg-media", [], None)
    ]


def test_purposes_fail_closed_when_unmapped() -> None:
    lead = json.loads(body("lead.json"))
    lead["purposes"] = ["marketing", "political"]
    out = connector().map_request(signed(json.dumps(lead).encode()))
    assert {(tuple(c.purposes), tuple(c.unmapped_purposes)) for c in out.consent} == {
        (("marketing.partner_transfer",), ("political",))
    }
    del lead["purposes"]
    out = connector().map_request(signed(json.dumps(lead).encode()))
    assert {(tuple(c.purposes), tuple(c.unmapped_purposes)) for c in out.consent} == {
        ((), ("coreg-17",))
    }


def test_form_encoded_post_with_repeated_partners() -> None:
    lead = json.loads(body("lead.json"))
    pairs = [(k, v) for k, v in lead.items() if isinstance(v, str)]
    pairs += [("partners[]", "Acme Shop"), ("partners[]", "Bright Energy Ltd")]
    pairs += [("purposes", "marketing"), ("channels", "email,sms")]
    form = signed(urlencode(pairs).encode(), "application/x-www-form-urlencoded")
    out = connector().map_request(form)
    json_out = connector().map_request(signed(body("lead.json")))
    assert [c.event_id for c in out.consent] == [c.event_id for c in json_out.consent]
    assert [c.controller for c in out.consent] == [c.controller for c in json_out.consent]


def test_idempotency_key_dedupes_leads_without_lead_id() -> None:
    lead = json.loads(body("lead.json"))
    del lead["lead_id"]
    raw = json.dumps(lead).encode()
    one = connector().map_request(signed(raw, **{"idempotency-key": "idem-1"}))
    two = connector().map_request(signed(raw, **{"idempotency-key": "idem-1"}))
    three = connector().map_request(signed(raw, **{"idempotency-key": "idem-2"}))
    assert [c.event_id for c in one.consent] == [c.event_id for c in two.consent]
    assert not {c.event_id for c in one.consent} & {c.event_id for c in three.consent}


def test_batch_rows_map_like_posts() -> None:
    first, second = rows()
    out = connector().map_row(first)
    assert out.usage == []
    assert [(c.controller, c.channels, c.recipients) for c in out.consent] == [
        ("acme-shop", [Channel.EMAIL], ["acme-shop", "bright-energy"]),
        ("bright-energy", [Channel.EMAIL], ["acme-shop", "bright-energy"]),
    ]
    assert out.consent[0].proof is not None
    assert out.consent[0].proof.certificate_id == (
        "https://cert.trustedform.com/1111111111111111111111111111111111111111"
    )
    out = connector().map_row(second)
    phone = key("+33698765432", "sms")
    assert [(u.subject_key, u.controller, u.occurred_at_ms) for u in out.usage] == [
        (phone, "acme-shop", 1767434400000)
    ]
    assert [(c.subject_key, c.channels, c.occurred_at_ms) for c in out.consent] == [
        (phone, [Channel.SMS], 1767434400000)
    ]


def test_vendor_field_map_and_configuration_errors() -> None:
    inst = dataclasses.replace(
        INSTANCE, options={**INSTANCE.options, "field_map": {"email": "EmailAddr", "partners": []}}
    )
    lead = {"EmailAddr": "ivy@example.org", "optin_time": "2026-01-05T10:00:00Z"}
    out = LeadPostConnector(inst, make_edge()).map_row(lead)
    assert [c.subject_key for c in out.consent] == [key("ivy@example.org", "email")]
    # no certificate in the lead: nothing claimed (R23 then says so for a purchased lead)
    assert out.consent[0].certificate_status is None
    bad = dataclasses.replace(
        INSTANCE,
        options={"field_map": {"nickname": "nick"}, "tolerance_s": "soon", "phone_channel": "fax"},
    )
    with pytest.raises(FatalConfigError) as info:
        LeadPostConnector(bad, make_edge())
    assert len(info.value.problems) >= 2


def test_test_leads_are_dropped() -> None:
    lead = json.loads(body("lead.json"))
    lead["is_test"] = True
    assert len(connector().map_request(signed(json.dumps(lead).encode()))) == 0


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda d: d.pop("optin_time"), "missing_field"),
        (lambda d: d.update(optin_time="2026-01-01 09:59:41"), "bad_timestamp"),
        (lambda d: (d.pop("email"), d.pop("phone")), "missing_field"),
        (lambda d: d.update(email="ana.lima(at)example.org"), "bad_email"),
        (lambda d: d.update(channels=["email", "pigeon"]), "unknown_channel"),
        (lambda d: d.update(partners={"a": 1}), "bad_value"),
    ],
)
def test_malformed_leads_are_refused_with_a_reason(change, code: str) -> None:
    lead = json.loads(body("lead.json"))
    change(lead)
    with pytest.raises(InvalidInput) as info:
        connector().map_request(signed(json.dumps(lead).encode()))
    assert info.value.code == code
    assert "ana.lima" not in info.value.message


def lead_post_case() -> ConnectorCase:
    return ConnectorCase(
        connector="lead_post",
        instance=INSTANCE,
        samples=(
            Sample("co_registration", signed(body("lead.json")), consent=4),
            Sample("sold", signed(body("lead_sold.json")), usage=2, consent=1),
        ),
        sign=sign,
        signed_parts=("body",),
        rows=tuple(rows()),
    )


TestLeadPostConformance = conformance_suite(lead_post_case())


def test_source_url_keeps_where_but_never_who() -> None:
    lead = json.loads(body("lead.json"))
    lead["source_url"] = (
        "https://u:pw@win.example.net/c/ana.lima%40example.org/x?tel=%2B33612345678&s=2#f"
    )
    out = connector().map_request(signed(json.dumps(lead).encode()))
    assert {c.proof.collection_point for c in out.consent if c.proof} == {
        "https://win.example.net/c/-/x?s=2"
    }
