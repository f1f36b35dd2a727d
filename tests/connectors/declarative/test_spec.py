"""Loading mappings: every problem reported at once, each with its line."""

from __future__ import annotations

from pathlib import Path

import pytest
from consentinel.connectors import registry
from consentinel.connectors.declarative import EXAMPLES, load_mapping, load_spec
from consentinel.connectors.testkit import instance, make_edge
from consentinel.streams.events.errors import FatalConfigError, InvalidInput

GOOD = """\
name: acme_forms
title: Acme forms
auth: {scheme: url_token, param: key}
content: form
events: {path: payload, decode: json, shape: array}
channel: {path: medium, map: {mail: email, text: sms}}
fields:
  type: kind
  address: contact
  occurred_at: at
  event_id: [id]
  purpose: topic
time: {format: "%Y-%m-%d %H:%M:%S", timezone: Europe/Paris}
kinds:
  optin: {consent: grant}
  optout: {consent: withdraw}
  sent: {usage: send}
"""


def test_example_loads_and_registers() -> None:
    cls = load_mapping(EXAMPLES / "postmark.yaml")
    assert cls.name == "postmark"
    assert cls.produces == "usage+consent"
    assert registry.get("postmark") is cls
    assert {f.name for f in cls.config_schema if f.secret} == {"username", "password"}


def test_every_problem_named_with_its_line() -> None:
    text = """\
name: Bad Name
title: ok
auth: {scheme: carrier_pigeon}
channel: fax
fields:
  type: t
  address: a..b
  colour: red
kinds:
  sent: {usage: sendd}
  gone: {consent: vanish}
surprise: 1
"""
    with pytest.raises(FatalConfigError) as info:
        load_spec(text, "m.yaml")
    problems = "\n".join(info.value.problems)
    for expected in (
        "m.yaml:1: `name` is required",
        "m.yaml:3: `auth.scheme` must be one of",
        "m.yaml:4: channel 'fax' unknown",
        "m.yaml:7: path 'a..b'",
        "m.yaml:8: fields.colour: unknown field",
        "fields.occurred_at is required",
        "fields.event_id is required",
        "m.yaml:10: kinds.sent.usage 'sendd' unknown",
        "m.yaml:11: kinds.gone.consent 'vanish' unknown",
        "m.yaml:12: unknown key `surprise`",
    ):
        assert expected in problems, expected


def test_yaml_syntax_error_names_line() -> None:
    with pytest.raises(FatalConfigError, match=r"m.yaml:3: not valid YAML"):
        load_spec("name: x\ntitle: [unclosed\nauth: {}\n", "m.yaml")


def test_builtin_name_refused(tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(GOOD.replace("acme_forms", "mandrill"))
    with pytest.raises(FatalConfigError, match="built-in"):
        load_mapping(f)


@pytest.fixture(scope="module")
def mapping_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    f = tmp_path_factory.mktemp("mapping") / "acme.yaml"
    f.write_text(GOOD)
    return f


def _connector(f: Path, purpose_map: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    cls = load_mapping(f)
    inst = instance(
        "declarative",
        name="acme-forms",
        secrets={"token": "tok-0123456789"},
        options={"mapping": str(f)},
        purpose_map=purpose_map or {"news": "marketing"},
    )
    return cls(inst, make_edge())


def _form_request(payload: str, token: str = "tok-0123456789"):  # type: ignore[no-untyped-def]
    from urllib.parse import urlencode

    from consentinel.connectors.contract import Request

    body = urlencode({"payload": payload}).encode()
    return Request(
        "POST",
        f"https://h.example.test/hooks/acme-forms?key={token}",
        "/",
        {"key": [token]},
        {"content-type": "application/x-www-form-urlencoded"},
        body,
        received_at_ms=1_767_225_600_000,
    )


def test_form_with_embedded_json_channel_map_and_purposes(mapping_file: Path) -> None:
    c = _connector(mapping_file)
    payload = (
        '[{"kind":"optin","contact":"+33 6 12 34 56 78","medium":"text","at":"2026-01-01 01:00:00",'
        '"id":"1","topic":"news"},'
        '{"kind":"optin","contact":"a@example.org","medium":"mail","at":"2026-01-01 01:00:00",'
        '"id":"2","topic":"unknown-topic"},'
        '{"kind":"optin","contact":"b@example.org","medium":"mail","at":"2026-01-01 01:00:00",'
        '"id":"3"}]'
    )
    req = _form_request(payload)
    c.verify(req)
    out = c.map_request(req)
    assert len(out.usage) == 0 and len(out.consent) == 3
    sms, unmapped, unspecified = out.consent
    assert sms.channels == ["sms"] and sms.purposes == ["marketing"]
    assert sms.occurred_at_ms == 1_767_225_600_000
    assert sms.hint == "+33 6** ** ** 78"
    assert unmapped.purposes == [] and unmapped.unmapped_purposes == ["unknown-topic"]
    assert unspecified.purposes == [] and unspecified.unmapped_purposes == [
        "acme_forms:unspecified"
    ]


def test_url_token_checked(mapping_file: Path) -> None:
    from consentinel.connectors.contract import AuthenticationFailed

    c = _connector(mapping_file)
    with pytest.raises(AuthenticationFailed):
        c.verify(_form_request("[]", token="wrong-token"))


def test_bad_event_in_batch_names_its_position(mapping_file: Path) -> None:
    c = _connector(mapping_file)
    payload = (
        '[{"kind":"sent","contact":"a@example.org","medium":"mail","at":"2026-01-01 01:00:00",'
        '"id":"1"},{"kind":"sent","medium":"mail","at":"2026-01-01 01:00:00","id":"2"}]'
    )
    out = c.map_request(_form_request(payload))
    # item by item (Output.rejected): the good first event is kept, the second refused alone
    assert len(out.usage) == 1
    ((rejected),) = out.rejected
    assert (rejected.index, rejected.code) == (1, "missing_address")
    assert rejected.message.startswith("event #2:")
    with pytest.raises(InvalidInput) as info:  # nothing good at all: refused whole
        c.map_request(_form_request(payload.replace('"contact":"a@example.org",', "")))
    assert info.value.code == "missing_address"


def test_unknown_type_message_shows_no_address(mapping_file: Path) -> None:
    c = _connector(mapping_file)
    payload = '[{"kind":"x@example.org","contact":"a@example.org","at":"2026-01-01 01:00:00"}]'
    with pytest.raises(InvalidInput) as info:
        c.map_request(_form_request(payload))
    assert info.value.code == "unknown_event_type"
    assert "@" not in info.value.message


def test_a_cmp_mapping_names_its_proof_record(tmp_path: Path) -> None:
    f = tmp_path / "acme_cmp.yaml"
    f.write_text(
        GOOD.replace("name: acme_forms", "name: acme_cmp").replace(
            "  purpose: topic\n",
            "  purpose: topic\n  proof_ref: receipt\n  notice_version: notice\n",
        )
    )
    c = _connector(f)
    payload = (
        '[{"kind":"optin","contact":"a@example.org","medium":"mail","at":"2026-01-01 01:00:00",'
        '"id":"1","receipt":"rcpt-77","notice":"privacy-v3"},'
        '{"kind":"optin","contact":"b@example.org","medium":"mail","at":"2026-01-01 01:00:00",'
        '"id":"2","receipt":"b@example.org"}]'
    )
    first, second = c.map_request(_form_request(payload)).consent
    assert first.proof is not None
    assert (first.proof.record_ref, first.proof.notice_version) == ("rcpt-77", "privacy-v3")
    assert first.proof.collected_at_ms == first.occurred_at_ms
    assert second.proof is None  # an address is never taken as a proof reference


def test_a_mapping_reports_whether_a_message_names_its_source(tmp_path: Path) -> None:
    f = tmp_path / "acme_sends.yaml"
    f.write_text(
        GOOD.replace("name: acme_forms", "name: acme_sends").replace(
            "  purpose: topic\n", "  purpose: topic\n  source_named: origin_shown\n"
        )
    )
    c = _connector(f)
    sent = '"kind":"sent","contact":"a@example.org","medium":"mail","at":"2026-01-01 01:00:00"'
    payload = (
        f'[{{{sent},"id":"1","origin_shown":"yes"}},{{{sent},"id":"2","origin_shown":false}},'
        f'{{{sent},"id":"3"}},{{{sent},"id":"4","origin_shown":"maybe"}}]'
    )
    out = c.map_request(_form_request(payload))
    assert [u.source_named for u in out.usage] == [True, False, None, None]
