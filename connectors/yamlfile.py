"""YAML that remembers where things are, so a configuration error names its line.

``load(text, name)`` parses with the safe loader; every mapping comes back as a
:class:`LineDict` (a plain ``dict`` with ``.line`` and ``.key_lines``) and every list as
a :class:`LineList` (``.line`` and ``.item_lines``). Lines are 1-based. A syntax error is
a ``FatalConfigError`` that names the file and line.
"""

from __future__ import annotations

from typing import Any

import yaml
from consentinel.streams.events.errors import FatalConfigError


class LineDict(dict[str, Any]):
    line: int = 0
    key_lines: dict[str, int]

    def line_of(self, key: str) -> int:
        lines: dict[str, int] = getattr(self, "key_lines", {})
        return lines.get(key, self.line)


class LineList(list[Any]):
    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        lines = getattr(self, "item_lines", [])
        return lines[index] if index < len(lines) else self.line


class _Loader(yaml.SafeLoader):
    pass


def _mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        out[key] = loader.construct_object(value_node, deep=True)
        if isinstance(key, str):
            out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> LineList:
    out = LineList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


def load(text: str, name: str) -> Any:
    """Parse YAML ``text`` (from ``name``, for messages) into line-aware values."""
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        raise FatalConfigError([f"{where}: not valid YAML ({exc.problem})"], name) from None
    except yaml.YAMLError as exc:
        raise FatalConfigError([f"{name}: not valid YAML ({exc})"], name) from None


def line_of(value: Any, key: str | int | None = None) -> int:
    """The line of ``value`` (or of its ``key``), 0 when unknown."""
    if isinstance(value, LineDict) and isinstance(key, str):
        return value.line_of(key)
    if isinstance(value, LineList) and isinstance(key, int):
        return value.line_of(key)
    return int(getattr(value, "line", 0))
