from __future__ import annotations

import pytest
from consentinel.streams.events import codec, ids
from consentinel.streams.events.errors import FatalConfigError
from consentinel.streams.events.records import (
    Alert,
    AlertStatus,
    Channel,
    Decision,
    Severity,
    UsageKind,
    Verdict,
)
from consentinel.streams.policy.engine import (
    PolicySettings,
    corrections,
    evaluate,
    make_alerts,
    make_verdict,
    resolve_alert,
)

T0 = 1_767_225_600_000
DAY = 86_400_000
MKT = "marketing.direct"


def test_pending_then_allowed_when_consent_arrives_within_grace(make, policy) -> None:
    h = make.history()
    send = make.usage(at=T0 + 10_000, controller="Shop")
    d = make.decl(controller="Shop", purpose=MKT)
    first = evaluate(send, h, d, policy, final=False)
    assert first.decision is Decision.PENDING and first.findings == []
    assert make_alerts(send, first, T0) == []
    # the lead vendor's consent batch arrives a minute later; it happened before the send
    h.apply(make.grant(at=T0, controller="Shop", purposes=[MKT], received_at_ms=T0 + 70_000))
    again = evaluate(send, h, d, policy, final=False)
    assert again.decision is Decision.ALLOWED and again.findings == []
    assert again.consent_version is not None


def test_pending_then_violation_when_final(make, policy) -> None:
    send = make.usage(controller="Shop")
    d = make.decl(controller="Shop", purpose=MKT)
    assert evaluate(send, None, d, policy, final=False).decision is Decision.PENDING
    final = evaluate(send, None, d, policy, final=True)
    assert final.decision is Decision.VIOLATION
    assert final.consent is None and final.consent_version is None
    assert {"R1", "R2"} <= set(final.rule_ids)


def test_not_pending_when_the_controller_has_a_record(make, policy) -> None:
    h = make.history(make.withdraw(at=T0, controller="Shop"))
    d = make.decl(controller="Shop", purpose=MKT)
    ev = evaluate(make.usage(at=T0 + 5 * DAY, controller="Shop"), h, d, policy, final=False)
    assert ev.decision is Decision.VIOLATION and ev.rule_ids == ["R5"]


def test_a_late_withdrawal_that_happened_before_the_send_makes_it_a_violation(make, policy) -> None:
    h = make.history(make.grant(at=T0))
    send = make.usage(at=T0 + 10 * DAY)
    assert evaluate(send, h, make.decl(), policy, final=True).decision is Decision.ALLOWED
    h.apply(make.withdraw(at=T0 + 5 * DAY, received_at_ms=T0 + 20 * DAY))
    ev = evaluate(send, h, make.decl(), policy, final=True)
    assert ev.decision is Decision.VIOLATION and ev.rule_ids == ["R5"]


def test_a_late_grant_that_happened_after_the_send_does_not_help(make, policy) -> None:
    h = make.history()
    send = make.usage(at=T0, controller="Shop")
    d = make.decl(controller="Shop", purpose=MKT)
    h.apply(make.grant(at=T0 + 1, controller="Shop", purposes=[MKT]))
    ev = evaluate(send, h, d, policy, final=True)
    assert ev.decision is Decision.VIOLATION
    assert ev.consent is not None and ev.consent.state == "unknown"


def test_correction_after_a_late_consent_resolves_the_alerts(make, policy) -> None:
    h = make.history()
    send = make.usage(at=T0 + 1000, controller="Shop")
    d = make.decl(controller="Shop", purpose=MKT)
    before = evaluate(send, h, d, policy, final=True)  # grace passed: violation
    alerts = make_alerts(send, before, detected_at_ms=T0 + 200_000)
    assert {a.rule_id for a in alerts} == {"R1", "R2"}
    h.apply(make.grant(at=T0, controller="Shop", purposes=[MKT], received_at_ms=T0 + DAY))
    after = evaluate(send, h, d, policy, final=True)
    assert after.decision is Decision.ALLOWED
    fixed = corrections(before, after)
    assert fixed == ["R1", "R2"]
    resolved = [resolve_alert(a, after, T0 + DAY) for a in alerts if a.rule_id in fixed]
    for old, new in zip(alerts, resolved, strict=True):
        assert new.alert_id == old.alert_id
        assert new.status is AlertStatus.RESOLVED and new.revision == old.revision + 1
        assert new.correction_reason and old.rule_id in new.correction_reason
        assert new.consent is not None and new.consent.state == "given"
    verdict = make_verdict(send, after, T0 + DAY, correction=True)
    assert verdict.correction and verdict.decision is Decision.ALLOWED and verdict.rule_ids == []


def test_corrections_keep_what_still_holds(make, policy) -> None:
    h = make.history(make.grant(proof=None))
    d = make.decl(purpose=MKT)
    before = evaluate(make.usage(), h, d, policy, final=True)
    assert set(before.rule_ids) == {"R2"}
    h.apply(make.grant(at=T0 + 1, purposes=[MKT], proof=None))
    after = evaluate(make.usage(event_id=before.decl_id or "x"), h, d, policy, final=True)
    assert after.rule_ids == ["R3"]
    assert corrections(before, after) == ["R2"]
    assert corrections(after, after) == []


def test_evidence_only_kinds_are_allowed_without_rules(make, policy) -> None:
    h = make.history(make.withdraw(at=T0))
    for kind in (UsageKind.OPEN, UsageKind.DELIVER, UsageKind.CLICK, UsageKind.BOUNCE):
        ev = evaluate(make.usage(at=T0 + 9 * DAY, kind=kind), h, make.decl(), policy, final=False)
        assert ev.decision is Decision.ALLOWED and ev.findings == []
        assert ev.consent is not None and ev.consent.state == "withdrawn"
    test_send = make.usage(at=T0 + 9 * DAY, is_test=True)
    assert evaluate(test_send, h, make.decl(), policy, final=True).findings == []
    real = evaluate(make.usage(at=T0 + 9 * DAY), h, make.decl(), policy, final=True)
    assert real.decision is Decision.VIOLATION


def test_the_declaration_names_the_controller_not_the_platform_account(make, policy) -> None:
    h = make.history(make.grant(controller="Shop", purposes=[MKT]))
    send = make.usage(controller="Broker Account", campaign_id="promo")
    ev = evaluate(
        send, h, make.decl(ref="promo", controller="Shop", purpose=MKT), policy, final=True
    )
    assert ev.controller == "Shop" and ev.decision is Decision.ALLOWED


def test_alerts_are_deterministic_and_carry_the_evidence(make, policy) -> None:
    h = make.history(make.grant(at=T0))
    d = make.decl(ref="c2027", controller="Campagne 2027", purpose="political.communication")
    send = make.usage(at=T0 + DAY, campaign_id="c2027", controller="ListCo", event_id="esp:1")
    ev = evaluate(send, h, d, policy, final=True)
    first = make_alerts(send, ev, detected_at_ms=T0 + DAY + 5)
    again = make_alerts(send, evaluate(send, h, d, policy, final=True), detected_at_ms=T0 + DAY + 5)
    assert first == again and first
    for alert in first:
        assert alert.alert_id == ids.alert_id("esp:1", alert.rule_id)
        assert alert.incident_key == f"Campagne 2027|c2027|{alert.rule_id}"
        assert (
            alert.controller == "Campagne 2027" and alert.purpose_used == "political.communication"
        )
        assert alert.decl_id == "campaign:c2027" and alert.hint == send.hint
        assert alert.severity is Severity.CRITICAL and alert.status is AlertStatus.FIRING
        assert alert.consent is not None and alert.consent.state == "unknown"
        assert codec.decode(Alert, codec.encode(alert)) == alert
    assert len({a.alert_id for a in first}) == len(first)


def test_verdict(make, policy) -> None:
    h = make.history(make.grant(at=T0))
    send = make.usage(at=T0 + DAY)
    ev = evaluate(send, h, make.decl(), policy, final=True)
    v = make_verdict(send, ev, decided_at_ms=T0 + DAY + 7)
    assert v.decision is Decision.ALLOWED and v.rule_ids == [] and not v.correction
    assert v.consent_version == h.state_at("Le Quotidien", T0 + DAY).version_id
    assert v.decl_id == "campaign:weekly" and v.purpose == "editorial.newsletter"
    assert v.channel is Channel.EMAIL and v.decided_at_ms == T0 + DAY + 7
    assert codec.decode(Verdict, codec.encode(v)) == v


def test_policy_settings_from_settings(make_settings) -> None:
    s = make_settings(
        grace_seconds="30",
        withdrawal_allowance="email=3600,sms=0",
        r13_strength="warning",
        r3_strength="off",
        retention_days="365",
        ledger_max_versions="8",
    )
    p = PolicySettings.from_settings(s)
    assert p.grace_ms == 30_000
    assert p.allowance_ms("email") == 3_600_000 and p.allowance_ms("sms") == 0
    assert p.allowance_ms("postal") == 0
    assert (p.r13_strength, p.r3_strength) == ("warning", "off")
    assert p.retention_ms == 365 * DAY and p.max_versions == 8


def test_policy_settings_refuse_nonsense() -> None:
    with pytest.raises(FatalConfigError) as info:
        PolicySettings(r3_strength="loud", max_versions=1)
    assert len(info.value.problems) == 2
    assert "r3_strength='loud'" in info.value.problems[0]


def test_evaluation_survives_the_codec(make, policy) -> None:
    """The processor keeps evaluations of alerted uses in a table through the codec."""
    from consentinel.streams.policy.engine import Evaluation

    h = make.history(make.grant(proof=None))
    ev = evaluate(make.usage(), h, make.decl(purpose=MKT), policy, final=True)
    assert ev.findings
    assert codec.decode(Evaluation, codec.encode(ev)) == ev
