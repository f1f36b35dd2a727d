"""R23 (a purchased lead's certificate): allowed, violating and edge cases, judged through
``evaluate``; the certificate's results kept by the consent history."""

from __future__ import annotations

import dataclasses

import orjson
import pytest
from consentinel.streams.events.records import (
    CertificateStatus,
    ConsentAction,
    Decision,
    Proof,
    Severity,
    Sourcing,
    UsageKind,
)
from consentinel.streams.policy.engine import PolicySettings, evaluate
from consentinel.streams.policy.history import MAX_CERTIFICATES, ConsentHistory
from consentinel.streams.policy.rules import BY_ID

MKT = "marketing.direct"
BUYER = "Isolation Plus"
CERT = "https://cert.trustedform.com/0123456789abcdef0123456789abcdef01234567"
LEAD_PROOF = Proof(method="web_form", collected_at_ms=1, certificate_id=CERT)


def rules_of(ev) -> list[str]:
    return [f.rule_id for f in ev.findings]


def r23(ev):
    return next((f for f in ev.findings if f.rule_id == "R23"), None)


def lead_grant(make, proof: Proof | None = LEAD_PROOF, **kw):
    return make.grant(
        controller=BUYER,
        purposes=[MKT],
        proof=proof,
        collected_by="LeadGen SA",
        recipients=[BUYER],
        certificate_status=CertificateStatus.CLAIMED if proof and proof.certificate_id else None,
        **kw,
    )


def _verify(make, status, at, cert=CERT, **kw):
    """A ``verify`` event: ``status`` for ``cert`` and the buyer, at ``at``."""
    kw.setdefault("controller", BUYER)
    event = make.consent(
        ConsentAction.VERIFY,
        at=at,
        purposes=[],
        channels=[],
        certificate_status=status,
        attributes={"certificate_reason": f"the verifier said {status}"},
        **kw,
    )
    return dataclasses.replace(event, proof=Proof(certificate_id=cert))


def bought(make, **kw):
    kw.setdefault("sourcing", Sourcing.PURCHASED)
    return make.decl(ref="leads-q1", controller=BUYER, purpose=MKT, **kw)


def send(make, **kw):
    return make.usage(controller=BUYER, campaign_id="leads-q1", **kw)


def test_r23_declares_its_source_and_default_severity() -> None:
    assert BY_ID["R23"].SOURCE == "[L1][L2]"
    assert BY_ID["R23"].SEVERITY is Severity.WARNING


def test_a_verified_certificate_is_judged_normally(make, policy) -> None:
    h = make.history(lead_grant(make), _verify(make, CertificateStatus.VERIFIED, make.T0 + 60_000))
    for final in (False, True):
        ev = evaluate(send(make), h, bought(make), policy, final=final)
        assert ev.decision is Decision.ALLOWED and ev.findings == []


def test_a_claimed_certificate_holds_the_use_for_the_certificate_wait(make) -> None:
    policy = PolicySettings(grace_ms=60_000, certificate_wait_ms=600_000)
    h = make.history(lead_grant(make))
    ev = evaluate(send(make), h, bought(make), policy, final=False)
    assert ev.decision is Decision.PENDING and ev.findings == []
    assert ev.wait_ms == 600_000
    # when the wait has run out (final), R23 says the certificate was never verified
    ev = evaluate(send(make), h, bought(make), policy, final=True)
    assert rules_of(ev) == ["R23"] and ev.decision is Decision.WARNING
    assert "was not verified within 600 s" in r23(ev).summary


@pytest.mark.parametrize(
    ("status", "severity", "decision", "words"),
    [
        (CertificateStatus.EXPIRED, Severity.WARNING, Decision.WARNING, "expired"),
        (CertificateStatus.MISMATCH, Severity.CRITICAL, Decision.VIOLATION, "does not match"),
    ],
)
def test_an_expired_or_mismatched_certificate_raises_r23_without_waiting(
    make, policy, status, severity, decision, words
) -> None:
    h = make.history(lead_grant(make), _verify(make, status, make.T0 + 60_000))
    ev = evaluate(send(make), h, bought(make), policy, final=False)
    assert rules_of(ev) == ["R23"] and ev.decision is decision
    finding = r23(ev)
    assert finding.severity is severity and words in finding.summary
    assert f"the verifier said {status}" in finding.summary


def test_a_purchased_lead_with_no_certificate_raises_r23_at_once(make, policy) -> None:
    h = make.history(lead_grant(make, proof=make.FULL_PROOF))
    ev = evaluate(send(make), h, bought(make), policy, final=False)
    assert rules_of(ev) == ["R23"] and "carries no certificate" in r23(ev).summary


def test_own_leads_and_transfers_are_not_r23s_and_no_grant_is_r2s(make, policy) -> None:
    h = make.history(lead_grant(make, proof=make.FULL_PROOF))
    own = evaluate(send(make), h, bought(make, sourcing=Sourcing.OWN), policy, final=True)
    assert "R23" not in rules_of(own)
    transfer = make.usage(controller=BUYER, kind=UsageKind.LIST_TRANSFER, campaign_id="leads-q1")
    assert "R23" not in rules_of(evaluate(transfer, h, bought(make), policy, final=True))
    nobody = evaluate(send(make), make.history(), bought(make), policy, final=True)
    assert "R23" not in rules_of(nobody) and "R2" in rules_of(nobody)


def test_the_latest_result_counts_and_a_result_for_another_buyer_does_not(make, policy) -> None:
    verified = _verify(make, CertificateStatus.VERIFIED, make.T0 + 60_000)
    mismatch = _verify(make, CertificateStatus.MISMATCH, make.T0 + 120_000)
    h = make.history(lead_grant(make), mismatch, verified)  # arrival order does not matter
    assert rules_of(evaluate(send(make), h, bought(make), policy, final=True)) == ["R23"]
    assert h.certificate(BUYER, CERT).status is CertificateStatus.MISMATCH
    # the same result again is no change
    assert not h.apply(mismatch)
    other = make.history(
        lead_grant(make),
        _verify(make, CertificateStatus.VERIFIED, make.T0 + 60_000, controller="Someone Else"),
    )
    ev = evaluate(send(make), other, bought(make), policy, final=False)
    assert ev.decision is Decision.PENDING


def test_a_result_is_no_consent_and_an_erasure_forgets_the_results_before_it(make) -> None:
    h = make.history(_verify(make, CertificateStatus.VERIFIED, make.T0))
    assert h.state_at(BUYER, make.T0 + 1).grant_for(MKT, "email") is None
    assert h.certificate(BUYER, CERT) is not None
    h.apply(make.consent(ConsentAction.ERASE, at=make.T0 + 10, controller=BUYER, purposes=[]))
    assert h.certificate(BUYER, CERT) is None
    late = _verify(make, CertificateStatus.VERIFIED, make.T0 + 5)
    assert not h.apply(late) and h.too_old_count == 1


def test_results_survive_the_wire_format_and_stay_bounded(make) -> None:
    h = make.history(lead_grant(make))
    for i in range(MAX_CERTIFICATES + 3):
        h.apply(_verify(make, CertificateStatus.VERIFIED, make.T0 + i, cert=f"cert-{i:03d}"))
    obj = h.to_obj()
    assert len(obj["c"][BUYER]["ct"]) == MAX_CERTIFICATES
    back = ConsentHistory.from_obj(orjson.loads(orjson.dumps(obj)))
    assert back.certificate(BUYER, "cert-000") is None  # the oldest went first
    kept = back.certificate(BUYER, f"cert-{MAX_CERTIFICATES + 2:03d}")
    assert kept is not None and kept.status is CertificateStatus.VERIFIED
    assert kept.reason == "the verifier said verified"
    assert back.to_obj() == obj
