"""The connector reference comes from the code and is kept in step with it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from consentinel.connectors import cli, registry
from consentinel.connectors.builtin import BUILTINS
from consentinel.connectors.reference import describe, reference

CHECKED_IN = Path(__file__).resolve().parents[2] / "connectors" / "REFERENCE.md"


def test_the_checked_in_reference_is_current() -> None:
    assert CHECKED_IN.read_text(encoding="utf-8") == reference(), (
        "connectors/REFERENCE.md is stale: run "
        "`consentinel connectors reference > connectors/REFERENCE.md`"
    )


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_every_option_and_declaration_is_in_the_reference(name: str) -> None:
    cls = registry.get(name)
    text = CHECKED_IN.read_text(encoding="utf-8")
    section = text.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
    for field in cls.config_schema:
        assert f"| `{field.name}` |" in section, f"{name}: option {field.name} is missing"
    assert cls.events and cls.event_time, f"{name}: declare `events` and `event_time`"
    assert cls.event_time in section and cls.auth in section


def test_show_prints_options_secrets_events_and_event_time() -> None:
    out = io.StringIO()
    assert cli.cmd_show("brevo", out) == 0
    text = out.getvalue()
    assert text == describe(registry.get("brevo"))
    assert "| `token` | secret (env:NAME or file:PATH) | yes |" in text
    assert "`'consentinel'`" in text  # basic_user's default
    assert "event time: " in text and "events: delivered, opened" in text
    assert "answer when nothing can keep an event: 429" in text


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_every_option_declares_its_kind(name: str) -> None:
    for field in registry.get(name).config_schema:
        assert field.secret or field.kind, f"{name}: option {field.name} declares no kind"


def test_the_reference_prints_the_declared_kind_not_a_guess_from_the_default() -> None:
    text = describe(registry.get("didomi"))
    # no default: a guess from it would say "text"
    assert "| `purpose_channels` | mapping | no |" in text
    assert "| `regulations` | list | no |" in text


def test_an_undeclared_kind_is_said_so_and_an_unknown_kind_is_refused() -> None:
    from consentinel.connectors.contract import ConfigField

    assert ConfigField("x", "doc").kind_words == "(not declared)"
    with pytest.raises(ValueError, match="kind 'integer' is not one of"):
        ConfigField("x", "doc", kind="integer")


def test_show_prints_a_declarative_mappings_events_and_event_time() -> None:
    mapping = Path(__file__).resolve().parents[2] / "connectors/declarative/examples/postmark.yaml"
    out = io.StringIO()
    assert cli.cmd_show(str(mapping), out) == 0
    text = out.getvalue()
    assert "- events: Delivery, Bounce, SpamComplaint, Open, Click" in text
    assert "- event time: the payload's `DeliveredAt|BouncedAt|ReceivedAt|ChangedAt` (rfc3339)" in (
        text
    )
    assert "(not declared)" not in text


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_show_works_for_every_builtin(name: str) -> None:
    out = io.StringIO()
    assert cli.cmd_show(name, out) == 0
    text = out.getvalue()
    cls = registry.get(name)
    assert text == describe(cls)
    for field in cls.config_schema:
        assert f"| `{field.name}` |" in text, f"{name}: option {field.name} is not shown"
    assert cls.auth in text and cls.event_time in text


@pytest.mark.parametrize("name", ["postmark", "dialer_cdr"])
def test_show_finds_a_shipped_declarative_example_by_name(name: str) -> None:
    out = io.StringIO()
    assert cli.cmd_show(name, out) == 0
    assert out.getvalue().startswith(f"## {name}\n")


def test_show_of_an_unknown_name_says_which_names_exist(capsys) -> None:  # type: ignore[no-untyped-def]
    assert cli.main(["show", "no-such-connector"]) == 2
    err = capsys.readouterr().err
    assert "no connector named 'no-such-connector'" in err and "twilio_voice" in err
