"""The purpose registry file: YAML declarations with the line each one starts on.

Ops keep what each campaign, list, sender or form is for in one YAML file::

    declarations:
      - ref_kind: campaign
        ref: spring-2027
        controller: acme
        purpose: marketing.direct
        channel: email

(a bare top-level list is accepted too). ``load`` parses it, remembers the line of every
declaration, and hands the documents to the policy's ``validate_declarations``, so every
problem comes back with its line. ``plan`` compares the file with what is in force on the
registry topic. Nothing here talks to Kafka (``registry_cmd`` does).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from consentinel.streams.events import codec
from consentinel.streams.events.records import Declaration
from consentinel.streams.policy import registry as policy_registry

_LINE = "__line__"


class _LineLoader(yaml.SafeLoader):
    """A safe loader that records, in every mapping, the 1-based line it starts on."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = loader.construct_mapping(node, deep=True)
    mapping[_LINE] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


@dataclass
class Loaded:
    """A registry file read and validated: declarations, or problems (each with its line)."""

    path: str
    declarations: list[Declaration] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k != _LINE}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value


def parse(
    text: str, path: str = "<registry>"
) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    """The declaration documents of a registry file with their lines, and structural problems."""
    try:
        data = yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        return [], [f"{path}: {where}: not valid YAML ({exc.problem or exc})"]
    except yaml.YAMLError as exc:
        return [], [f"{path}: not valid YAML ({exc})"]
    if data is None:
        return [], [f"{path}: the file is empty; expected `declarations:` followed by a list"]
    items: Any
    if isinstance(data, dict):
        unknown = sorted(str(k) for k in data if k not in ("declarations", _LINE))
        if unknown:
            return [], [
                f"{path}: line {data.get(_LINE, 1)}: unknown top-level key(s) "
                f"{', '.join(unknown)}; "
                f"expected only `declarations:`"
            ]
        items = data.get("declarations")
        if items is None:
            return [], [f"{path}: line {data.get(_LINE, 1)}: `declarations:` is missing or empty"]
    else:
        items = data
    if not isinstance(items, list):
        return [], [f"{path}: `declarations` must be a list of mappings (`- ref_kind: ...`)"]
    docs: list[tuple[int, dict[str, Any]]] = []
    problems: list[str] = []
    lines = _item_lines(text)
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            line = lines[index] if index < len(lines) else 0
            problems.append(
                f"{path}: line {line}: declaration #{index + 1} is not a mapping; expected "
                f"fields like `campaign: ...`, controller, purpose, channel"
            )
            continue
        line = int(item.get(_LINE, 0))
        docs.append((line, _strip_lines(item)))
    return docs, problems


def _item_lines(text: str) -> list[int]:
    """The line of every item of the declarations list (scalars carry no ``__line__``)."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if isinstance(node, yaml.MappingNode):
        node = next((v for k, v in node.value if getattr(k, "value", None) == "declarations"), None)
    if not isinstance(node, yaml.SequenceNode):
        return []
    return [item.start_mark.line + 1 for item in node.value]


def load(path: str | Path, *, updated_at_ms: int = 0) -> Loaded:
    """Read, parse and validate a registry file; every problem names its line."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        return Loaded(name, problems=[f"{name}: cannot read it ({exc.strerror})"])
    docs, problems = parse(text, name)
    if not docs:
        return Loaded(name, problems=problems)
    declarations, invalid = policy_registry.validate_declarations(docs, updated_at_ms=updated_at_ms)
    problems.extend(p if p.startswith(name) else f"{name}: {p}" for p in invalid)
    return Loaded(name, declarations if not problems else [], problems)


# -- comparing with what is in force --------------------------------------------------


def _comparable(decl: Declaration) -> Any:
    return codec.to_obj(dataclasses.replace(decl, updated_at_ms=0))


@dataclass
class Plan:
    """What ``registry apply`` would change on the topic."""

    new: list[Declaration] = field(default_factory=list)
    changed: list[Declaration] = field(default_factory=list)
    unchanged: list[Declaration] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # in force, absent from the file

    @property
    def publishes(self) -> list[Declaration]:
        return self.new + self.changed


def plan(wanted: list[Declaration], in_force: Mapping[str, Declaration]) -> Plan:
    out = Plan()
    names = set()
    for decl in wanted:
        names.add(decl.decl_id)
        current = in_force.get(decl.decl_id)
        if current is None:
            out.new.append(decl)
        elif _comparable(current) != _comparable(decl):
            out.changed.append(decl)
        else:
            out.unchanged.append(decl)
    out.removed = sorted(k for k in in_force if k not in names)
    return out
