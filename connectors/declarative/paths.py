"""Field paths of the declarative mapping: ``Metadata.purpose``, ``items[0].email``.

Grammar: segments separated by ``.``; each segment is a key optionally followed by
``[i]`` (a list index, negative from the end) or ``[key]`` (a key, as in PHP-style form
names ``data[merges][EMAIL]``). ``A|B|C`` lists alternatives: the first one present
wins. An empty path (or ``$``) is the object itself. On flat objects (form bodies, CSV
rows) the whole path is first tried as a literal key, so ``data[email]`` and
``campaign name`` work as written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MISSING: Any = object()

_SEGMENT = re.compile(r"([^.\[\]]*)((?:\[[^\[\]]*\])*)")
_INDEX = re.compile(r"\[([^\[\]]*)\]")


@dataclass(frozen=True, slots=True)
class FieldPath:
    text: str
    alternatives: tuple[tuple[str | int, ...], ...]
    literals: tuple[str, ...] = ()  # each alternative as one literal key (flat objects)

    def get(self, obj: Any) -> Any:
        """The value at the first alternative present, or ``MISSING``."""
        is_dict = isinstance(obj, dict)
        for literal, steps in zip(self.literals, self.alternatives, strict=True):
            value = obj[literal] if is_dict and literal in obj else _walk(obj, steps)
            if value is not MISSING and value is not None and value != "":
                return value
        return MISSING


def _walk(obj: Any, steps: tuple[str | int, ...]) -> Any:
    value = obj
    for step in steps:
        if isinstance(value, dict):
            key = str(step)
            if key not in value:
                return MISSING
            value = value[key]
        elif isinstance(value, list) and isinstance(step, int):
            try:
                value = value[step]
            except IndexError:
                return MISSING
        else:
            return MISSING
    return value


def _steps(alt: str) -> tuple[str | int, ...]:
    alt = alt.strip()
    if alt in ("", "$"):
        return ()
    steps: list[str | int] = []
    for part in _split_dots(alt):
        m = _SEGMENT.fullmatch(part)
        if m is None:
            raise ValueError(f"path {alt!r}: segment {part!r} is not key or key[index]")
        key, brackets = m.group(1), m.group(2)
        if key:
            steps.append(key)
        elif not brackets:
            raise ValueError(f"path {alt!r}: empty segment (two dots in a row?)")
        for inner in _INDEX.findall(brackets):
            text = inner.strip().strip("'\"")
            steps.append(int(text) if re.fullmatch(r"-?\d+", text) else text)
    return tuple(steps)


def _split_dots(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "." and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return parts


def compile_path(text: Any) -> FieldPath:
    """Parse a path; ``ValueError`` says what is wrong with it."""
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str):
        raise ValueError(f"a path must be a string like `a.b[0].c`, got {type(text).__name__}")
    alternatives = tuple(_steps(alt) for alt in text.split("|"))
    return FieldPath(text, alternatives, tuple(alt.strip() for alt in text.split("|")))
