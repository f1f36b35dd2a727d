"""The toolkit's declarations, option readers, Occurrence and list-scoped consents, and the
one-click token scheme, on their own (the built-in connectors test them in use)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from consentinel.connectors import example
from consentinel.connectors import toolkit as tk
from consentinel.connectors.auth import AuthenticationFailed, verify_sendgrid
from consentinel.connectors.auth.one_click import (
    is_one_click_body,
    one_click_token,
    verify_one_click_token,
)
from consentinel.connectors.auth.sendgrid import sendgrid_signature
from consentinel.connectors.testkit import instance, make_edge
from consentinel.streams.events.errors import FatalConfigError, InvalidInput
from consentinel.streams.events.records import ConsentAction, UsageKind
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

AT = 1_767_225_600_000


def _connector(**kw: Any) -> tk.Connector:
    inst = instance("pingmail", secrets={"token": "t" * 20}, **kw)
    return example.PingmailConnector(inst, make_edge())


def test_rotating_secret_declares_the_secret_and_its_previous_twin() -> None:
    current, previous = tk.rotating_secret("app_secret", "the app secret")
    assert (current.name, current.secret, current.required) == ("app_secret", True, True)
    assert (previous.name, previous.secret, previous.required) == (
        "app_secret_previous",
        True,
        False,
    )
    assert not tk.rotating_secret("token", "optional", required=False)[0].required


def test_option_declares_kind_and_default_and_refuses_an_unknown_kind() -> None:
    field = tk.option("timezone", "text", "IANA zone", "UTC")
    assert (field.name, field.kind, field.default, field.secret) == (
        "timezone",
        "text",
        "UTC",
        False,
    )
    with pytest.raises(ValueError, match="kind"):
        tk.option("x", "colour", "not a kind")


def test_option_text_reads_text_numbers_and_falls_back_on_unset_or_empty() -> None:
    inst = instance("x", options={"a": "url", "b": 300, "c": "", "d": None})
    assert [tk.option_text(inst, k, "dflt") for k in "abcde"] == ["url", "300"] + ["dflt"] * 3


def test_mapping_options_are_checked_with_every_problem_listed() -> None:
    inst = instance("x", options={"good": {"a": 1}, "bad": ["a"], "worse": "b"})
    problems: list[str] = []
    assert tk.mapping_option(inst, "good", problems) == {"a": 1}
    assert tk.mapping_option(inst, "bad", problems) == {}
    assert tk.mapping_option(inst, "worse", problems) == {}
    assert tk.mapping_option(inst, "absent", problems) == {}
    with pytest.raises(FatalConfigError) as caught:
        tk.check_options(inst, problems)
    assert "'bad'" in str(caught.value) and "'worse'" in str(caught.value)
    tk.check_options(inst, [])  # nothing noted: starts


@pytest.mark.parametrize(("value", "expected"), [(12, "12"), (" ab ", "ab"), (None, None)])
def test_ident_takes_strings_and_integers(value: Any, expected: str | None) -> None:
    assert tk.ident(value, "id") == expected


@pytest.mark.parametrize("value", [True, 1.5, {"a": 1}])
def test_ident_refuses_other_types(value: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        tk.ident(value, "lead_id")
    assert caught.value.code == "bad_value" and "lead_id" in caught.value.message


def test_ident_required_and_blank_is_missing() -> None:
    with pytest.raises(InvalidInput) as caught:
        tk.ident("   ", "lead_id", required=True)
    assert caught.value.code == "missing_field"


def test_an_occurrence_builds_the_events_the_emitter_builds() -> None:
    connector = _connector()
    emit = tk.Emitter(connector, AT + 5)
    address = make_edge().address("ana@example.org", "email")
    at = emit.at(("ev-1",), address, AT)
    assert at.usage(UsageKind.OPEN) == emit.usage(("ev-1",), UsageKind.OPEN, address, AT)
    assert at.usages(UsageKind.DELIVER, send_derived_from="sent") == emit.usages(
        ("ev-1",), UsageKind.DELIVER, address, AT, send_derived_from="sent"
    )
    assert at.consent(ConsentAction.GRANT) == emit.consent(
        ("ev-1",), ConsentAction.GRANT, address, AT
    )
    proven = at.proven(ConsentAction.WITHDRAW, method="spam_complaint", collection_point="p")
    assert proven.proof is not None and proven.proof.collected_at_ms == AT


def test_a_scoped_consent_maps_the_list_and_names_its_collection_point() -> None:
    connector = _connector(purpose_map={"12": "newsletter"})
    at = tk.Emitter(connector, AT).at(("ev-2",), make_edge().address("a@example.org", "email"), AT)
    mapped = at.scoped(ConsentAction.WITHDRAW, scope="12", platform="brevo", method="m")
    assert (mapped.purposes, mapped.unmapped_purposes, mapped.scope) == (["newsletter"], [], "12")
    assert mapped.proof is not None and mapped.proof.collection_point == "brevo:list:12"
    group = at.scoped(
        ConsentAction.WITHDRAW, scope="7", platform="sendgrid", kind="asm_group", method="m"
    )
    assert (group.purposes, group.unmapped_purposes) == ([], ["7"])  # never a guess
    assert group.proof is not None and group.proof.collection_point == "sendgrid:asm_group:7"
    every = at.scoped(ConsentAction.WITHDRAW, scope=None, platform="mailjet", method="m")
    assert (every.purposes, every.unmapped_purposes, every.scope) == ([], [], None)
    assert every.proof is not None and every.proof.collection_point == "mailjet"


def test_map_all_maps_a_page_and_refuses_it_whole_for_a_non_object() -> None:
    def one(item: dict[str, Any]) -> tk.Output:
        return tk.Output(rejected=[tk.ItemRejected(0, "x", str(item["n"]), b"")])

    out = tk.map_all([{"n": 1}, {"n": 2}], one, "data[] holds a non-object")
    assert [r.message for r in out.rejected] == ["1", "2"]
    with pytest.raises(InvalidInput) as caught:
        tk.map_all([{"n": 1}, "no"], one, "data[] holds a non-object", code="missing_field")
    assert (caught.value.code, caught.value.message) == (
        "missing_field",
        "data[] holds a non-object",
    )


def test_a_one_click_token_verifies_with_its_key_or_the_previous_one_only() -> None:
    token = one_click_token(b"old-key", {"v": 1, "l": "news"})
    assert verify_one_click_token([b"new-key", b"old-key"], token) == {"v": 1, "l": "news"}
    payload, _, mac = token.partition(".")
    forged = mac[:-1] + ("y" if mac.endswith("x") else "x")
    for bad in (None, "", "no-dot", f"{payload}.{forged}", token + "x"):
        with pytest.raises(AuthenticationFailed):
            verify_one_click_token([b"old-key"], bad)
    with pytest.raises(AuthenticationFailed):
        verify_one_click_token([b"new-key"], token)
    unversioned = one_click_token(b"old-key", {"l": "news"})
    with pytest.raises(AuthenticationFailed):
        verify_one_click_token([b"old-key"], unversioned)


def test_the_one_click_body_is_recognised_in_both_encodings() -> None:
    form = "application/x-www-form-urlencoded"
    assert is_one_click_body(form, b"List-Unsubscribe=One-Click")
    assert not is_one_click_body(form, b"List-Unsubscribe=Maybe")
    multipart = (
        b'--b\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        b"One-Click\r\n--b--\r\n"
    )
    assert is_one_click_body("multipart/form-data; boundary=b", multipart)
    assert not is_one_click_body("multipart/form-data; boundary=b", b"--b--\r\n")


def test_a_sendgrid_sample_signature_verifies_with_the_public_half() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = base64.b64encode(
        private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).decode("ascii")
    body, stamp = b'[{"event":"open"}]\r\n', "1767225600"
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": sendgrid_signature(pem, stamp, body),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
    }
    verify_sendgrid(public, body, headers, now=1_767_225_600)
    with pytest.raises(AuthenticationFailed):
        verify_sendgrid(public, body + b" ", headers, now=1_767_225_600)
