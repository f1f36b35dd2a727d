"""Evaluate one usage event against the consent history and its declaration (skeleton)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from consentinel.streams.events.records import (
    Alert,
    ConsentSummary,
    Decision,
    Declaration,
    Severity,
    UsageEvent,
    Verdict,
)
from consentinel.streams.events.settings import Settings

from .history import ConsentHistory


@dataclass(frozen=True, slots=True)
class PolicySettings:
    grace_ms: int = 120_000
    allowance_ms_by_channel: Mapping[str, int] = field(
        default_factory=lambda: {"email": 172_800_000, "sms": 0, "phone": 0}
    )
    r3_strength: str = "violation"
    r13_strength: str = "violation"
    retention_days: int = 1095
    max_versions: int = 64

    @classmethod
    def from_settings(cls, settings: Settings) -> PolicySettings:
        raise NotImplementedError

    def allowance_ms(self, channel: str) -> int:
        return int(self.allowance_ms_by_channel.get(channel, 0))


@dataclass(frozen=True, slots=True)
class Finding:
    rule_id: str
    source: str
    severity: Severity
    summary: str


@dataclass(frozen=True, slots=True)
class Evaluation:
    decision: Decision
    findings: list[Finding]
    consent_version: str | None
    consent: ConsentSummary | None
    purpose: str | None
    controller: str
    decl_id: str | None = None


def evaluate(
    usage: UsageEvent,
    history: ConsentHistory | None,
    declaration: Declaration | None,
    policy: PolicySettings,
    *,
    final: bool,
) -> Evaluation:
    raise NotImplementedError


def make_alerts(usage: UsageEvent, evaluation: Evaluation, detected_at_ms: int) -> list[Alert]:
    raise NotImplementedError


def make_verdict(
    usage: UsageEvent, evaluation: Evaluation, decided_at_ms: int, correction: bool = False
) -> Verdict:
    raise NotImplementedError


def corrections(previous: Evaluation, current: Evaluation) -> list[str]:
    raise NotImplementedError
