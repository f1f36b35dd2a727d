"""Find connectors by name: the built-ins, then the ``consentinel.connectors`` entry points.

A name resolves to a ``Connector`` subclass. Built-ins are listed in ``builtin.BUILTINS``
as ``"module:Class"``; other packages add connectors through the entry-point group
``consentinel.connectors`` (``name = "package.module:Class"``). Declarative connectors are
classes built from a YAML mapping (``declarative``) and added with :func:`register`.

Nothing is imported until it is asked for. A plugin that fails to import is reported
(:func:`discover` returns its problem) and never stops the others from loading.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass

from consentinel.connectors import registered
from consentinel.connectors.builtin import BUILTINS
from consentinel.connectors.contract import Connector, Edge, Instance
from consentinel.streams.events.errors import ConsentinelError

ENTRY_POINT_GROUP = "consentinel.connectors"

#: Instance ``type`` of a declarative connector; its ``mapping`` option names the file.
DECLARATIVE = "declarative"

_registered = registered.classes()
register = registered.register  # declarative connectors, tests
unregister = registered.unregister


class UnknownConnector(ConsentinelError):
    """No connector of that name; the message lists the known ones."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        super().__init__(
            f"no connector named {name!r}; known connectors: {', '.join(known) or '(none)'} "
            f"(see `consentinel connectors list`)"
        )


class BrokenConnector(ConsentinelError):
    """A connector exists by name but cannot be loaded (import error, wrong class)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One known connector: where it comes from, and its class or why it failed to load."""

    name: str
    target: str  # "module:Class"
    origin: str  # "builtin", "plugin <dist>", "declarative <file>"
    cls: type[Connector] | None = None
    problem: str | None = None


def _entry_points() -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    try:
        eps = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # a broken metadata directory must not stop the built-ins
        return out
    for ep in eps:
        dist = getattr(ep, "dist", None)
        label = f"plugin {dist.name}" if dist is not None else "plugin"
        out.setdefault(ep.name, (ep.value, label))
    return out


def _load(name: str, target: str) -> type[Connector]:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, attr) if attr else None
    except Exception as exc:
        raise BrokenConnector(
            f"connector {name!r} ({target}) cannot be loaded: {type(exc).__name__}: {exc}"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise BrokenConnector(
            f"connector {name!r}: {target} is not a Connector subclass; "
            f"point the entry point at the class"
        )
    return cls


def known_names() -> list[str]:
    """Every name that resolves (or should): built-ins, plugins, registered classes."""
    return sorted({*BUILTINS, *_entry_points(), *_registered})


def get(name: str) -> type[Connector]:
    """The connector class called ``name``; ``UnknownConnector`` or ``BrokenConnector``."""
    if name in _registered:
        return _registered[name]
    if name in BUILTINS:
        return _load(name, BUILTINS[name])
    plugins = _entry_points()
    if name in plugins:
        return _load(name, plugins[name][0])
    raise UnknownConnector(name, known_names())


def connector_class(instance: Instance) -> type[Connector]:
    """The class for an instance: by ``type``, or built from ``options['mapping']``."""
    if instance.type == DECLARATIVE:
        from consentinel.connectors.declarative import load_mapping

        mapping = instance.options.get("mapping")
        if not mapping:
            raise BrokenConnector(
                f"instance {instance.name!r}: type declarative needs a `mapping:` file path"
            )
        return load_mapping(str(mapping))
    return get(instance.type)


def build(instance: Instance, edge: Edge) -> Connector:
    """A ready connector for one configured instance."""
    return connector_class(instance)(instance, edge)


def discover() -> list[Entry]:
    """Every connector with its class loaded, or the problem that stopped it loading."""
    entries: list[Entry] = []
    seen: set[str] = set()
    sources: list[tuple[str, str, str]] = [(n, t, "builtin") for n, t in BUILTINS.items()]
    sources += [(n, t, origin) for n, (t, origin) in _entry_points().items() if n not in BUILTINS]
    for name, target, origin in sources:
        seen.add(name)
        try:
            entries.append(Entry(name, target, origin, cls=_load(name, target)))
        except BrokenConnector as exc:
            entries.append(Entry(name, target, origin, problem=str(exc)))
    for name, cls in _registered.items():
        if name not in seen:
            module = getattr(cls, "mapping_file", cls.__module__)
            entries.append(Entry(name, f"{module}", "declarative", cls=cls))
    return sorted(entries, key=lambda e: e.name)
