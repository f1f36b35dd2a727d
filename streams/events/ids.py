"""Deterministic ids: the same input always gives the same id.

A platform's redelivery of one event yields the same ``event_id``; a replayed usage event
yields the same ``alert_id``; so every consumer can deduplicate on ids.
"""

from __future__ import annotations

import hashlib

_SEP = "\x1f"


def _digest(*parts: object, size: int = 16) -> str:
    text = _SEP.join(["" if p is None else str(p) for p in parts])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[: size * 2]


def event_id(source: str, *dedupe_parts: object) -> str:
    """``<source>:<hash of the platform's dedupe key parts>``, stable across redeliveries.

    ``source`` is the connector instance; the parts are what the platform guarantees to
    repeat on a redelivery (connectors.md, 7.1 "dedupe key"). Parts may hold addresses:
    they are hashed, never stored.
    """
    return f"{source}:{_digest(source, *dedupe_parts)}"


def alert_id(usage_event_id: str, rule_id: str) -> str:
    """hash(usage event id, rule id): a replay reproduces the same alert id."""
    return "al-" + _digest("alert", usage_event_id, rule_id)


def incident_key(controller: str, campaign: str | None, rule_id: str) -> str:
    """Alerts group into incidents per controller x campaign x rule."""
    return f"{controller}|{campaign or '-'}|{rule_id}"


def declaration_id(ref_kind: str, ref: str) -> str:
    """Registry key of what a usage event names: ``campaign:spring-2027``, ``list:42``.

    The declaration, not the platform account, says which controller uses the addresses.
    """
    return f"{ref_kind}:{ref}"
