"""Helpers of the alert router's tests: alerts as the core emits them, the privacy scan.

Loaded by ``conftest.py`` as the module ``alerting`` (tests run with
``--import-mode=importlib``, so a test file cannot import a sibling by its name).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from consentinel.streams.events import ids
from consentinel.streams.events.records import (
    Alert,
    AlertStatus,
    Channel,
    ConsentSummary,
    Proof,
    Severity,
)

_spec = importlib.util.spec_from_file_location("privacy", Path(__file__).parents[2] / "privacy.py")
assert _spec is not None and _spec.loader is not None
privacy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(privacy)

T0 = 1_760_000_000_000  # a fixed detection time (ms)
HOUR = 3_600_000


def alert(
    event: str = "ev-1",
    *,
    rule: str = "R2",
    controller: str = "broker-lists",
    campaign: str | None = "politics-27",
    status: AlertStatus = AlertStatus.FIRING,
    revision: int = 1,
    at: int = T0,
    severity: Severity = Severity.CRITICAL,
    **extra: Any,
) -> Alert:
    """An alert as the checker emits it (masked hint, consent evidence with proof)."""
    usage = f"newsletter-x:{event}"
    return Alert(
        alert_id=ids.alert_id(usage, rule),
        rule_id=rule,
        rule_source="[S6 art. 5(1)(b), 6(4)]",
        severity=severity,
        incident_key=ids.incident_key(controller, campaign, rule),
        usage_event_id=usage,
        subject_key="sk-" + event,
        hint="a***@e***.org",
        controller=controller,
        channel=Channel.EMAIL,
        summary="political e-mail to a newsletter reader (a***@e***.org) who consented to "
        "editorial.newsletter only",
        occurred_at_ms=at - 1000,
        detected_at_ms=at,
        status=status,
        campaign_id=campaign,
        purpose_used="political.communication",
        decl_id=f"campaign:{campaign}",
        source="newsletter-x",
        consent=ConsentSummary(
            state="given",
            consent_event_ids=["cmp:abc"],
            purposes=["editorial.newsletter"],
            channels=["email"],
            legal_basis="consent",
            proof=Proof(method="double_opt_in", collected_at_ms=T0 - 86_400_000),
            valid_from_ms=T0 - 86_400_000,
        ),
        revision=revision,
        **extra,
    )
