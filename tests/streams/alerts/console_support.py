"""Synthetic alerts for the console tests: the list-rental case of DESIGN.md.

The raw addresses live only in this test process; everything stored holds subject keys and
masked hints, as in production. One alert carries a raw address in a free-text field (a
collection URL a platform sent) so the tests can prove the console scrubs it.
"""

from __future__ import annotations

import privacy  # noqa: F401  (tests/ is on pytest's pythonpath; the console tests use it)
from consentinel.streams.events import ids
from consentinel.streams.events.identity import Pseudonymizer, mask, normalize
from consentinel.streams.events.records import (
    Alert,
    AlertStatus,
    Channel,
    ConsentSummary,
    Proof,
    Severity,
)

PEPPER = b"console-test-pepper-0123456789"
RAW_EMAILS = [
    "ana.lopez@example.org",
    "bruno.keller@mail.example.net",
    "chloe+news@example.fr",
]
RAW_PHONE = "+33612345678"
RAW_ALL = [*RAW_EMAILS, RAW_PHONE]
T0 = 1_780_000_000_000  # a fixed detection time (epoch ms)

R2_SOURCE = "GDPR Art. 6(1)(a) and 7; ePrivacy Directive Art. 13(1)"
R5_SOURCE = "GDPR Art. 7(3) (withdrawal); CNIL guidance on prospection"


def _alert(
    raw: str,
    channel: Channel,
    *,
    rule: str,
    source: str,
    controller: str,
    campaign: str,
    n: int,
    consent: ConsentSummary | None,
    severity: Severity = Severity.CRITICAL,
    purpose: str = "political_campaigning",
) -> Alert:
    pseudo = Pseudonymizer(PEPPER)
    normalized = normalize(raw, channel.value, "FR")
    usage_id = ids.event_id("broker-list", campaign, n)
    return Alert(
        alert_id=ids.alert_id(usage_id, rule),
        rule_id=rule,
        rule_source=source,
        severity=severity,
        incident_key=ids.incident_key(controller, campaign, rule),
        usage_event_id=usage_id,
        subject_key=pseudo.subject_key(normalized),
        hint=mask(normalized, channel.value),
        controller=controller,
        channel=channel,
        summary=f"{mask(normalized, channel.value)} received {purpose} from {controller} "
        f"without consent for that purpose",
        occurred_at_ms=T0 - 60_000 + n,
        detected_at_ms=T0 + n * 1000,
        status=AlertStatus.FIRING,
        campaign_id=campaign,
        purpose_used=purpose,
        decl_id=f"campaign:{campaign}",
        source="mailchimp-broker",
        consent=consent,
    )


NEWSLETTER_CONSENT = ConsentSummary(
    state="given",
    consent_event_ids=["ce-news-1"],
    purposes=["newsletter_editorial"],
    channels=["email"],
    recipients=[],
    legal_basis="consent",
    proof=Proof(
        method="double_opt_in",
        collected_at_ms=T0 - 86_400_000 * 30,
        # a platform put the raw address in the URL: the console must never show it
        collection_point="https://news.example.org/subscribe?email=ana.lopez@example.org",
        notice_version="privacy-2025-03",
        ip_hash="iph-7f3a",
        vendor_receipt="rcpt-991",
    ),
    valid_from_ms=T0 - 86_400_000 * 30,
)


def campaign_alerts() -> list[Alert]:
    """Three e-mail addresses of a newspaper's readers mailed by a political campaign (R2)."""
    return [
        _alert(raw, Channel.EMAIL, rule="R2", source=R2_SOURCE, controller="campaign-x",
               campaign="cmp-2026-spring", n=i, consent=NEWSLETTER_CONSENT)
        for i, raw in enumerate(RAW_EMAILS)
    ]  # fmt: skip


def sms_after_stop_alert() -> Alert:
    """An SMS after STOP (R5), another controller, a warning."""
    return _alert(
        RAW_PHONE,
        Channel.SMS,
        rule="R5",
        source=R5_SOURCE,
        controller="shop-sas",
        campaign="sms-promo-7",
        n=50,
        severity=Severity.WARNING,
        purpose="marketing_own_products",
        consent=ConsentSummary(
            state="withdrawn",
            consent_event_ids=["ce-stop-1"],
            purposes=["marketing_own_products"],
            channels=["sms"],
            legal_basis="consent",
            proof=Proof(method="keyword_stop", collected_at_ms=T0 - 3_600_000),
            valid_from_ms=T0 - 3_600_000,
        ),
    )


def fill(store, alerts: list[Alert], now_ms: int = T0 + 100_000) -> None:
    store.ingest_many(alerts, now_ms)
