"""The checker's decisions per subject (pure: the real policy, no Faust, no broker)."""

from __future__ import annotations

import itertools

import pytest
from consentinel.streams.checker import holds as holds_mod
from consentinel.streams.checker.holds import Holds
from consentinel.streams.checker.judge import Judge
from consentinel.streams.events import ids
from consentinel.streams.events.records import (
    AlertStatus,
    Channel,
    ConsentAction,
    ConsentEvent,
    Decision,
    Declaration,
    Proof,
    Sourcing,
    UsageEvent,
    UsageKind,
)
from consentinel.streams.policy.engine import PolicySettings

T0 = 1_767_225_600_000
DAY = 86_400_000
GRACE = 60_000
SUBJECT = "b" * 64
PROOF = Proof(
    method="double_opt_in",
    collected_at_ms=T0,
    collection_point="https://lequotidien.example/newsletter",
    notice_version="notice-v3",
)
DECLS = {
    "list:morning": Declaration(
        "list:morning",
        "list",
        "morning",
        "le-quotidien",
        "editorial.newsletter",
        Channel.EMAIL,
        promotional=False,
    ),
    "campaign:dupont": Declaration(
        "campaign:dupont",
        "campaign",
        "dupont",
        "campagne-dupont",
        "political.communication",
        Channel.EMAIL,
        sourcing=Sourcing.RENTED,
        acquired_from=["listbroker-sa"],
    ),
}
_ids = itertools.count(1)


def grant(at: int = T0, action: ConsentAction = ConsentAction.GRANT) -> ConsentEvent:
    return ConsentEvent(
        event_id=f"cmp:{next(_ids)}",
        occurred_at_ms=at,
        received_at_ms=at,
        source="cmp",
        processor="test",
        subject_key=SUBJECT,
        hint="a***@e***.org",
        controller="le-quotidien",
        action=action,
        purposes=["editorial.newsletter"] if action is ConsentAction.GRANT else [],
        channels=[Channel.EMAIL],
        proof=PROOF if action is ConsentAction.GRANT else None,
    )


def use(
    at: int = T0 + DAY,
    received: int | None = None,
    kind: UsageKind = UsageKind.SEND,
    **kw: object,
) -> UsageEvent:
    fields: dict[str, object] = {"list_id": "morning", **kw}
    return UsageEvent(
        event_id=f"esp:{next(_ids)}",
        occurred_at_ms=at,
        received_at_ms=at if received is None else received,
        source="esp",
        processor="test",
        channel=Channel.EMAIL,
        kind=kind,
        subject_key=SUBJECT,
        hint="a***@e***.org",
        controller="le-quotidien",
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture
def judge() -> Judge:
    policy = PolicySettings(grace_ms=GRACE, allowance_ms_by_channel={"email": 0})
    return Judge(policy, DECLS.get, max_versions=16)


def test_a_consented_use_is_allowed_at_once(judge: Judge) -> None:
    holds = Holds()
    _, history = judge.consent(grant(), None, holds, T0)
    step, _ = judge.usage(use(), history, holds, T0 + DAY)
    assert [v.decision for v in step.verdicts] == [Decision.ALLOWED]
    assert step.alerts == [] and not holds


def test_a_use_without_consent_waits_and_a_consent_within_grace_allows_it(judge: Judge) -> None:
    holds = Holds()
    u = use(received=T0 + DAY)
    step, history = judge.usage(u, None, holds, T0 + DAY)
    assert step.verdicts == [] and step.alerts == [] and step.holds_changed
    assert [h.usage.event_id for h in holds.pending] == [u.event_id]
    assert holds.pending[0].deadline_ms == u.received_at_ms + GRACE
    # before the deadline nothing is decided
    assert judge.expire(history, holds, T0 + DAY + GRACE - 1, T0 + DAY).verdicts == []
    step, _ = judge.consent(grant(at=T0), history, holds, T0 + DAY + 1000)
    assert [(v.usage_event_id, v.decision) for v in step.verdicts] == [(u.event_id, "allowed")]
    assert step.alerts == [] and holds.pending == [] and step.holds_changed


def test_grace_passes_then_a_late_consent_resolves_the_alert_under_the_same_id(
    judge: Judge,
) -> None:
    holds = Holds()
    u = use(received=T0 + DAY)
    _, history = judge.usage(u, None, holds, T0 + DAY)
    fired = judge.expire(history, holds, T0 + DAY + GRACE, T0 + DAY + GRACE)
    assert [v.decision for v in fired.verdicts] == [Decision.VIOLATION]
    assert fired.alerts, "a use with no consent at all after the grace period is alerted"
    assert {a.status for a in fired.alerts} == {AlertStatus.FIRING}
    assert {a.alert_id for a in fired.alerts} == {
        ids.alert_id(u.event_id, a.rule_id) for a in fired.alerts
    }
    assert holds.pending == [] and [a.usage.event_id for a in holds.alerted] == [u.event_id]

    late = grant(at=T0)  # given before the use, known only now
    step, history = judge.consent(late, history, holds, T0 + 2 * DAY)
    resolved = step.corrections
    assert {a.alert_id for a in resolved} == {a.alert_id for a in fired.alerts}
    assert all(a.revision == 2 and a.correction_reason for a in resolved)
    assert late.event_id in (resolved[0].correction_reason or "")
    assert [(v.decision, v.correction) for v in step.verdicts] == [(Decision.ALLOWED, True)]
    # the same consent again (a replay) changes nothing
    again, _ = judge.consent(late, history, holds, T0 + 2 * DAY)
    assert again.alerts == [] and again.verdicts == []


def test_a_late_withdrawal_raises_an_alert_on_an_alerted_use(judge: Judge) -> None:
    holds = Holds()
    u = use(received=T0 + DAY)
    _, history = judge.usage(u, None, holds, T0 + DAY)
    judge.expire(history, holds, T0 + DAY + GRACE, T0 + DAY + GRACE)
    step, history = judge.consent(grant(at=T0), history, holds, T0 + 2 * DAY)
    assert step.corrections
    # a withdrawal that happened before the use, reported even later: alerts fire again
    step, _ = judge.consent(
        grant(at=T0 + DAY // 2, action=ConsentAction.WITHDRAW), history, holds, T0 + 3 * DAY
    )
    fired = [a for a in step.alerts if a.status is AlertStatus.FIRING]
    assert fired and all(a.revision >= 1 for a in fired)
    assert [v.correction for v in step.verdicts] == [True]


def test_a_replayed_use_is_recognized(judge: Judge) -> None:
    holds = Holds()
    u = use(received=T0 + DAY)
    judge.usage(u, None, holds, T0 + DAY)
    step, _ = judge.usage(u, None, holds, T0 + DAY + 5)
    assert step.duplicate and step.verdicts == [] and len(holds.pending) == 1


def test_uses_that_are_not_sends_are_not_judged(judge: Judge) -> None:
    holds = Holds()
    step, _ = judge.usage(use(kind=UsageKind.OPEN), None, holds, T0)
    assert step.verdicts == [] and not holds


def test_an_undeclared_use_waits_then_raises_a_configuration_alert(judge: Judge) -> None:
    holds = Holds()
    u = use(list_id=None, campaign_id="nobody-declared-this")
    _, history = judge.consent(grant(), None, holds, T0)
    step, history = judge.usage(u, history, holds, T0 + DAY)
    assert step.verdicts == [] and len(holds.pending) == 1
    step = judge.expire(history, holds, T0 + DAY + GRACE, T0 + DAY + GRACE)
    assert [a.rule_id for a in step.alerts] == ["CFG-UNDECLARED"]


def test_pending_uses_per_subject_are_bounded(judge: Judge, monkeypatch) -> None:
    monkeypatch.setattr("consentinel.streams.checker.judge.MAX_PENDING", 3)
    holds = Holds()
    first = use(received=T0 + DAY)
    judge.usage(first, None, holds, T0 + DAY)
    for _ in range(2):
        judge.usage(use(received=T0 + DAY), None, holds, T0 + DAY)
    step, _ = judge.usage(use(received=T0 + DAY), None, holds, T0 + DAY)
    assert len(holds.pending) == 3
    assert [v.usage_event_id for v in step.verdicts] == [first.event_id]


def test_an_erasure_does_not_rewrite_past_verdicts(judge: Judge) -> None:
    holds = Holds()
    u = use(received=T0 + DAY)
    _, history = judge.usage(u, None, holds, T0 + DAY)
    judge.expire(history, holds, T0 + DAY + GRACE, T0 + DAY + GRACE)
    step, history = judge.consent(grant(), history, holds, T0 + 2 * DAY)
    assert step.corrections
    erase = grant(at=T0 + 3 * DAY, action=ConsentAction.ERASE)
    step, _ = judge.consent(erase, history, holds, T0 + 3 * DAY)
    assert step.history_changed and step.alerts == [] and step.verdicts == []


def test_alerted_uses_are_forgotten_after_the_window(judge: Judge) -> None:
    holds = Holds()
    _, history = judge.usage(use(received=T0 + DAY), None, holds, T0 + DAY)
    judge.expire(history, holds, T0 + DAY + GRACE, T0 + DAY + GRACE)
    assert holds.alerted
    later = T0 + DAY + GRACE + holds_mod.ALERTED_WINDOW_MS + 1
    step = judge.expire(history, holds, later, later)
    assert step.holds_changed and not holds


def test_the_grace_period_counts_from_when_the_worker_first_sees_the_use(judge: Judge) -> None:
    holds = Holds()
    u = use(received=T0)  # reported a day before it reached the worker (a backlog, a backfill)
    judge.usage(u, None, holds, T0 + DAY)
    assert holds.pending[0].deadline_ms == T0 + DAY + GRACE


def test_a_replayed_call_is_noted_again_in_a_history_that_lost_it(judge: Judge) -> None:
    # The holds and the history are two tables: a crash between their changelog writes
    # can keep the holds (the call is known) and lose the history (its attempt for R11).
    decl = Declaration(
        "campaign:calls",
        "campaign",
        "calls",
        "le-quotidien",
        "marketing.telemarketing",
        Channel.PHONE,
    )
    calls = Judge(judge.policy, {decl.decl_id: decl}.get, max_versions=16)
    call = UsageEvent(
        event_id="dialer:call-1",
        occurred_at_ms=T0 + DAY,
        received_at_ms=T0 + DAY,
        source="dialer",
        processor="test",
        channel=Channel.PHONE,
        kind=UsageKind.CALL,
        subject_key=SUBJECT,
        hint="+33 6** ** ** 12",
        controller="le-quotidien",
        campaign_id="calls",
    )
    holds = Holds()
    _, noted = calls.usage(call, None, holds, T0 + DAY)
    assert (
        noted is not None
        and len(noted.calls_at("le-quotidien", T0 + DAY + 1, "x").attempts_before) == 1
    )
    step, again = calls.usage(call, None, holds, T0 + DAY + 5)  # the history was lost
    assert step.duplicate and step.verdicts == [] and step.history_changed
    assert again is not None
    assert len(again.calls_at("le-quotidien", T0 + DAY + 1, "x").attempts_before) == 1
    step, same = calls.usage(call, again, holds, T0 + DAY + 9)  # noted once, by event id
    assert step.duplicate and not step.history_changed
    assert len(same.calls_at("le-quotidien", T0 + DAY + 1, "x").attempts_before) == 1
