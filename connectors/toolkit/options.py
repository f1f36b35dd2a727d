"""Instance options: declared in one line each, read without crashing on wrong types, and
checked at start with every problem listed at once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from consentinel.connectors.contract import ConfigField, Instance
from consentinel.streams.events.errors import FatalConfigError


def option(name: str, kind: str, doc: str, default: Any = None) -> ConfigField:
    """One option of a ``config_schema``: its name, its kind (``text``, ``number``,
    ``yes/no``, ``mapping``, ``list``), what it does, its default."""
    return ConfigField(name, doc, default=default, kind=kind)


def option_text(instance: Instance, name: str, default: str = "") -> str:
    """An option as text (a number is given as its digits); ``default`` when unset or empty."""
    value = instance.options.get(name)
    return str(value) if value not in (None, "") else default


def mapping_option(instance: Instance, name: str, problems: list[str]) -> dict[str, Any]:
    """An option that must be a mapping (absent: empty); a problem is noted otherwise."""
    value = instance.options.get(name)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.append(f"option {name!r} must be a mapping")
        return {}
    return {str(k): v for k, v in value.items()}


def check_options(instance: Instance, problems: list[str]) -> None:
    """Refuse to start with every problem listed (``FatalConfigError``)."""
    if problems:
        raise FatalConfigError(problems, f"connector instance {instance.name!r}")
