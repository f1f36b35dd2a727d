"""R23 in the checker: a purchased lead whose certificate is only claimed is held until its
verification result arrives (pure: the real policy and judge, no Faust, no broker)."""

from __future__ import annotations

import itertools

import pytest
from consentinel.streams.checker.holds import Holds
from consentinel.streams.checker.judge import Judge
from consentinel.streams.events import ids
from consentinel.streams.events.records import (
    AlertStatus,
    CertificateStatus,
    Channel,
    ConsentAction,
    ConsentEvent,
    Decision,
    Declaration,
    Proof,
    Severity,
    Sourcing,
    UsageEvent,
    UsageKind,
)
from consentinel.streams.policy.engine import PolicySettings

T0 = 1_767_225_600_000
GRACE = 60_000
WAIT = 600_000
SUBJECT = "c" * 64
BUYER = "isolation-plus"
CERT = "https://cert.trustedform.com/0123456789abcdef0123456789abcdef01234567"
DECLS = {
    "campaign:leads": Declaration(
        "campaign:leads",
        "campaign",
        "leads",
        BUYER,
        "marketing.direct",
        Channel.EMAIL,
        sourcing=Sourcing.PURCHASED,
    )
}
_ids = itertools.count(1)


def consent(action: ConsentAction, at: int, **kw: object) -> ConsentEvent:
    fields: dict[str, object] = {
        "event_id": f"lead:{next(_ids)}",
        "occurred_at_ms": at,
        "received_at_ms": at,
        "source": "leads",
        "processor": "lead_post",
        "subject_key": SUBJECT,
        "hint": "a***@e***.org",
        "controller": BUYER,
        "action": action,
        **kw,
    }
    return ConsentEvent(**fields)  # type: ignore[arg-type]


def lead(at: int = T0) -> ConsentEvent:
    return consent(
        ConsentAction.GRANT,
        at,
        purposes=["marketing.direct"],
        channels=[Channel.EMAIL],
        recipients=[BUYER],
        collected_by="leadgen",
        proof=Proof(method="web_form", collected_at_ms=at, certificate_id=CERT),
        certificate_status=CertificateStatus.CLAIMED,
    )


def verify(status: CertificateStatus, at: int) -> ConsentEvent:
    return consent(
        ConsentAction.VERIFY,
        at,
        proof=Proof(certificate_id=CERT),
        certificate_status=status,
        attributes={"certificate_reason": "checked"},
    )


def send(at: int) -> UsageEvent:
    return UsageEvent(
        event_id=f"esp:{next(_ids)}",
        occurred_at_ms=at,
        received_at_ms=at,
        source="esp",
        processor="test",
        channel=Channel.EMAIL,
        kind=UsageKind.SEND,
        subject_key=SUBJECT,
        hint="a***@e***.org",
        controller=BUYER,
        campaign_id="leads",
    )


@pytest.fixture
def judge() -> Judge:
    policy = PolicySettings(
        grace_ms=GRACE, allowance_ms_by_channel={"email": 0}, certificate_wait_ms=WAIT
    )
    return Judge(policy, DECLS.get, max_versions=16)


def test_a_claimed_lead_is_held_for_the_wait_then_a_verified_result_allows_it(
    judge: Judge,
) -> None:
    holds = Holds()
    _, history = judge.consent(lead(), None, holds, T0)
    u = send(T0 + 1000)
    step, history = judge.usage(u, history, holds, T0 + 1000)
    assert step.verdicts == [] and step.alerts == [] and step.holds_changed
    assert holds.pending[0].deadline_ms == u.received_at_ms + WAIT  # not the grace period
    # the grace period passing decides nothing: the use waits for its certificate
    assert judge.expire(history, holds, T0 + 1000 + GRACE, T0 + 1000 + GRACE).verdicts == []
    step, _ = judge.consent(
        verify(CertificateStatus.VERIFIED, T0 + 5000), history, holds, T0 + 5000
    )
    assert [(v.usage_event_id, v.decision) for v in step.verdicts] == [(u.event_id, "allowed")]
    assert step.alerts == [] and holds.pending == [] and step.history_changed


def test_a_mismatch_result_raises_a_critical_r23_on_the_held_use(judge: Judge) -> None:
    holds = Holds()
    _, history = judge.consent(lead(), None, holds, T0)
    u = send(T0 + 1000)
    _, history = judge.usage(u, history, holds, T0 + 1000)
    step, _ = judge.consent(
        verify(CertificateStatus.MISMATCH, T0 + 5000), history, holds, T0 + 5000
    )
    assert [v.decision for v in step.verdicts] == [Decision.VIOLATION]
    assert [(a.rule_id, a.severity) for a in step.alerts] == [("R23", Severity.CRITICAL)]
    assert step.alerts[0].alert_id == ids.alert_id(u.event_id, "R23")


def test_a_consent_arriving_after_the_use_holds_it_for_the_certificate_wait(judge: Judge) -> None:
    holds = Holds()
    u = send(T0 + 1000)
    _, history = judge.usage(u, None, holds, T0 + 1000)
    assert holds.pending[0].deadline_ms == u.received_at_ms + GRACE  # no consent yet
    step, history = judge.consent(lead(T0), history, holds, T0 + 2000)
    assert step.verdicts == [] and step.holds_changed
    assert holds.pending[0].deadline_ms == u.received_at_ms + WAIT


def test_never_verified_within_the_wait_raises_r23_and_a_late_verified_resolves_it(
    judge: Judge,
) -> None:
    holds = Holds()
    _, history = judge.consent(lead(), None, holds, T0)
    u = send(T0 + 1000)
    _, history = judge.usage(u, history, holds, T0 + 1000)
    due = T0 + 1000 + WAIT
    fired = judge.expire(history, holds, due, due)
    assert [v.decision for v in fired.verdicts] == [Decision.WARNING]
    assert [(a.rule_id, a.severity, a.status) for a in fired.alerts] == [
        ("R23", Severity.WARNING, AlertStatus.FIRING)
    ]
    assert "not verified within" in fired.alerts[0].summary
    late = verify(CertificateStatus.VERIFIED, due + 60_000)
    step, history = judge.consent(late, history, holds, due + 60_000)
    assert [(a.alert_id, a.status, a.revision) for a in step.alerts] == [
        (fired.alerts[0].alert_id, AlertStatus.RESOLVED, 2)
    ]
    assert "certificate verification" in (step.alerts[0].correction_reason or "")
    assert [(v.decision, v.correction) for v in step.verdicts] == [(Decision.ALLOWED, True)]
    # the same result delivered again changes nothing
    again, _ = judge.consent(late, history, holds, due + 70_000)
    assert again.alerts == [] and again.verdicts == [] and not again.history_changed


def test_a_later_mismatch_corrects_an_allowed_use_and_an_older_result_does_not(
    judge: Judge,
) -> None:
    holds = Holds()
    _, history = judge.consent(lead(), None, holds, T0)
    _, history = judge.consent(verify(CertificateStatus.VERIFIED, T0 + 500), history, holds, T0)
    u = send(T0 + 1000)
    step, history = judge.usage(u, history, holds, T0 + 1000)
    assert [v.decision for v in step.verdicts] == [Decision.ALLOWED]
    # an older result arriving late does not override the latest one
    older = verify(CertificateStatus.EXPIRED, T0 + 100)
    step, history = judge.consent(older, history, holds, T0 + 2000)
    assert step.alerts == [] and step.verdicts == []
    # a re-verification days later that finds a mismatch speaks for the use made before it
    later = verify(CertificateStatus.MISMATCH, T0 + 86_400_000)
    step, _ = judge.consent(later, history, holds, T0 + 86_400_000)
    assert [(a.rule_id, a.status) for a in step.alerts] == [("R23", AlertStatus.FIRING)]
    assert [(v.decision, v.correction) for v in step.verdicts] == [(Decision.VIOLATION, True)]
