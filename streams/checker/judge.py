"""The checker's decisions for one subject, as plain functions of (event, history, holds).

No Faust and no Kafka here: the processor (``processor.py``) loads a subject's consent
history and holds from its tables, calls one of these, sends the verdicts and alerts of
the returned ``Step``, waits for Kafka to acknowledge them, and only then writes the
history and holds back. So a crash can repeat outputs (same ids) but never lose one.

- ``usage``: a use is judged against the consent in force at its occurred-at time. With no
  consent yet (or no declaration) it is held PENDING until consent arrives or the grace
  period runs out.
- ``consent``: applied to the history; pending uses of the subject are judged again, and
  alerted uses in the correction window are re-evaluated: an alert a late consent
  disproves is resolved (same alert id, revision + 1), one it proves is raised. Allowed
  uses kept in the window that happened at or after the consent event are judged again
  too: one a late withdrawal, refusal, expiry or erasure makes a violation raises the
  alerts it would have raised (deterministic ids) with a correction verdict.
- every use gets one verdict per event id: a use already pending, alerted or kept is a
  repeat (a platform's redelivery, or Kafka's after a restart) and gives nothing.
- ``expire``: pending uses past their deadline are decided as they stand (``final``).
- a purchased lead whose certificate is only claimed (R23) is held like a use with no
  consent, for the policy's ``certificate_wait_ms`` (``Evaluation.wait_ms``) rather than the
  grace period; a ``verify`` event (the certificate's verification result) is applied like a
  consent event: it settles held uses, corrects alerted ones (a late ``verified`` resolves
  the R23 alert raised when the wait ran out) and judges again every allowed use kept.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from consentinel.streams.checker.holds import (
    ALERTED_WINDOW_MS,
    MAX_PENDING,
    Alerted,
    Held,
    Holds,
    Kept,
    RuleState,
)
from consentinel.streams.events.records import (
    USE_KINDS,
    Alert,
    AlertStatus,
    ConsentAction,
    ConsentEvent,
    Decision,
    Declaration,
    UsageEvent,
    Verdict,
)
from consentinel.streams.policy import engine
from consentinel.streams.policy import registry as policy_registry
from consentinel.streams.policy.engine import Evaluation, PolicySettings
from consentinel.streams.policy.history import ConsentHistory

Lookup = Callable[[str], Declaration | None]


@dataclass
class Step:
    """What one event changed: outputs to send, then state to write."""

    verdicts: list[Verdict] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    history_changed: bool = False
    holds_changed: bool = False
    kept_changed: bool = False
    duplicate: bool = False
    judged: bool = False  # a use was judged (decided or held)

    def extend(self, other: Step) -> None:
        self.verdicts += other.verdicts
        self.alerts += other.alerts
        self.history_changed |= other.history_changed
        self.holds_changed |= other.holds_changed
        self.kept_changed |= other.kept_changed

    @property
    def corrections(self) -> list[Alert]:
        return [a for a in self.alerts if a.status is AlertStatus.RESOLVED]


def _rules(evaluation: Evaluation) -> list[str]:
    return sorted({f.rule_id for f in evaluation.findings})


class Judge:
    def __init__(self, policy: PolicySettings, lookup: Lookup, *, max_versions: int = 64) -> None:
        self.policy = policy
        self.lookup = lookup
        self.max_versions = max_versions

    # -- helpers ---------------------------------------------------------------------------

    def new_history(self, subject_key: str) -> ConsentHistory:
        return ConsentHistory(subject_key, max_versions=self.max_versions)

    def _resolve(self, usage: UsageEvent) -> Declaration | None:
        return policy_registry.resolve(usage, self.lookup)

    def _decide(
        self,
        usage: UsageEvent,
        declaration: Declaration | None,
        evaluation: Evaluation,
        holds: Holds,
        now_ms: int,
        raw: bytes | None = None,
        into: Step | None = None,
    ) -> Step:
        """Decide a use: its verdict, then its alerts (remembered) or it is kept. Added to
        ``into`` when given (a step of its own otherwise), which is returned."""
        step = Step() if into is None else into
        step.judged = True
        step.verdicts.append(engine.make_verdict(usage, evaluation, now_ms))
        alerts = engine.make_alerts(usage, evaluation, now_ms)
        if alerts:
            step.alerts += alerts
            holds.remember(
                Alerted(
                    usage=usage,
                    declaration=declaration,
                    evaluation=evaluation,
                    decided_at_ms=now_ms,
                    rules={a.rule_id: RuleState(a.revision, a.status) for a in alerts},
                )
            )
            step.holds_changed = True
        else:
            holds.kept.add(usage, now_ms, raw)
            step.kept_changed = True
        return step

    # -- events ----------------------------------------------------------------------------

    def usage(
        self,
        usage: UsageEvent,
        history: ConsentHistory | None,
        holds: Holds,
        now_ms: int,
        raw: bytes | None = None,
    ) -> tuple[Step, ConsentHistory | None]:
        """Judge one usage event (``raw``: its record as encoded, if at hand). Returns the
        step and the history (new if a contact was noted)."""
        step = Step()
        declaration = self._resolve(usage)
        if holds.knows(usage.event_id):
            # A repeat gives no verdict, but is noted again: the holds and the history are
            # two tables, and a crash between their changelog writes can keep the one and
            # lose the other. Noting is idempotent (by event id and time).
            step.duplicate = True
            return step, self._note(usage, declaration, history, step)
        if usage.kind in USE_KINDS:
            evaluation = engine.evaluate(usage, history, declaration, self.policy, final=False)
            if evaluation.decision is Decision.PENDING:
                # G counts from when the use reached Kafka, which is no later than now: a tick
                # made after the deadline then knows every consent written within G after it
                # (a use reported late by its connector still gets its full grace period).
                wait = max(self.policy.grace_ms, evaluation.wait_ms)
                deadline = max(usage.received_at_ms, now_ms) + wait
                holds.pending.append(Held(usage, deadline))
                step.holds_changed = step.judged = True
                if len(holds.pending) > MAX_PENDING:
                    step.extend(self._finalize(holds.pending[0], history, holds, now_ms))
                    holds.pending.pop(0)
            else:
                self._decide(usage, declaration, evaluation, holds, now_ms, raw, step)
        return step, self._note(usage, declaration, history, step)

    def _note(
        self,
        usage: UsageEvent,
        declaration: Declaration | None,
        history: ConsentHistory | None,
        step: Step,
    ) -> ConsentHistory | None:
        noted = history if history is not None else self.new_history(usage.subject_key)
        if noted.note_use(usage, declaration):
            step.history_changed = True
            return noted
        return history

    def _finalize(
        self, held: Held, history: ConsentHistory | None, holds: Holds, now_ms: int
    ) -> Step:
        declaration = self._resolve(held.usage)
        evaluation = engine.evaluate(held.usage, history, declaration, self.policy, final=True)
        return self._decide(held.usage, declaration, evaluation, holds, now_ms)

    def consent(
        self, event: ConsentEvent, history: ConsentHistory | None, holds: Holds, now_ms: int
    ) -> tuple[Step, ConsentHistory]:
        """Apply a consent event, then judge again what it may change for this subject."""
        if history is None:
            history = self.new_history(event.subject_key)
        step = Step()
        if event.action is ConsentAction.JOIN:
            return step, history  # list membership only: no consent changed, nothing to judge
        if event.action is ConsentAction.ERASE:
            step.history_changed = history.erase(event)
        else:
            step.history_changed = history.apply(event)
        # Pending uses: decided now if the consent settles them (checked on replays too:
        # the history may have been written before a crash that lost the holds update).
        still: list[Held] = []
        for held in holds.pending:
            declaration = self._resolve(held.usage)
            evaluation = engine.evaluate(held.usage, history, declaration, self.policy, final=False)
            if evaluation.decision is Decision.PENDING:
                # a consent that leaves it waiting for its certificate (R23) holds it longer
                longer = held.usage.received_at_ms + evaluation.wait_ms
                if longer > held.deadline_ms:
                    held.deadline_ms = longer
                    step.holds_changed = True
                still.append(held)
            else:
                step.extend(self._decide(held.usage, declaration, evaluation, holds, now_ms))
        if len(still) != len(holds.pending):
            holds.pending = still
            step.holds_changed = True
        # Alerted uses: an erasure says nothing about the consent in force back then.
        verify = event.action is ConsentAction.VERIFY
        if event.action is not ConsentAction.ERASE and holds.alerted:
            reason = (
                f"certificate verification {event.event_id} ({event.certificate_status}) arrived "
                f"after the verdict and changes the status of the lead's certificate"
                if verify
                else f"consent event {event.event_id} ({event.action}) arrived after the verdict "
                f"and changes the consent in force when the address was used"
            )
            for entry in holds.alerted:
                step.extend(self._recheck(entry, history, now_ms, reason))
        # a certificate's result speaks for every use of the lead, whenever it happened
        if holds.kept:
            since = event.occurred_at_ms
            for kept in [k for k in holds.kept.entries() if verify or k.occurred_at_ms >= since]:
                step.extend(self._recheck_allowed(kept, history, holds, now_ms))
        return step, history

    def _recheck_allowed(
        self, kept: Kept, history: ConsentHistory, holds: Holds, now_ms: int
    ) -> Step:
        """Judge an allowed use again; if it is no longer allowed, raise its alerts."""
        usage = holds.kept.usage(kept)
        if usage is None:
            return Step()
        declaration = self._resolve(usage)
        current = engine.evaluate(usage, history, declaration, self.policy, final=True)
        alerts = engine.make_alerts(usage, current, now_ms)
        if not alerts:
            return Step()
        step = Step(holds_changed=True, kept_changed=True)
        holds.kept.remove(kept.event_id)
        holds.remember(
            Alerted(
                usage=usage,
                declaration=declaration,
                evaluation=current,
                decided_at_ms=now_ms,
                rules={a.rule_id: RuleState(a.revision, a.status) for a in alerts},
            )
        )
        step.alerts += alerts
        step.verdicts.append(engine.make_verdict(usage, current, now_ms, correction=True))
        return step

    def _recheck(self, entry: Alerted, history: ConsentHistory, now_ms: int, reason: str) -> Step:
        usage = entry.usage
        current = engine.evaluate(usage, history, entry.declaration, self.policy, final=True)
        previous = entry.evaluation
        if (current.decision, _rules(current)) == (previous.decision, _rules(previous)):
            return Step()
        step = Step(holds_changed=True)
        now_alerts = {a.rule_id: a for a in engine.make_alerts(usage, current, now_ms)}
        before = {a.rule_id: a for a in engine.make_alerts(usage, previous, entry.decided_at_ms)}
        firing = {r for r, s in entry.rules.items() if s.status is AlertStatus.FIRING}
        to_resolve = (firing - set(now_alerts)) | (
            set(engine.corrections(previous, current)) & firing - set(now_alerts)
        )
        for rule in sorted(to_resolve):
            base = before.get(rule)
            if base is None:
                continue
            state = entry.rules[rule]
            state.revision += 1
            state.status = AlertStatus.RESOLVED
            step.alerts.append(
                dataclasses.replace(
                    base,
                    status=AlertStatus.RESOLVED,
                    revision=state.revision,
                    detected_at_ms=now_ms,
                    correction_reason=reason,
                    consent=current.consent,
                )
            )
        for rule, alert in sorted(now_alerts.items()):
            known = entry.rules.get(rule)
            if known is not None and known.status is AlertStatus.FIRING:
                continue
            revision = 1 if known is None else known.revision + 1
            entry.rules[rule] = RuleState(revision, AlertStatus.FIRING)
            step.alerts.append(
                dataclasses.replace(
                    alert, revision=revision, correction_reason=reason if known else None
                )
            )
        step.verdicts.append(engine.make_verdict(usage, current, now_ms, correction=True))
        entry.evaluation = current
        return step

    def expire(
        self, history: ConsentHistory | None, holds: Holds, due_ms: int, now_ms: int
    ) -> Step:
        """Decide pending uses due at ``due_ms``; forget alerted uses past the window."""
        step = Step()
        still: list[Held] = []
        for held in holds.pending:
            if held.deadline_ms <= due_ms:
                step.extend(self._finalize(held, history, holds, now_ms))
            else:
                still.append(held)
        if len(still) != len(holds.pending):
            holds.pending = still
            step.holds_changed = True
        if holds.forget_before(now_ms - ALERTED_WINDOW_MS):
            step.holds_changed = step.kept_changed = True
        return step
