"""The registry file: lines on every problem, the example file, the plan against the topic."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

from consentinel.streams.events.records import Channel, Declaration
from consentinel.streams.registry import command as registry_cmd
from consentinel.streams.registry import file as registry_file
from consentinel.streams.registry.topic import Registry

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "deploy" / "registry.example.yaml"

BROKEN = """\
declarations:
  - campaign: spring
    controller: acme
    purpose: marketing.direct
    channel: email
  - campaign: spring
    controller: acme
    purpose: marketing.direct
    channel: email
  - list: l1
    controller: acme
    purpose: not-a-purpose
    channel: fax
  - just a string
"""


def test_the_example_registry_is_valid_and_covers_the_story() -> None:
    loaded = registry_file.load(EXAMPLE)
    assert loaded.ok, loaded.problems
    by_purpose = {d.purpose: d for d in loaded.declarations}
    assert by_purpose["editorial.newsletter"].controller == "le-quotidien"
    assert by_purpose["political.communication"].sourcing == "rented"
    assert by_purpose["service.transactional"].promotional is False
    assert by_purpose["marketing.direct"].channel is Channel.SMS
    assert by_purpose["marketing.telemarketing"].sourcing == "purchased"


def test_every_problem_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    path.write_text(BROKEN)
    loaded = registry_file.load(path)
    assert not loaded.ok and loaded.declarations == []
    text = "\n".join(loaded.problems)
    assert "line 6" in text and "campaign:spring" in text  # the duplicate, naming line 2
    assert "line 10" in text and "not-a-purpose" in text
    assert "fax" in text
    assert "line 14" in text  # the string item
    assert all(p.startswith(str(path)) for p in loaded.problems)


def test_yaml_errors_and_wrong_shapes_are_reported_with_where(tmp_path: Path) -> None:
    docs, problems = registry_file.parse("declarations: [\n  - a", "r.yaml")
    assert docs == [] and problems and "line" in problems[0]
    _, problems = registry_file.parse("", "r.yaml")
    assert "empty" in problems[0]
    _, problems = registry_file.parse("decls: []\n", "r.yaml")
    assert "unknown top-level key" in problems[0]
    docs, problems = registry_file.parse("- campaign: x\n  controller: y\n", "r.yaml")
    assert problems == [] and docs == [(1, {"campaign": "x", "controller": "y"})]


def test_apply_refuses_an_invalid_file_and_publishes_nothing(tmp_path: Path, make_settings) -> None:
    path = tmp_path / "registry.yaml"
    path.write_text(BROKEN)
    out, err = io.StringIO(), io.StringIO()
    # the bootstrap points nowhere: an invalid file must be refused before any Kafka call
    settings = make_settings(bootstrap_servers="127.0.0.1:1")
    code = registry_cmd.apply(settings, str(path), out=out, err=err)
    assert code == registry_cmd.EX_DATAERR
    assert "nothing was published" in err.getvalue()
    assert out.getvalue() == ""


def _decl(ref: str, purpose: str = "marketing.direct", at: int = 0) -> Declaration:
    return Declaration(
        f"campaign:{ref}", "campaign", ref, "acme", purpose, Channel.EMAIL, updated_at_ms=at
    )


def test_plan_publishes_only_what_changed_and_lists_what_the_file_dropped() -> None:
    in_force = {d.decl_id: d for d in (_decl("a", at=1), _decl("b", at=1), _decl("gone", at=1))}
    wanted = [_decl("a", at=99), _decl("b", "editorial.newsletter", at=99), _decl("new", at=99)]
    plan = registry_file.plan(wanted, in_force)
    assert [d.decl_id for d in plan.new] == ["campaign:new"]
    assert [d.decl_id for d in plan.changed] == ["campaign:b"]
    assert [d.decl_id for d in plan.unchanged] == ["campaign:a"]  # a newer timestamp is no change
    assert plan.removed == ["campaign:gone"]


def test_the_registry_view_applies_tombstones_and_skips_bad_records() -> None:
    from consentinel.streams.events import codec

    reg = Registry()
    a = _decl("a")
    reg.apply(b"campaign:a", codec.encode(a))
    reg.apply(b"campaign:b", b"{not json")
    reg.apply(b"campaign:c", codec.encode(_decl("other")))  # key and value disagree
    assert reg.get("campaign:a") == a and len(reg) == 1 and reg.skipped == 2
    reg.apply(b"campaign:a", codec.encode(dataclasses.replace(a, purpose="measurement")))
    assert reg.get("campaign:a").purpose == "measurement"  # type: ignore[union-attr]
    reg.apply(b"campaign:a", None)
    assert reg.get("campaign:a") is None and len(reg) == 0
