"""What the checker holds per subject besides the consent ledger: pending and alerted uses.

- ``pending``: uses judged PENDING (no consent yet, or undeclared), each with the deadline
  (receipt + grace period) after which it is decided as it stands.
- ``alerted``: uses that raised alerts, with the evaluation behind them, for the
  correction window: a consent that arrives later and changes that evaluation resolves
  (or raises) alerts under the same alert ids. Never a silent change.

Both live in one value per subject (one changelog record), so a crash can never keep a
use's removal from ``pending`` while losing its entry in ``alerted``. Both are bounded:
past ``MAX_PENDING`` the oldest pending use is decided at once; past ``MAX_ALERTED`` or
``ALERTED_WINDOW_MS`` the oldest alerted use is forgotten (its alerts stay as they are).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from consentinel.streams.events import codec
from consentinel.streams.events.errors import InvalidInput
from consentinel.streams.events.records import AlertStatus, Declaration, UsageEvent
from consentinel.streams.policy.engine import Evaluation

log = logging.getLogger("consentinel.checker")

MAX_PENDING = 256
MAX_ALERTED = 64
ALERTED_WINDOW_MS = 7 * 86_400_000
FORMAT = 1


@dataclass
class Held:
    """A use waiting for its consent (or its declaration) until ``deadline_ms``."""

    usage: UsageEvent
    deadline_ms: int

    def to_obj(self) -> dict[str, Any]:
        return {"u": codec.to_obj(self.usage), "d": self.deadline_ms}

    @classmethod
    def from_obj(cls, obj: dict[str, Any]) -> Held:
        return cls(codec.from_obj(UsageEvent, obj["u"]), int(obj["d"]))


@dataclass
class RuleState:
    revision: int
    status: AlertStatus


@dataclass
class Alerted:
    """A decided use that raised alerts, kept so that a late consent can correct them."""

    usage: UsageEvent
    declaration: Declaration | None
    evaluation: Evaluation
    decided_at_ms: int
    rules: dict[str, RuleState] = field(default_factory=dict)

    def to_obj(self) -> dict[str, Any]:
        return {
            "u": codec.to_obj(self.usage),
            "decl": None if self.declaration is None else codec.to_obj(self.declaration),
            "ev": codec.to_obj(self.evaluation),
            "at": self.decided_at_ms,
            "r": {k: [s.revision, str(s.status)] for k, s in self.rules.items()},
        }

    @classmethod
    def from_obj(cls, obj: dict[str, Any]) -> Alerted:
        decl = obj.get("decl")
        return cls(
            usage=codec.from_obj(UsageEvent, obj["u"]),
            declaration=None if decl is None else codec.from_obj(Declaration, decl),
            evaluation=codec.from_obj(Evaluation, obj["ev"]),
            decided_at_ms=int(obj["at"]),
            rules={k: RuleState(int(v[0]), AlertStatus(v[1])) for k, v in obj.get("r", {}).items()},
        )

    @property
    def firing(self) -> bool:
        return any(s.status is AlertStatus.FIRING for s in self.rules.values())


@dataclass
class Holds:
    """Pending and alerted uses of one subject."""

    pending: list[Held] = field(default_factory=list)
    alerted: list[Alerted] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.pending or self.alerted)

    def knows(self, usage_event_id: str) -> bool:
        """Whether this use is already held (pending) or was already decided with alerts."""
        return any(h.usage.event_id == usage_event_id for h in self.pending) or any(
            a.usage.event_id == usage_event_id for a in self.alerted
        )

    def next_deadline(self) -> int | None:
        return min((h.deadline_ms for h in self.pending), default=None)

    def due(self) -> int | None:
        """When something of this subject is next due: the earliest pending deadline, or
        the moment its oldest alerted use leaves the correction window (None: never)."""
        pending = self.next_deadline()
        if not self.alerted:
            return pending
        leaves = min(a.decided_at_ms for a in self.alerted) + ALERTED_WINDOW_MS
        return leaves if pending is None else min(pending, leaves)

    def remember(self, entry: Alerted) -> None:
        """Keep an alerted use (replacing an older entry for the same use), newest last."""
        self.alerted = [a for a in self.alerted if a.usage.event_id != entry.usage.event_id]
        self.alerted.append(entry)
        if len(self.alerted) > MAX_ALERTED:
            self.alerted = self.alerted[-MAX_ALERTED:]

    def forget_before(self, cutoff_ms: int) -> int:
        """Forget alerted uses decided before ``cutoff_ms``; returns how many."""
        before = len(self.alerted)
        self.alerted = [a for a in self.alerted if a.decided_at_ms >= cutoff_ms]
        return before - len(self.alerted)

    def to_bytes(self) -> bytes:
        data: bytes = codec.dumps(
            {
                "f": FORMAT,
                "p": [h.to_obj() for h in self.pending],
                "a": [a.to_obj() for a in self.alerted],
            }
        )
        return data

    @classmethod
    def from_bytes(cls, data: bytes | None) -> Holds:
        if not data:
            return cls()
        obj = codec.loads(data)
        alerted: list[Alerted] = []
        for o in obj.get("a", []):
            # The stored evaluation follows the policy's Evaluation; if that changed shape
            # in an upgrade, lose the correction window of this one use, not the subject.
            try:
                alerted.append(Alerted.from_obj(o))
            except (InvalidInput, KeyError, TypeError, ValueError) as exc:
                log.error(
                    "an alerted use kept for corrections cannot be read any more (%s); "
                    "a late consent will not correct its alerts",
                    exc,
                )
        return cls(pending=[Held.from_obj(o) for o in obj.get("p", [])], alerted=alerted)
