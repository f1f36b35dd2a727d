"""Payload parsing every connector needs: a JSON object body (through the one codec),
integers that cannot overflow, identifiers, vendor texts, export cells and nested form
fields (``a[b][c]=v``, as PHP platforms post them).

Messages name the field, never its value (a value may be an address).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from consentinel.streams.events.codec import loads
from consentinel.streams.events.errors import InvalidInput

INT64_MAX: Final = 2**63 - 1
_DIGITS = re.compile(r"\s*[+-]?\d{1,40}\s*")
_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def json_body(body: bytes, what: str) -> Any:
    """The body parsed as JSON (``malformed_json`` when it is empty or not JSON)."""
    if not body.strip():
        raise InvalidInput("malformed_json", f"{what} is empty")
    return loads(body)


def json_object(body: bytes, what: str = "the JSON body") -> dict[str, Any]:
    """The body as a JSON object; ``malformed_json`` otherwise (the message names ``what``)."""
    data = loads(body)
    if not isinstance(data, dict):
        raise InvalidInput("malformed_json", f"{what} is not a JSON object")
    return data


def bounded_int(value: Any, field: str, *, low: int = 0, high: int = INT64_MAX) -> int:
    """An integer (a JSON number without fraction or a digit string) in ``[low, high]``.

    ``bad_value`` naming ``field`` when it is not an integer or lies outside the bounds: a
    count beyond 64 bits is bad input to dead-letter, never a crash."""
    if isinstance(value, bool):
        raise InvalidInput("bad_value", f"{field} is not an integer")
    if isinstance(value, str):
        if not _DIGITS.fullmatch(value):
            raise InvalidInput("bad_value", f"{field} is not an integer")
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise InvalidInput("bad_value", f"{field} is not an integer")
    if not low <= value <= high:
        raise InvalidInput("bad_value", f"{field} is outside {low}..{high}")
    return value


def ident(value: Any, field: str, *, required: bool = False) -> str | None:
    """An identifier as text: strings and integers (platforms send int64 ids as either);
    None when absent or blank (``missing_field`` naming ``field`` if ``required``),
    ``bad_value`` when it is anything else."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidInput("missing_field", f"{field} is missing")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInput("bad_value", f"{field} is not a string or an integer")
    return str(value).strip()


def short_text(value: Any, limit: int = 64) -> str | None:
    """A vendor text trimmed and cut to ``limit`` characters; ``None`` when not a text or
    blank."""
    if not isinstance(value, str):
        return None
    return value.strip()[:limit] or None


def first_cell(row: Mapping[str, Any], *names: str) -> str | None:
    """The first of ``names`` an export row fills, as text (integers as their digits)."""
    for name in names:
        value = row.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def nested_form(pairs: Mapping[str, list[str]]) -> dict[str, Any]:
    """``data[merges][FNAME]=Ana`` → ``{"data": {"merges": {"FNAME": "Ana"}}}`` (last value
    of a repeated key wins; a key that is both a value and an object is ``malformed_form``)."""
    out: dict[str, Any] = {}
    for key, values in pairs.items():
        match = _KEY.match(key)
        if not match:
            raise InvalidInput("malformed_form", "a form field name has unbalanced brackets")
        path = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = out
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise InvalidInput("malformed_form", f"form field {part!r} is both text and nested")
            node = child
        if isinstance(node.get(path[-1]), dict):
            raise InvalidInput("malformed_form", f"form field {path[-1]!r} is both text and nested")
        node[path[-1]] = values[-1] if values else ""
    return out
