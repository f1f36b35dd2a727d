"""The one resolver of secret references (connectors and alert sinks use it)."""

from __future__ import annotations

from pathlib import Path

import pytest
from consentinel.streams.events import secrets
from consentinel.streams.events.errors import ConsentinelError
from consentinel.streams.events.settings import Secret


def test_env_reference_is_read_and_stripped() -> None:
    got = secrets.resolve("env:HOOK_KEY", environ={"HOOK_KEY": " s3cret\n"})
    assert got.reveal() == b"s3cret"


def test_file_reference_is_read_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "key").write_bytes(b"from-file\n")
    assert secrets.resolve("file:key", environ={}, base_dir=tmp_path).reveal() == b"from-file"
    absolute = f"file:{tmp_path / 'key'}"
    assert secrets.resolve(absolute, environ={}).reveal() == b"from-file"


@pytest.mark.parametrize(
    ("ref", "environ", "words"),
    [
        ("env:MISSING", {}, "environment variable MISSING is not set"),
        ("env:BLANK", {"BLANK": "  "}, "environment variable BLANK is not set"),
        ("vault:x", {}, "is not a reference"),
    ],
)
def test_unresolvable_references_say_why(ref: str, environ: dict[str, str], words: str) -> None:
    with pytest.raises(secrets.UnresolvedSecret) as info:
        secrets.resolve(ref, environ=environ)
    assert words in info.value.problem


def test_missing_and_empty_files_are_problems(tmp_path: Path) -> None:
    with pytest.raises(secrets.UnresolvedSecret) as info:
        secrets.resolve("file:nope", environ={}, base_dir=tmp_path)
    assert "cannot be read" in info.value.problem
    (tmp_path / "empty").write_bytes(b"\n")
    with pytest.raises(secrets.UnresolvedSecret) as info:
        secrets.resolve("file:empty", environ={}, base_dir=tmp_path)
    assert info.value.problem.endswith("is empty")


def test_rotation_gives_the_previous_value_after_the_current_one() -> None:
    table = {"key": Secret(b"new"), "key_previous": Secret(b"old")}
    assert secrets.with_previous(table, "key") == [b"new", b"old"]
    assert secrets.with_previous({"key": Secret(b"new")}, "key") == [b"new"]
    with pytest.raises(ConsentinelError, match="'other' is not configured"):
        secrets.with_previous(table, "other")


def test_is_reference() -> None:
    assert secrets.is_reference("env:X") and secrets.is_reference("file:/x")
    assert not secrets.is_reference("plain") and not secrets.is_reference(3)
