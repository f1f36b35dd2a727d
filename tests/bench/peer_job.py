"""The job every peer of the checker does, written plainly: what a user would write in an
afternoon for the bench's synthetic world (``dataset``).

Per subject, the state is the latest consent: (valid from, purposes, channels). A use is
``allowed`` when that consent was in force at the use's own time and covers the purpose
declared for its campaign and its channel; otherwise it is a ``violation``. One verdict
per use, a small JSON object with the use's id and the decision (encoded by our codec).

Pure functions on decoded records (plain dicts); no Kafka, nothing that blocks.
"""

from __future__ import annotations

from typing import Any

from consentinel.streams.events import codec
from dataset import declarations

# campaign id -> declared purpose (the bench's registry, read once)
PURPOSE = {d.ref: d.purpose for d in declarations()}

State = list[Any]  # [valid_from_ms, purposes, channels]


def is_consent(record: dict[str, Any]) -> bool:
    return "action" in record


def consent_state(consent: dict[str, Any]) -> State | None:
    """The state a consent event leaves for its subject (None: nothing in force)."""
    if consent["action"] != "grant":
        return None
    return [consent["occurred_at_ms"], consent["purposes"], consent["channels"]]


def decide(use: dict[str, Any], state: State | None) -> str:
    if state is None or use["occurred_at_ms"] < state[0]:
        return "violation"
    purpose = PURPOSE.get(use.get("campaign_id") or "")
    if purpose is None or purpose not in state[1] or use["channel"] not in state[2]:
        return "violation"
    return "allowed"


def verdict(use: dict[str, Any], decision: str) -> bytes:
    return codec.dumps({"usage_event_id": use["event_id"], "decision": decision})


def final_decision(verdict_value: dict[str, Any]) -> str | None:
    """allowed / violation from any system's verdict (consentinel's included); None for a
    pending verdict or a correction, which are not the decision on the use."""
    decision = verdict_value.get("decision")
    if decision == "pending" or verdict_value.get("correction"):
        return None
    return "allowed" if decision == "allowed" else "violation"
