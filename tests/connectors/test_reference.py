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
