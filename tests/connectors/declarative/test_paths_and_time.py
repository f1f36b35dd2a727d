from __future__ import annotations

import pytest
from consentinel.connectors.declarative.paths import MISSING, compile_path
from consentinel.connectors.declarative.timefmt import TimeFormat
from consentinel.streams.events.errors import InvalidInput

OBJ = {"a": {"b": [{"c": 1}, {"c": 2}]}, "data[email]": "x@example.org", "campaign name": "Jan"}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a.b[0].c", 1),
        ("a.b[-1].c", 2),
        ("a[b][1][c]", 2),
        ("data[email]", "x@example.org"),
        ("campaign name", "Jan"),
        ("nope|a.b[1].c", 2),
        ("", OBJ),
        ("$", OBJ),
    ],
)
def test_paths_find_values(path: str, expected: object) -> None:
    assert compile_path(path).get(OBJ) == expected


@pytest.mark.parametrize("path", ["a.x", "a.b[5].c", "a.b.c", "a.b[0].c.d"])
def test_absent_paths_are_missing(path: str) -> None:
    assert compile_path(path).get(OBJ) is MISSING


def test_bad_path_is_refused() -> None:
    with pytest.raises(ValueError, match="empty segment"):
        compile_path("a..b")
    with pytest.raises(ValueError, match="must be a string"):
        compile_path(["a"])


@pytest.mark.parametrize(
    ("fmt", "tz", "value", "ms"),
    [
        ("unix_s", "UTC", 1767225600, 1767225600000),
        ("unix_s", "UTC", "1767225600.5", 1767225600500),
        ("unix_ms", "UTC", 1767225600123, 1767225600123),
        ("rfc3339", "UTC", "2026-01-01T00:00:00Z", 1767225600000),
        ("rfc3339", "UTC", "2026-01-01T01:00:00.9070259+01:00", 1767225600907),
        ("rfc3339", "Europe/Paris", "2026-01-01T01:00:00", 1767225600000),
        ("%Y-%m-%d %H:%M:%S", "Europe/Paris", "2026-01-01 01:00:00", 1767225600000),
        ("%d/%m/%Y %H:%M", "UTC", "01/01/2026 00:00", 1767225600000),
    ],
)
def test_time_formats(fmt: str, tz: str, value: object, ms: int) -> None:
    assert TimeFormat(fmt, tz).to_ms(value) == ms


@pytest.mark.parametrize(
    ("fmt", "value"),
    [
        ("unix_s", "soon"),
        ("unix_s", True),
        ("unix_ms", 12),
        ("rfc3339", "yesterday"),
        ("rfc3339", 5),
        ("unix_s", "nan"),
        ("%Y", "20x6"),
    ],
)
def test_bad_times_are_invalid_input(fmt: str, value: object) -> None:
    with pytest.raises(InvalidInput) as info:
        TimeFormat(fmt).to_ms(value)
    assert info.value.code == "bad_time"


def test_bad_format_or_zone_refused_at_load() -> None:
    with pytest.raises(ValueError, match="strptime"):
        TimeFormat("iso")
    with pytest.raises(ValueError, match="Mars/Olympus"):
        TimeFormat("rfc3339", "Mars/Olympus")
