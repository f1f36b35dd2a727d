"""The GDPR art. 30 view of the purpose registry: one record of processing per declaration.

Art. 30(1) asks for the controller, the purposes, the categories of data subjects and of
personal data, the recipients, the envisaged time limits for erasure and (with art. 6)
the legal basis. The registry holds most of these; what it does not hold is said so in
the cell, never guessed: recipients are not declared in the registry, and the retention
is the deployment's one setting (``CONSENTINEL_RETENTION_DAYS``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from consentinel.streams.events.csv_safe import csv_text
from consentinel.streams.events.records import Declaration

FIELDS: tuple[str, ...] = (
    "record", "controller", "purpose", "description", "channel", "data_subjects",
    "data_categories", "sourcing", "data_sources", "acquired_from", "recipients",
    "retention", "legal_basis", "promotional", "updated_at_ms",
)  # fmt: skip

_CATEGORY = {"email": "e-mail address", "sms": "mobile phone number", "phone": "phone number"}
NOT_DECLARED = "not declared in the registry"


def record(decl: Declaration, retention_days: int) -> dict[str, Any]:
    """One declaration as its art. 30 record."""
    channel = str(decl.channel)
    return {
        "record": decl.decl_id,
        "controller": decl.controller,
        "purpose": decl.purpose,
        "description": decl.description,
        "channel": channel,
        "data_subjects": f"people reached by {channel} ({decl.ref_kind} {decl.ref})",
        "data_categories": [
            f"{_CATEGORY.get(channel, channel)} (pseudonymized by the monitor)",
            "consent records and their proofs",
        ],
        "sourcing": str(decl.sourcing),
        "data_sources": list(decl.data_sources),
        "acquired_from": list(decl.acquired_from),
        "recipients": NOT_DECLARED,
        "retention": f"{retention_days} days (CONSENTINEL_RETENTION_DAYS)",
        "legal_basis": str(decl.legal_basis),
        "promotional": decl.promotional,
        "updated_at_ms": decl.updated_at_ms,
    }


def records(decls: Iterable[Declaration], retention_days: int) -> list[dict[str, Any]]:
    """The records, by controller then declaration id."""
    ordered = sorted(decls, key=lambda d: (d.controller, d.decl_id))
    return [record(d, retention_days) for d in ordered]


def as_csv(rows: list[dict[str, Any]]) -> str:
    """Formula-safe CSV (the one writer of ``events.csv_safe``)."""
    return csv_text(FIELDS, rows)
