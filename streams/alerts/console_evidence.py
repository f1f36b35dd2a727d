"""What the console shows and exports of an incident: its evidence, for people.

An incident's evidence is its alerts: for each use, the masked hint, the controller, the
declared purpose, the consent as it stood at event time with its proof, and the rule with
its legal source. Nothing here ever holds a raw address: the store keeps hints and subject
keys only, and as a second line of defence every text field is scrubbed (anything that
looks like an e-mail address or an E.164 number is masked) before it leaves the console.
Subject keys are shown as a short prefix (``subject_ref``): enough to tell two people apart
in one incident, not a join key for other systems.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from consentinel.streams.events import codec
from consentinel.streams.events.csv_safe import csv_text
from consentinel.streams.events.identity import mask_email, mask_phone
from consentinel.streams.events.records import Alert

from .model import Incident

SUBJECT_PREFIX = 12

_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_PHONE = re.compile(r"\+\d[\d .\-()]{6,}\d")


def scrub(text: str) -> str:
    """``text`` with anything that looks like a raw address masked (hints are left alone)."""
    text = _EMAIL.sub(lambda m: mask_email(m.group().lower()), text)
    return _PHONE.sub(lambda m: mask_phone("+" + re.sub(r"\D", "", m.group())), text)


def looks_like_address(text: str) -> bool:
    return bool(_EMAIL.search(text) or _PHONE.search(text))


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return [_scrubbed(v) for v in value]
    if isinstance(value, dict):
        return {k: _scrubbed(v) for k, v in value.items()}
    return value


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def subject_ref(subject_key: str) -> str:
    return subject_key[:SUBJECT_PREFIX] + "…" if len(subject_key) > SUBJECT_PREFIX else subject_key


def incident_view(inc: Incident) -> dict[str, Any]:
    """An incident as the console's JSON (scrubbed)."""
    obj = codec.to_obj(inc)
    obj["is_open"] = inc.is_open
    obj["opened_at"] = iso(inc.opened_at_ms)
    obj["last_seen"] = iso(inc.last_seen_ms)
    return dict(_scrubbed(obj))


def evidence_item(alert: Alert) -> dict[str, Any]:
    """One alert as evidence: flat enough for a CSV row, complete enough for an audit."""
    consent = alert.consent
    proof = consent.proof if consent is not None else None
    item: dict[str, Any] = {
        "alert_id": alert.alert_id,
        "status": alert.status.value,
        "revision": alert.revision,
        "rule_id": alert.rule_id,
        "rule_source": alert.rule_source,
        "severity": alert.severity.value,
        "summary": alert.summary,
        "occurred_at": iso(alert.occurred_at_ms),
        "detected_at": iso(alert.detected_at_ms),
        "usage_event_id": alert.usage_event_id,
        "source": alert.source,
        "channel": alert.channel.value,
        "hint": alert.hint,
        "subject_ref": subject_ref(alert.subject_key),
        "controller": alert.controller,
        "campaign_id": alert.campaign_id,
        "purpose_used": alert.purpose_used,
        "declaration_id": alert.decl_id,
        "consent_state": consent.state if consent is not None else "unknown",
        "consent_valid_from": iso(consent.valid_from_ms) if consent is not None else None,
        "consent_purposes": list(consent.purposes) if consent is not None else [],
        "consent_channels": list(consent.channels) if consent is not None else [],
        "consent_recipients": list(consent.recipients) if consent is not None else [],
        "consent_legal_basis": consent.legal_basis if consent is not None else None,
        "consent_event_ids": list(consent.consent_event_ids) if consent is not None else [],
        "proof_method": proof.method if proof else None,
        "proof_collected_at": iso(proof.collected_at_ms) if proof else None,
        "proof_collection_point": proof.collection_point if proof else None,
        "proof_notice_version": proof.notice_version if proof else None,
        "proof_text_hash": proof.text_hash if proof else None,
        "proof_ip_hash": proof.ip_hash if proof else None,
        "proof_certificate_id": proof.certificate_id if proof else None,
        "proof_vendor_receipt": proof.vendor_receipt if proof else None,
        "correction_reason": alert.correction_reason,
    }
    return dict(_scrubbed(item))


def evidence_json(inc: Incident, alerts: Iterable[Alert], exported_at_ms: int) -> dict[str, Any]:
    items = [evidence_item(a) for a in alerts]
    return {
        "exported_at": iso(exported_at_ms),
        "incident": incident_view(inc),
        "evidence_count": len(items),
        "evidence": items,
        "note": (
            "Addresses appear only as masked hints; subject_ref is the start of the "
            "pseudonymous subject key."
        ),
    }


def evidence_csv(alerts: Iterable[Alert]) -> str:
    return csv_text(FIELDS, (evidence_item(a) for a in alerts))


FIELDS: tuple[str, ...] = (
    "alert_id", "status", "revision", "rule_id", "rule_source", "severity", "summary",
    "occurred_at", "detected_at", "usage_event_id", "source", "channel", "hint", "subject_ref",
    "controller", "campaign_id", "purpose_used", "declaration_id", "consent_state",
    "consent_valid_from", "consent_purposes", "consent_channels", "consent_recipients",
    "consent_legal_basis", "consent_event_ids", "proof_method", "proof_collected_at",
    "proof_collection_point", "proof_notice_version", "proof_text_hash", "proof_ip_hash",
    "proof_certificate_id", "proof_vendor_receipt", "correction_reason",
)  # fmt: skip
