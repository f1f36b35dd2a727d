"""Evaluate one usage event against the consent history and its declaration.

``evaluate`` is a pure function of (usage, history, declaration, settings, final). The
processor calls it when a use arrives (``final=False``), again with ``final=True`` when
the grace period G has passed or a consent event for the subject arrives, and compares
the two with ``corrections``.

How a use is judged
-------------------
1. Only usage kinds in ``USE_KINDS`` (send, call, lead delivered, list transfer) are
   judged, and never a connector's test event (``is_test``). Deliveries, opens, clicks,
   bounces are evidence of a use, not a new use: decision ``allowed``, no rule, the
   consent summary attached as evidence.
2. The controller is the declaration's (the platform account may be a broker's); the
   purpose is the declaration's, else what the platform said (``declared_purpose``).
3. The use *needs consent* when the declared basis is consent, or when it is a
   promotional electronic message (e-mail, SMS, RCS, WhatsApp) and the basis is neither
   B2B nor a soft opt-in that holds (see ``rules.basis.soft_opt_in_problem``). Other
   bases (contract, legitimate interest, legal obligation) for non-promotional or
   non-electronic uses need no consent; withdrawals still bind promotional uses (R5).
4. The consent question is answered once, at the use's event time: the controller's own
   grant for (purpose, channel, what the use names; the declaration's ``data_sources``
   count as named), else, for direct marketing and telemarketing, the controller's own
   ``marketing.partner_transfer`` grant, else a partner's "opt-in
   partenaires" grant (``marketing.partner_transfer``, from the declaration's
   ``acquired_from`` or, when it is empty, any other controller) that names the
   controller (or, failing that, one that does not: R13 decides), else the withdrawal,
   refusal or expiry that blocks it. Withdrawals younger than the channel's allowance are
   not yet in effect.
5. Pending: with ``final=False``, an undeclared use, or a use that needs consent while
   the controller has no consent record at all at that time (no grant, withdrawal or
   refusal), is ``pending`` with no findings. So is a purchased lead whose certificate
   is only claimed (R23, ``rules.leads``): held for ``certificate_wait_ms`` instead of
   the grace period (``Evaluation.wait_ms``), until its verification result arrives.
6. For a call, the controller's earlier sales calls and last refusal during a call
   (``ConsentHistory.calls_at``) go to the rules (R11); for a send, whether it is the
   controller's first message to the person (``ConsentHistory.is_first_message``, R15 and
   R18). The processor notes each use with ``ConsentHistory.note_use`` after judging it.
7. Every rule runs; the decision is ``violation`` if a finding is critical, ``warning``
   if one is a warning, else ``allowed``.

A use that happened before the controller erased the address, judged after the erasure,
cannot be judged any more (the evidence is gone on purpose): only configuration rules run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..events import ids
from ..events.fastinit import maker
from ..events.records import (
    USE_KINDS,
    Alert,
    AlertStatus,
    ConsentSummary,
    Decision,
    Declaration,
    LegalBasis,
    Severity,
    UsageEvent,
    UsageKind,
    Verdict,
)
from .calls import CallsAt
from .history import (
    ConsentEntry,
    ConsentHistory,
    ConsentState,
    ConsentStatus,
    is_promotional,
)
from .purposes import ELECTRONIC_MESSAGES, PARTNER_COVERED, PARTNER_TRANSFER
from .rules import config, rules_for
from .rules.base import Finding, Rule, RuleContext
from .rules.basis import soft_opt_in_problem
from .rules.leads import awaits_verification, certificate_of
from .rules.retention import last_contact
from .rules.transfers import notice_missing
from .settings import PolicySettings

__all__ = [
    "Evaluation",
    "Finding",
    "PolicySettings",
    "corrections",
    "evaluate",
    "make_alerts",
    "make_verdict",
    "resolve_alert",
]


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The decision on one use, with what it rests on."""

    decision: Decision
    findings: list[Finding]
    consent_version: str | None  # event id of the consent version used
    consent: ConsentSummary | None  # that consent as it stood at the time of use
    purpose: str | None
    controller: str
    decl_id: str | None = None
    final: bool = True
    # a pending use: how long it may be held (0: the grace period); R23's certificate wait
    wait_ms: int = 0

    @property
    def rule_ids(self) -> list[str]:
        return [f.rule_id for f in self.findings]


#: ``Evaluation(...)`` and ``Verdict(...)`` with every field given in order, built without
#: the frozen ``__init__`` (``fastinit``): one of each per use
_new_evaluation = maker(Evaluation)
_new_verdict = maker(Verdict)
_VERDICT_V: int = Verdict.__dataclass_fields__["v"].default  # type: ignore[assignment]


_NO_CALLS = CallsAt()  # what R11 reads for a use that is not a call


#: ``_refs`` by what it reads (a campaign's sends all name the same things); cleared when full
_REFS: dict[tuple[object, ...], frozenset[str]] = {}
_REFS_MAX = 4096


def _refs(usage: UsageEvent, declaration: Declaration | None) -> frozenset[str]:
    """What the use names, bare and as ``kind:ref``: consent scopes match against these."""
    key = (
        usage.campaign_id,
        usage.list_id,
        usage.form_id,
        usage.sender,
        tuple(usage.tags),
        None if declaration is None else declaration.decl_id,
        None if declaration is None else tuple(declaration.data_sources),
    )
    found = _REFS.get(key)
    if found is None:
        if len(_REFS) >= _REFS_MAX:
            _REFS.clear()
        found = _REFS[key] = _named_refs(usage, declaration)
    return found


def _named_refs(usage: UsageEvent, declaration: Declaration | None) -> frozenset[str]:
    named = [
        ("campaign", usage.campaign_id),
        ("list", usage.list_id),
        ("form", usage.form_id),
        ("sender", usage.sender),
        *(("tag", t) for t in usage.tags),
    ]
    out = {ref for _, ref in named if ref} | {
        ids.declaration_id(kind, ref) for kind, ref in named if ref
    }
    if declaration is not None:
        # the lists its addresses came from: a consent scoped to one of them covers the use
        # even when the platform does not repeat the list id (deploy/REGISTRY.md)
        bare = [s.removeprefix("list:") for s in declaration.data_sources]
        out |= {declaration.decl_id, *bare, *(ids.declaration_id("list", s) for s in bare)}
    return frozenset(out)


def _partner_grant(
    others: dict[str, ConsentState],
    candidates: list[str],
    controller: str,
    purpose: str,
    channel: str,
    refs: frozenset[str],
) -> tuple[ConsentEntry, str] | None:
    """A partner's "opt-in partenaires" grant usable for this use, named ones first."""
    unnamed: tuple[ConsentEntry, str] | None = None
    for name in candidates:
        state = others.get(name)
        if state is None:
            continue
        grant = state.grant_for(PARTNER_TRANSFER, channel, refs)
        if grant is None or not (purpose in PARTNER_COVERED or purpose in grant.purposes):
            continue
        if controller in grant.recipients:
            return grant, name
        unnamed = unnamed or (grant, name)
    return unnamed


def _decide(findings: list[Finding]) -> Decision:
    severities = {f.severity for f in findings}
    if Severity.CRITICAL in severities:
        return Decision.VIOLATION
    if Severity.WARNING in severities:
        return Decision.WARNING
    return Decision.ALLOWED


def evaluate(
    usage: UsageEvent,
    history: ConsentHistory | None,
    declaration: Declaration | None,
    policy: PolicySettings,
    *,
    final: bool,
) -> Evaluation:
    """Judge ``usage`` against the consent valid at its event time (see the module doc).

    Answered from the history's decision memo when an earlier use of the same shape was
    judged within the same span of time (``_memo_key``, ``_span``), else judged in full;
    not memoized when the history says so (``ConsentHistory.memoize``)."""
    if history is None or usage.kind is UsageKind.CALL or not history.memoize:
        return _evaluate(usage, history, declaration, policy, final)[0]
    t = usage.occurred_at_ms
    key = _memo_key(usage, history, declaration, policy, final)
    memo = history.decisions
    known = memo.get(key)
    if known is not None:
        for lo, hi, decl, pol, found in known:
            if lo <= t < hi and decl is declaration and pol is policy:
                hit: Evaluation = found
                return hit
    evaluation, ctx, rules = _evaluate(usage, history, declaration, policy, final)
    span = _span(usage, history, policy, evaluation, ctx, rules)
    if span is not None:
        if len(memo) >= _MEMO_MAX:
            memo.clear()
        entries = memo.setdefault(key, [])
        if len(entries) >= _MEMO_SPANS:
            del entries[0]
        entries.append((span[0], span[1], declaration, policy, evaluation))
    return evaluation


#: Decision memo bounds, per subject: use shapes, and spans of time per shape.
_MEMO_MAX = 16
_MEMO_SPANS = 4

#: Rules whose finding depends on the time of use only through what ``_span`` bounds
#: (the consent states, the erasure, the first message) for any use but a call: their
#: decisions can be memoized. R5 (a finding's text counts the days since the withdrawal)
#: and R20 (fires from a time after the last contact) are handled apart in ``_span``.
_TIME_FREE = frozenset(
    {
        "R1",
        "R2",
        "R3",
        "R4",
        "R6",
        "R12",  # reads the time only for a sales call (kind CALL: never memoized)
        "R13",
        "R14",
        "R15",
        "R16",
        "R21",
        "R22",
        "R23",
        "CFG-UNDECLARED",
        "CFG-UNMAPPED",
    }
)
_TIME_TEXT = frozenset({"R5", "R20"})  # their findings' text counts days: never memoized
_MEMOIZABLE = _TIME_FREE | _TIME_TEXT
_RULES_OK: dict[tuple[Rule, ...], bool] = {}


def _memo_key(
    usage: UsageEvent,
    history: ConsentHistory,
    declaration: Declaration | None,
    policy: PolicySettings,
    final: bool,
) -> tuple[object, ...]:
    """Everything of the use ``evaluate`` may read but its id and times, and what it reads
    of the history but the consent states: whether it is the controller's first message,
    when that can matter (only R15 and R18 read it, and only if the message lacks some
    notice)."""
    controller = declaration.controller if declaration else usage.controller
    first = (
        usage.kind is UsageKind.SEND
        and bool(notice_missing(usage, declaration, str(usage.channel)))
        and history.is_first_message(controller, usage.occurred_at_ms, usage.event_id)
    )
    attributes = usage.attributes
    return (
        id(declaration),
        id(policy),
        final,
        first,
        usage.source,
        usage.processor,
        usage.channel,
        usage.kind,
        usage.subject_key,
        usage.hint,
        usage.controller,
        usage.campaign_id,
        usage.list_id,
        usage.form_id,
        usage.sender,
        tuple(usage.tags),
        usage.declared_purpose,
        usage.source_event_type,
        usage.is_test,
        tuple(sorted(attributes.items())) if attributes else (),
        usage.opt_out_instruction,
        usage.list_unsubscribe,
        usage.list_unsubscribe_post,
        usage.source_named,
        usage.v,
    )


def _span(
    usage: UsageEvent,
    history: ConsentHistory,
    policy: PolicySettings,
    evaluation: Evaluation,
    ctx: RuleContext | None,
    rules: tuple[Rule, ...],
) -> tuple[int, int] | None:
    """``[lo, hi)`` around the use's time within which a use of the same shape gets the same
    evaluation, or None when it may depend on the time itself (a rule not known to be
    time-free ran, or a finding's text counts days)."""
    if rules:
        ok = _RULES_OK.get(rules)
        if ok is None:
            ok = _RULES_OK[rules] = all(r.RULE_ID in _MEMOIZABLE for r in rules)
        if not ok or any(f.rule_id in _TIME_TEXT for f in evaluation.findings):
            return None
    t = usage.occurred_at_ms
    lo, hi = history.constant_span(t, policy.allowance_ms(str(usage.channel)))
    if ctx is not None and any(r.RULE_ID == "R20" for r in rules):
        last = last_contact(ctx)
        if last is not None:  # R20 fires from last + retention + 1 on
            edge = last + policy.retention_ms + 1
            if edge <= t:
                lo = max(lo, edge)
            else:
                hi = min(hi, edge)
    return lo, hi


def _evaluate(
    usage: UsageEvent,
    history: ConsentHistory | None,
    declaration: Declaration | None,
    policy: PolicySettings,
    final: bool,
) -> tuple[Evaluation, RuleContext | None, tuple[Rule, ...]]:
    """The evaluation in full, with the context and the rules it ran (none: decided before
    the rules)."""
    controller = declaration.controller if declaration else usage.controller
    purpose = declaration.purpose if declaration else usage.declared_purpose
    decl_id = declaration.decl_id if declaration else None
    channel = str(usage.channel)
    t = usage.occurred_at_ms
    if history is None:
        history = ConsentHistory(usage.subject_key, policy.max_versions)
        has_history = False
    else:
        has_history = True
    allowance = policy.allowance_ms(channel)
    own, effective = history.states_in_force(controller, t, allowance)
    summary = own.summary() if has_history else None

    def result(
        decision: Decision,
        findings: list[Finding],
        state: ConsentState = own,
        summary: ConsentSummary | None = summary,
        wait_ms: int = 0,
    ) -> Evaluation:
        return _new_evaluation(
            decision,
            findings,
            state.version_id,
            summary,
            purpose,
            controller,
            decl_id,
            final,
            wait_ms,
        )

    if usage.kind not in USE_KINDS or usage.is_test:
        return result(Decision.ALLOWED, []), None, ()

    others = {c: history.state_at(c, t) for c in history.controllers() if c != controller}
    refs = _refs(usage, declaration)

    basis = declaration.legal_basis if declaration else LegalBasis.CONSENT
    soft_problem = (
        soft_opt_in_problem(
            basis, str(declaration.sourcing), declaration.acquired_from, controller, purpose
        )
        if declaration
        else None
    )
    promotional = is_promotional(usage, declaration)
    exempt = basis is LegalBasis.B2B or (basis is LegalBasis.SOFT_OPT_IN and soft_problem is None)
    needs_consent = basis is LegalBasis.CONSENT or (
        channel in ELECTRONIC_MESSAGES and promotional and not exempt
    )

    grant = effective.grant_for(purpose, channel, refs)
    block = None if grant else effective.block_for(purpose, channel, refs)
    if grant is None and block is None and purpose in PARTNER_COVERED:
        # "opt-in partenaires" recorded under this controller's own name (a CMP's vendor
        # list): receiving that partner's offers is what it allows; R13 checks the naming
        grant = effective.grant_for(PARTNER_TRANSFER, channel, refs)
    via = None
    if (
        grant is None
        and block is None
        and purpose is not None
        and own.status is not ConsentStatus.ERASED
    ):
        acquired = declaration.acquired_from if declaration else []
        candidates = [c for c in acquired if c != controller] or sorted(others)
        found = _partner_grant(others, candidates, controller, purpose, channel, refs)
        if found is not None:
            grant, via = found

    no_record = own.status is ConsentStatus.UNKNOWN and effective.status is ConsentStatus.UNKNOWN
    if not final and (declaration is None or (needs_consent and grant is None and no_record)):
        return result(Decision.PENDING, []), None, ()
    cert = certificate_of(grant)
    certificate = history.certificate(controller, cert) if cert else None
    if not final and awaits_verification(usage, declaration, grant, certificate):
        return result(Decision.PENDING, [], wait_ms=policy.certificate_wait_ms), None, ()

    ctx = RuleContext(
        usage=usage,
        declaration=declaration,
        controller=controller,
        purpose=purpose,
        channel=channel,
        refs=refs,
        policy=policy,
        final=final,
        own=own,
        effective=effective,
        others=others,
        grant=grant,
        via=via,
        block=block,
        needs_consent=needs_consent,
        soft_opt_in_problem=soft_problem,
        calls=(
            history.calls_at(controller, t, usage.event_id)
            if usage.kind is UsageKind.CALL
            else _NO_CALLS
        ),
        first_message=(
            usage.kind is UsageKind.SEND and history.is_first_message(controller, t, usage.event_id)
        ),
        certificate=certificate,
    )
    rules = config.RULES if ctx.erased_before_use else rules_for(usage.kind, channel, purpose)
    findings: list[Finding] = []
    for r in rules:
        hit = r(ctx)
        if hit is not None:
            findings.append(hit)
    if via is not None and via in others:
        partner = others[via]
        return result(_decide(findings), findings, partner, partner.summary()), ctx, rules
    return result(_decide(findings), findings), ctx, rules


# -- outputs ----------------------------------------------------------------------------


def make_alerts(usage: UsageEvent, evaluation: Evaluation, detected_at_ms: int) -> list[Alert]:
    """One alert per finding; ids are deterministic (a replay gives the same alert ids)."""
    return [
        Alert(
            alert_id=ids.alert_id(usage.event_id, f.rule_id),
            rule_id=f.rule_id,
            rule_source=f.source,
            severity=f.severity,
            incident_key=ids.incident_key(evaluation.controller, usage.campaign_id, f.rule_id),
            usage_event_id=usage.event_id,
            subject_key=usage.subject_key,
            hint=usage.hint,
            controller=evaluation.controller,
            channel=usage.channel,
            summary=f.summary,
            occurred_at_ms=usage.occurred_at_ms,
            detected_at_ms=detected_at_ms,
            campaign_id=usage.campaign_id,
            purpose_used=evaluation.purpose,
            decl_id=evaluation.decl_id,
            source=usage.source,
            consent=evaluation.consent,
        )
        for f in evaluation.findings
    ]


def make_verdict(
    usage: UsageEvent, evaluation: Evaluation, decided_at_ms: int, correction: bool = False
) -> Verdict:
    return _new_verdict(
        usage.event_id,
        usage.subject_key,
        usage.occurred_at_ms,
        decided_at_ms,
        evaluation.decision,
        evaluation.rule_ids,
        evaluation.consent_version,
        evaluation.controller,
        usage.channel,
        evaluation.purpose,
        usage.source,
        evaluation.decl_id,
        correction,
        _VERDICT_V,
    )


def corrections(previous: Evaluation, current: Evaluation) -> list[str]:
    """Rule ids alerted in ``previous`` that no longer hold in ``current``, in order.

    The processor re-emits each such alert (same alert id) with status resolved,
    revision + 1 and ``correction_reason(...)`` (see ``resolve_alert``).
    """
    still = set(current.rule_ids)
    return [rid for rid in dict.fromkeys(previous.rule_ids) if rid not in still]


def correction_reason(rule_id: str, current: Evaluation) -> str:
    """A human sentence for a resolved alert."""
    state = current.consent.state if current.consent else "unknown"
    version = current.consent_version or "none"
    return (
        f"{rule_id} no longer holds: consent that arrived late changes the consent at the "
        f"time of use (now {state}, consent version {version}; decision {current.decision})"
    )


def resolve_alert(alert: Alert, current: Evaluation, resolved_at_ms: int) -> Alert:
    """The correction of ``alert``: same id, status resolved, revision + 1, with the reason."""
    return dataclasses.replace(
        alert,
        status=AlertStatus.RESOLVED,
        revision=alert.revision + 1,
        detected_at_ms=resolved_at_ms,
        correction_reason=correction_reason(alert.rule_id, current),
        consent=current.consent,
    )
