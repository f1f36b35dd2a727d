"""The purpose registry seen from the policy: resolving a use to its declaration (skeleton)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from consentinel.streams.events.records import Declaration, UsageEvent


def resolve(usage: UsageEvent, lookup: Callable[[str], Declaration | None]) -> Declaration | None:
    raise NotImplementedError


def validate_declarations(
    docs: list[tuple[int, dict[str, Any]]], *, updated_at_ms: int = 0
) -> tuple[list[Declaration], list[str]]:
    raise NotImplementedError
