"""Connector classes added at run time (declarative mappings, tests), by name.

The bottom of the registry: ``registry`` reads it, ``declarative`` adds to it, and neither
imports the other at module level, so there is no import cycle between them.
"""

from __future__ import annotations

from consentinel.connectors.contract import Connector

_classes: dict[str, type[Connector]] = {}


def register(cls: type[Connector]) -> type[Connector]:
    """Add a connector class under ``cls.name`` (declarative connectors, tests)."""
    _classes[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    _classes.pop(name, None)


def classes() -> dict[str, type[Connector]]:
    """The registered classes by name (the live table: read it, add through ``register``)."""
    return _classes
