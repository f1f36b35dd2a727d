"""What every rule sees (``RuleContext``), what it returns (``Finding``) and how it is declared.

A rule is a pure function ``(RuleContext) -> Finding | None`` decorated with ``@rule``,
which gives it ``RULE_ID``, ``SOURCE`` (the bracketed sources of rules.md) and
``SEVERITY`` (its default). The engine builds the context once per use: the consent
question has already been answered there (``grant``, ``via``, ``block``), so rules read
it instead of re-deriving it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ...events.records import (
    ConsentAction,
    Declaration,
    LegalBasis,
    Severity,
    Sourcing,
    UsageEvent,
    UsageKind,
)
from ..calls import CallsAt
from ..history import CertificateResult, ConsentEntry, ConsentState, ConsentStatus
from ..purposes import CHANNEL_LABELS, NON_PROMOTIONAL
from ..settings import PolicySettings


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule that holds against one use, with a one-line human summary."""

    rule_id: str
    source: str
    severity: Severity
    summary: str


@dataclass(frozen=True, slots=True)
class RuleContext:
    """One use and everything known about it at its event time."""

    usage: UsageEvent
    declaration: Declaration | None
    controller: str  # the declaration's controller, else the platform account's
    purpose: str | None  # declared purpose, else what the platform said, else None
    channel: str
    refs: frozenset[str]  # what the use names (campaign, list...): matches consent scopes
    policy: PolicySettings
    final: bool
    own: ConsentState  # the controller's consent at the time of use
    effective: ConsentState  # the same with withdrawals inside the R5 allowance not yet in effect
    others: dict[str, ConsentState] = field(default_factory=dict)  # other controllers, same time
    grant: ConsentEntry | None = None  # what allows the use (own grant or a partner's)
    via: str | None = None  # the partner whose "opt-in partenaires" grant is used
    block: ConsentEntry | None = None  # what forbids it (withdraw, refuse, expire), own only
    needs_consent: bool = True  # the use rests on consent (see engine: basis)
    soft_opt_in_problem: str | None = None  # why a declared soft opt-in does not hold
    calls: CallsAt = field(default_factory=CallsAt)  # earlier attempts, last refusal (R11)
    first_message: bool = False  # a send that is the controller's first to the person (R15, R18)
    # R23: the latest verification result of the grant's certificate for the controller
    certificate: CertificateResult | None = None

    @property
    def t_ms(self) -> int:
        return self.usage.occurred_at_ms

    @property
    def basis(self) -> LegalBasis:
        return self.declaration.legal_basis if self.declaration else LegalBasis.CONSENT

    @property
    def sourcing(self) -> Sourcing:
        return self.declaration.sourcing if self.declaration else Sourcing.OWN

    @property
    def promotional(self) -> bool:
        if self.declaration is not None:
            return self.declaration.promotional
        return self.purpose is not None and self.purpose not in NON_PROMOTIONAL

    @property
    def erased_before_use(self) -> bool:
        """The controller's history was erased and the use is not after the erasure."""
        return (
            self.own.status is ConsentStatus.ERASED
            and self.own.erased_at_ms is not None
            and self.t_ms < self.own.erased_at_ms
        )

    @property
    def erased_at_use(self) -> bool:
        """The controller erased the address before (or at) the use."""
        return (
            self.own.status is ConsentStatus.ERASED
            and self.own.erased_at_ms is not None
            and self.t_ms >= self.own.erased_at_ms
        )

    @property
    def withdrawn(self) -> bool:
        """The use is forbidden by the person's withdrawal or an erasure (R5's case)."""
        if self.erased_at_use:
            return True
        return self.block is not None and self.block.action is ConsentAction.WITHDRAW

    def state_of(self, controller: str) -> ConsentState | None:
        if controller == self.controller:
            return self.own
        return self.others.get(controller)

    def what(self) -> str:
        """'political.communication e-mail by Campagne 2027'."""
        kind = self.usage.kind
        label = {
            UsageKind.CALL: "call",
            UsageKind.LEAD_DELIVERED: "lead delivery",
            UsageKind.LIST_TRANSFER: "list transfer",
        }.get(kind, CHANNEL_LABELS.get(self.channel, self.channel))
        return f"{self.purpose or 'undeclared'} {label} by {self.controller}"

    def consent_landscape(self) -> str:
        """'editorial.newsletter for Le Quotidien only' or 'no consent on record'."""
        parts = []
        for name in sorted({self.controller, *self.others}):
            state = self.state_of(name)
            if state is None or state.status is not ConsentStatus.GIVEN:
                continue
            purposes = sorted(state.purposes)
            if state.all_purposes:
                but = sorted(state.excluded_purposes)
                purposes = ["every purpose" + (f" but {', '.join(but)}" if but else "")]
            if purposes:
                parts.append(f"{', '.join(purposes)} for {name}")
        if not parts:
            return "no consent on record"
        return "; ".join(parts) + " only"


class Rule(Protocol):
    RULE_ID: str
    SOURCE: str
    SEVERITY: Severity
    #: the rule finds nothing for a use outside these (None: any), see ``rule``
    KINDS: frozenset[UsageKind] | None
    CHANNELS: frozenset[str] | None
    PURPOSES: frozenset[str] | None

    def __call__(self, ctx: RuleContext) -> Finding | None: ...


#: ``kinds`` of ``rule`` for the rules that look only at sends, or only at calls
SENDS = frozenset({UsageKind.SEND})
CALLS = frozenset({UsageKind.CALL})


def rule(
    rule_id: str,
    source: str,
    severity: Severity,
    *,
    kinds: frozenset[UsageKind] | None = None,
    channels: frozenset[str] | None = None,
    purposes: frozenset[str] | None = None,
) -> Callable[[Callable[[RuleContext], Finding | None]], Rule]:
    """Declare a rule: ``@rule("R2", "[S6 art. 5(1)(b), 6(4)]", Severity.CRITICAL)``.

    ``kinds``, ``channels``, ``purposes``: what the rule's first test already requires of
    the use's kind, channel and purpose (the context's); the engine does not call it for
    a use outside them (``rules.rules_for``). A promise about the code below it:
    ``tests/streams/policy/test_rules_table.py`` checks it on every combination."""

    def wrap(fn: Callable[[RuleContext], Finding | None]) -> Rule:
        fn.RULE_ID = rule_id  # type: ignore[attr-defined]
        fn.SOURCE = source  # type: ignore[attr-defined]
        fn.SEVERITY = severity  # type: ignore[attr-defined]
        fn.KINDS = kinds  # type: ignore[attr-defined]
        fn.CHANNELS = channels  # type: ignore[attr-defined]
        fn.PURPOSES = purposes  # type: ignore[attr-defined]
        return fn  # type: ignore[return-value]

    return wrap


def finding(r: Rule, summary: str, severity: Severity | None = None) -> Finding:
    return Finding(r.RULE_ID, r.SOURCE, severity or r.SEVERITY, summary)


def days(ms: int) -> str:
    d = ms / 86_400_000
    if d >= 1:
        return f"{d:.0f} day{'s' if round(d) != 1 else ''}"
    h = ms / 3_600_000
    if h >= 1:
        return f"{h:.0f} hour{'s' if round(h) != 1 else ''}"
    return f"{max(ms // 1000, 0)} s"
