"""The checked-in reference (streams/events/REFERENCE.md) is what the definitions generate:
a record field, a topic or a setting added without regenerating it fails here."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from consentinel.streams import reference_cmd as reference
from consentinel.streams.events import topics
from consentinel.streams.events.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
REGENERATE = "regenerate it: `consentinel reference all --write`"


def _checked_in() -> str:
    return reference.PATH.read_text(encoding="utf-8")


def test_the_checked_in_reference_is_what_the_code_generates() -> None:
    assert _checked_in() == reference.render(), f"REFERENCE.md is out of date; {REGENERATE}"


def test_every_topic_and_record_field_is_in_the_reference() -> None:
    text = _checked_in()
    specs = topics.topic_specs(partitions=1)
    assert {s.name for s in specs} == set(reference.TOPIC_RECORDS), (
        "a topic without its key and record in reference.TOPIC_RECORDS"
    )
    missing = [s.name for s in specs if f"`{s.name}`" not in text]
    for _, record in [*reference.TOPIC_RECORDS.values(), *((None, n) for n in reference.NESTED)]:
        section = text.split(f"### {record.__name__}\n", 1)
        assert len(section) == 2, f"no section for {record.__name__}; {REGENERATE}"
        body = section[1].split("\n### ", 1)[0]
        missing += [
            f"{record.__name__}.{f.name}"
            for f in dataclasses.fields(record)
            if f"| `{f.name}` |" not in body
        ]
    assert not missing, f"missing from REFERENCE.md: {missing}; {REGENERATE}"


def test_every_setting_is_documented() -> None:
    documented = {v.field for v in reference.VARIABLES if v.field}
    fields = {f.name for f in dataclasses.fields(Settings)} - {"announcements"}
    assert fields - documented == set(), "a Settings field with no entry in reference.VARIABLES"
    assert documented - fields == set(), "reference.VARIABLES names a field Settings lacks"


def _names_in_source() -> set[str]:
    names: set[str] = set()
    for top in ("streams", "connectors"):
        for path in (ROOT / top).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            names.update(re.findall(r"CONSENTINEL_[A-Z0-9_]*[A-Z0-9]", text))
            # settings.py builds most names from their suffix: _num(raw, "PARTITIONS", ...)
            for suffix in re.findall(r"_(?:num|choice|secret)\(\s*raw,\s*\"([A-Z0-9_]+)\"", text):
                names.add(f"CONSENTINEL_{suffix}")
    return names


def test_every_variable_the_code_reads_is_in_the_reference() -> None:
    text = _checked_in()
    names = _names_in_source()
    assert {"CONSENTINEL_PARTITIONS", "CONSENTINEL_SINKS_FILE", "CONSENTINEL_TOKEN_FILE"} <= names
    missing = sorted(n for n in names if f"`{reference.FORMS.get(n, n)}`" not in text)
    assert not missing, f"variables read by the code but not in REFERENCE.md: {missing}"


def test_accepted_values_come_from_the_loader() -> None:
    (partitions,) = [v for v in reference.VARIABLES if v.field == "partitions"]
    assert reference.accepted(partitions) == (
        "expected a whole number (e.g. 6); expected between 1 and 1024"
    )
    (env,) = [v for v in reference.VARIABLES if v.field == "env"]
    assert reference.accepted(env) == "expected one of development, production, test"


def test_the_command_prints_and_writes_only_when_asked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = reference.PATH.stat().st_mtime_ns
    assert reference.main(["topics"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("## Topics") and "### Alert\n" in out and "## Settings" not in out
    assert reference.main(["settings"]) == 0
    assert "`CONSENTINEL_TOPIC_PREFIX`" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        reference.main(["topics", "--write"])
    assert reference.PATH.stat().st_mtime_ns == before
