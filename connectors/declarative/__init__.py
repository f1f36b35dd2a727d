"""Declarative connectors: a YAML mapping for a platform nobody coded.

``load_mapping(path)`` reads and validates a mapping file (every problem with its line,
as ``FatalConfigError``), builds a ``Connector`` class named after the file's ``name:``
and registers it (``registered.register``), so instances refer to it with

    - name: postmark-main
      type: declarative
      mapping: connectors/declarative/examples/postmark.yaml

The format is described in ``README.md`` beside this file.
"""

from __future__ import annotations

import os
from pathlib import Path

from consentinel.connectors import registered
from consentinel.connectors.builtin import BUILTINS
from consentinel.connectors.declarative.connector import DeclarativeConnector, schema_for
from consentinel.connectors.declarative.spec import Spec, load_spec
from consentinel.streams.events.errors import FatalConfigError

EXAMPLES = Path(__file__).parent / "examples"

_cache: dict[str, tuple[int, type[DeclarativeConnector]]] = {}


def accepted_events(spec: Spec) -> tuple[str, ...]:
    """The vendor event types the mapping's ``kinds:`` lists, then its ``ignore:`` ones."""
    ignored = sorted(spec.ignore - set(spec.kinds))
    return (*spec.kinds, *(f"{vendor} (ignored)" for vendor in ignored))


def event_time_words(spec: Spec) -> str:
    """Where ``occurred_at_ms`` comes from: the mapping's ``fields.occurred_at`` path, read
    in its ``time:`` format."""
    zone = f", naive times in {spec.time.timezone}" if spec.time.timezone != "UTC" else ""
    return f"the payload's `{spec.fields['occurred_at'].text}` ({spec.time.format}{zone})"


def build_class(spec: Spec) -> type[DeclarativeConnector]:
    """A connector class for a compiled mapping (not registered)."""
    attrs = {
        "name": spec.name,
        "title": spec.title,
        "produces": spec.produces,
        "auth": spec.auth_words,
        "events": accepted_events(spec),
        "event_time": event_time_words(spec),
        "config_schema": schema_for(spec),
        "spec": spec,
        "mapping_file": spec.file,
        "__module__": __name__,
        "__doc__": f"Declarative connector from {spec.file}",
    }
    return type(f"Declarative_{spec.name}", (DeclarativeConnector,), attrs)


def load_mapping(path: str | os.PathLike[str]) -> type[DeclarativeConnector]:
    """The connector class of a mapping file, built once per file version, registered."""
    p = Path(path).resolve()
    try:
        mtime = p.stat().st_mtime_ns
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise FatalConfigError(
            [f"{p}: cannot read the mapping file ({exc.strerror})"], "declarative mapping"
        ) from None
    cached = _cache.get(str(p))
    if cached is not None and cached[0] == mtime:
        return cached[1]
    spec = load_spec(text, str(p))
    if spec.name in BUILTINS:
        raise FatalConfigError(
            [f"{p}: name {spec.name!r} is a built-in connector; choose another name"],
            "declarative mapping",
        )
    for other_path, (_, other) in _cache.items():
        if other.name == spec.name and other_path != str(p):
            raise FatalConfigError(
                [f"{p}: name {spec.name!r} is already used by {other_path}"], "declarative mapping"
            )
    cls = build_class(spec)
    _cache[str(p)] = (mtime, cls)
    registered.register(cls)
    return cls


__all__ = ["EXAMPLES", "DeclarativeConnector", "Spec", "build_class", "load_mapping", "load_spec"]
