"""The consent history of one subject: per controller, a bounded, time-ordered list of versions.

(Skeleton published early so processors can code against it; bodies land next.)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from consentinel.streams.events.records import (
    ConsentAction,
    ConsentEvent,
    ConsentSummary,
    LegalBasis,
    Proof,
    UsageEvent,
)


class ConsentStatus(enum.StrEnum):
    GIVEN = "given"
    WITHDRAWN = "withdrawn"
    REFUSED = "refused"
    EXPIRED = "expired"
    ERASED = "erased"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ConsentEntry:
    """One consent event still in effect in a cumulative state."""

    event_id: str
    at_ms: int
    action: ConsentAction
    purposes: frozenset[str]
    all_purposes: bool
    channels: frozenset[str]
    all_channels: bool
    recipients: frozenset[str] = frozenset()
    collected_by: str | None = None
    legal_basis: LegalBasis = LegalBasis.CONSENT
    scope: str | None = None
    proof: Proof | None = None
    expires_at_ms: int | None = None
    unmapped: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ConsentState:
    controller: str
    at_ms: int
    status: ConsentStatus
    purposes: frozenset[str] = frozenset()
    all_purposes: bool = False
    channels: frozenset[str] = frozenset()
    all_channels: bool = False
    recipients: frozenset[str] = frozenset()
    collected_by: str | None = None
    legal_basis: LegalBasis | None = None
    proof: Proof | None = None
    version_event_ids: tuple[str, ...] = ()
    version_id: str | None = None
    valid_from_ms: int | None = None
    withdrawn_at_ms: int | None = None
    last_contact_ms: int | None = None
    erased_at_ms: int | None = None
    approximate: bool = False
    unmapped_purposes: frozenset[str] = frozenset()
    entries: tuple[ConsentEntry, ...] = ()

    def grant_for(
        self, purpose: str | None, channel: str, refs: frozenset[str] = frozenset()
    ) -> ConsentEntry | None:
        raise NotImplementedError

    def block_for(
        self, purpose: str | None, channel: str, refs: frozenset[str] = frozenset()
    ) -> ConsentEntry | None:
        raise NotImplementedError

    def covers(self, purpose: str | None, channel: str, refs: frozenset[str] = frozenset()) -> bool:
        return self.grant_for(purpose, channel, refs) is not None

    def summary(self) -> ConsentSummary:
        raise NotImplementedError


class ConsentHistory:
    def __init__(self, subject_key: str, max_versions: int = 64) -> None:
        self.subject_key = subject_key
        self.max_versions = max_versions

    def apply(self, event: ConsentEvent) -> bool:
        raise NotImplementedError

    def erase(self, event: ConsentEvent) -> bool:
        raise NotImplementedError

    def note_contact(self, usage: UsageEvent) -> bool:
        raise NotImplementedError

    def state_at(self, controller: str, t_ms: int, *, allowance_ms: int = 0) -> ConsentState:
        raise NotImplementedError

    def controllers(self) -> list[str]:
        raise NotImplementedError

    @property
    def subject_count(self) -> int:
        raise NotImplementedError

    @property
    def version_count(self) -> int:
        raise NotImplementedError

    def to_obj(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_obj(cls, obj: dict[str, Any], max_versions: int | None = None) -> ConsentHistory:
        raise NotImplementedError
