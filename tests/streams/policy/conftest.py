"""Factories for the policy tests (importlib mode: shared through fixtures, not imports).

Times are epoch ms from ``T0`` (2026-01-01); ``DAY``/``HOUR`` help read them.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from consentinel.streams.events.records import (
    Channel,
    ConsentAction,
    ConsentEvent,
    Declaration,
    LegalBasis,
    Proof,
    Sourcing,
    UsageEvent,
    UsageKind,
)
from consentinel.streams.policy.engine import PolicySettings
from consentinel.streams.policy.history import ConsentHistory
from memo_check import decision_memo_checked

T0 = 1_767_225_600_000
HOUR = 3_600_000
DAY = 24 * HOUR
SUBJECT = "a" * 64

FULL_PROOF = Proof(
    method="double_opt_in",
    collected_at_ms=T0,
    collection_point="https://lequotidien.example/newsletter",
    notice_version="notice-v3",
)


class Factory:
    """Builds records with sensible defaults; every call gets a fresh event id."""

    T0 = T0
    DAY = DAY
    HOUR = HOUR
    SUBJECT = SUBJECT
    FULL_PROOF = FULL_PROOF

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    def _id(self, prefix: str) -> str:
        return f"{prefix}:{next(self._ids):04d}"

    def consent(
        self,
        action: ConsentAction | str = ConsentAction.GRANT,
        at: int = T0,
        controller: str = "Le Quotidien",
        purposes: list[str] | None = None,
        channels: list[Channel] | None = None,
        proof: Proof | None = FULL_PROOF,
        event_id: str | None = None,
        **kw: Any,
    ) -> ConsentEvent:
        action = ConsentAction(action)
        if purposes is None:
            purposes = ["editorial.newsletter"] if action is ConsentAction.GRANT else []
        return ConsentEvent(
            event_id=event_id or self._id("cmp"),
            occurred_at_ms=at,
            received_at_ms=kw.pop("received_at_ms", at),
            source="cmp-test",
            processor="test",
            subject_key=SUBJECT,
            hint="a***@e***.org",
            controller=controller,
            action=action,
            purposes=purposes,
            channels=[Channel.EMAIL] if channels is None else channels,
            proof=proof if action is ConsentAction.GRANT else None,
            **kw,
        )

    def grant(self, at: int = T0, **kw: Any) -> ConsentEvent:
        return self.consent(ConsentAction.GRANT, at, **kw)

    def withdraw(self, at: int, **kw: Any) -> ConsentEvent:
        return self.consent(ConsentAction.WITHDRAW, at, **kw)

    def usage(
        self,
        at: int = T0 + DAY,
        controller: str = "Le Quotidien",
        channel: Channel = Channel.EMAIL,
        kind: UsageKind = UsageKind.SEND,
        campaign_id: str | None = "weekly",
        event_id: str | None = None,
        **kw: Any,
    ) -> UsageEvent:
        return UsageEvent(
            event_id=event_id or self._id("esp"),
            occurred_at_ms=at,
            received_at_ms=kw.pop("received_at_ms", at),
            source="esp-test",
            processor="test",
            channel=channel,
            kind=kind,
            subject_key=SUBJECT,
            hint="a***@e***.org",
            controller=controller,
            campaign_id=campaign_id,
            **kw,
        )

    def decl(
        self,
        ref: str = "weekly",
        controller: str = "Le Quotidien",
        purpose: str = "editorial.newsletter",
        channel: Channel = Channel.EMAIL,
        ref_kind: str = "campaign",
        **kw: Any,
    ) -> Declaration:
        return Declaration(
            decl_id=f"{ref_kind}:{ref}",
            ref_kind=ref_kind,
            ref=ref,
            controller=controller,
            purpose=purpose,
            channel=channel,
            **kw,
        )

    def history(self, *events: ConsentEvent, max_versions: int = 64) -> ConsentHistory:
        h = ConsentHistory(SUBJECT, max_versions=max_versions)
        for e in events:
            h.apply(e)
        return h


@pytest.fixture
def make() -> Factory:
    return Factory()


@pytest.fixture
def policy() -> PolicySettings:
    return PolicySettings()


__all__ = ["DAY", "HOUR", "T0", "Factory", "LegalBasis", "Sourcing", "decision_memo_checked"]
